//! The engine on SQS batches: LAMBDA-SEMANTICS sections 1 and 4.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pipeline_core::dlq::SourceKind;
use pipeline_core::{
    BatchConfig, BatchError, BatchProcessor, Deadline, Job, MemorySink, Message, RecordOutcome, SkipReason, SqsEvent,
};
use serde_json::json;

fn engine() -> BatchProcessor<MemorySink> {
    BatchProcessor::new(info(), MemorySink::new())
}

#[tokio::test(start_paused = true)]
async fn only_failed_messages_are_reported_by_message_id() {
    let script = Script::new(&[("b", Act::Retry), ("d", Act::Retry)]);
    let event = sqs_event(&[("a", None), ("b", None), ("c", None), ("d", None)], QUEUE_ARN);
    let report = engine().run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(report.item_failures, vec!["b", "d"]);
    assert_eq!(report.summary.succeeded, 2);
    assert_eq!(report.summary.retried, 2);
    assert_eq!(report.sqs_response().batch_item_failures.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_fully_successful_batch_reports_an_empty_list() {
    let script = Script::new(&[]);
    let event = sqs_event(&[("a", None), ("b", None)], QUEUE_ARN);
    let response = engine().process_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(serde_json::to_value(&response).unwrap(), json!({"batchItemFailures": []}));
}

#[tokio::test(start_paused = true)]
async fn standard_queue_records_run_concurrently_within_the_bound() {
    let script = Script::new(&[]);
    let ids: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, Option<&str>)> = ids.iter().map(|s| (s.as_str(), None)).collect();
    let engine = engine().with_config(BatchConfig::default().max_concurrency(4));
    let report = engine
        .run_sqs(sqs_event(&records, QUEUE_ARN), Deadline::none(), |m: Message<N>| script.act_on(m))
        .await
        .unwrap();
    assert_eq!(report.summary.succeeded, 20);
    assert_eq!(script.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn fifo_group_stops_at_its_first_failure_and_other_groups_go_on() {
    // GIVEN a FIFO batch with groups a, b, c where a2 fails
    let script = Script::new(&[("a2", Act::Retry)]);
    let event = sqs_event(
        &[
            ("a1", Some("a")),
            ("b1", Some("b")),
            ("a2", Some("a")),
            ("c1", Some("c")),
            ("b2", Some("b")),
            ("a3", Some("a")),
        ],
        FIFO_ARN,
    );
    // WHEN it runs
    let report = engine().run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    // THEN a2 and every later message of group a are reported, a3 never ran,
    // and groups b and c completed in order
    assert_eq!(report.item_failures, vec!["a2", "a3"]);
    assert_eq!(report.outcomes[5], RecordOutcome::Skipped(SkipReason::GroupFailed));
    let ran = script.ran();
    assert!(!ran.contains(&"a3".to_owned()), "a3 must not run after a2 failed: {ran:?}");
    let pos = |id: &str| ran.iter().position(|r| r == id).unwrap();
    assert!(pos("a1") < pos("a2"));
    assert!(pos("b1") < pos("b2"));
    assert!(ran.contains(&"c1".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn fifo_messages_of_one_group_never_overlap() {
    let script = Script::new(&[]);
    let event = sqs_event(&[("a1", Some("a")), ("a2", Some("a")), ("a3", Some("a"))], FIFO_ARN);
    engine().run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(script.ran(), vec!["a1", "a2", "a3"]);
    assert_eq!(script.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fifo_arn_alone_makes_the_batch_ordered() {
    // No MessageGroupId attributes (an odd emitter): the .fifo ARN still
    // means "stop after the first failure" is not applied across records
    // without a group, each being its own group.
    let script = Script::new(&[("x", Act::Retry)]);
    let event = sqs_event(&[("x", None), ("y", None)], FIFO_ARN);
    let report = engine().run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(report.item_failures, vec!["x"]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_in_a_fifo_group_is_dead_lettered_and_the_group_goes_on() {
    let script = Script::new(&[("a1", Act::Permanent)]);
    let engine = engine();
    let event = sqs_event(&[("a1", Some("a")), ("a2", Some("a"))], FIFO_ARN);
    let report = engine.run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert!(report.item_failures.is_empty());
    assert_eq!(script.ran(), vec!["a1", "a2"]);
    assert_eq!(engine.sink().letters().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_dead_lettered_with_a_complete_envelope() {
    let script = Script::new(&[("bad", Act::Permanent)]);
    let engine = engine();
    let event = sqs_event(&[("ok", None), ("bad", None)], QUEUE_ARN);
    let original = serde_json::to_value(&event.records[1]).unwrap();
    let report = engine.run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert!(report.item_failures.is_empty(), "a dead-lettered record counts as handled");
    assert_eq!(report.summary.dead_lettered, 1);
    let letters = engine.sink().letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert!(letter.is_supported());
    assert_eq!(letter.source.kind, SourceKind::Sqs);
    assert_eq!(letter.source.arn.as_deref(), Some(QUEUE_ARN));
    assert_eq!(letter.source.record_id.as_deref(), Some("bad"));
    assert_eq!(letter.error.kind, "validation");
    assert_eq!(letter.error.message, "bad: invalid");
    assert_eq!(letter.processor, info());
    assert_eq!(letter.attempts, Some(1));
    assert_eq!(serde_json::from_str::<serde_json::Value>(letter.record.get()).unwrap(), original, "record verbatim");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_valid_json_fails_only_itself_and_is_dead_lettered_as_decode() {
    let script = Script::new(&[]);
    let engine = engine();
    let mut records = vec![sqs_record("good", None, QUEUE_ARN, json!({"n": 1}))];
    let mut bad = sqs_record("bad", None, QUEUE_ARN, json!({}));
    bad["body"] = json!("{not json");
    records.push(bad);
    records.push(sqs_record("wrong-type", None, QUEUE_ARN, json!({"n": "seven"})));
    let report =
        engine.run_sqs(from_records(records), Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert!(report.item_failures.is_empty());
    assert_eq!(script.ran(), vec!["good"]);
    let letters = engine.sink().letters();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l.error.kind == "decode"));
    let not_json = letters.iter().find(|l| l.source.record_id.as_deref() == Some("bad")).unwrap();
    assert!(
        not_json.error.message.contains(": at body: "),
        "a syntax error is at the body: {}",
        not_json.error.message
    );
    let wrong = letters.iter().find(|l| l.source.record_id.as_deref() == Some("wrong-type")).unwrap();
    assert!(wrong.error.message.contains("at body.n"), "names the path: {}", wrong.error.message);
    assert!(wrong.error.message.contains("messageId=wrong-type"), "names the record: {}", wrong.error.message);
}

#[tokio::test(start_paused = true)]
async fn when_the_dead_letter_sink_fails_the_record_is_retried_instead() {
    let script = Script::new(&[("bad", Act::Permanent)]);
    let engine = engine();
    engine.sink().set_failing(true);
    let event = sqs_event(&[("ok", None), ("bad", None)], QUEUE_ARN);
    let report = engine.run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(report.item_failures, vec!["bad"]);
    assert!(matches!(&report.outcomes[1], RecordOutcome::Failed { reason } if reason.contains("not dead-lettered")));
}

#[tokio::test(start_paused = true)]
async fn a_panic_fails_only_its_own_record() {
    let script = Script::new(&[("boom", Act::Panic)]);
    let event = sqs_event(&[("a", None), ("boom", None), ("c", None)], QUEUE_ARN);
    let report = engine().run_sqs(event, Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(report.item_failures, vec!["boom"]);
    assert_eq!(report.summary.succeeded, 2);
    assert!(matches!(&report.outcomes[1], RecordOutcome::Failed { reason } if reason.contains("handler bug")));
}

#[tokio::test(start_paused = true)]
async fn records_not_started_before_the_deadline_margin_are_reported() {
    // Each record takes 10 ms of virtual time; one at a time; the deadline
    // is 45 ms away with a 10 ms margin, so records start at 0, 10, 20 and
    // 30 ms and the rest are reported without running.
    let script = Script::new(&[]);
    let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, Option<&str>)> = ids.iter().map(|s| (s.as_str(), None)).collect();
    let engine =
        engine().with_config(BatchConfig::default().max_concurrency(1).deadline_margin(Duration::from_millis(10)));
    let report = engine
        .run_sqs(sqs_event(&records, QUEUE_ARN), Deadline::after(Duration::from_millis(45)), |m: Message<N>| {
            script.act_on(m)
        })
        .await
        .unwrap();
    assert_eq!(script.ran(), vec!["m0", "m1", "m2", "m3"]);
    assert_eq!(report.item_failures, vec!["m4", "m5"]);
    assert!(report.outcomes[4..].iter().all(|o| *o == RecordOutcome::Skipped(SkipReason::Deadline)));
}

#[tokio::test(start_paused = true)]
async fn the_margin_is_at_most_a_quarter_of_the_time_left() {
    // A 2 s default margin with only 100 ms left: records still run until
    // 75 ms instead of every batch failing.
    let script = Script::new(&[]);
    let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, Option<&str>)> = ids.iter().map(|s| (s.as_str(), None)).collect();
    let engine = engine().with_config(BatchConfig::default().max_concurrency(1));
    let report = engine
        .run_sqs(sqs_event(&records, QUEUE_ARN), Deadline::after(Duration::from_millis(100)), |m: Message<N>| {
            script.act_on(m)
        })
        .await
        .unwrap();
    assert_eq!(script.ran().len(), 8, "started at 0, 10, ..., 70 ms");
    assert_eq!(report.item_failures, vec!["m8", "m9"]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_passed_when_the_batch_starts_is_ignored() {
    // Local emulators that do not set Lambda-Runtime-Deadline-Ms give a
    // deadline of "now" or the epoch; honouring it would fail every batch.
    let script = Script::new(&[]);
    let event = sqs_event(&[("a", None), ("b", None)], QUEUE_ARN);
    let past = Deadline::from_system_time(std::time::SystemTime::UNIX_EPOCH);
    let report = engine().run_sqs(event, past, |m: Message<N>| script.act_on(m)).await.unwrap();
    assert!(report.item_failures.is_empty());
    assert_eq!(script.ran().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failing_record_without_a_message_id_fails_the_invocation() {
    let script = Script::new(&[("", Act::Retry)]);
    let mut record = sqs_record("", None, QUEUE_ARN, json!({"n": 1}));
    record["messageId"] = json!("");
    // An empty messageId cannot decode: it goes to the dead-letter sink,
    // which fails here, so the record must be reported but cannot be.
    let engine = engine();
    engine.sink().set_failing(true);
    let err = engine
        .run_sqs(from_records::<SqsEvent>(vec![record]), Deadline::none(), |m: Message<N>| script.act_on(m))
        .await
        .unwrap_err();
    assert!(matches!(err, BatchError::Unidentifiable { field: "messageId", .. }));
    assert!(err.to_string().contains("record #0"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_record_without_a_message_id_that_is_dead_lettered_needs_no_identifier() {
    let script = Script::new(&[]);
    let mut record = sqs_record("x", None, QUEUE_ARN, json!({"n": 1}));
    record.as_object_mut().unwrap().remove("messageId");
    let engine = engine();
    let report = engine
        .run_sqs(from_records::<SqsEvent>(vec![record]), Deadline::none(), |m: Message<N>| script.act_on(m))
        .await
        .unwrap();
    assert!(report.item_failures.is_empty());
    let letters = engine.sink().letters();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].error.message.contains("messageId"), "{}", letters[0].error.message);
}

#[tokio::test(start_paused = true)]
async fn an_all_failed_batch_returns_the_response_unless_configured_otherwise() {
    let script = Script::new(&[("a", Act::Retry), ("b", Act::Retry)]);
    let event = || sqs_event(&[("a", None), ("b", None)], QUEUE_ARN);
    let report = engine().run_sqs(event(), Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap();
    assert_eq!(report.item_failures, vec!["a", "b"]);
    let strict = engine().with_config(BatchConfig::default().fail_invocation_when_all_fail(true));
    let err = strict.run_sqs(event(), Deadline::none(), |m: Message<N>| script.act_on(m)).await.unwrap_err();
    assert!(matches!(err, BatchError::AllFailed(2)));
}

#[tokio::test]
async fn an_event_without_records_is_a_clear_error() {
    let err = serde_json::from_str::<SqsEvent>(r#"{"records": []}"#).unwrap_err();
    assert!(err.to_string().contains("Records"), "{err}");
}

#[tokio::test]
async fn the_sample_poison_event_dead_letters_exactly_the_bad_bodies() {
    let event: SqsEvent = serde_json::from_str(include_str!("../../events/sqs/poison.json")).unwrap();
    let engine = engine();
    let report = engine.run_sqs(event, Deadline::none(), |_m: Message<Job>| async { Ok(()) }).await.unwrap();
    assert!(report.item_failures.is_empty());
    let mut bad: Vec<String> = engine.sink().letters().iter().map(|l| l.source.record_id.clone().unwrap()).collect();
    bad.sort();
    assert_eq!(
        bad,
        vec![
            "00000000-0000-4000-8000-000000000012",
            "00000000-0000-4000-8000-000000000013",
            "00000000-0000-4000-8000-000000000014"
        ]
    );
}

#[tokio::test]
async fn message_metadata_is_decoded() {
    let event: SqsEvent = serde_json::from_str(include_str!("../../events/sqs/fifo-groups.json")).unwrap();
    let messages = pipeline_core::decode_sqs_event::<Job>(&event);
    let first = messages[0].as_ref().unwrap();
    assert_eq!(first.body, Job::ProcessItem { item_id: "A1".into(), version: 1 });
    assert_eq!(first.meta.group_id.as_deref(), Some("tenant-a"));
    assert_eq!(first.meta.deduplication_id.as_deref(), Some("dedup-21"));
    assert_eq!(first.meta.sequence_number.as_deref(), Some("18800000000000000021"));
    assert_eq!(first.meta.receive_count, 1);
    assert_eq!(first.meta.sent_at.unwrap().timestamp_millis(), 1_795_600_000_021);
}
