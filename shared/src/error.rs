//! Errors: what went wrong with one record, and what the engine does next.

use std::borrow::Cow;
use std::fmt;

/// A boxed error that can cross task boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which record of a batch an error is about.
///
/// Every field is optional because the record that failed may be too broken
/// to carry them; the batch position is always known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRef {
    /// Position of the record in the batch (0-based).
    pub index: usize,
    /// SQS `messageId`.
    pub message_id: Option<String>,
    /// DynamoDB Streams `eventID`.
    pub event_id: Option<String>,
    /// DynamoDB Streams `dynamodb.SequenceNumber`.
    pub sequence_number: Option<String>,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record #{}", self.index)?;
        if let Some(id) = &self.message_id {
            write!(f, " messageId={id}")?;
        }
        if let Some(id) = &self.event_id {
            write!(f, " eventID={id}")?;
        }
        if let Some(seq) = &self.sequence_number {
            write!(f, " SequenceNumber={seq}")?;
        }
        Ok(())
    }
}

/// Why one record of a batch could not be decoded into its typed form.
///
/// A decode error fails only its own record; the engine treats it as
/// permanent (the record is dead-lettered, never retried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The record at fault (boxed to keep `Result`s small).
    pub record: Box<RecordRef>,
    /// Where in the record: a JSON / attribute path such as
    /// `dynamodb.NewImage.price`, or empty for the record as a whole.
    pub path: String,
    /// What is wrong, with the fix where there is one.
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(record: RecordRef, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { record: Box::new(record), path: path.into(), message: message.into() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.record, self.message)
        } else {
            write!(f, "{}: at {}: {}", self.record, self.path, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

/// What a record handler reports when it cannot complete a record, and so
/// what the engine does next.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A transient failure (throttling, a timeout, a dependency down): the
    /// record is reported in `batchItemFailures` and Lambda delivers it again.
    #[error("retryable: {0}")]
    Retryable(#[source] BoxError),
    /// The record can never succeed (invalid input, unknown job type): it is
    /// sent to the dead-letter sink with the reason and then counted as
    /// handled. If the dead-letter sink fails the record is retried instead,
    /// so nothing is lost.
    #[error("permanent ({kind}): {source}")]
    Permanent {
        /// A short machine-readable category (`decode`, `validation`, ...),
        /// written into the dead-letter envelope for filtering.
        kind: Cow<'static, str>,
        /// The reason.
        #[source]
        source: BoxError,
    },
}

impl RecordError {
    /// A transient failure: retry the record.
    pub fn retryable(err: impl Into<BoxError>) -> Self {
        Self::Retryable(err.into())
    }

    /// A failure that will never succeed: dead-letter the record.
    pub fn permanent(kind: impl Into<Cow<'static, str>>, err: impl Into<BoxError>) -> Self {
        Self::Permanent { kind: kind.into(), source: err.into() }
    }

    /// `true` for [`RecordError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

impl From<DecodeError> for RecordError {
    fn from(err: DecodeError) -> Self {
        Self::permanent("decode", err)
    }
}

/// Why a whole invocation failed. Returned only where reporting single
/// records is impossible or would lose data; Lambda then retries the batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A record must be reported as failed but carries no identifier that
    /// Lambda would accept (an empty or missing `messageId` /
    /// `SequenceNumber`). Reporting nothing would delete or checkpoint it, so
    /// the whole batch is failed instead.
    #[error(
        "{record} failed ({reason}) but has no {field}; failing the whole invocation so \
         Lambda retries the batch instead of dropping the record"
    )]
    Unidentifiable {
        /// The record at fault.
        record: RecordRef,
        /// The identifier field Lambda needs (`messageId` or `dynamodb.SequenceNumber`).
        field: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Every record failed and the engine is configured to fail the
    /// invocation in that case.
    #[error("all {0} records of the batch failed")]
    AllFailed(usize),
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(err: BatchError) -> Self {
        let error_type = match &err {
            BatchError::Unidentifiable { .. } => "BatchError.Unidentifiable",
            BatchError::AllFailed(_) => "BatchError.AllFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}
