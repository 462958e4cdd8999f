//! The real `queue-processor` binary, started against a Lambda Runtime API
//! emulator and the local AWS endpoint, answering the sample events.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::DateTime;
use pipeline_core::{Item, ItemStatus};
use pipeline_tests::local::{create_items_table, create_queue, drain, sdk_config, unique};
use pipeline_tests::runtime_api::{assert_exits_naming_missing, Function, Outcome, RuntimeApi};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_queue-processor");

#[tokio::test]
async fn without_its_configuration_it_exits_naming_the_missing_variable() {
    assert_exits_naming_missing(BIN, "ITEMS_TABLE_NAME").await;
}

#[tokio::test]
async fn answers_the_sample_events_and_writes_the_table() {
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("items");
    create_items_table(&ddb, &table).await;
    let dlq = create_queue(&sqs, &unique("jobs-dlq")).await;
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    for (id, version, quantity) in [("1001", 1, 3), ("1002", 2, -1)] {
        let mut item = Item::new(id, " Blue  Widget", "19.99".parse().unwrap(), quantity, now);
        item.version = version;
        ddb.put_item().table_name(&table).set_item(Some(serde_dynamo::to_item(&item).unwrap())).send().await.unwrap();
    }
    let api = RuntimeApi::start().await;
    let _f = Function::spawn(
        BIN,
        &api,
        "queue-processor",
        &[("ITEMS_TABLE_NAME", table.as_str()), ("DEAD_LETTER_QUEUE_URL", dlq.as_str())],
    );

    let event: serde_json::Value = serde_json::from_str(include_str!("../../../events/sqs/jobs.json")).unwrap();
    let outcome = api.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));

    let get = |id: &'static str| {
        let ddb = ddb.clone();
        let table = table.clone();
        async move {
            let out = ddb
                .get_item()
                .table_name(&table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(Item::pk_for(id)))
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("ITEM".into()))
                .send()
                .await
                .unwrap();
            serde_dynamo::from_item::<_, Item>(out.item.unwrap()).unwrap()
        }
    };
    let processed = get("1001").await;
    assert_eq!(processed.status, ItemStatus::Processed);
    assert_eq!(processed.version, 2);
    assert_eq!(processed.name, "Blue Widget");
    assert_eq!(processed.total.unwrap().to_string(), "59.97");
    let failed = get("1002").await;
    assert_eq!(failed.status, ItemStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("quantity -1 is negative"));
    let letters = drain(&sqs, &dlq).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message_attributes().unwrap()["pipeline.error_kind"].string_value(), Some("validation"));

    // The same batch delivered again: no write is applied twice. The job
    // that failed item 1002 is dead-lettered again (the processor cannot
    // tell a duplicate delivery from a retry after a failed dead-lettering,
    // and losing the letter would be worse than a duplicate).
    let outcome = api.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));
    assert_eq!(get("1001").await.version, 2);
    assert_eq!(get("1002").await.version, 3);
    let again = drain(&sqs, &dlq).await;
    assert_eq!(again.len(), 1);
    let envelope: serde_json::Value = serde_json::from_str(again[0].body().unwrap()).unwrap();
    assert_eq!(envelope["source"]["record_id"], "00000000-0000-4000-8000-000000000002");

    let event: serde_json::Value = serde_json::from_str(include_str!("../../../events/sqs/poison.json")).unwrap();
    let outcome = api.invoke(&event, Duration::from_secs(30)).await;
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));
    let kinds: Vec<String> = drain(&sqs, &dlq)
        .await
        .iter()
        .map(|m| m.message_attributes().unwrap()["pipeline.error_kind"].string_value().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "decode").count(), 3, "the three poison bodies: {kinds:?}");
    assert_eq!(kinds.len(), 4, "and the job for the FAILED item 1002: {kinds:?}");
}
