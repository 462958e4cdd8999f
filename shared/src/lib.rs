//! Typed DynamoDB Streams and SQS batch processing for AWS Lambda.
//!
//! `pipeline-core` turns raw Lambda events into typed records, runs an async
//! handler over each record with the ordering the event source requires, and
//! returns the partial batch response (`batchItemFailures`) that makes Lambda
//! retry exactly the records that must be retried. Records that can never
//! succeed go to a dead-letter sink with the reason; nothing is lost when the
//! sink itself fails, and a panic or an undecodable record fails only itself.
//!
//! - [`StreamEvent`] → [`StreamRecord<T>`]: a typed [`Change<T>`] (`Insert`,
//!   `Modify`, `Remove`) plus keys, sequence number, TTL flag.
//! - [`SqsEvent`] → [`Message<T>`]: a JSON body decoded into `T` plus receive
//!   count, FIFO group / dedup ids and attributes.
//! - [`BatchProcessor`]: the engine. See [`engine`] for the ordering and
//!   failure rules of each source.
//! - [`RecordError`]: `Retryable` (report it) or `Permanent` (dead-letter
//!   it).
//! - [`DeadLetterSink`]: [`SqsDeadLetterSink`] writes a versioned
//!   [`DeadLetter`] envelope.
//!
//! # A complete typed processor
//!
//! ```
//! use pipeline_core::{BatchProcessor, Change, Deadline, Item, MemorySink, ProcessorInfo};
//! use pipeline_core::{RecordError, StreamEvent, StreamRecord};
//!
//! async fn handle(record: StreamRecord<Item>) -> Result<(), RecordError> {
//!     match record.change {
//!         Change::Insert { new } if new.quantity < 0 => {
//!             Err(RecordError::permanent("validation", format!("{}: negative quantity", new.id())))
//!         }
//!         Change::Insert { new } | Change::Modify { new, .. } => Ok(println!("upsert {}", new.id())),
//!         Change::Remove { old } => Ok(println!("removed {}", old.id())),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = BatchProcessor::new(ProcessorInfo::new("example", "1.0.0"), MemorySink::new());
//! let event: StreamEvent = serde_json::from_str(include_str!("../../events/stream/mixed-changes.json"))?;
//! let response = engine.process_stream(event, Deadline::none(), handle).await?;
//! assert!(response.batch_item_failures.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! In a Lambda binary the same handler is served with
//! `lambda_runtime::run(service_fn(|e: LambdaEvent<StreamEvent>| ...))`,
//! passing [`Deadline::from_context`] so records that cannot start in time
//! are reported instead of timing out the whole batch.
#![deny(missing_docs)]

pub mod aws;
pub mod dlq;
pub mod engine;
pub mod error;
pub mod model;
pub mod producer;
pub mod sqs;
pub mod stream;
pub mod writer;

pub use dlq::{DeadLetter, DeadLetterSink, MemorySink, ProcessorInfo, SqsDeadLetterSink};
pub use engine::{
    BatchConfig, BatchProcessor, BatchReport, BatchSummary, Deadline, KeyFilter, RecordOutcome, SkipReason,
};
pub use error::{BatchError, BoxError, DecodeError, RecordError, RecordRef};
pub use model::{Decimal, Item, ItemStatus, Job, RemovalAudit, RemovalReason};
pub use producer::{
    EntryFailure, MemoryQueue, OutgoingMessage, Producer, ProducerConfig, SendReport, SqsQueue, SqsTransport,
};
pub use sqs::{decode_sqs_event, Message, MessageMeta, SqsEvent};
pub use stream::{decode_item, decode_stream_event, Change, StreamEvent, StreamMeta, StreamRecord, StreamViewType};
pub use writer::{BatchWriteReport, ItemWriter, WriteOutcome};
