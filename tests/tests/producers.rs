//! The typed producer and item writer against the local endpoint.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use chrono::DateTime;
use pipeline_core::{Item, ItemStatus, ItemWriter, Job, OutgoingMessage, Producer, SqsQueue, WriteOutcome};
use pipeline_tests::local::{create_items_table, create_queue, drain, sdk_config, unique};

#[tokio::test]
async fn a_thousand_jobs_arrive_once_and_bad_entries_are_reported_with_their_reason() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let url = create_queue(&sqs, &unique("producer")).await;
    let producer = Producer::new(SqsQueue::new(sqs.clone(), &url));

    // GIVEN 1,000 jobs, every 100th oversized and every 250th with a
    // character SQS refuses
    let mut messages = Vec::new();
    let mut bad = HashSet::new();
    for i in 0..1000 {
        let job = Job::ProcessItem { item_id: format!("p{i}"), version: 1 };
        let mut m = OutgoingMessage::json(&job).unwrap();
        if i % 100 == 99 {
            m.body.push_str(&" ".repeat(300 * 1024));
            bad.insert(i);
        } else if i % 250 == 7 {
            m.body.push('\u{1}');
            bad.insert(i);
        }
        messages.push(m);
    }
    // WHEN they are sent
    let report = producer.send(messages).await;
    // THEN each bad one is reported with a reason, and each good one arrives once
    let failed: HashSet<usize> = report.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, bad, "{:?}", report.failed);
    assert!(report.failed.iter().all(|(_, why)| !why.is_empty()));
    assert!(report.failed.iter().any(|(_, why)| why.contains("exceeds the 262144-byte SQS limit")));
    assert_eq!(report.sent, 1000 - bad.len());
    let received = drain(&sqs, &url).await;
    let ids: Vec<String> =
        received.iter().map(|m| serde_json::from_str::<Job>(m.body().unwrap()).unwrap().item_id().to_owned()).collect();
    let unique_ids: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 1000 - bad.len(), "every valid job arrives");
    assert_eq!(unique_ids.len(), ids.len(), "and only once");
}

#[tokio::test]
async fn the_writer_creates_updates_and_deletes_under_the_version_condition() {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique("writer");
    create_items_table(&ddb, &table).await;
    let writer = ItemWriter::new(ddb.clone(), &table);
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let item = Item::new("w1", "Lamp", "9.50".parse().unwrap(), 2, now);

    assert_eq!(writer.create(&item).await.unwrap(), WriteOutcome::Written);
    assert_eq!(writer.create(&item).await.unwrap(), WriteOutcome::Conflict, "no silent overwrite");

    let mut changed = item.clone();
    changed.name = "Big Lamp".into();
    changed.set_status(ItemStatus::Processed);
    assert_eq!(writer.update(&changed, 1, now).await.unwrap(), WriteOutcome::Written);
    assert_eq!(writer.update(&changed, 1, now).await.unwrap(), WriteOutcome::Conflict, "stale version");
    let stored = ddb
        .get_item()
        .table_name(&table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("ITEM#w1".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("ITEM".into()))
        .send()
        .await
        .unwrap();
    let stored: Item = serde_dynamo::from_item(stored.item.unwrap()).unwrap();
    assert_eq!((stored.version, stored.status, stored.name.as_str()), (2, ItemStatus::Pending, "Big Lamp"));

    assert_eq!(writer.delete("w1", 1).await.unwrap(), WriteOutcome::Conflict);
    assert_eq!(writer.delete("w1", 2).await.unwrap(), WriteOutcome::Written);
}

#[tokio::test]
async fn batch_put_writes_every_item() {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique("batch");
    create_items_table(&ddb, &table).await;
    let writer = ItemWriter::new(ddb.clone(), &table);
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let items: Vec<Item> = (0..60).map(|i| Item::new(&format!("b{i}"), "x", "1".parse().unwrap(), 1, now)).collect();
    let report = writer.batch_put(&items).await;
    assert_eq!(report.written, 60);
    assert!(report.failed.is_empty());
    assert_eq!(report.calls, 3, "25 per call");
    let count = ddb.scan().table_name(&table).select(aws_sdk_dynamodb::types::Select::Count).send().await.unwrap();
    assert_eq!(count.count, 60);
}
