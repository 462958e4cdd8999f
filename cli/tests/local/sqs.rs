//! SQS event source mapping fidelity (LAMBDA-SEMANTICS.md sections 1 and 4).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_cli::esm::Emulator;
use pipeline_cli::invoke::Invocation;
use serde_json::{json, Value};

use crate::common::*;

const VT1: &str = "VisibilityTimeout: 1";
/// For tests where nothing should come back: a slow moment must not cause a
/// redelivery.
const VT5: &str = "VisibilityTimeout: 5";
const REDRIVE10: &str = "RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 10}";
const RBIF: &str = "FunctionResponseTypes: [ReportBatchItemFailures]";

fn receive_count(r: &Value) -> &str {
    r["attributes"]["ApproximateReceiveCount"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_event_has_lambda_shape() {
    let s = Stack::new(&sqs_template(false, &[VT5, REDRIVE10], &["BatchSize: 10", RBIF], 1)).await;
    s.send("Queue", &[r#"{"id":1}"#], None).await;
    let inv = Scripted::new(|_, _| ok());
    drain(s.start(&inv, options(1)).await).await;

    let calls = inv.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function, "Fn");
    let r = &calls[0].records()[0];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "awsRegion",
            "body",
            "eventSource",
            "eventSourceARN",
            "md5OfBody",
            "messageAttributes",
            "messageId",
            "receiptHandle"
        ]
    );
    assert_eq!(r["body"], r#"{"id":1}"#);
    assert_eq!(r["eventSource"], "aws:sqs");
    assert_eq!(r["eventSourceARN"], s.stack.queues["Queue"].arn.as_str());
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["md5OfBody"].as_str().unwrap().len(), 32);
    for a in ["ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"] {
        assert!(r["attributes"][a].is_string(), "attribute {a} missing: {r}");
    }
    assert_eq!(receive_count(r), "1");
    assert_eq!(
        r["messageAttributes"]["origin"],
        json!({"stringValue": "test", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
    );
    // The shared crate decodes it like a real event.
    let event: pipeline_core::SqsEvent = serde_json::from_value(calls[0].payload.clone()).unwrap();
    let decoded = pipeline_core::decode_sqs_event::<Value>(&event);
    let m = decoded[0].as_ref().unwrap();
    assert_eq!(m.body, json!({"id": 1}));
    assert_eq!(m.meta.receive_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_response_deletes_only_succeeded_messages() {
    let s = Stack::new(&sqs_template(
        false,
        &[VT1, REDRIVE10],
        &["BatchSize: 10", "MaximumBatchingWindowInSeconds: 1", RBIF],
        1,
    ))
    .await;
    s.send("Queue", &["a", "b", "c"], None).await;
    // GIVEN b fails on its first delivery only
    let inv = Scripted::new(|_, p| {
        let first_b = p["Records"].as_array().unwrap().iter().find(|r| r["body"] == "b" && receive_count(r) == "1");
        match first_b {
            Some(r) => failures(&[r["messageId"].as_str().unwrap()]),
            None => ok(),
        }
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    // THEN a and c were deleted after one delivery; b came back once
    let calls = inv.calls();
    assert_eq!(calls[0].keys(), ["a", "b", "c"]);
    let d = inv.deliveries();
    assert_eq!((d["a"], d["b"], d["c"]), (1, 2, 1), "{d:?}");
    let redelivered = calls.iter().flat_map(|c| c.records()).filter(|r| r["body"] == "b").nth(1).unwrap();
    assert_eq!(receive_count(&redelivered), "2");
    let m = &report.mappings[0];
    assert_eq!((m.partial_failures, m.whole_failures, m.deleted_messages, m.failed_records), (1, 0, 3, 1), "{m}");
    assert_eq!(m.dlq_depth, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_identifier_not_in_batch_fails_whole_batch() {
    let s = Stack::new(&sqs_template(false, &[VT1, REDRIVE10], &["BatchSize: 10", RBIF], 1)).await;
    s.send("Queue", &["a", "b"], None).await;
    // GIVEN the first response names a real message AND one not in the batch
    let inv = Scripted::new(|i, p| {
        if i == 0 {
            let a = message_id(p, "a").unwrap();
            failures(&[&a, "00000000-0000-0000-0000-000000000000"])
        } else {
            ok()
        }
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    // THEN nothing of that batch was deleted: both came back
    let first = inv.calls()[0].keys();
    assert_eq!(first.len(), 2);
    let d = inv.deliveries();
    assert_eq!((d["a"], d["b"]), (2, 2), "{d:?}");
    let m = &report.mappings[0];
    assert_eq!((m.invalid_responses, m.whole_failures, m.partial_failures, m.deleted_messages), (1, 1, 0, 2), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_null_or_wrongly_keyed_identifier_fails_whole_batch() {
    let s = Stack::new(&sqs_template(false, &[VT1, REDRIVE10], &["BatchSize: 10", RBIF], 1)).await;
    s.send("Queue", &["a"], None).await;
    let inv = Scripted::new(|i, p| {
        let id = message_id(p, "a").unwrap();
        match i {
            0 => Invocation::Response(json!({"batchItemFailures": [{"itemIdentifier": ""}]})),
            1 => Invocation::Response(json!({"batchItemFailures": [{"itemIdentifier": null}]})),
            2 => Invocation::Response(json!({"batchItemFailures": [{"itemId": id}]})),
            3 => Invocation::Response(json!("this is not a batch response")),
            _ => ok(),
        }
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    let counts: Vec<String> = inv.calls().iter().map(|c| receive_count(&c.records()[0]).to_owned()).collect();
    assert_eq!(counts, ["1", "2", "3", "4", "5"]);
    let m = &report.mappings[0];
    assert_eq!((m.invalid_responses, m.whole_failures, m.deleted_messages), (4, 4, 1), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_or_empty_responses_mean_success() {
    let s = Stack::new(&sqs_template(false, &[VT5, REDRIVE10], &["BatchSize: 1", RBIF], 1)).await;
    s.send("Queue", &["a", "b", "c", "d"], None).await;
    let inv = Scripted::new(|i, _| match i % 4 {
        0 => Invocation::Response(Value::Null),
        1 => Invocation::Response(json!({})),
        2 => Invocation::Response(json!({"batchItemFailures": []})),
        _ => Invocation::Response(json!({"batchItemFailures": null})),
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    assert_eq!(inv.calls().len(), 4);
    assert!(inv.deliveries().values().all(|n| *n == 1), "{:?}", inv.deliveries());
    let m = &report.mappings[0];
    assert_eq!((m.succeeded_batches, m.partial_failures, m.whole_failures, m.deleted_messages), (4, 0, 0, 4), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_error_deletes_nothing_and_messages_are_redelivered() {
    let s = Stack::new(&sqs_template(false, &[VT1, REDRIVE10], &["BatchSize: 10", RBIF], 1)).await;
    s.send("Queue", &["a", "b"], None).await;
    let inv = Scripted::new(|i, _| if i == 0 { error() } else { ok() });
    let report = drain(s.start(&inv, options(1)).await).await;

    let calls = inv.calls();
    assert_eq!(calls.len(), 2);
    let mut second = calls[1].keys();
    second.sort();
    assert_eq!(second, ["a", "b"]);
    assert!(calls[1].records().iter().all(|r| receive_count(r) == "2"));
    // Redelivered only once the visibility timeout (1 s) had passed.
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(900));
    let m = &report.mappings[0];
    assert_eq!((m.function_errors, m.whole_failures, m.deleted_messages), (1, 1, 2), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_report_batch_item_failures_the_response_is_ignored() {
    let s = Stack::new(&sqs_template(false, &[VT5, REDRIVE10], &["BatchSize: 1"], 1)).await;
    s.send("Queue", &["a", "b"], None).await;
    let inv = Scripted::new(|i, p| {
        if i == 0 {
            let id = p["Records"][0]["messageId"].as_str().unwrap().to_owned();
            failures(&[&id])
        } else {
            Invocation::Response(json!("not a batch response"))
        }
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    assert_eq!(inv.calls().len(), 2);
    let m = &report.mappings[0];
    assert_eq!((m.partial_failures, m.whole_failures, m.deleted_messages), (0, 0, 2), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_a_function_error() {
    let s = Stack::new(&sqs_template(false, &["VisibilityTimeout: 2", REDRIVE10], &["BatchSize: 10", RBIF], 1)).await;
    s.send("Queue", &["slow"], None).await;
    // GIVEN the first call takes longer than the function's Timeout (1 s)
    let inv = Scripted::with_delay(|i| Duration::from_millis(if i == 0 { 1500 } else { 0 }), |_, _| ok());
    let report = drain(s.start(&inv, options(1)).await).await;

    assert_eq!(inv.deliveries()["slow"], 2);
    let m = &report.mappings[0];
    assert_eq!((m.timeouts, m.function_errors, m.deleted_messages), (1, 0, 1), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_received_max_receive_count_times_lands_in_dlq() {
    let s = Stack::new(&sqs_template(
        false,
        &[VT1, "RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 2}"],
        &["BatchSize: 10", RBIF],
        1,
    ))
    .await;
    s.send("Queue", &["poison"], None).await;
    let inv = Scripted::new(|_, _| error());
    let report = drain(s.start(&inv, options(1)).await).await;

    // Invoked exactly maxReceiveCount times, then SQS moved it.
    assert_eq!(inv.deliveries()["poison"], 2);
    let m = &report.mappings[0];
    assert_eq!((m.function_errors, m.deleted_messages, m.dlq_depth), (2, 0, Some(1)), "{m}");
    let dead = s.drain_queue("Dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("poison"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_keeps_group_order_and_one_batch_per_group_in_flight() {
    let s = Stack::new(&sqs_template(
        true,
        &[VT1, REDRIVE10],
        &["BatchSize: 2", RBIF, "ScalingConfig: {MaximumConcurrency: 3}"],
        1,
    ))
    .await;
    s.send("Queue", &["a1", "a2", "a3", "a4"], Some("A")).await;
    s.send("Queue", &["b1", "b2", "b3", "b4"], Some("B")).await;
    // GIVEN a2 fails on its first delivery; the function then reports it AND
    // every later message of group A in the batch (skip-group-on-error).
    let processed = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&processed);
    let inv = Scripted::with_delay(
        |_| Duration::from_millis(100),
        move |_, p| {
            let mut failed_groups: Vec<String> = Vec::new();
            let mut failed: Vec<String> = Vec::new();
            for r in p["Records"].as_array().unwrap() {
                let group = r["attributes"]["MessageGroupId"].as_str().unwrap().to_owned();
                let body = r["body"].as_str().unwrap().to_owned();
                if failed_groups.contains(&group) || (body == "a2" && receive_count(r) == "1") {
                    failed_groups.push(group);
                    failed.push(r["messageId"].as_str().unwrap().to_owned());
                } else {
                    log.lock().unwrap().push(body);
                }
            }
            let refs: Vec<&str> = failed.iter().map(String::as_str).collect();
            failures(&refs)
        },
    );
    let report = drain(s.start(&inv, options(1)).await).await;

    let done = processed.lock().unwrap().clone();
    let group = |g: char| done.iter().filter(|b| b.starts_with(g)).cloned().collect::<Vec<_>>();
    assert_eq!(group('a'), ["a1", "a2", "a3", "a4"]);
    assert_eq!(group('b'), ["b1", "b2", "b3", "b4"]);
    assert_eq!(inv.deliveries()["a2"], 2);
    assert_eq!(inv.group_overlaps(), 0, "a message group was in two invocations at once");
    assert!(inv.calls().iter().all(|c| c.records().len() <= 2));
    let m = &report.mappings[0];
    assert_eq!((m.fifo_group_conflicts, m.deleted_messages), (0, 8), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_cuts_batches() {
    let s =
        Stack::new(&sqs_template(false, &[VT5, REDRIVE10], &["BatchSize: 3", "MaximumBatchingWindowInSeconds: 1"], 1))
            .await;
    s.send("Queue", &["1", "2", "3", "4", "5", "6", "7"], None).await;
    let inv = Scripted::new(|_, _| ok());
    drain(s.start(&inv, options(1)).await).await;

    let keys: Vec<Vec<String>> = inv.calls().iter().map(|c| c.keys()).collect();
    let sizes: Vec<usize> = keys.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1], "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_window_gathers_more_than_one_receive() {
    // Visibility timeout above the window, or the first messages come back
    // (and are gathered again) before the window ends, as on AWS.
    let s = Stack::new(&sqs_template(
        false,
        &["VisibilityTimeout: 5", REDRIVE10],
        &["BatchSize: 20", "MaximumBatchingWindowInSeconds: 2"],
        1,
    ))
    .await;
    let bodies: Vec<String> = (0..15).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    s.send("Queue", &refs, None).await;
    let inv = Scripted::new(|_, _| ok());
    drain(s.start(&inv, options(1)).await).await;

    // One ReceiveMessage returns at most 10: 15 in one batch means the
    // window kept gathering until it ended.
    let keys: Vec<Vec<String>> = inv.calls().iter().map(|c| c.keys()).collect();
    let sizes: Vec<usize> = keys.iter().map(Vec::len).collect();
    assert_eq!(sizes, [15], "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_concurrency_bounds_batches_in_flight() {
    let s = Stack::new(&sqs_template(
        false,
        &["VisibilityTimeout: 5", REDRIVE10],
        &["BatchSize: 1", "ScalingConfig: {MaximumConcurrency: 2}"],
        1,
    ))
    .await;
    s.send("Queue", &["1", "2", "3", "4", "5", "6"], None).await;
    let inv = Scripted::with_delay(|_| Duration::from_millis(300), |_, _| ok());
    // The default (5 pollers) is overridden by the event's MaximumConcurrency.
    drain(s.start(&inv, options(5)).await).await;

    assert_eq!(inv.calls().len(), 6);
    assert_eq!(inv.max_concurrent(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_lambda_rejects_are_refused() {
    // Visibility timeout below the function timeout.
    let s = Stack::new(&sqs_template(false, &[VT1, REDRIVE10], &["BatchSize: 10"], 2)).await;
    let inv = Scripted::new(|_, _| ok());
    let e = Emulator::start(&s.sdk, &s.stack, Arc::clone(&inv), options(1)).await.unwrap_err().to_string();
    assert!(e.contains("Fn/Jobs") && e.contains("visibility timeout"), "{e}");
    // FIFO batch above 10.
    let s =
        Stack::new(&sqs_template(true, &[VT1, REDRIVE10], &["BatchSize: 11", "MaximumBatchingWindowInSeconds: 1"], 1))
            .await;
    let e = Emulator::start(&s.sdk, &s.stack, Arc::clone(&inv), options(1)).await.unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
}
