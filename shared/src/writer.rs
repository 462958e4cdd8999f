//! Writing items: puts, updates and deletes under the optimistic version
//! condition, and batch writes that retry what DynamoDB leaves unprocessed.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Utc};

use crate::error::BoxError;
use crate::model::{Item, ItemStatus, RemovalAudit, ITEM_SK};

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Written,
    /// The condition did not hold: the item exists already (create), or is
    /// not at the expected version (update, delete).
    Conflict,
}

/// What a batch write achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchWriteReport {
    /// Items written.
    pub written: usize,
    /// Items not written: their position in the input and why.
    pub failed: Vec<(usize, String)>,
    /// `BatchWriteItem` calls made.
    pub calls: usize,
}

/// Writes items to the items table.
#[derive(Debug, Clone)]
pub struct ItemWriter {
    client: aws_sdk_dynamodb::Client,
    table: String,
    max_attempts: u32,
    base_backoff: Duration,
}

/// `record` as DynamoDB attributes; `what` names it in the error.
fn encode<T: serde::Serialize>(record: &T, what: &str) -> Result<HashMap<String, AttributeValue>, BoxError> {
    serde_dynamo::to_item(record).map_err(|e| format!("cannot encode {what}: {e}").into())
}

/// The condition a `PutItem` is made under.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// No record with the same key exists.
    Absent,
    /// The stored record is at this version.
    Version(u64),
}

impl ItemWriter {
    /// A writer for `table`. Batch writes retry unprocessed items up to 8
    /// times, backing off from 50 ms.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), max_attempts: 8, base_backoff: Duration::from_millis(50) }
    }

    /// The table written to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates an item; [`WriteOutcome::Conflict`] if one with its key
    /// exists.
    pub async fn create(&self, item: &Item) -> Result<WriteOutcome, BoxError> {
        self.put(encode(item, "item")?, Expect::Absent).await
    }

    /// Writes `item` as it is if the stored item is still at
    /// `expected_version` (the caller sets the new version).
    pub async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, BoxError> {
        self.put(encode(item, "item")?, Expect::Version(expected_version)).await
    }

    /// Writes an audit record unless one with the same key exists.
    pub async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, BoxError> {
        self.put(encode(audit, "audit record")?, Expect::Absent).await
    }

    async fn put(&self, record: HashMap<String, AttributeValue>, expect: Expect) -> Result<WriteOutcome, BoxError> {
        let request = self.client.put_item().table_name(&self.table).set_item(Some(record));
        let request = match expect {
            Expect::Absent => request.condition_expression("attribute_not_exists(pk)"),
            Expect::Version(v) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        self.conditional(request.send().await.map(|_| ()), "PutItem")
    }

    /// Replaces an item with new content: `item` is written at
    /// `expected_version + 1`, status `PENDING` (so it is processed again),
    /// if the stored item is still at `expected_version`.
    pub async fn update(
        &self,
        item: &Item,
        expected_version: u64,
        now: DateTime<Utc>,
    ) -> Result<WriteOutcome, BoxError> {
        let mut next = item.clone();
        next.version = expected_version + 1;
        next.updated_at = now;
        next.set_status(ItemStatus::Pending);
        next.total = None;
        next.processed_at = None;
        next.failure_reason = None;
        self.put_if_version(&next, expected_version).await
    }

    /// Deletes an item if it is still at `expected_version`.
    pub async fn delete(&self, id: &str, expected_version: u64) -> Result<WriteOutcome, BoxError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(Item::pk_for(id)))
            .key("sk", AttributeValue::S(ITEM_SK.to_owned()))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
            .send()
            .await;
        self.conditional(result.map(|_| ()), "DeleteItem")
    }

    fn conditional<E>(
        &self,
        result: Result<(), aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
        op: &str,
    ) -> Result<WriteOutcome, BoxError>
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
    {
        match result {
            Ok(()) => Ok(WriteOutcome::Written),
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
                Ok(WriteOutcome::Conflict)
            }
            Err(e) => Err(format!("{op} on table {}: {}", self.table, DisplayErrorContext(&e)).into()),
        }
    }

    /// Writes many items unconditionally (new items, imports): 25 per
    /// `BatchWriteItem` call, unprocessed items retried with backoff, every
    /// item that could not be written reported with the reason.
    pub async fn batch_put(&self, items: &[Item]) -> BatchWriteReport {
        let mut report = BatchWriteReport::default();
        let mut pending: Vec<(usize, WriteRequest)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match encode(item, "item").and_then(|attrs| {
                let put = PutRequest::builder().set_item(Some(attrs)).build();
                let put = put.map_err(|e| format!("cannot encode item: {e}"))?;
                Ok(WriteRequest::builder().put_request(put).build())
            }) {
                Ok(request) => pending.push((i, request)),
                Err(e) => report.failed.push((i, e.to_string())),
            }
        }
        for chunk in pending.chunks(25) {
            let mut left: Vec<(usize, WriteRequest)> = chunk.to_vec();
            for attempt in 0..self.max_attempts {
                if left.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(self.base_backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                report.calls += 1;
                let requests: Vec<WriteRequest> = left.iter().map(|(_, r)| r.clone()).collect();
                let result = self.client.batch_write_item().request_items(self.table.clone(), requests).send().await;
                match result {
                    Ok(out) => {
                        let unprocessed: Vec<WriteRequest> =
                            out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                        let (done, again): (Vec<_>, Vec<_>) =
                            left.into_iter().partition(|(_, r)| !unprocessed.contains(r));
                        report.written += done.len();
                        left = again;
                    }
                    Err(e) if attempt + 1 == self.max_attempts => {
                        let reason = format!("BatchWriteItem on table {}: {}", self.table, DisplayErrorContext(&e));
                        report.failed.extend(left.drain(..).map(|(i, _)| (i, reason.clone())));
                    }
                    Err(e) => {
                        tracing::warn!(attempt = attempt + 1, error = %DisplayErrorContext(&e), "BatchWriteItem failed; retrying");
                    }
                }
            }
            report.failed.extend(
                left.into_iter()
                    .map(|(i, _)| (i, format!("still unprocessed after {} attempts (throttled)", self.max_attempts))),
            );
        }
        report.failed.sort_by_key(|(i, _)| *i);
        report
    }
}
