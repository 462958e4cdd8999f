//! Dead letters: records that can never succeed, with the reason.
//!
//! The engine hands every permanently failed record to a [`DeadLetterSink`]
//! as a [`DeadLetter`] envelope. The envelope's JSON form is a versioned,
//! documented schema (`docs/dead-letter-envelope.md`,
//! `schemas/dead-letter-v1.schema.json`) that the operator tool reads back.

use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::BoxError;

/// The `schema` value of every envelope this version writes.
pub const ENVELOPE_SCHEMA: &str = "lambda-pipeline/dead-letter";
/// The `schema_version` this version writes. Readers accept any envelope
/// with the same major version and ignore fields they do not know.
pub const ENVELOPE_VERSION: u32 = 1;

/// SQS message attribute carrying [`DeadLetterError::kind`], so tools can
/// filter without parsing bodies.
pub const ATTR_ERROR_KIND: &str = "pipeline.error_kind";
/// SQS message attribute carrying the processor's name.
pub const ATTR_PROCESSOR: &str = "pipeline.processor";
/// SQS message attribute carrying [`SourceKind`].
pub const ATTR_SOURCE_KIND: &str = "pipeline.source_kind";

/// Where the dead-lettered record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An SQS message; `record` is the Lambda SQS record.
    Sqs,
    /// A DynamoDB Streams record; `record` is the Lambda stream record.
    DynamodbStream,
}

impl SourceKind {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqs => "sqs",
            Self::DynamodbStream => "dynamodb_stream",
        }
    }
}

/// The record's origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterSource {
    /// SQS or a DynamoDB stream.
    pub kind: SourceKind,
    /// `eventSourceARN`: the source queue or stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `messageId` or `SequenceNumber`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// FIFO `MessageGroupId`, or the stream record's item key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Why the record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterError {
    /// Short category: `decode` for records that do not decode, otherwise
    /// the handler's [`crate::RecordError::Permanent`] kind.
    pub kind: String,
    /// Human-readable reason.
    pub message: String,
}

/// Which processor dead-lettered the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorInfo {
    /// The processor's name (for example `queue-processor`).
    pub name: String,
    /// Its version (the crate version).
    pub version: String,
}

impl ProcessorInfo {
    /// A processor name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self { name: name.into(), version: version.into() }
    }
}

/// The dead-letter envelope, schema version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Always [`ENVELOPE_SCHEMA`].
    pub schema: String,
    /// [`ENVELOPE_VERSION`] when written by this version.
    pub schema_version: u32,
    /// Where the record came from.
    pub source: DeadLetterSource,
    /// Why it failed.
    pub error: DeadLetterError,
    /// Who failed it.
    pub processor: ProcessorInfo,
    /// Delivery attempts so far (SQS `ApproximateReceiveCount`); absent for
    /// stream records, where Lambda does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// When the record first failed permanently.
    pub first_failed_at: DateTime<Utc>,
    /// When it was dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
    /// The Lambda event record exactly as it arrived.
    pub record: Box<RawValue>,
}

impl DeadLetter {
    /// `true` when this version can read the envelope.
    pub fn is_supported(&self) -> bool {
        self.schema == ENVELOPE_SCHEMA && self.schema_version == ENVELOPE_VERSION
    }

    /// Parses an envelope from a message body, refusing foreign or newer
    /// schemas with a message that says which.
    pub fn from_json(body: &str) -> Result<Self, BoxError> {
        let letter: DeadLetter = serde_json::from_str(body)?;
        if !letter.is_supported() {
            return Err(format!(
                "envelope schema {} v{} is not {ENVELOPE_SCHEMA} v{ENVELOPE_VERSION}",
                letter.schema, letter.schema_version
            )
            .into());
        }
        Ok(letter)
    }
}

/// Where permanently failed records go.
///
/// `send` must return `Ok` only once the letter is durably stored: the
/// engine then counts the record as handled. On `Err` the engine reports the
/// record as failed, so Lambda delivers it again.
pub trait DeadLetterSink: Send + Sync {
    /// Stores one dead letter.
    fn send(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), BoxError>> + Send;
}

impl<S: DeadLetterSink> DeadLetterSink for &S {
    fn send(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), BoxError>> + Send {
        (**self).send(letter)
    }
}

impl<S: DeadLetterSink> DeadLetterSink for std::sync::Arc<S> {
    fn send(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), BoxError>> + Send {
        (**self).send(letter)
    }
}

/// An in-memory sink for tests and local runs. It can be told to fail.
#[derive(Debug, Default)]
pub struct MemorySink {
    letters: Mutex<Vec<DeadLetter>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    /// An empty sink that accepts letters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `send` fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The letters stored so far.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DeadLetterSink for MemorySink {
    async fn send(&self, letter: &DeadLetter) -> Result<(), BoxError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("dead-letter sink unavailable (MemorySink set to fail)".into());
        }
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).push(letter.clone());
        Ok(())
    }
}

/// Writes dead letters to an SQS queue.
///
/// The body is the JSON envelope; the message attributes
/// [`ATTR_ERROR_KIND`], [`ATTR_PROCESSOR`] and [`ATTR_SOURCE_KIND`] repeat
/// its key fields. For a FIFO queue (URL ending in `.fifo`) the message group
/// is the record's group (or its id) and the deduplication id is derived from
/// the processor and record id, so a retried dead-lettering is not stored
/// twice.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetterSink {
    /// A sink writing to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    /// The queue written to.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn string_attr(value: &str) -> Result<aws_sdk_sqs::types::MessageAttributeValue, BoxError> {
    Ok(aws_sdk_sqs::types::MessageAttributeValue::builder().data_type("String").string_value(value).build()?)
}

impl DeadLetterSink for SqsDeadLetterSink {
    async fn send(&self, letter: &DeadLetter) -> Result<(), BoxError> {
        let body = serde_json::to_string(letter)?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(ATTR_ERROR_KIND, string_attr(&letter.error.kind)?)
            .message_attributes(ATTR_PROCESSOR, string_attr(&letter.processor.name)?)
            .message_attributes(ATTR_SOURCE_KIND, string_attr(letter.source.kind.as_str())?);
        if self.queue_url.ends_with(".fifo") {
            let id = letter.source.record_id.as_deref().unwrap_or("unidentified");
            let group = letter.source.group.as_deref().unwrap_or(id);
            request = request
                .message_group_id(fifo_token(group))
                .message_deduplication_id(fifo_token(&format!("{}:{id}", letter.processor.name)));
        }
        request.send().await.map_err(|e| {
            format!(
                "SendMessage to dead-letter queue {} failed: {}",
                self.queue_url,
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
        Ok(())
    }
}

/// FIFO group and deduplication ids: at most 128 characters of printable
/// ASCII. Longer or non-ASCII values are replaced by a stable hash.
fn fifo_token(s: &str) -> String {
    if s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        return s.to_owned();
    }
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let hash = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("h{hash:016x}")
}
