//! The real `stream-processor` binary, started against a Lambda Runtime API
//! emulator and the local AWS endpoint, answering the sample events.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pipeline_tests::local::{create_queue, drain, sdk_config, unique};
use pipeline_tests::runtime_api::{assert_exits_naming_missing, Function, Outcome, RuntimeApi};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_stream-processor");

#[tokio::test]
async fn without_its_configuration_it_exits_naming_the_missing_variable() {
    assert_exits_naming_missing(BIN, "PROCESSING_QUEUE_URL").await;
}

#[tokio::test]
async fn answers_the_sample_events_with_the_expected_responses() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let jobs = create_queue(&sqs, &unique("jobs")).await;
    let dlq = create_queue(&sqs, &unique("stream-dlq")).await;
    let api = RuntimeApi::start().await;
    let _f = Function::spawn(
        BIN,
        &api,
        "stream-processor",
        &[("PROCESSING_QUEUE_URL", jobs.as_str()), ("DEAD_LETTER_QUEUE_URL", dlq.as_str())],
    );

    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/stream/mixed-changes.json")).unwrap();
    let outcome = api.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));
    let sent = drain(&sqs, &jobs).await;
    assert_eq!(sent.len(), 4, "INSERT, content MODIFY, REMOVE, TTL REMOVE; not the status write");
    assert!(sent.iter().all(|m| m.message_attributes().is_some_and(|a| a.contains_key("pipeline.job_type"))));

    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/stream/undecodable-item.json")).unwrap();
    let outcome = api.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));
    let letters = drain(&sqs, &dlq).await;
    assert_eq!(letters.len(), 2);
    let envelope: serde_json::Value = serde_json::from_str(letters[0].body().unwrap()).unwrap();
    assert_eq!(envelope["schema"], "lambda-pipeline/dead-letter");
    assert_eq!(envelope["processor"]["name"], "stream-processor");
    assert_eq!(drain(&sqs, &jobs).await.len(), 2);
}
