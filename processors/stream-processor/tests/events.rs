//! The stream processor on every sample event under events/stream/.
#![allow(clippy::unwrap_used)]

use pipeline_core::{Deadline, Job, MemoryQueue, MemorySink, RecordOutcome, RemovalReason, StreamEvent};
use serde_json::json;
use stream_processor::{StreamProcessor, ATTR_JOB_TYPE};

fn event(text: &str) -> StreamEvent {
    serde_json::from_str(text).unwrap()
}

fn processor() -> StreamProcessor<MemorySink, MemoryQueue> {
    StreamProcessor::new(MemorySink::new(), MemoryQueue::new())
}

fn jobs(p: &StreamProcessor<MemorySink, MemoryQueue>) -> Vec<Job> {
    p.producer().transport().sent().iter().map(|m| serde_json::from_str(&m.body).unwrap()).collect()
}

#[tokio::test]
async fn mixed_changes_become_jobs_and_the_processors_own_writes_are_ignored() {
    let p = processor();
    let response = p
        .handle_event(event(include_str!("../../../events/stream/mixed-changes.json")), Deadline::none())
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(response).unwrap(), json!({"batchItemFailures": []}));
    assert_eq!(
        jobs(&p),
        vec![
            Job::ProcessItem { item_id: "1001".into(), version: 1 },
            Job::ProcessItem { item_id: "1002".into(), version: 2 },
            Job::RecordRemoval {
                item_id: "1003".into(),
                version: 2,
                reason: RemovalReason::Deleted,
                sequence_number: "103".into(),
                removed_at: chrono::DateTime::from_timestamp(1_795_600_103, 0),
            },
            Job::RecordRemoval {
                item_id: "1004".into(),
                version: 1,
                reason: RemovalReason::TtlExpired,
                sequence_number: "104".into(),
                removed_at: chrono::DateTime::from_timestamp(1_795_600_104, 0),
            },
        ]
    );
    assert_eq!(p.producer().transport().calls(), vec![4], "one SendMessageBatch for the batch");
    let sent = p.producer().transport().sent();
    assert_eq!(sent[0].attributes, vec![(ATTR_JOB_TYPE.to_owned(), "process_item".to_owned())]);
    assert!(p.engine().sink().letters().is_empty());
}

#[tokio::test]
async fn items_that_do_not_decode_go_to_the_dead_letter_queue_and_the_rest_go_on() {
    let p = processor();
    let report =
        p.run(event(include_str!("../../../events/stream/undecodable-item.json")), Deadline::none()).await.unwrap();
    assert!(report.item_failures.is_empty());
    let ids: Vec<String> = jobs(&p).iter().map(|j| j.item_id().to_owned()).collect();
    assert_eq!(ids, vec!["2001", "2004"]);
    let letters = p.engine().sink().letters();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l.error.kind == "decode" && l.processor.name == "stream-processor"));
}

#[tokio::test]
async fn odd_envelopes_decode_leniently_and_broken_records_are_dead_lettered() {
    let p = processor();
    let report =
        p.run(event(include_str!("../../../events/stream/odd-envelopes.json")), Deadline::none()).await.unwrap();
    assert!(report.item_failures.is_empty());
    assert_eq!(jobs(&p).len(), 2);
    assert_eq!(p.engine().sink().letters().len(), 3);
}

#[tokio::test]
async fn a_keys_only_stream_is_a_clear_error_per_record() {
    for (file, bad, good) in [
        (include_str!("../../../events/stream/view-keys-only.json"), 3, 0),
        (include_str!("../../../events/stream/view-new-image.json"), 1, 1),
        (include_str!("../../../events/stream/view-old-image.json"), 1, 1),
    ] {
        let p = processor();
        p.run(event(file), Deadline::none()).await.unwrap();
        assert_eq!(p.engine().sink().letters().len(), bad);
        assert_eq!(jobs(&p).len(), good);
        for letter in p.engine().sink().letters() {
            assert!(letter.error.message.contains("StreamViewType"), "{}", letter.error.message);
        }
    }
}

#[tokio::test]
async fn a_job_that_cannot_be_sent_becomes_the_checkpoint() {
    let queue = MemoryQueue::new();
    queue.refuse(r#"{"type":"process_item","item_id":"1002","version":2}"#);
    let p = StreamProcessor::new(MemorySink::new(), queue);
    let response = p
        .handle_event(event(include_str!("../../../events/stream/mixed-changes.json")), Deadline::none())
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(response).unwrap(), json!({"batchItemFailures": [{"itemIdentifier": "101"}]}));
}

#[tokio::test]
async fn when_the_dead_letter_queue_is_down_the_bad_record_becomes_the_checkpoint() {
    let p = processor();
    p.engine().sink().set_failing(true);
    let report =
        p.run(event(include_str!("../../../events/stream/undecodable-item.json")), Deadline::none()).await.unwrap();
    assert_eq!(report.item_failures, vec!["201"]);
}

fn record(
    seq: u64,
    name: &str,
    pk: &str,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut data = json!({"Keys": {"pk": {"S": pk}, "sk": {"S": "ITEM"}}, "SequenceNumber": seq.to_string(),
        "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES", "ApproximateCreationDateTime": 1_700_000_000});
    if let Some(o) = old {
        data["OldImage"] = o;
    }
    if let Some(n) = new {
        data["NewImage"] = n;
    }
    json!({"eventID": format!("e{seq}"), "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": data})
}

fn image(status: &str, name: &str, version: u64) -> serde_json::Value {
    json!({"pk": {"S": "ITEM#9"}, "sk": {"S": "ITEM"}, "gsi1pk": {"S": format!("STATUS#{status}")}, "gsi1sk": {"S": "ITEM#9"},
        "name": {"S": name}, "status": {"S": status}, "price": {"S": "1.50"}, "quantity": {"N": "2"},
        "created_at": {"S": "2026-01-01T00:00:00Z"}, "updated_at": {"S": "2026-01-01T00:00:00Z"}, "version": {"N": version.to_string()}})
}

#[tokio::test]
async fn modify_rules_touches_reprocessing_and_audit_records() {
    let p = processor();
    let records = vec![
        // A touch: nothing a producer owns changed, same version.
        record(1, "MODIFY", "ITEM#9", Some(image("PENDING", "a", 1)), Some(image("PENDING", "a", 1))),
        // Reprocessing requested: PROCESSED -> PENDING at a new version.
        record(2, "MODIFY", "ITEM#9", Some(image("PROCESSED", "a", 2)), Some(image("PENDING", "a", 3))),
        // A FAILED write by the queue processor: ignored.
        record(3, "MODIFY", "ITEM#9", Some(image("PENDING", "a", 3)), Some(image("FAILED", "a", 4))),
        // An audit record in the same table: filtered out, not dead-lettered.
        record(4, "INSERT", "AUDIT#9", None, Some(json!({"pk": {"S": "AUDIT#9"}, "sk": {"S": "REMOVED#1"}}))),
        // An INSERT of an already processed item (a restore): no job.
        record(5, "INSERT", "ITEM#9", None, Some(image("PROCESSED", "a", 7))),
    ];
    let report = p.run(serde_json::from_value(json!({"Records": records})).unwrap(), Deadline::none()).await.unwrap();
    assert_eq!(jobs(&p), vec![Job::ProcessItem { item_id: "9".into(), version: 3 }]);
    assert_eq!(report.outcomes[3], RecordOutcome::Filtered);
    assert!(p.engine().sink().letters().is_empty());
}
