//! The batching producer and the engine's fan-out path.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pipeline_core::{
    BatchConfig, BatchProcessor, Deadline, MemoryQueue, MemorySink, OutgoingMessage, Producer, ProducerConfig,
    RecordError, RecordOutcome, StreamRecord,
};

fn bodies(n: usize) -> Vec<OutgoingMessage> {
    (0..n).map(|i| OutgoingMessage::new(format!("job-{i}"))).collect()
}

#[tokio::test(start_paused = true)]
async fn sends_ten_entries_per_call() {
    let producer = Producer::new(MemoryQueue::new());
    let report = producer.send(bodies(25)).await;
    assert_eq!(report.sent, 25);
    assert!(report.failed.is_empty());
    assert_eq!(producer.transport().calls(), vec![10, 10, 5]);
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_at_the_size_limit() {
    let producer = Producer::new(MemoryQueue::new()).with_config(ProducerConfig::default().max_batch_bytes(100));
    let messages: Vec<OutgoingMessage> = (0..6).map(|i| OutgoingMessage::new(format!("{i:0>40}"))).collect();
    let report = producer.send(messages).await;
    assert_eq!(report.sent, 6);
    assert_eq!(producer.transport().calls(), vec![2, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_message_is_reported_and_the_rest_are_sent() {
    let producer = Producer::new(MemoryQueue::new()).with_config(ProducerConfig::default().max_batch_bytes(50));
    let mut messages = bodies(3);
    messages.insert(1, OutgoingMessage::new("x".repeat(51)));
    let report = producer.send(messages).await;
    assert_eq!(report.sent, 3);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 1);
    assert!(report.failed[0].1.contains("exceeds the 50-byte"), "{}", report.failed[0].1);
}

#[tokio::test(start_paused = true)]
async fn transiently_failed_entries_are_retried_and_sender_faults_are_not() {
    let queue = MemoryQueue::new();
    queue.fail_transiently("job-3", 2);
    queue.refuse("job-7");
    let producer = Producer::new(queue);
    let report = producer.send(bodies(10)).await;
    assert_eq!(report.sent, 9);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 7);
    assert!(report.failed[0].1.starts_with("InvalidMessageContents"));
    // One call for the batch, then two retries of the one failing entry.
    assert_eq!(producer.transport().calls(), vec![10, 1, 1]);
    assert_eq!(producer.transport().sent().iter().filter(|m| m.body == "job-3").count(), 1, "sent exactly once");
}

#[tokio::test(start_paused = true)]
async fn an_entry_that_keeps_failing_is_reported_after_the_last_attempt() {
    let queue = MemoryQueue::new();
    queue.fail_transiently("job-0", 100);
    let producer = Producer::new(queue).with_config(ProducerConfig::default().max_attempts(3));
    let report = producer.send(bodies(2)).await;
    assert_eq!(report.sent, 1);
    assert_eq!(report.failed, vec![(0, "InternalError: transient failure injected by MemoryQueue".to_owned())]);
    assert_eq!(report.calls, 3);
}

#[tokio::test(start_paused = true)]
async fn batches_go_out_concurrently() {
    // 1,000 messages with 20 ms of (virtual) latency per call: 100 calls,
    // up to the configured 8 in flight at once.
    let queue = MemoryQueue::new();
    queue.set_latency(Duration::from_millis(20));
    let producer = Producer::new(queue);
    let report = producer.send(bodies(1000)).await;
    assert_eq!(report.sent, 1000);
    assert_eq!(report.calls, 100);
    assert_eq!(producer.transport().max_in_flight(), 8);
}

#[tokio::test(start_paused = true)]
async fn fifo_messages_keep_their_order() {
    let producer = Producer::new(MemoryQueue::new());
    let messages: Vec<OutgoingMessage> = (0..25).map(|i| OutgoingMessage::new(format!("{i}")).group("g")).collect();
    producer.send(messages).await;
    let sent: Vec<String> = producer.transport().sent().into_iter().map(|m| m.body).collect();
    assert_eq!(sent, (0..25).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn fanout_reports_the_record_whose_message_could_not_be_sent() {
    // GIVEN a stream batch where each record produces one message, and the
    // queue refuses the message of record 3
    let queue = MemoryQueue::new();
    queue.refuse("job-3");
    let producer = Producer::new(queue);
    let engine = BatchProcessor::new(info(), MemorySink::new()).with_config(BatchConfig::default().max_concurrency(1));
    let event = stream_event(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
    // WHEN the batch fans out
    let report = engine
        .run_stream_fanout(event, Deadline::none(), &producer, |r: StreamRecord<N>| async move {
            Ok::<_, RecordError>(vec![OutgoingMessage::new(format!("job-{}", r.meta.sequence_number))])
        })
        .await
        .unwrap();
    // THEN the checkpoint is at record 3, and all messages went out in one call
    assert_eq!(report.item_failures, vec!["3"]);
    assert!(matches!(&report.outcomes[2], RecordOutcome::Failed { reason } if reason.contains("message not sent")));
    assert_eq!(producer.transport().calls(), vec![4]);
}

#[tokio::test(start_paused = true)]
async fn fanout_of_a_large_batch_takes_one_call_per_ten_messages() {
    let queue = MemoryQueue::new();
    queue.set_latency(Duration::from_millis(20));
    let producer = Producer::new(queue);
    let engine = BatchProcessor::new(info(), MemorySink::new());
    let records: Vec<(u64, String)> = (0..1000).map(|i| (i + 1, format!("k{i}"))).collect();
    let records: Vec<(u64, &str)> = records.iter().map(|(s, k)| (*s, k.as_str())).collect();
    let report = engine
        .run_stream_fanout(stream_event(&records), Deadline::none(), &producer, |r: StreamRecord<N>| async move {
            Ok::<_, RecordError>(vec![OutgoingMessage::new(r.meta.sequence_number)])
        })
        .await
        .unwrap();
    assert!(report.item_failures.is_empty());
    assert_eq!(producer.transport().calls().len(), 100);
    assert_eq!(producer.transport().max_in_flight(), 8, "calls run concurrently, not 100 sequential round trips");
}

#[tokio::test(start_paused = true)]
async fn records_rejected_by_the_key_filter_are_not_decoded_or_run() {
    let script = Script::new(&[]);
    let mut audit = stream_record(2, "AUDIT#1", "INSERT");
    audit["dynamodb"]["NewImage"] = serde_json::json!({"pk": {"S": "AUDIT#1"}, "other": {"S": "shape"}});
    let event = from_records(vec![stream_record(1, "ITEM#1", "INSERT"), audit, stream_record(3, "ITEM#2", "INSERT")]);
    let engine = BatchProcessor::new(info(), MemorySink::new()).with_stream_key_filter(
        |keys| matches!(keys.get("pk"), Some(serde_dynamo::AttributeValue::S(pk)) if pk.starts_with("ITEM#")),
    );
    let report =
        engine.run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    assert_eq!(report.outcomes[1], RecordOutcome::Filtered);
    assert_eq!(report.summary.filtered, 1);
    assert_eq!(script.ran(), vec!["1", "3"]);
    assert!(engine.sink().letters().is_empty(), "a filtered record is not a decode failure");
}

#[tokio::test(start_paused = true)]
async fn characters_sqs_refuses_are_reported_before_sending() {
    let producer = Producer::new(MemoryQueue::new());
    let messages =
        vec![OutgoingMessage::new("ok"), OutgoingMessage::new("bad\u{1}"), OutgoingMessage::new("tab\tnewline\n")];
    let report = producer.send(messages).await;
    assert_eq!(report.sent, 2);
    assert_eq!(report.failed, vec![(1, "contains the character U+0001, which SQS does not accept".to_owned())]);
}
