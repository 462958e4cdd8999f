//! The batch engine: one implementation of partial batch failure reporting,
//! shared by every processor.
//!
//! Given a raw event and an async per-record handler, the engine decodes each
//! record on its own, runs the handler with the ordering the event source
//! demands, dead-letters what can never succeed and returns the Lambda
//! response listing exactly the records Lambda must deliver again.
//!
//! | source | order | after a failure |
//! |---|---|---|
//! | SQS standard | none; up to `max_concurrency` records at once | only the failed message is reported |
//! | SQS FIFO (`.fifo` ARN or a `MessageGroupId`) | in order within a message group; groups run concurrently | the failed message and every later message of its group are reported without being run; other groups go on |
//! | DynamoDB Streams | in order per item key; keys run concurrently | later records of the key are not run; records after the lowest failure are not started; the lowest failed `SequenceNumber` is reported, so Lambda checkpoints there |
//!
//! # What stream handlers must tolerate
//!
//! Lambda retries a stream batch from the lowest reported sequence number.
//! Records of *other* keys that come later in the batch and already
//! succeeded (they ran concurrently) are delivered again: handlers must be
//! idempotent. Set [`BatchConfig::max_concurrency`] to 1 to run a stream
//! batch strictly in shard order instead.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::Utc;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde_dynamo::Item as DynItem;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::{error, info, info_span, warn, Instrument};

use crate::dlq::{
    DeadLetter, DeadLetterError, DeadLetterSink, DeadLetterSource, ProcessorInfo, SourceKind, ENVELOPE_SCHEMA,
    ENVELOPE_VERSION,
};
use crate::error::{BatchError, DecodeError, RecordError, RecordRef};
use crate::producer::{OutgoingMessage, Producer, SqsTransport};
use crate::sqs::{decode_sqs_message, sqs_header, Message, SqsEvent};
use crate::stream::{decode_stream_change, stream_header, stream_plan, StreamEvent, StreamRecord};

/// How the engine runs a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Records (SQS standard) or groups (FIFO message groups, stream item
    /// keys) run at once. Default 10. 1 runs the batch strictly in order.
    pub max_concurrency: usize,
    /// Records not started by `deadline - deadline_margin` are reported as
    /// failed instead of letting the invocation time out (which would fail
    /// the whole batch). Default 2 s; never more than a quarter of the time
    /// left when the batch starts.
    pub deadline_margin: Duration,
    /// When every record of a batch fails, return [`BatchError::AllFailed`]
    /// instead of a response listing them all. Default `false`: the response
    /// is returned, which retries the same records without counting as a
    /// function error.
    pub fail_invocation_when_all_fail: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_concurrency: 10, deadline_margin: Duration::from_secs(2), fail_invocation_when_all_fail: false }
    }
}

impl BatchConfig {
    /// Sets [`BatchConfig::max_concurrency`] (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Sets [`BatchConfig::deadline_margin`].
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Sets [`BatchConfig::fail_invocation_when_all_fail`].
    pub fn fail_invocation_when_all_fail(mut self, yes: bool) -> Self {
        self.fail_invocation_when_all_fail = yes;
        self
    }
}

/// When the invocation must have answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline.
    pub fn none() -> Self {
        Self(None)
    }

    /// A deadline at `instant` (a `tokio` instant, so tests with paused time
    /// control it).
    pub fn at(instant: Instant) -> Self {
        Self(Some(instant))
    }

    /// A deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Self(Some(Instant::now() + d))
    }

    /// The invocation's deadline, from the Lambda context.
    pub fn from_context(ctx: &lambda_runtime::Context) -> Self {
        Self::from_system_time(ctx.deadline())
    }

    /// A deadline given as wall-clock time.
    pub fn from_system_time(at: SystemTime) -> Self {
        let left = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        Self::after(left)
    }

    /// The instant after which no record may start, fixed when a batch
    /// starts: the deadline minus the margin, where the margin is at most a
    /// quarter of the time left (so a function whose timeout is shorter
    /// than the margin still runs records instead of failing every batch).
    /// A deadline that has already passed when the batch starts is ignored
    /// with a warning: Lambda never sends one, local emulators that do not
    /// set `Lambda-Runtime-Deadline-Ms` do, and honouring it would fail every
    /// batch forever.
    fn cutoff(&self, margin: Duration) -> Option<Instant> {
        let deadline = self.0?;
        let now = Instant::now();
        if deadline <= now {
            tracing::warn!("the invocation deadline had passed when the batch started; ignoring it");
            return None;
        }
        let left = deadline - now;
        Some(deadline - margin.min(left / 4))
    }
}

