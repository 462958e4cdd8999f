//! The engine on DynamoDB Streams batches: LAMBDA-SEMANTICS sections 2 and 3.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pipeline_core::dlq::SourceKind;
use pipeline_core::{
    BatchConfig, BatchError, BatchProcessor, Change, Deadline, Item, MemorySink, RecordOutcome, SkipReason,
    StreamEvent, StreamRecord,
};
use serde_json::json;

fn engine() -> BatchProcessor<MemorySink> {
    BatchProcessor::new(info(), MemorySink::new())
}

fn sample(name: &str) -> StreamEvent {
    let text = match name {
        "mixed" => include_str!("../../events/stream/mixed-changes.json"),
        "undecodable" => include_str!("../../events/stream/undecodable-item.json"),
        "odd" => include_str!("../../events/stream/odd-envelopes.json"),
        "keys" => include_str!("../../events/stream/view-keys-only.json"),
        "new" => include_str!("../../events/stream/view-new-image.json"),
        "old" => include_str!("../../events/stream/view-old-image.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_failure_reports_only_its_sequence_number_and_stops_its_key() {
    // GIVEN one key with records 1..=4 where 2 fails, run strictly in order
    let script = Script::new(&[("2", Act::Retry)]);
    let event = stream_event(&[(1, "k"), (2, "k"), (3, "k"), (4, "k")]);
    let engine = engine().with_config(BatchConfig::default().max_concurrency(1));
    // WHEN the batch runs
    let report =
        engine.run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    // THEN Lambda is told to checkpoint at 2, and 3 and 4 never ran
    assert_eq!(report.item_failures, vec!["2"]);
    assert_eq!(script.ran(), vec!["1", "2"]);
    let response = serde_json::to_value(report.stream_response()).unwrap();
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": "2"}]}));
}

#[tokio::test(start_paused = true)]
async fn the_lowest_failed_sequence_number_is_reported_when_keys_run_concurrently() {
    // Keys a and b run concurrently; b's failure at 4 happens, a's at 5 too;
    // and key c's failure at 2 is the lowest.
    let script = Script::new(&[("2", Act::Retry), ("4", Act::Retry), ("5", Act::Panic)]);
    let event = stream_event(&[(1, "a"), (2, "c"), (3, "b"), (4, "b"), (5, "a"), (6, "b"), (7, "a")]);
    let report =
        engine().run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    assert_eq!(report.item_failures, vec!["2"]);
    let ran = script.ran();
    assert!(!ran.contains(&"6".to_owned()) && !ran.contains(&"7".to_owned()), "after a key's failure: {ran:?}");
}

#[tokio::test(start_paused = true)]
async fn records_after_the_first_failure_are_not_started() {
    let script = Script::new(&[("1", Act::Retry)]);
    let event = stream_event(&[(1, "a"), (2, "b"), (3, "c")]);
    let engine = engine().with_config(BatchConfig::default().max_concurrency(1));
    let report =
        engine.run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    assert_eq!(script.ran(), vec!["1"]);
    assert_eq!(report.outcomes[1], RecordOutcome::Skipped(SkipReason::AfterCheckpoint));
    assert_eq!(report.item_failures, vec!["1"]);
}

#[tokio::test(start_paused = true)]
async fn one_keys_records_run_in_order_and_never_overlap() {
    let script = Script::new(&[]);
    let event = stream_event(&[(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")]);
    engine().run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    let ran = script.ran();
    let a: Vec<&String> = ran.iter().filter(|s| ["1", "3", "5"].contains(&s.as_str())).collect();
    assert_eq!(a, vec!["1", "3", "5"]);
    assert_eq!(script.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 2, "two keys ran concurrently");
}

#[tokio::test(start_paused = true)]
async fn an_item_that_does_not_decode_is_dead_lettered_naming_the_attribute() {
    let engine = engine();
    let report = engine
        .run_stream(sample("undecodable"), Deadline::none(), |_r: StreamRecord<Item>| async { Ok(()) })
        .await
        .unwrap();
    assert!(report.item_failures.is_empty(), "dead-lettered records are handled");
    assert_eq!(report.summary.succeeded, 2);
    assert_eq!(report.summary.dead_lettered, 2);
    let letters = engine.sink().letters();
    assert_eq!(letters[0].source.kind, SourceKind::DynamodbStream);
    assert_eq!(letters[0].source.record_id.as_deref(), Some("201"));
    assert!(letters[0].error.message.contains("at dynamodb.NewImage.price"), "{}", letters[0].error.message);
    assert!(letters[0].error.message.contains("SequenceNumber=201"), "{}", letters[0].error.message);
    assert!(letters[0].error.message.contains("eventID=evt-201"), "{}", letters[0].error.message);
    assert!(letters[1].error.message.contains("at dynamodb.NewImage.status"), "{}", letters[1].error.message);
}

#[tokio::test(start_paused = true)]
async fn when_the_dead_letter_sink_fails_the_stream_checkpoints_at_the_bad_record() {
    let engine = engine().with_config(BatchConfig::default().max_concurrency(1));
    engine.sink().set_failing(true);
    let report = engine
        .run_stream(sample("undecodable"), Deadline::none(), |_r: StreamRecord<Item>| async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(report.item_failures, vec!["201"]);
    assert_eq!(report.outcomes[0], RecordOutcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_stream_handler_fails_its_record_only() {
    let script = Script::new(&[("2", Act::Panic)]);
    let event = stream_event(&[(1, "a"), (2, "b"), (3, "a")]);
    let report =
        engine().run_stream(event, Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r)).await.unwrap();
    assert_eq!(report.item_failures, vec!["2"]);
    assert_eq!(report.outcomes[0], RecordOutcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn stream_records_past_the_deadline_are_reported_from_the_first_one_not_started() {
    let script = Script::new(&[]);
    let event = stream_event(&[(1, "a"), (2, "a"), (3, "a"), (4, "a")]);
    let engine = engine().with_config(BatchConfig::default().deadline_margin(Duration::from_millis(5)));
    let report = engine
        .run_stream(event, Deadline::after(Duration::from_millis(25)), |r: StreamRecord<N>| script.act_on_stream(r))
        .await
        .unwrap();
    assert_eq!(script.ran(), vec!["1", "2"]);
    assert_eq!(report.item_failures, vec!["3"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_record_without_a_sequence_number_fails_the_invocation() {
    let mut record = stream_record(7, "a", "INSERT");
    record["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
    let engine = engine();
    engine.sink().set_failing(true);
    let err = engine
        .run_stream(from_records::<StreamEvent>(vec![record]), Deadline::none(), |_r: StreamRecord<N>| async { Ok(()) })
        .await
        .unwrap_err();
    assert!(matches!(err, BatchError::Unidentifiable { field: "dynamodb.SequenceNumber", .. }), "{err}");
}

#[test]
fn mixed_changes_decode_into_typed_changes() {
    let records = pipeline_core::decode_stream_event::<Item>(&sample("mixed"));
    let records: Vec<StreamRecord<Item>> = records.into_iter().map(Result::unwrap).collect();
    assert!(matches!(&records[0].change, Change::Insert { new } if new.id() == "1001" && new.version == 1));
    assert!(
        matches!(&records[1].change, Change::Modify { old, new } if old.price.to_string() == "19.99" && new.price.to_string() == "24.50")
    );
    assert!(matches!(&records[3].change, Change::Remove { old } if old.id() == "1003"));
    assert!(!records[3].meta.ttl_expired, "a writer's delete");
    assert!(records[4].meta.ttl_expired, "a TTL delete");
    let meta = &records[0].meta;
    assert_eq!(meta.sequence_number, "100");
    assert_eq!(meta.event_id.as_deref(), Some("evt-100"));
    assert_eq!(meta.size_bytes, Some(256));
    assert_eq!(meta.view_type, Some(pipeline_core::StreamViewType::NewAndOldImages));
    assert_eq!(meta.keys["pk"], serde_dynamo::AttributeValue::S("ITEM#1001".into()));
    assert!(meta.approximate_creation_time.is_some());
}

#[test]
fn odd_envelopes_are_read_leniently_and_bad_records_fail_alone() {
    let records = pipeline_core::decode_stream_event::<Item>(&sample("odd"));
    let float = records[0].as_ref().unwrap();
    assert_eq!(float.meta.size_bytes, None);
    assert_eq!(float.meta.approximate_creation_time.unwrap().timestamp_millis(), 1_795_600_000_123);
    let string_time = records[1].as_ref().unwrap();
    assert_eq!(string_time.meta.approximate_creation_time.unwrap().timestamp(), 1_795_508_800);
    let unknown = records[2].as_ref().unwrap_err();
    assert_eq!(unknown.path, "eventName");
    assert!(unknown.message.contains("UPSERT"));
    let missing = records[3].as_ref().unwrap_err();
    assert_eq!(missing.path, "dynamodb.NewImage");
    let field = records[4].as_ref().unwrap_err();
    assert!(field.message.contains("name"), "{field}");
}

#[test]
fn each_view_type_gets_a_clear_error_naming_it() {
    for record in pipeline_core::decode_stream_event::<Item>(&sample("keys")) {
        let err = record.unwrap_err();
        assert!(err.message.contains("StreamViewType KEYS_ONLY"), "{err}");
        assert!(err.message.contains("NEW_AND_OLD_IMAGES"), "says the fix: {err}");
    }
    let new = pipeline_core::decode_stream_event::<Item>(&sample("new"));
    assert!(matches!(new[0].as_ref().unwrap().change, Change::Insert { .. }));
    let err = new[1].as_ref().unwrap_err();
    assert_eq!(err.path, "dynamodb.OldImage");
    assert!(err.message.contains("NEW_IMAGE"), "{err}");
    let old = pipeline_core::decode_stream_event::<Item>(&sample("old"));
    assert!(matches!(old[0].as_ref().unwrap().change, Change::Remove { .. }));
    let err = old[1].as_ref().unwrap_err();
    assert_eq!(err.path, "dynamodb.NewImage");
    assert!(err.message.contains("OLD_IMAGE"), "{err}");
}

#[test]
fn a_record_that_is_not_an_object_fails_alone_with_its_position() {
    let event: StreamEvent =
        from_records(vec![stream_record(1, "a", "INSERT"), json!(42), json!({"eventName": "INSERT"})]);
    let records = pipeline_core::decode_stream_event::<N>(&event);
    assert!(records[0].is_ok());
    assert_eq!(records[1].as_ref().unwrap_err().record.index, 1);
    assert!(records[2].as_ref().unwrap_err().to_string().contains("record #2"));
}
