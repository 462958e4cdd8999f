//! DynamoDB Streams event source mapping fidelity (LAMBDA-SEMANTICS.md
//! sections 2 and 3).

use std::time::Duration;

use pipeline_cli::esm::stream::{CONDITION_RECORD_AGE_EXCEEDED, CONDITION_RETRIES_EXHAUSTED};
use pipeline_cli::esm::EmulatorOptions;
use pipeline_cli::invoke::Invocation;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::*;

const RBIF: &str = "FunctionResponseTypes: [ReportBatchItemFailures]";

fn fails_on(prefix: &'static str) -> impl Fn(usize, &Value) -> Invocation + Send + Sync + 'static {
    move |_, p| {
        let bad = p["Records"].as_array().unwrap().iter().any(|r| key_of(r).starts_with(prefix));
        if bad {
            error()
        } else {
            ok()
        }
    }
}

async fn on_failure_documents(s: &Stack) -> Vec<Value> {
    s.drain_queue("Failures").await.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect()
}

#[derive(Debug, Deserialize)]
struct Row {
    pk: String,
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_event_has_lambda_shape() {
    let s = Stack::new(&stream_template(&[])).await;
    s.put("Items", "a", 1).await;
    s.put("Items", "a", 2).await;
    s.dynamodb
        .delete_item()
        .table_name(s.table_name("Items"))
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    let inv = Scripted::new(|_, _| ok());
    drain(s.start(&inv, options(1)).await).await;

    let calls = inv.calls();
    assert_eq!(calls.len(), 1);
    let records = calls[0].records();
    let names: Vec<&str> = records.iter().map(|r| r["eventName"].as_str().unwrap()).collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    let stream_arn = s.stack.tables["Items"].stream_arn.clone().unwrap();
    for r in &records {
        assert_eq!(r["eventSource"], "aws:dynamodb");
        assert_eq!(r["eventSourceARN"], stream_arn.as_str());
        assert_eq!(r["awsRegion"], "us-east-1");
        assert!(r["eventID"].is_string() && r["eventVersion"].is_string());
        assert!(r.get("userIdentity").is_none());
        let d = &r["dynamodb"];
        assert!(d["ApproximateCreationDateTime"].is_u64(), "epoch seconds as a number: {d}");
        assert_eq!(d["Keys"], json!({"pk": {"S": "a"}}));
        assert!(d["SequenceNumber"].is_string() && d["SizeBytes"].is_u64());
        assert_eq!(d["StreamViewType"], "NEW_AND_OLD_IMAGES");
    }
    assert!(records[0]["dynamodb"].get("OldImage").is_none());
    assert_eq!(records[0]["dynamodb"]["NewImage"], json!({"pk": {"S": "a"}, "n": {"N": "1"}}));
    assert_eq!(records[1]["dynamodb"]["OldImage"]["n"], json!({"N": "1"}));
    assert_eq!(records[1]["dynamodb"]["NewImage"]["n"], json!({"N": "2"}));
    assert!(records[2]["dynamodb"].get("NewImage").is_none());
    assert_eq!(records[2]["dynamodb"]["OldImage"]["n"], json!({"N": "2"}));
    // The shared crate decodes every record.
    let event: pipeline_core::StreamEvent = serde_json::from_value(calls[0].payload.clone()).unwrap();
    for r in pipeline_core::decode_stream_event::<Row>(&event) {
        let r = r.unwrap();
        match r.change {
            pipeline_core::Change::Insert { new } => assert_eq!((new.pk.as_str(), new.n), ("a", 1)),
            pipeline_core::Change::Modify { old, new } => assert_eq!((old.n, new.n), (1, 2)),
            pipeline_core::Change::Remove { old } => assert_eq!(old.n, 2),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_retries_from_the_lowest_reported_record() {
    let s = Stack::new(&stream_template(&["BatchSize: 10", RBIF])).await;
    for i in 0..5 {
        s.put("Items", &format!("i{i}"), i).await;
    }
    // GIVEN the first invocation reports i4 and i2 (in that order)
    let inv = Scripted::new(|i, p| {
        if i == 0 {
            let (i4, i2) = (sequence_of(p, "i4").unwrap(), sequence_of(p, "i2").unwrap());
            failures(&[&i4, &i2])
        } else {
            ok()
        }
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    // THEN the next invocation starts at i2 (the lowest), i0 and i1 are done
    let calls = inv.calls();
    assert_eq!(calls[0].keys(), ["i0", "i1", "i2", "i3", "i4"]);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].keys(), ["i2", "i3", "i4"]);
    assert_eq!(calls[1].seqs(), calls[0].seqs()[2..]);
    let m = &report.mappings[0];
    assert_eq!((m.partial_failures, m.retries, m.whole_failures), (1, 1, 0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_empty_sequence_number_fails_the_whole_batch() {
    let s = Stack::new(&stream_template(&["BatchSize: 10", RBIF])).await;
    for i in 0..3 {
        s.put("Items", &format!("i{i}"), i).await;
    }
    let inv = Scripted::new(|i, _| match i {
        0 => failures(&["1"]),
        1 => failures(&[""]),
        _ => ok(),
    });
    let report = drain(s.start(&inv, options(1)).await).await;

    // The same batch, three times.
    let calls = inv.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.seqs() == calls[0].seqs() && c.records().len() == 3));
    let m = &report.mappings[0];
    assert_eq!((m.invalid_responses, m.whole_failures, m.partial_failures), (2, 2, 0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisection_halves_a_failing_batch_without_using_retries() {
    let s =
        Stack::new(&stream_template(&["BatchSize: 4", "BisectBatchOnFunctionError: true", "MaximumRetryAttempts: 1"]))
            .await;
    for (i, pk) in ["i0", "i1", "bad", "i3"].iter().enumerate() {
        s.put("Items", pk, i as i64).await;
    }
    let inv = Scripted::new(fails_on("bad"));
    let report = drain(s.start(&inv, options(1)).await).await;

    let keys: Vec<Vec<String>> = inv.calls().iter().map(|c| c.keys()).collect();
    assert_eq!(
        keys,
        [
            vec!["i0", "i1", "bad", "i3"], // fails: split 2 + 2
            vec!["i0", "i1"],              // ok
            vec!["bad", "i3"],             // fails: split 1 + 1
            vec!["bad"],                   // fails
            vec!["bad"],                   // retry 1 (the only one) fails: dropped
            vec!["i3"],
        ]
    );
    let m = &report.mappings[0];
    assert_eq!((m.bisections, m.on_failure_sent, m.dropped_records), (2, 1, 1), "{m}");
    let docs = on_failure_documents(&s).await;
    assert_eq!(docs.len(), 1);
    let info = &docs[0]["DDBStreamBatchInfo"];
    let bad_seq = inv.calls()[3].seqs()[0].clone();
    assert_eq!(
        (info["startSequenceNumber"].as_str(), info["endSequenceNumber"].as_str()),
        (Some(&*bad_seq), Some(&*bad_seq))
    );
    assert_eq!(info["batchSize"], 1);
    assert_eq!(docs[0]["requestContext"]["approximateInvokeCount"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_sends_one_on_failure_document_then_the_shard_moves_on() {
    let s = Stack::new(&stream_template(&["BatchSize: 3", "MaximumRetryAttempts: 2"])).await;
    for (i, pk) in ["bad0", "bad1", "bad2", "ok3"].iter().enumerate() {
        s.put("Items", pk, i as i64).await;
    }
    let inv = Scripted::new(fails_on("bad"));
    let report = drain(s.start(&inv, options(1)).await).await;

    // The shard is blocked while the batch retries: ok3 only comes after.
    let calls = inv.calls();
    let keys: Vec<Vec<String>> = calls.iter().map(|c| c.keys()).collect();
    let bad = vec!["bad0", "bad1", "bad2"];
    assert_eq!(keys, [bad.clone(), bad.clone(), bad, vec!["ok3"]]);
    let m = &report.mappings[0];
    assert_eq!((m.function_errors, m.retries, m.on_failure_sent, m.dropped_records), (3, 2, 1, 3), "{m}");
    assert_eq!(m.on_failure_depth, Some(1));

    let docs = on_failure_documents(&s).await;
    assert_eq!(docs.len(), 1, "exactly one OnFailure document per dropped batch");
    let doc = &docs[0];
    let mut top: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    top.sort();
    assert_eq!(top, ["DDBStreamBatchInfo", "requestContext", "responseContext", "timestamp", "version"]);
    let rc = &doc["requestContext"];
    assert!(uuid::Uuid::parse_str(rc["requestId"].as_str().unwrap()).is_ok());
    assert_eq!(rc["functionArn"], s.stack.functions["Fn"].arn.as_str());
    assert!(rc["functionArn"].as_str().unwrap().starts_with("arn:aws:lambda:us-east-1:123456789012:function:"));
    assert_eq!(rc["condition"], CONDITION_RETRIES_EXHAUSTED);
    assert_eq!(rc["approximateInvokeCount"], 3);
    assert_eq!(
        doc["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    assert_eq!(doc["version"], "1.0");
    let ts = doc["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z') && ts.len() == 24, "{ts}");
    let info = &doc["DDBStreamBatchInfo"];
    let seqs = calls[0].seqs();
    assert!(info["shardId"].as_str().unwrap().starts_with("shardId-"));
    assert_eq!(info["startSequenceNumber"], seqs[0].as_str());
    assert_eq!(info["endSequenceNumber"], seqs[2].as_str());
    assert_eq!(info["batchSize"], 3);
    assert_eq!(info["streamArn"], s.stack.tables["Items"].stream_arn.clone().unwrap().as_str());
    for k in ["approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"] {
        let t = info[k].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.len() == 20, "{k}: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_age_exceeded_drops_the_batch_then_the_shard_moves_on() {
    // 1 s is below Lambda's minimum (60 s); accepted locally so this test is fast.
    let s =
        Stack::new(&stream_template(&["BatchSize: 10", "MaximumRecordAgeInSeconds: 1", "MaximumRetryAttempts: -1"]))
            .await;
    s.put("Items", "bad", 0).await;
    let inv = Scripted::new(fails_on("bad"));
    let running = s.start(&inv, options(1)).await;
    assert!(running.wait_for(Duration::from_secs(15), |m| m[0].on_failure_sent == 1).await);
    s.put("Items", "good", 1).await;
    let report = drain(running).await;

    let calls = inv.calls();
    assert!(calls.len() >= 2, "retried until the record was too old");
    assert_eq!(calls.last().unwrap().keys(), ["good"]);
    assert!(calls[..calls.len() - 1].iter().all(|c| c.keys() == ["bad"]));
    let m = &report.mappings[0];
    assert_eq!((m.on_failure_sent, m.dropped_records), (1, 1), "{m}");
    let docs = on_failure_documents(&s).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["requestContext"]["condition"], CONDITION_RECORD_AGE_EXCEEDED);
    assert_eq!(docs[0]["DDBStreamBatchInfo"]["batchSize"], 1);
    assert_eq!(docs[0]["DDBStreamBatchInfo"]["startSequenceNumber"], calls[0].seqs()[0].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_criteria_skips_non_matching_records() {
    let s = Stack::new(&stream_template(&[
        "BatchSize: 10",
        r#"FilterCriteria: {Filters: [{Pattern: '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "ITEM#"}]}}}}'}]}"#,
    ]))
    .await;
    for (i, pk) in ["ITEM#1", "OTHER#1", "ITEM#2"].iter().enumerate() {
        s.put("Items", pk, i as i64).await;
    }
    let inv = Scripted::new(|_, _| ok());
    let report = drain(s.start(&inv, options(1)).await).await;

    let keys: Vec<String> = inv.calls().iter().flat_map(|c| c.keys()).collect();
    assert_eq!(keys, ["ITEM#1", "ITEM#2"]);
    assert_eq!(report.mappings[0].filtered_records, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_and_iterator_renewal_lose_and_repeat_nothing() {
    let s = Stack::new(&stream_template(&["BatchSize: 2"])).await;
    for i in 0..5 {
        s.put("Items", &format!("i{i}"), i).await;
    }
    let inv = Scripted::new(|_, _| ok());
    // Renew the iterator before every read (as if 15 minutes had passed).
    let opts = EmulatorOptions { iterator_refresh: Duration::ZERO, ..options(1) };
    drain(s.start(&inv, opts).await).await;

    let keys: Vec<Vec<String>> = inv.calls().iter().map(|c| c.keys()).collect();
    assert_eq!(keys, [vec!["i0", "i1"], vec!["i2", "i3"], vec!["i4"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_starting_position_skips_records_written_before_the_start() {
    let s = Stack::new(&stream_template(&["StartingPosition: LATEST"])).await;
    s.put("Items", "before", 0).await;
    let inv = Scripted::new(|_, _| ok());
    let running = s.start(&inv, options(1)).await;
    // Once the mapping has polled, its LATEST iterator exists.
    assert!(running.wait_for(Duration::from_secs(10), |m| m[0].idle_polls >= 1).await);
    s.put("Items", "after", 1).await;
    drain(running).await;

    let keys: Vec<String> = inv.calls().iter().flat_map(|c| c.keys()).collect();
    assert_eq!(keys, ["after"]);
}
