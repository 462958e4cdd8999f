//! The items table, behind a small trait: DynamoDB in production, memory in
//! tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use pipeline_core::model::ITEM_SK;
use pipeline_core::{Item, ItemWriter, RemovalAudit, WriteOutcome};

/// A failed table call. Every such failure is treated as transient: the
/// job is retried, and after `maxReceiveCount` receives SQS moves it to the
/// dead-letter queue untouched, so nothing is lost even when the cause is a
/// configuration error (a missing permission, a wrong table name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The operations the queue processor needs from the items table.
pub trait ItemStore: Send + Sync {
    /// Reads an item (strongly consistent).
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Item>, StoreError>> + Send;
    /// Writes `item` if the stored item is still at `expected_version`;
    /// [`WriteOutcome::Conflict`] when another writer got there first.
    fn put_if_version(
        &self,
        item: &Item,
        expected_version: u64,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;
    /// Writes an audit record unless one with the same key exists.
    fn put_audit(&self, audit: &RemovalAudit) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;
}

/// [`ItemStore`] over DynamoDB: reads here, conditional writes through
/// [`ItemWriter`].
#[derive(Debug, Clone)]
pub struct DynamoItemStore {
    client: aws_sdk_dynamodb::Client,
    writer: ItemWriter,
}

impl DynamoItemStore {
    /// The store for `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { writer: ItemWriter::new(client.clone(), table), client }
    }
}

impl ItemStore for DynamoItemStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let table = self.writer.table();
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(Item::pk_for(id)))
            .key("sk", AttributeValue::S(ITEM_SK.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(format!("GetItem on table {table}: {}", DisplayErrorContext(&e))))?;
        match out.item {
            None => Ok(None),
            Some(raw) => serde_dynamo::from_item(raw)
                .map(Some)
                .map_err(|e| StoreError(format!("item {id} in table {table} does not decode: {e}"))),
        }
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, StoreError> {
        self.writer.put_if_version(item, expected_version).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, StoreError> {
        self.writer.put_audit(audit).await.map_err(|e| StoreError(e.to_string()))
    }
}

/// An in-memory [`ItemStore`] for tests, with switchable failures.
#[derive(Debug, Default)]
pub struct MemoryItemStore {
    items: Mutex<BTreeMap<String, Item>>,
    audits: Mutex<BTreeMap<(String, String), RemovalAudit>>,
    failing: Mutex<Option<String>>,
    failing_ids: Mutex<std::collections::BTreeSet<String>>,
    writes: Mutex<usize>,
}

impl MemoryItemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an item as it is.
    pub fn insert(&self, item: Item) {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).insert(item.id().to_owned(), item);
    }

    /// The stored item.
    pub fn item(&self, id: &str) -> Option<Item> {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Every audit record.
    pub fn audits(&self) -> Vec<RemovalAudit> {
        self.audits.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Successful writes so far.
    pub fn writes(&self) -> usize {
        *self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every call fail with `message` (`None` to heal).
    pub fn set_failing(&self, message: Option<&str>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = message.map(str::to_owned);
    }

    /// Makes reads of this item fail (a throttled partition, say).
    pub fn fail_item(&self, id: &str) {
        self.failing_ids.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned());
    }

    fn check(&self) -> Result<(), StoreError> {
        match &*self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(m) => Err(StoreError(m.clone())),
            None => Ok(()),
        }
    }

    fn count_write(&self) {
        *self.writes.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
}

impl ItemStore for MemoryItemStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.check()?;
        if self.failing_ids.lock().unwrap_or_else(|p| p.into_inner()).contains(id) {
            return Err(StoreError(format!("GetItem {id}: ProvisionedThroughputExceededException (injected)")));
        }
        Ok(self.item(id))
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, StoreError> {
        self.check()?;
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        match items.get(item.id()) {
            Some(current) if current.version == expected_version => {
                items.insert(item.id().to_owned(), item.clone());
                drop(items);
                self.count_write();
                Ok(WriteOutcome::Written)
            }
            _ => Ok(WriteOutcome::Conflict),
        }
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, StoreError> {
        self.check()?;
        let mut audits = self.audits.lock().unwrap_or_else(|p| p.into_inner());
        let key = (audit.pk.clone(), audit.sk.clone());
        if audits.contains_key(&key) {
            return Ok(WriteOutcome::Conflict);
        }
        audits.insert(key, audit.clone());
        drop(audits);
        self.count_write();
        Ok(WriteOutcome::Written)
    }
}
