//! Progress counters of one event source mapping.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// The kind of event source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// An SQS queue.
    #[default]
    Sqs,
    /// A DynamoDB stream.
    DynamoDbStream,
}

/// What one mapping has done so far. Counters only grow, except
/// `in_flight_batches`, `idle_polls` and the depths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// `Function/Event`.
    pub mapping: String,
    /// Function logical id.
    pub function: String,
    /// Queue or stream ARN.
    pub source_arn: String,
    /// Queue or stream.
    pub kind: SourceKind,
    /// Invocations (one per batch handed to the function, retries included).
    pub batches: u64,
    /// Records handed to the function (a retried record counts again).
    pub records: u64,
    /// Invocations whose whole batch succeeded.
    pub succeeded_batches: u64,
    /// Invocations that reported some records as failed (valid partial response).
    pub partial_failures: u64,
    /// Invocations whose whole batch failed: function errors, timeouts and
    /// invalid partial responses.
    pub whole_failures: u64,
    /// Of `whole_failures`: the function errored (not a timeout).
    pub function_errors: u64,
    /// Of `whole_failures`: the function timed out.
    pub timeouts: u64,
    /// Of `whole_failures`: the partial response was invalid.
    pub invalid_responses: u64,
    /// Records reported failed, or part of a failed batch.
    pub failed_records: u64,
    /// SQS: messages received again (ApproximateReceiveCount > 1). Streams:
    /// invocations that retried records after a failure.
    pub retries: u64,
    /// Streams: failing batches split in two.
    pub bisections: u64,
    /// Streams: OnFailure documents sent.
    pub on_failure_sent: u64,
    /// Streams: records dropped after retries or age ran out.
    pub dropped_records: u64,
    /// Streams: records skipped by FilterCriteria.
    pub filtered_records: u64,
    /// SQS: messages deleted after success.
    pub deleted_messages: u64,
    /// SQS: messages whose delete failed (they will be redelivered).
    pub delete_errors: u64,
    /// SQS FIFO: batches that contained a group already in flight in another
    /// batch (should stay 0: SQS never hands out such a group).
    pub fifo_group_conflicts: u64,
    /// Batches being processed right now.
    pub in_flight_batches: u64,
    /// Consecutive polls that found nothing to do (reset by any record).
    pub idle_polls: u64,
    /// Calls to the endpoint that failed (receive, get-records, send ...).
    pub aws_errors: u64,
    /// The last such error.
    pub last_error: Option<String>,
    /// SQS: ApproximateNumberOfMessages of the queue's RedrivePolicy DLQ.
    pub dlq_depth: Option<u64>,
    /// Streams: ApproximateNumberOfMessages of the OnFailure queue.
    pub on_failure_depth: Option<u64>,
}

impl fmt::Display for MappingStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} batches, {} records, {} ok, {} partial, {} whole-batch failures ({} errors, {} timeouts, {} invalid responses), {} retries",
            self.mapping,
            self.batches,
            self.records,
            self.succeeded_batches,
            self.partial_failures,
            self.whole_failures,
            self.function_errors,
            self.timeouts,
            self.invalid_responses,
            self.retries
        )?;
        match self.kind {
            SourceKind::Sqs => {
                write!(f, ", {} deleted", self.deleted_messages)?;
                if self.delete_errors > 0 {
                    write!(f, ", {} delete errors", self.delete_errors)?;
                }
                if let Some(d) = self.dlq_depth {
                    write!(f, ", DLQ depth {d}")?;
                }
            }
            SourceKind::DynamoDbStream => {
                write!(
                    f,
                    ", {} bisections, {} filtered, {} dropped, {} OnFailure sent",
                    self.bisections, self.filtered_records, self.dropped_records, self.on_failure_sent
                )?;
                if let Some(d) = self.on_failure_depth {
                    write!(f, ", OnFailure queue depth {d}")?;
                }
            }
        }
        if self.aws_errors > 0 {
            write!(f, ", {} AWS errors (last: {})", self.aws_errors, self.last_error.as_deref().unwrap_or("-"))?;
        }
        Ok(())
    }
}

/// Shared, updatable stats of one mapping.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats(Arc<Mutex<MappingStats>>);

impl Stats {
    pub(crate) fn new(initial: MappingStats) -> Self {
        Self(Arc::new(Mutex::new(initial)))
    }

    fn lock(&self) -> MutexGuard<'_, MappingStats> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut MappingStats)) {
        f(&mut self.lock());
    }

    pub(crate) fn snapshot(&self) -> MappingStats {
        self.lock().clone()
    }

    pub(crate) fn aws_error(&self, what: &str, error: impl fmt::Display) {
        let msg = format!("{what}: {error}");
        tracing::warn!(mapping = %self.lock().mapping, error = %msg, "AWS call failed");
        self.update(|s| {
            s.aws_errors += 1;
            s.last_error = Some(msg);
        });
    }

    pub(crate) fn idle_poll(&self) {
        self.update(|s| s.idle_polls += 1);
    }

    pub(crate) fn busy(&self) {
        self.update(|s| s.idle_polls = 0);
    }
}
