//! The stream processor: turns item changes on the items table's stream
//! into jobs on the processing queue.
//!
//! | change | job |
//! |---|---|
//! | `INSERT` of a `PENDING` item | `process_item` for its version |
//! | `MODIFY` to a `PENDING` item whose content changed, or that became `PENDING` again | `process_item` for the new version |
//! | `MODIFY` to `PROCESSED` / `FAILED` (the queue processor's own writes) | none: ignoring them is what keeps the pipeline from looping |
//! | `MODIFY` that changed nothing a producer owns (a touch) | none |
//! | `REMOVE` by a writer | `record_removal`, reason `deleted` |
//! | `REMOVE` by TTL expiry | `record_removal`, reason `ttl_expired` |
//! | records of other entities (`pk` not `ITEM#`, e.g. audit records) | none, not even decoded |
//!
//! Jobs for a whole batch go out together through the batching
//! [`Producer`]: one `SendMessageBatch` call per 10 jobs, calls concurrent,
//! failed entries retried; a record whose job still cannot be sent becomes
//! the batch's checkpoint. Items that do not decode go to the stream
//! dead-letter queue.

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use pipeline_core::model::ITEM_PK_PREFIX;
use pipeline_core::{
    BatchError, BatchProcessor, BatchReport, Change, DeadLetterSink, Deadline, Item, ItemStatus, Job, OutgoingMessage,
    ProcessorInfo, Producer, RecordError, RemovalReason, SqsTransport, StreamEvent, StreamRecord,
};
use serde_dynamo::AttributeValue;

/// The processor's name in logs and dead-letter envelopes.
pub const NAME: &str = "stream-processor";

/// The message attribute carrying the job type.
pub const ATTR_JOB_TYPE: &str = "pipeline.job_type";

/// `true` for the keys of an item record (`pk` starts with `ITEM#`).
pub fn is_item_key(keys: &serde_dynamo::Item) -> bool {
    matches!(keys.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with(ITEM_PK_PREFIX))
}

/// The jobs one change calls for (none, or one).
pub fn jobs_for(record: &StreamRecord<Item>) -> Option<Job> {
    match &record.change {
        Change::Insert { new } => (new.status == ItemStatus::Pending)
            .then(|| Job::ProcessItem { item_id: new.id().to_owned(), version: new.version }),
        Change::Modify { old, new } => {
            let wants_processing = new.status == ItemStatus::Pending
                && (old.status != ItemStatus::Pending || old.content_differs(new) || old.version != new.version);
            wants_processing.then(|| Job::ProcessItem { item_id: new.id().to_owned(), version: new.version })
        }
        Change::Remove { old } => Some(Job::RecordRemoval {
            item_id: old.id().to_owned(),
            version: old.version,
            reason: if record.meta.ttl_expired { RemovalReason::TtlExpired } else { RemovalReason::Deleted },
            sequence_number: record.meta.sequence_number.clone(),
            removed_at: record.meta.approximate_creation_time,
        }),
    }
}

/// The per-record handler: the job, as a message.
pub async fn handle(record: StreamRecord<Item>) -> Result<Vec<OutgoingMessage>, RecordError> {
    let Some(job) = jobs_for(&record) else {
        tracing::debug!(event = record.change.event_name(), "no job for this change");
        return Ok(Vec::new());
    };
    let message = OutgoingMessage::json(&job)
        .map_err(|e| RecordError::permanent("encode", e))?
        .attribute(ATTR_JOB_TYPE, job.kind());
    tracing::debug!(job = job.kind(), item = job.item_id(), "job");
    Ok(vec![message])
}

/// The stream processor: the engine, the dead-letter sink and the producer
/// for the processing queue, built once.
#[derive(Debug)]
pub struct StreamProcessor<D, Q> {
    engine: BatchProcessor<D>,
    producer: Producer<Q>,
}

impl<D: DeadLetterSink, Q: SqsTransport> StreamProcessor<D, Q> {
    /// A processor dead-lettering into `sink` and sending jobs through `queue`.
    pub fn new(sink: D, queue: Q) -> Self {
        let engine = BatchProcessor::new(ProcessorInfo::new(NAME, env!("CARGO_PKG_VERSION")), sink)
            .with_stream_key_filter(is_item_key);
        Self { engine, producer: Producer::new(queue) }
    }

    /// The engine (for its sink and configuration).
    pub fn engine(&self) -> &BatchProcessor<D> {
        &self.engine
    }

    /// The producer (for its transport).
    pub fn producer(&self) -> &Producer<Q> {
        &self.producer
    }

    /// Processes one batch, returning every record's outcome.
    pub async fn run(&self, event: StreamEvent, deadline: Deadline) -> Result<BatchReport, BatchError> {
        self.engine.run_stream_fanout(event, deadline, &self.producer, handle).await
    }

    /// Processes one batch into the Lambda response.
    pub async fn handle_event(
        &self,
        event: StreamEvent,
        deadline: Deadline,
    ) -> Result<DynamoDbEventResponse, BatchError> {
        Ok(self.run(event, deadline).await?.stream_response())
    }
}
