//! The queue processor: does the work each job asks for, against the items
//! table.
//!
//! - `process_item`: if the item is still `PENDING` at the job's version,
//!   normalise its name and tags, compute `total = price × quantity`
//!   exactly, and write it back as `PROCESSED` at `version + 1` under a
//!   condition on the version. A stale job (the item moved on, or is gone)
//!   is a successful no-op, so a redelivered job never applies its effect
//!   twice.
//! - Invalid items (negative quantity or price, an empty name, a total that
//!   overflows) are permanent failures: the item is marked `FAILED` with the
//!   reason (same version condition) and the job goes to the dead-letter
//!   queue with it. A job body that does not decode (not JSON, unknown job
//!   type, missing field) goes to the dead-letter queue; the item is left
//!   alone since the job, not the item, is at fault.
//! - `record_removal`: writes an audit record keyed by the stream sequence
//!   number, at most once.
//! - Table errors (throttling, timeouts, anything else) are retryable.

pub mod store;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use chrono::{DateTime, Utc};
/// What an [`ItemStore`] write did (the same outcome [`pipeline_core::ItemWriter`] reports).
pub use pipeline_core::WriteOutcome;
use pipeline_core::{
    BatchError, BatchProcessor, BatchReport, DeadLetterSink, Deadline, Decimal, Item, ItemStatus, Job, Message,
    ProcessorInfo, RecordError, RemovalAudit, SqsEvent,
};
pub use store::{DynamoItemStore, ItemStore, MemoryItemStore, StoreError};

/// The processor's name in logs and dead-letter envelopes.
pub const NAME: &str = "queue-processor";

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The item was processed.
    Processed,
    /// Nothing to do: the job no longer applies (why).
    Stale(String),
    /// The removal audit record was written.
    Recorded,
    /// The removal audit record already existed.
    AlreadyRecorded,
}

/// The derived fields of a valid item, or why it is invalid.
pub fn compute(item: &Item) -> Result<(String, std::collections::BTreeSet<String>, Decimal), String> {
    if item.quantity < 0 {
        return Err(format!("quantity {} is negative", item.quantity));
    }
    if item.price.is_sign_negative() && !item.price.is_zero() {
        return Err(format!("price {} is negative", item.price));
    }
    let name = item.name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("name is empty".to_owned());
    }
    let tags = item.tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    let total = item
        .price
        .checked_mul(Decimal::from(item.quantity))
        .ok_or_else(|| format!("total of {} x {} overflows", item.price, item.quantity))?;
    Ok((name, tags, total))
}

fn retryable(e: StoreError) -> RecordError {
    RecordError::retryable(e)
}

/// Runs one job against the store.
pub async fn run_job<S: ItemStore>(store: &S, job: Job, now: DateTime<Utc>) -> Result<JobOutcome, RecordError> {
    match job {
        Job::ProcessItem { item_id, version } => {
            let Some(item) = store.get(&item_id).await.map_err(retryable)? else {
                return Ok(JobOutcome::Stale(format!("item {item_id} no longer exists")));
            };
            if item.version == version + 1 && item.status == ItemStatus::Failed {
                // This job already marked the item FAILED, and then its
                // dead-lettering did not complete: dead-letter it again.
                let reason = item.failure_reason.unwrap_or_default();
                return Err(RecordError::permanent("validation", format!("item {item_id} v{version}: {reason}")));
            }
            if item.version != version || item.status != ItemStatus::Pending {
                return Ok(JobOutcome::Stale(format!(
                    "item {item_id} is at version {} ({}), the job is for version {version}",
                    item.version, item.status
                )));
            }
            let mut next = item.clone();
            next.version = version + 1;
            next.updated_at = now;
            match compute(&item) {
                Err(reason) => {
                    next.set_status(ItemStatus::Failed);
                    next.failure_reason = Some(reason.clone());
                    match store.put_if_version(&next, version).await.map_err(retryable)? {
                        WriteOutcome::Written => {
                            Err(RecordError::permanent("validation", format!("item {item_id} v{version}: {reason}")))
                        }
                        WriteOutcome::Conflict => {
                            Ok(JobOutcome::Stale(format!("item {item_id} changed while failing it")))
                        }
                    }
                }
                Ok((name, tags, total)) => {
                    next.set_status(ItemStatus::Processed);
                    next.name = name;
                    next.tags = tags;
                    next.total = Some(total);
                    next.processed_at = Some(now);
                    next.failure_reason = None;
                    match store.put_if_version(&next, version).await.map_err(retryable)? {
                        WriteOutcome::Written => Ok(JobOutcome::Processed),
                        WriteOutcome::Conflict => {
                            Ok(JobOutcome::Stale(format!("item {item_id} changed while processing")))
                        }
                    }
                }
            }
        }
        Job::RecordRemoval { item_id, version, reason, sequence_number, removed_at } => {
            let audit = RemovalAudit::new(&item_id, version, reason, &sequence_number, removed_at, now);
            match store.put_audit(&audit).await.map_err(retryable)? {
                WriteOutcome::Written => Ok(JobOutcome::Recorded),
                WriteOutcome::Conflict => Ok(JobOutcome::AlreadyRecorded),
            }
        }
    }
}

/// The queue processor: engine and store, built once.
#[derive(Debug)]
pub struct QueueProcessor<S, D> {
    engine: BatchProcessor<D>,
    store: S,
}

impl<S: ItemStore, D: DeadLetterSink> QueueProcessor<S, D> {
    /// A processor over `store`, dead-lettering into `sink`.
    pub fn new(store: S, sink: D) -> Self {
        Self { engine: BatchProcessor::new(ProcessorInfo::new(NAME, env!("CARGO_PKG_VERSION")), sink), store }
    }

    /// The engine (for its sink and configuration).
    pub fn engine(&self) -> &BatchProcessor<D> {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The per-record handler.
    pub async fn handle(&self, message: Message<Job>) -> Result<(), RecordError> {
        let kind = message.body.kind();
        let outcome = run_job(&self.store, message.body, Utc::now()).await?;
        tracing::info!(job = kind, outcome = ?outcome, "job done");
        Ok(())
    }

    /// Processes one batch, returning every record's outcome.
    pub async fn run(&self, event: SqsEvent, deadline: Deadline) -> Result<BatchReport, BatchError> {
        self.engine.run_sqs(event, deadline, |m| self.handle(m)).await
    }

    /// Processes one batch into the Lambda response.
    pub async fn handle_event(&self, event: SqsEvent, deadline: Deadline) -> Result<SqsBatchResponse, BatchError> {
        Ok(self.run(event, deadline).await?.sqs_response())
    }
}
