//! The queue processor on every sample event under events/sqs/.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use pipeline_core::{Deadline, Item, ItemStatus, Job, MemorySink, RemovalReason, SqsEvent};
use queue_processor::{run_job, JobOutcome, MemoryItemStore, QueueProcessor};
use serde_json::json;

fn event(text: &str) -> SqsEvent {
    serde_json::from_str(text).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap()
}

fn pending(id: &str, price: &str, quantity: i64, version: u64) -> Item {
    let mut item = Item::new(id, "  Blue   Widget ", price.parse().unwrap(), quantity, t0());
    item.version = version;
    item.tags = ["Blue ".to_owned(), "SALE".to_owned(), " ".to_owned()].into_iter().collect();
    item
}

fn processor(items: Vec<Item>) -> QueueProcessor<MemoryItemStore, MemorySink> {
    let store = MemoryItemStore::new();
    for item in items {
        store.insert(item);
    }
    QueueProcessor::new(store, MemorySink::new())
}

const JOBS: &str = include_str!("../../../events/sqs/jobs.json");

#[tokio::test]
async fn jobs_process_items_and_record_removals() {
    let p = processor(vec![pending("1001", "19.99", 3, 1), pending("1002", "0.1", 3, 2)]);
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert_eq!(serde_json::to_value(response).unwrap(), json!({"batchItemFailures": []}));

    let item = p.store().item("1001").unwrap();
    assert_eq!(item.status, ItemStatus::Processed);
    assert_eq!(item.gsi1pk, "STATUS#PROCESSED");
    assert_eq!(item.version, 2);
    assert_eq!(item.name, "Blue Widget");
    assert_eq!(item.tags.iter().cloned().collect::<Vec<_>>(), vec!["blue", "sale"]);
    assert_eq!(item.total.unwrap().to_string(), "59.97");
    assert!(item.processed_at.is_some());
    assert_eq!(p.store().item("1002").unwrap().total.unwrap().to_string(), "0.3", "exact, not 0.30000000000000004");

    let audits = p.store().audits();
    assert_eq!(audits.len(), 2);
    assert_eq!(audits[0].pk, "AUDIT#1003");
    assert_eq!(audits[0].sk, "REMOVED#103");
    assert_eq!(audits[0].reason, RemovalReason::Deleted);
    assert_eq!(audits[1].reason, RemovalReason::TtlExpired);
}

#[tokio::test]
async fn a_redelivered_batch_applies_nothing_twice() {
    let p = processor(vec![pending("1001", "19.99", 3, 1), pending("1002", "1", 1, 2)]);
    p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    let writes = p.store().writes();
    let first = p.store().item("1001").unwrap();
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(p.store().writes(), writes, "no write on redelivery");
    assert_eq!(p.store().item("1001").unwrap(), first);
    assert_eq!(p.store().audits().len(), 2);
}

#[tokio::test]
async fn poison_bodies_are_dead_lettered_and_the_rest_processed() {
    let p = processor(vec![pending("1001", "2", 1, 1), pending("1002", "2", 1, 2)]);
    let response =
        p.handle_event(event(include_str!("../../../events/sqs/poison.json")), Deadline::none()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let letters = p.engine().sink().letters();
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|l| l.error.kind == "decode" && l.processor.name == "queue-processor"));
    assert!(letters.iter().any(|l| l.error.message.contains("explode_item")), "names the unknown type");
    assert_eq!(p.store().item("1001").unwrap().status, ItemStatus::Processed);
    assert_eq!(p.store().item("1002").unwrap().status, ItemStatus::Processed);
}

#[tokio::test]
async fn an_invalid_item_is_marked_failed_and_its_job_dead_lettered() {
    let p = processor(vec![pending("1001", "19.99", -2, 1), pending("1002", "1", 1, 2)]);
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let item = p.store().item("1001").unwrap();
    assert_eq!(item.status, ItemStatus::Failed);
    assert_eq!(item.version, 2);
    assert_eq!(item.failure_reason.as_deref(), Some("quantity -2 is negative"));
    let letters = p.engine().sink().letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error.kind, "validation");
    assert!(letters[0].error.message.contains("quantity -2 is negative"));
}