/// Why a record was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// An earlier record of its FIFO message group or item key failed.
    GroupFailed,
    /// Stream only: a record earlier in the batch failed, so Lambda will
    /// deliver this one again from the checkpoint.
    AfterCheckpoint,
    /// The invocation's deadline (minus the margin) had passed.
    Deadline,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The handler succeeded.
    Succeeded,
    /// The record failed permanently and is stored in the dead-letter sink.
    DeadLettered {
        /// The error kind written into the envelope.
        kind: String,
    },
    /// The record failed and must be delivered again.
    Failed {
        /// Why.
        reason: String,
    },
    /// The record was not run and must be delivered again.
    Skipped(SkipReason),
    /// The record is not for this processor (stream key filter): done with,
    /// without running.
    Filtered,
}

impl RecordOutcome {
    /// `true` when the record is done with (succeeded or dead-lettered).
    pub fn is_handled(&self) -> bool {
        matches!(self, Self::Succeeded | Self::DeadLettered { .. } | Self::Filtered)
    }
}

/// Counts for one batch, also logged as one structured line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Records in the batch.
    pub received: usize,
    /// Handler succeeded.
    pub succeeded: usize,
    /// Failed, to be delivered again.
    pub retried: usize,
    /// Stored in the dead-letter sink.
    pub dead_lettered: usize,
    /// Not run (group failed, after the checkpoint, deadline).
    pub skipped: usize,
    /// Not for this processor (stream key filter).
    pub filtered: usize,
}

/// The result of a batch: per-record outcomes and the identifiers to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// One outcome per record, in batch order.
    pub outcomes: Vec<RecordOutcome>,
    /// The `itemIdentifier`s of the response.
    pub item_failures: Vec<String>,
    /// Counts.
    pub summary: BatchSummary,
}

