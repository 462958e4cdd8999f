//! The items table, behind a small trait: DynamoDB in production, memory in
//! tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use pipeline_core::model::ITEM_SK;
use pipeline_core::{Item, RemovalAudit};

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written.
    Done,
    /// The condition did not hold (another writer got there first).
    Conflict,
}

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
    /// Writes `item` if the stored item is still at `expected_version`.
    fn put_if_version(
        &self,
        item: &Item,
        expected_version: u64,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;
    /// Writes an audit record unless one with the same key exists.
    fn put_audit(&self, audit: &RemovalAudit) -> impl Future<Output = Result<Write, StoreError>> + Send;
}

/// [`ItemStore`] over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoItemStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoItemStore {
    /// The store for `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

fn store_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    table: &str,
    e: &SdkError<E, R>,
) -> StoreError {
    StoreError(format!("{what} on table {table}: {}", DisplayErrorContext(e)))
}

impl DynamoItemStore {
    /// A conditional `PutItem`'s result: a failed condition is a conflict,
    /// not an error.
    fn conditional(
        &self,
        result: Result<PutItemOutput, SdkError<PutItemError, HttpResponse>>,
    ) -> Result<Write, StoreError> {
        match result {
            Ok(_) => Ok(Write::Done),
            Err(e) if e.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                Ok(Write::Conflict)
            }
            Err(e) => Err(store_error("PutItem", &self.table, &e)),
        }
    }
}

impl ItemStore for DynamoItemStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(Item::pk_for(id)))
            .key("sk", AttributeValue::S(ITEM_SK.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.table, &e))?;
        match out.item {
            None => Ok(None),
            Some(raw) => serde_dynamo::from_item(raw)
                .map(Some)
                .map_err(|e| StoreError(format!("item {id} in table {} does not decode: {e}", self.table))),
        }
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<Write, StoreError> {
        let attrs = serde_dynamo::to_item(item).map_err(|e| StoreError(format!("cannot encode item: {e}")))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
            .send()
            .await;
        self.conditional(result)
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<Write, StoreError> {
        let attrs = serde_dynamo::to_item(audit).map_err(|e| StoreError(format!("cannot encode audit record: {e}")))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        self.conditional(result)
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

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<Write, StoreError> {
        self.check()?;
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        match items.get(item.id()) {
            Some(current) if current.version == expected_version => {
                items.insert(item.id().to_owned(), item.clone());
                drop(items);
                self.count_write();
                Ok(Write::Done)
            }
            _ => Ok(Write::Conflict),
        }
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<Write, StoreError> {
        self.check()?;
        let mut audits = self.audits.lock().unwrap_or_else(|p| p.into_inner());
        let key = (audit.pk.clone(), audit.sk.clone());
        if audits.contains_key(&key) {
            return Ok(Write::Conflict);
        }
        audits.insert(key, audit.clone());
        drop(audits);
        self.count_write();
        Ok(Write::Done)
    }
}