#[tokio::test]
async fn if_dead_lettering_fails_the_job_is_retried_and_dead_lettered_next_time() {
    let p = processor(vec![pending("1001", "19.99", -2, 1), pending("1002", "1", 1, 2)]);
    p.engine().sink().set_failing(true);
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "00000000-0000-4000-8000-000000000001");
    // The item is already FAILED; the redelivered job must still reach the DLQ.
    p.engine().sink().set_failing(false);
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(p.engine().sink().letters().len(), 1);
    assert_eq!(p.store().item("1001").unwrap().version, 2, "marked FAILED once");
}

#[tokio::test]
async fn table_errors_are_retried() {
    let p = processor(vec![pending("1001", "1", 1, 1)]);
    p.store().set_failing(Some("ThrottlingException: rate exceeded"));
    let response = p.handle_event(event(JOBS), Deadline::none()).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 4);
    assert!(p.engine().sink().letters().is_empty(), "transient errors are never dead-lettered");
}

#[tokio::test]
async fn stale_jobs_are_no_ops() {
    let store = MemoryItemStore::new();
    let gone = run_job(&store, Job::ProcessItem { item_id: "404".into(), version: 1 }, t0()).await.unwrap();
    assert!(matches!(gone, JobOutcome::Stale(ref why) if why.contains("no longer exists")));
    store.insert(pending("7", "1", 1, 5));
    let old = run_job(&store, Job::ProcessItem { item_id: "7".into(), version: 4 }, t0()).await.unwrap();
    assert!(matches!(old, JobOutcome::Stale(ref why) if why.contains("version 5")));
    assert_eq!(store.writes(), 0);
}

#[tokio::test]
async fn fifo_groups_stop_at_a_failure_and_other_groups_go_on() {
    let items: Vec<Item> = ["A1", "A2", "A3", "B1", "B2", "C1"].iter().map(|id| pending(id, "1", 1, 1)).collect();
    let p = processor(items);
    p.store().fail_item("A2");
    let response =
        p.handle_event(event(include_str!("../../../events/sqs/fifo-groups.json")), Deadline::none()).await.unwrap();
    let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, vec!["00000000-0000-4000-8000-000000000023", "00000000-0000-4000-8000-000000000026"]);
    assert_eq!(p.store().item("A3").unwrap().status, ItemStatus::Pending, "A3 not run after A2 failed");
    for id in ["A1", "B1", "B2", "C1"] {
        assert_eq!(p.store().item(id).unwrap().status, ItemStatus::Processed, "{id}");
    }
}

/// A store where another writer updates the item between our read and our
/// write (the version condition must catch it).
struct RacingStore(MemoryItemStore);

impl queue_processor::ItemStore for RacingStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, queue_processor::StoreError> {
        let read = self.0.get(id).await?;
        if let Some(mut other) = read.clone() {
            other.version += 1;
            other.name = "changed by another writer".into();
            self.0.insert(other);
        }
        Ok(read)
    }

    async fn put_if_version(
        &self,
        item: &Item,
        v: u64,
    ) -> Result<queue_processor::WriteOutcome, queue_processor::StoreError> {
        self.0.put_if_version(item, v).await
    }

    async fn put_audit(
        &self,
        audit: &pipeline_core::RemovalAudit,
    ) -> Result<queue_processor::WriteOutcome, queue_processor::StoreError> {
        self.0.put_audit(audit).await
    }
}

#[tokio::test]
async fn a_write_that_loses_the_race_is_a_stale_no_op() {
    for quantity in [2, -2] {
        let store = RacingStore(MemoryItemStore::new());
        store.0.insert(pending("9", "1", quantity, 1));
        let outcome = run_job(&store, Job::ProcessItem { item_id: "9".into(), version: 1 }, t0()).await.unwrap();
        assert!(matches!(outcome, JobOutcome::Stale(ref why) if why.contains("changed while")), "{outcome:?}");
        let item = store.0.item("9").unwrap();
        assert_eq!((item.version, item.status), (2, ItemStatus::Pending), "the other writer's version stands");
        assert_eq!(item.name, "changed by another writer");
    }
}