impl BatchReport {
    /// The SQS partial batch response.
    pub fn sqs_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in &self.item_failures {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier.clone_from(id);
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// The DynamoDB Streams partial batch response.
    pub fn stream_response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for id in &self.item_failures {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(id.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// Runs per-record handlers over Lambda batches. See the [module docs](self).
#[derive(Clone)]
pub struct BatchProcessor<S> {
    info: ProcessorInfo,
    sink: S,
    config: BatchConfig,
    key_filter: Option<KeyFilter>,
}

/// Decides from a stream record's keys whether the processor wants it.
pub type KeyFilter = Arc<dyn Fn(&DynItem) -> bool + Send + Sync>;

impl<S: std::fmt::Debug> std::fmt::Debug for BatchProcessor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("info", &self.info)
            .field("sink", &self.sink)
            .field("config", &self.config)
            .field("key_filter", &self.key_filter.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SQS standard: every record on its own.
    Independent,
    /// SQS FIFO: in order per group, stop a group at its first failure.
    Groups,
    /// Streams: like `Groups`, and nothing after the lowest failure starts.
    Stream,
}

/// One record as the engine schedules it. Only what scheduling needs is
/// read up front; identifiers, the ARN and the rest are read from the raw
/// record again on the rare paths that need them (a failure to report, a
/// letter to write), so that a batch that succeeds allocates nothing for
/// them.
struct Unit<R> {
    /// FIFO message group or canonical item key: records with the same one
    /// run in order.
    group: Option<String>,
    label: &'static str,
    filtered: bool,
    /// The decoded record, when it was decoded up front (SQS). Stream
    /// records are decoded when they run, so that a batch never holds every
    /// decoded record at once.
    ready: Mutex<Option<Result<R, DecodeError>>>,
}

/// Where a batch came from, and how its records are read.
struct Source<'e, R> {
    kind: SourceKind,
    raw: &'e [Box<RawValue>],
    decode: fn(usize, &RawValue) -> Result<R, DecodeError>,
    /// The decoded record's identifier, for the record's span.
    id_of: fn(&R) -> &str,
}

/// What the rare paths need to know about a record.
struct Identity {
    reference: RecordRef,
    identifier: Option<String>,
    group: Option<String>,
    arn: Option<String>,
    attempts: Option<u32>,
}

impl<R> Source<'_, R> {
    fn identity(&self, index: usize) -> Identity {
        let raw = &self.raw[index];
        match self.kind {
            SourceKind::Sqs => {
                let h = sqs_header(index, raw);
                Identity {
                    identifier: h.reference.message_id.clone(),
                    reference: h.reference,
                    group: h.group_id,
                    arn: h.source_arn,
                    attempts: h.receive_count,
                }
            }
            SourceKind::DynamodbStream => {
                let h = stream_header(index, raw);
                Identity {
                    identifier: h.reference.sequence_number.clone(),
                    reference: h.reference,
                    group: h.key,
                    arn: h.source_arn,
                    attempts: None,
                }
            }
        }
    }
}

fn stream_source<T: DeserializeOwned>(records: &[Box<RawValue>]) -> Source<'_, StreamRecord<T>> {
    Source {
        kind: SourceKind::DynamodbStream,
        raw: records,
        decode: decode_stream_change::<T>,
        id_of: |r| &r.meta.sequence_number,
    }
}

fn decode_sqs<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Result<Message<T>, DecodeError> {
    decode_sqs_message::<T>(index, raw).map_err(|failed| failed.1)
}

/// The order in which groups run: `members[starts[g]..starts[g + 1]]` are
/// the record indices of group `g`, in batch order; groups are numbered in
/// order of first appearance. `None` when every record is its own group.
struct Schedule {
    members: Vec<u32>,
    starts: Vec<u32>,
}

impl Schedule {
    fn of<R>(units: &[Unit<R>], mode: Mode) -> Option<Self> {
        if mode == Mode::Independent {
            return None;
        }
        let mut by_key: HashMap<&str, u32> = HashMap::with_capacity(units.len());
        let mut group_of: Vec<u32> = Vec::with_capacity(units.len());
        let mut sizes: Vec<u32> = Vec::new();
        for unit in units {
            let g = match &unit.group {
                Some(key) => *by_key.entry(key.as_str()).or_insert_with(|| {
                    sizes.push(0);
                    (sizes.len() - 1) as u32
                }),
                None => {
                    sizes.push(0);
                    (sizes.len() - 1) as u32
                }
            };
            sizes[g as usize] += 1;
            group_of.push(g);
        }
        let mut starts: Vec<u32> = Vec::with_capacity(sizes.len() + 1);
        let mut at = 0;
        for size in &sizes {
            starts.push(at);
            at += size;
        }
        starts.push(at);
        let mut fill: Vec<u32> = starts[..sizes.len()].to_vec();
        let mut members = vec![0u32; units.len()];
        for (index, g) in group_of.into_iter().enumerate() {
            members[fill[g as usize] as usize] = index as u32;
            fill[g as usize] += 1;
        }
        Some(Self { members, starts })
    }
}

impl<S: DeadLetterSink> BatchProcessor<S> {
    /// An engine for the processor `info`, dead-lettering into `sink`.
    pub fn new(info: ProcessorInfo, sink: S) -> Self {
        Self { info, sink, config: BatchConfig::default(), key_filter: None }
    }

    /// Stream records whose keys `keep` rejects are neither decoded nor run
    /// (outcome [`RecordOutcome::Filtered`]), like a `FilterCriteria` on
    /// the keys. Use it so that records of other entities in the same table
    /// never reach a handler typed for one entity.
    pub fn with_stream_key_filter(mut self, keep: impl Fn(&DynItem) -> bool + Send + Sync + 'static) -> Self {
        self.key_filter = Some(Arc::new(keep));
        self
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: BatchConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The dead-letter sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Processes an SQS batch and returns the partial batch response.
    pub async fn process_sqs<T, F, Fut>(
        &self,
        event: SqsEvent,
        deadline: Deadline,
        handler: F,
    ) -> Result<SqsBatchResponse, BatchError>
    where
        T: DeserializeOwned,
        F: Fn(Message<T>) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        Ok(self.run_sqs(event, deadline, handler).await?.sqs_response())
    }

    /// Processes a DynamoDB Streams batch and returns the partial batch
    /// response.
    pub async fn process_stream<T, F, Fut>(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        handler: F,
    ) -> Result<DynamoDbEventResponse, BatchError>
    where
        T: DeserializeOwned,
        F: Fn(StreamRecord<T>) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        Ok(self.run_stream(event, deadline, handler).await?.stream_response())
    }

    /// Like [`process_sqs`](Self::process_sqs), returning every record's
    /// outcome.
    pub async fn run_sqs<T, F, Fut>(
        &self,
        event: SqsEvent,
        deadline: Deadline,
        handler: F,
    ) -> Result<BatchReport, BatchError>
    where
        T: DeserializeOwned,
        F: Fn(Message<T>) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        let (units, mode) = sqs_units::<T>(&event.records);
        let source = Source {
            kind: SourceKind::Sqs,
            raw: &event.records,
            decode: decode_sqs::<T>,
            id_of: |m| &m.meta.message_id,
        };
        let outcomes = self.execute(&source, units, mode, deadline, &|_, m| handler(m)).await;
        self.finish(&source, outcomes, mode)
    }

    /// Like [`process_stream`](Self::process_stream), returning every
    /// record's outcome.
    pub async fn run_stream<T, F, Fut>(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        handler: F,
    ) -> Result<BatchReport, BatchError>
    where
        T: DeserializeOwned,
        F: Fn(StreamRecord<T>) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        let units = self.stream_units(&event.records);
        let source = stream_source::<T>(&event.records);
        let outcomes = self.execute(&source, units, Mode::Stream, deadline, &|_, r| handler(r)).await;
        self.finish(&source, outcomes, Mode::Stream)
    }

    /// Processes a stream batch whose handler turns records into messages
    /// for a queue (a fan-out), and returns every record's outcome.
    ///
    /// The handler only decides what to send; once every record has run,
    /// all messages go out through `producer`: 10 entries (and at most the
    /// size limit) per `SendMessageBatch` call, calls concurrent, failed
    /// entries retried. A record whose messages still fail to send is
    /// reported as failed (retryable), so Lambda checkpoints at it. Records
    /// after it may then be delivered again and send their messages twice:
    /// consumers must be idempotent, as with any SQS standard queue.
    pub async fn run_stream_fanout<T, F, Fut, Q>(
        &self,
        event: StreamEvent,
        deadline: Deadline,
        producer: &Producer<Q>,
        handler: F,
    ) -> Result<BatchReport, BatchError>
    where
        T: DeserializeOwned,
        F: Fn(StreamRecord<T>) -> Fut,
        Fut: Future<Output = Result<Vec<OutgoingMessage>, RecordError>>,
        Q: SqsTransport,
    {
        let units = self.stream_units(&event.records);
        let source = stream_source::<T>(&event.records);
        let outbox: Mutex<Vec<(usize, OutgoingMessage)>> = Mutex::new(Vec::new());
        let collect = |index: usize, record: StreamRecord<T>| {
            let produced = handler(record);
            let outbox = &outbox;
            async move {
                let messages = produced.await?;
                outbox.lock().unwrap_or_else(|p| p.into_inner()).extend(messages.into_iter().map(|m| (index, m)));
                Ok(())
            }
        };
        let mut outcomes = self.execute(&source, units, Mode::Stream, deadline, &collect).await;
        let (owners, messages): (Vec<usize>, Vec<OutgoingMessage>) =
            outbox.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().unzip();
        if !messages.is_empty() {
            let sent = producer.send(messages).await;
            for (position, reason) in sent.failed {
                let index = owners[position];
                if outcomes[index] == RecordOutcome::Succeeded {
                    let record = source.identity(index).reference;
                    warn!(%record, %reason, "message not sent; the record will be retried");
                    outcomes[index] = RecordOutcome::Failed { reason: format!("message not sent: {reason}") };
                }
            }
        }
        self.finish(&source, outcomes, Mode::Stream)
    }

    fn stream_units<R>(&self, records: &[Box<RawValue>]) -> Vec<Unit<R>> {
        records
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                let plan = stream_plan(index, raw, self.key_filter.is_some());
                let label = match plan.event_name.as_deref() {
                    Some("INSERT") => "INSERT",
                    Some("MODIFY") => "MODIFY",
                    Some("REMOVE") => "REMOVE",
                    _ => "unknown",
                };
                let filtered = match (&self.key_filter, &plan.keys) {
                    (Some(keep), Some(keys)) => !keep(keys),
                    _ => false,
                };
                Unit { group: plan.key, label, filtered, ready: Mutex::new(None) }
            })
            .collect()
    }

    /// Runs every unit with the ordering `mode` demands: a fixed pool of
    /// `max_concurrency` workers takes groups in order of first appearance
    /// and runs each group's records in batch order. Returns one outcome per
    /// record.
    async fn execute<R, F, Fut>(
        &self,
        source: &Source<'_, R>,
        units: Vec<Unit<R>>,
        mode: Mode,
        deadline: Deadline,
        handler: &F,
    ) -> Vec<RecordOutcome>
    where
        F: Fn(usize, R) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        let received = units.len();
        let schedule = Schedule::of(&units, mode);
        let groups = schedule.as_ref().map_or(received, |s| s.starts.len() - 1);
        let cutoff = deadline.cutoff(self.config.deadline_margin);
        let lowest_failure = AtomicUsize::new(usize::MAX);
        let next_group = AtomicUsize::new(0);
        let (units, schedule, lowest_failure, next_group) = (&units, &schedule, &lowest_failure, &next_group);

        let worker = || async move {
            let mut out: Vec<(u32, RecordOutcome)> = Vec::new();
            loop {
                let g = next_group.fetch_add(1, Ordering::Relaxed);
                if g >= groups {
                    break;
                }
                let single = [g as u32];
                let members: &[u32] = match schedule {
                    Some(s) => &s.members[s.starts[g] as usize..s.starts[g + 1] as usize],
                    None => &single,
                };
                let mut group_failed = false;
                for &index in members {
                    let index = index as usize;
                    let unit = &units[index];
                    let outcome = if unit.filtered {
                        RecordOutcome::Filtered
                    } else if group_failed {
                        RecordOutcome::Skipped(SkipReason::GroupFailed)
                    } else if mode == Mode::Stream && index > lowest_failure.load(Ordering::SeqCst) {
                        RecordOutcome::Skipped(SkipReason::AfterCheckpoint)
                    } else if cutoff.is_some_and(|c| Instant::now() >= c) {
                        RecordOutcome::Skipped(SkipReason::Deadline)
                    } else {
                        self.run_unit(source, index, unit, handler).await
                    };
                    if !outcome.is_handled() && mode != Mode::Independent {
                        group_failed = true;
                        lowest_failure.fetch_min(index, Ordering::SeqCst);
                    }
                    out.push((index as u32, outcome));
                }
            }
            out
        };
        let workers = self.config.max_concurrency.clamp(1, groups.max(1));
        let results = futures::future::join_all((0..workers).map(|_| worker())).await;

        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; received];
        for (index, outcome) in results.into_iter().flatten() {
            outcomes[index as usize] = Some(outcome);
        }
        outcomes.into_iter().map(|o| o.unwrap_or(RecordOutcome::Skipped(SkipReason::Deadline))).collect()
    }

    /// Counts, logs and builds the response.
    fn finish<R>(
        &self,
        source: &Source<'_, R>,
        outcomes: Vec<RecordOutcome>,
        mode: Mode,
    ) -> Result<BatchReport, BatchError> {
        let received = outcomes.len();
        let mut summary = BatchSummary { received, ..BatchSummary::default() };
        for o in &outcomes {
            match o {
                RecordOutcome::Succeeded => summary.succeeded += 1,
                RecordOutcome::DeadLettered { .. } => summary.dead_lettered += 1,
                RecordOutcome::Failed { .. } => summary.retried += 1,
                RecordOutcome::Skipped(_) => summary.skipped += 1,
                RecordOutcome::Filtered => summary.filtered += 1,
            }
        }

        // Which records to report. SQS: each one to retry. Streams: only the
        // first one, where Lambda must checkpoint.
        let mut to_report: Vec<usize> =
            outcomes.iter().enumerate().filter(|(_, o)| !o.is_handled()).map(|(i, _)| i).collect();
        if mode == Mode::Stream {
            to_report.truncate(1);
        }
        let (field, source_name) = match mode {
            Mode::Stream => ("dynamodb.SequenceNumber", "dynamodb_stream"),
            Mode::Independent | Mode::Groups => ("messageId", "sqs"),
        };
        let mut item_failures: Vec<String> = Vec::with_capacity(to_report.len());
        for i in to_report {
            let Identity { reference, identifier, .. } = source.identity(i);
            match identifier {
                Some(id) if !id.is_empty() => {
                    if !item_failures.contains(&id) {
                        item_failures.push(id);
                    }
                }
                _ => {
                    let reason = match &outcomes[i] {
                        RecordOutcome::Failed { reason } => reason.clone(),
                        other => format!("{other:?}"),
                    };
                    error!(record = %reference, field, %reason, "failed record has no identifier; failing the invocation");
                    return Err(BatchError::Unidentifiable { record: reference, field, reason });
                }
            }
        }

        info!(
            target: "pipeline_core::batch",
            processor = %self.info.name,
            source = source_name,
            received = summary.received,
            succeeded = summary.succeeded,
            retried = summary.retried,
            dead_lettered = summary.dead_lettered,
            skipped = summary.skipped,
            filtered = summary.filtered,
            reported = item_failures.len(),
            "batch summary"
        );

        if self.config.fail_invocation_when_all_fail && received > 0 && summary.succeeded + summary.dead_lettered == 0 {
            return Err(BatchError::AllFailed(received));
        }
        Ok(BatchReport { outcomes, item_failures, summary })
    }

    async fn run_unit<R, F, Fut>(
        &self,
        source: &Source<'_, R>,
        index: usize,
        unit: &Unit<R>,
        handler: &F,
    ) -> RecordOutcome
    where
        F: Fn(usize, R) -> Fut,
        Fut: Future<Output = Result<(), RecordError>>,
    {
        let span = info_span!("record", index, id = tracing::field::Empty, event = unit.label);
        let ready = unit.ready.lock().unwrap_or_else(|p| p.into_inner()).take();
        async move {
            let decoded = ready.unwrap_or_else(|| (source.decode)(index, &source.raw[index]));
            let result = match decoded {
                Err(err) => Err(RecordError::from(err)),
                Ok(record) => {
                    tracing::Span::current().record("id", (source.id_of)(&record));
                    match AssertUnwindSafe(async { handler(index, record).await }).catch_unwind().await {
                        Ok(result) => result,
                        Err(panic) => {
                            let message = panic_message(panic.as_ref());
                            error!(panic = %message, "handler panicked; the record will be retried");
                            return RecordOutcome::Failed { reason: format!("handler panicked: {message}") };
                        }
                    }
                }
            };
            match result {
                Ok(()) => RecordOutcome::Succeeded,
                Err(RecordError::Retryable(err)) => {
                    warn!(error = %err, "record failed; it will be retried");
                    RecordOutcome::Failed { reason: err.to_string() }
                }
                Err(RecordError::Permanent { kind: error_kind, source: error }) => {
                    self.dead_letter(source, index, error_kind.into_owned(), error.to_string()).await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Stores a record that can never succeed in the dead-letter sink, or
    /// fails it for a retry when the sink fails.
    async fn dead_letter<R>(
        &self,
        source: &Source<'_, R>,
        index: usize,
        kind: String,
        message: String,
    ) -> RecordOutcome {
        let Identity { reference, identifier, group, arn, attempts } = source.identity(index);
        let letter = DeadLetter {
            schema: ENVELOPE_SCHEMA.to_owned(),
            schema_version: ENVELOPE_VERSION,
            source: DeadLetterSource { kind: source.kind, arn, record_id: identifier, group },
            error: DeadLetterError { kind, message },
            processor: self.info.clone(),
            attempts,
            first_failed_at: Utc::now(),
            dead_lettered_at: Utc::now(),
            record: source.raw[index].clone(),
        };
        match self.sink.send(&letter).await {
            Ok(()) => {
                warn!(record = %reference, kind = %letter.error.kind, error = %letter.error.message, "record dead-lettered");
                RecordOutcome::DeadLettered { kind: letter.error.kind }
            }
            Err(sink_err) => {
                error!(
                    record = %reference,
                    kind = %letter.error.kind,
                    error = %letter.error.message,
                    sink_error = %sink_err,
                    "dead-letter sink failed; the record will be retried instead"
                );
                RecordOutcome::Failed {
                    reason: format!(
                        "permanent failure ({}: {}) not dead-lettered: {sink_err}",
                        letter.error.kind, letter.error.message
                    ),
                }
            }
        }
    }
}

/// SQS records are decoded up front, in one pass each: the decoded message
/// says whether the queue is FIFO and which group a message belongs to.
fn sqs_units<T: DeserializeOwned>(records: &[Box<RawValue>]) -> (Vec<Unit<Message<T>>>, Mode) {
    let mut fifo = false;
    let units = records
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let decoded = decode_sqs_message::<T>(index, raw);
            let (group, arn) = match &decoded {
                Ok(message) => (message.meta.group_id.as_deref(), message.meta.event_source_arn.as_deref()),
                Err(failed) => (failed.0.group_id.as_deref(), failed.0.source_arn.as_deref()),
            };
            let group = group.filter(|g| !g.is_empty()).map(str::to_owned);
            fifo |= group.is_some() || arn.is_some_and(|a| a.ends_with(".fifo"));
            let decoded = decoded.map_err(|failed| failed.1);
            Unit { group, label: "message", filtered: false, ready: Mutex::new(Some(decoded)) }
        })
        .collect();
    (units, if fifo { Mode::Groups } else { Mode::Independent })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
