//! The DynamoDB Streams event source mapping (LAMBDA-SEMANTICS.md section 2).
//!
//! One task per mapping lists the stream's shards (DescribeStream, again
//! every `shard_refresh`) and starts one worker per shard once its parent
//! shard is done (lineage: parents before children). Shards present at start
//! begin at `StartingPosition`; shards that appear later at TRIM_HORIZON.
//! ParallelizationFactor is treated as 1: one batch per shard in flight.
//!
//! A shard worker reads records (GetRecords) into a buffer, drops those
//! matching no FilterCriteria pattern, cuts a batch (BatchSize, batching
//! window, 6 MB) and invokes the function. The shard is blocked until the
//! batch is done:
//!
//! - success: checkpoint after the batch;
//! - partial response (ReportBatchItemFailures): checkpoint before the
//!   LOWEST reported SequenceNumber; the next batch starts there (re-cut from
//!   that record, up to BatchSize). An identifier that is not a sequence
//!   number of the batch, or any invalid response, fails the whole batch;
//! - whole-batch failure (function error, timeout, invalid response): with
//!   BisectBatchOnFunctionError a batch of 2+ records is split in two and the
//!   halves are invoked in order (a split is not a retry); otherwise the SAME
//!   batch is retried after a backoff.
//!
//! Retry accounting (the AWS wording leaves room; this is the choice made):
//! `retries` counts the failed invocations since the checkpoint last moved
//! (a success, a partial response that made progress, a drop) or the batch
//! was split. When it passes MaximumRetryAttempts the records of the last
//! invocation from the checkpoint on are dropped. Before every invocation, records at the head
//! older than MaximumRecordAgeInSeconds are dropped. Each drop sends ONE
//! OnFailure document (condition `RetryAttemptsExhausted`, or
//! `MaximumRecordAgeExceeded` for age: the exact AWS word is unconfirmed),
//! then the checkpoint moves past the dropped records and the shard goes on.
//!
//! Shard iterators are renewed before they would expire (15 min; renewed
//! after `iterator_refresh`) from the last record read; on
//! ExpiredIteratorException (or repeated read errors) the worker discards its
//! buffer and re-reads with AFTER_SEQUENCE_NUMBER of the last checkpoint.
//! Checkpoints live in memory only: a restarted runner starts over from
//! StartingPosition.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::filter;
use super::response::{parse_batch_response, BatchVerdict};
use super::stats::Stats;
use super::{backoff, call, events, sleep_or_cancel, EmulatorOptions, PAYLOAD_LIMIT};
use crate::invoke::{Invocation, Invoker};
use crate::mapping::{StartingPosition, StreamMapping};

/// `requestContext.condition` when MaximumRetryAttempts ran out.
pub const CONDITION_RETRIES_EXHAUSTED: &str = "RetryAttemptsExhausted";
/// `requestContext.condition` when MaximumRecordAgeInSeconds ran out. The
/// exact word AWS uses is unconfirmed; this one mirrors the setting's name.
pub const CONDITION_RECORD_AGE_EXCEEDED: &str = "MaximumRecordAgeExceeded";

pub(crate) struct StreamRuntime<I> {
    pub(crate) mapping: StreamMapping,
    pub(crate) function_arn: String,
    pub(crate) function_timeout: Duration,
    pub(crate) region: String,
    pub(crate) streams: aws_sdk_dynamodbstreams::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) on_failure_url: Option<String>,
    pub(crate) invoker: Arc<I>,
    pub(crate) stats: Stats,
    pub(crate) options: EmulatorOptions,
    pub(crate) cancel: CancellationToken,
}

struct ShardInfo {
    parent: Option<String>,
    start: StartingPosition,
}

/// Runs the mapping until cancelled.
pub(crate) async fn run<I: Invoker + 'static>(rt: Arc<StreamRuntime<I>>) {
    tracing::info!(
        mapping = %rt.stats.snapshot().mapping,
        stream = %rt.mapping.stream_arn,
        batch_size = rt.mapping.batch_size,
        "DynamoDB stream event source mapping started"
    );
    let mut known: BTreeMap<String, ShardInfo> = BTreeMap::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut first = true;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        match describe_shards(&rt).await {
            Ok(shards) => {
                let start = if first { rt.mapping.starting_position } else { StartingPosition::TrimHorizon };
                first = false;
                for (id, parent) in shards {
                    known.entry(id).or_insert(ShardInfo { parent, start });
                }
            }
            Err(e) => rt.stats.aws_error("DescribeStream", e),
        }
        for (id, info) in &known {
            if started.contains(id) {
                continue;
            }
            let parent_done = info.parent.as_ref().is_none_or(|p| !known.contains_key(p) || finished.contains(p));
            if parent_done {
                started.insert(id.clone());
                let worker = ShardWorker::new(Arc::clone(&rt), id.clone(), info.start);
                tasks.spawn(worker.run());
            }
        }
        tokio::select! {
            _ = rt.cancel.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(Some(id)) = done {
                    tracing::info!(shard = %id, "shard finished (closed and fully processed)");
                    finished.insert(id);
                }
            }
            _ = tokio::time::sleep(rt.options.shard_refresh) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn describe_shards<I>(rt: &StreamRuntime<I>) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let resp = rt
            .streams
            .describe_stream()
            .stream_arn(&rt.mapping.stream_arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
        let Some(desc) = resp.stream_description else { break };
        for s in desc.shards() {
            if let Some(id) = s.shard_id() {
                out.push((id.to_owned(), s.parent_shard_id().map(str::to_owned)));
            }
        }
        match desc.last_evaluated_shard_id() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    Ok(out)
}

struct Rec {
    seq: String,
    created: Option<f64>,
    record: Value,
    size: usize,
}

impl Rec {
    fn age(&self) -> Duration {
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        self.created.map(|c| Duration::from_secs_f64((now - c).max(0.0))).unwrap_or_default()
    }

    fn arrival(&self) -> String {
        self.created
            .and_then(|c| DateTime::<Utc>::from_timestamp(c.floor() as i64, 0))
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    }
}

enum Verdict {
    Success,
    /// Index (in the batch) of the lowest reported sequence number.
    Partial(usize),
    Failed {
        function_error: bool,
    },
}

struct ShardWorker<I> {
    rt: Arc<StreamRuntime<I>>,
    shard: String,
    start: StartingPosition,
    iterator: Option<String>,
    iterator_at: Instant,
    closed: bool,
    last_read: Option<String>,
    checkpoint: Option<String>,
    buffer: VecDeque<Rec>,
    /// Exact sizes of the next batches (bisection halves, same-batch retry).
    forced: Vec<usize>,
    retries: u32,
    invocations: u32,
    last_function_error: Option<String>,
    read_errors: u32,
}

impl<I: Invoker + 'static> ShardWorker<I> {
    fn new(rt: Arc<StreamRuntime<I>>, shard: String, start: StartingPosition) -> Self {
        Self {
            rt,
            shard,
            start,
            iterator: None,
            iterator_at: Instant::now(),
            closed: false,
            last_read: None,
            checkpoint: None,
            buffer: VecDeque::new(),
            forced: Vec::new(),
            retries: 0,
            invocations: 0,
            last_function_error: None,
            read_errors: 0,
        }
    }

    /// Processes the shard; returns its id once it is closed and fully
    /// processed (`None` when stopped before).
    async fn run(mut self) -> Option<String> {
        tracing::debug!(shard = %self.shard, "shard worker started");
        loop {
            if self.rt.cancel.is_cancelled() {
                return None;
            }
            let need = self.forced.last().copied().unwrap_or(self.rt.mapping.batch_size);
            if self.buffer.len() < need && !self.closed {
                self.fill().await;
            }
            if self.buffer.is_empty() {
                if self.closed {
                    return Some(self.shard);
                }
                self.rt.stats.idle_poll();
                if sleep_or_cancel(&self.rt.cancel, self.rt.options.poll_interval).await {
                    return None;
                }
                continue;
            }
            self.rt.stats.busy();
            if !self.process_head().await {
                return None;
            }
        }
    }

    /// Reads records until the batch is full or the batching window ends
    /// (one read when the window is 0).
    async fn fill(&mut self) {
        let window = self.rt.mapping.batching_window;
        let started = Instant::now();
        loop {
            let need = self.forced.last().copied().unwrap_or(self.rt.mapping.batch_size);
            if self.buffer.len() >= need || self.closed || self.rt.cancel.is_cancelled() {
                return;
            }
            let got = self.read_once(need - self.buffer.len()).await;
            if window.is_zero() {
                return;
            }
            let elapsed = started.elapsed();
            if elapsed >= window {
                return;
            }
            if got == 0 && sleep_or_cancel(&self.rt.cancel, self.rt.options.poll_interval.min(window - elapsed)).await {
                return;
            }
        }
    }

    async fn acquire_iterator(&mut self, kind: ShardIteratorType, seq: Option<String>) -> bool {
        let resp = self
            .rt
            .streams
            .get_shard_iterator()
            .stream_arn(&self.rt.mapping.stream_arn)
            .shard_id(&self.shard)
            .shard_iterator_type(kind.clone())
            .set_sequence_number(seq.clone())
            .send()
            .await;
        match resp {
            Ok(out) => {
                self.iterator = out.shard_iterator;
                self.iterator_at = Instant::now();
                if self.iterator.is_none() {
                    self.closed = true;
                }
                tracing::debug!(shard = %self.shard, kind = %kind.as_str(), seq = ?seq, "shard iterator acquired");
                true
            }
            Err(e) => {
                self.rt.stats.aws_error("GetShardIterator", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e));
                false
            }
        }
    }

    /// Where reading resumes from `after` (a record already read or
    /// processed), or from the starting position when nothing was.
    async fn iterator_from(&mut self, after: Option<String>) -> bool {
        match after {
            Some(seq) => self.acquire_iterator(ShardIteratorType::AfterSequenceNumber, Some(seq)).await,
            None => {
                let kind = match self.start {
                    StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
                    StartingPosition::Latest => ShardIteratorType::Latest,
                };
                self.acquire_iterator(kind, None).await
            }
        }
    }

    /// Drops the buffer and re-reads from the last checkpoint.
    async fn restart_from_checkpoint(&mut self, why: &str) {
        tracing::warn!(shard = %self.shard, checkpoint = ?self.checkpoint, why, "re-reading the shard from the last checkpoint");
        // Records read but not processed must be read again; when nothing
        // was ever checkpointed, re-read from the first of them.
        let first_buffered = self.buffer.front().map(|r| r.seq.clone());
        self.buffer.clear();
        self.iterator = None;
        self.closed = false;
        let ok = match (&self.checkpoint, first_buffered) {
            (Some(cp), _) => self.acquire_iterator(ShardIteratorType::AfterSequenceNumber, Some(cp.clone())).await,
            (None, Some(first)) => self.acquire_iterator(ShardIteratorType::AtSequenceNumber, Some(first)).await,
            (None, None) => self.iterator_from(None).await,
        };
        self.last_read = self.checkpoint.clone();
        if !ok {
            let _ = sleep_or_cancel(&self.rt.cancel, backoff(&self.rt.options, 3)).await;
        }
    }

    /// One GetRecords call. Returns how many records it returned (before
    /// filtering).
    async fn read_once(&mut self, want: usize) -> usize {
        if self.iterator.is_none() || self.iterator_at.elapsed() >= self.rt.options.iterator_refresh {
            if self.iterator.is_some() {
                tracing::debug!(shard = %self.shard, "renewing the shard iterator before it expires");
            }
            let after = self.last_read.clone();
            if !self.iterator_from(after).await {
                let _ = sleep_or_cancel(&self.rt.cancel, backoff(&self.rt.options, 1)).await;
                return 0;
            }
            if self.iterator.is_none() {
                return 0;
            }
        }
        let Some(iterator) = self.iterator.clone() else { return 0 };
        let limit = want.clamp(1, 1000) as i32;
        let resp = self.rt.streams.get_records().shard_iterator(iterator).limit(limit).send().await;
        let out = match resp {
            Ok(out) => out,
            Err(e) => {
                let expired = e.as_service_error().is_some_and(|s| s.is_expired_iterator_exception());
                let trimmed = e.as_service_error().is_some_and(|s| s.is_trimmed_data_access_exception());
                let gone = e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception());
                self.rt.stats.aws_error("GetRecords", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e));
                if expired {
                    self.restart_from_checkpoint("the shard iterator expired").await;
                } else if trimmed {
                    tracing::error!(shard = %self.shard, "records were trimmed (24 h retention) before they were processed");
                    self.buffer.clear();
                    self.acquire_iterator(ShardIteratorType::TrimHorizon, None).await;
                } else if gone {
                    tracing::error!(shard = %self.shard, "the stream or shard no longer exists; stopping this shard");
                    self.closed = true;
                    self.buffer.clear();
                } else {
                    self.read_errors += 1;
                    // The local emulator answers an unusable iterator with
                    // HTTP 500 rather than ExpiredIteratorException.
                    if self.read_errors >= 3 {
                        self.read_errors = 0;
                        self.restart_from_checkpoint("repeated GetRecords errors").await;
                    } else {
                        let _ = sleep_or_cancel(&self.rt.cancel, backoff(&self.rt.options, self.read_errors)).await;
                    }
                }
                return 0;
            }
        };
        self.read_errors = 0;
        self.iterator = out.next_shard_iterator;
        self.iterator_at = Instant::now();
        if self.iterator.is_none() {
            self.closed = true;
        }
        let n = out.records.as_ref().map_or(0, Vec::len);
        let mut filtered = 0u64;
        for r in out.records.unwrap_or_default() {
            let Some(seq) = r.dynamodb().and_then(|d| d.sequence_number()).map(str::to_owned) else { continue };
            self.last_read = Some(seq.clone());
            let record = events::stream_record(&r, &self.rt.mapping.stream_arn, &self.rt.region);
            if !filter::passes(&self.rt.mapping.filters, &record) {
                filtered += 1;
                if self.buffer.is_empty() && self.forced.is_empty() {
                    self.checkpoint = Some(seq);
                }
                continue;
            }
            let created = r.dynamodb().and_then(|d| d.approximate_creation_date_time()).map(|t| t.as_secs_f64());
            let size = record.to_string().len() + 1;
            self.buffer.push_back(Rec { seq, created, record, size });
        }
        if filtered > 0 {
            self.rt.stats.update(|s| s.filtered_records += filtered);
        }
        n
    }

    /// Invokes the batch at the head of the buffer and applies the outcome.
    /// Returns false when the worker should stop.
    async fn process_head(&mut self) -> bool {
        let limit = self.forced.last().copied().unwrap_or(self.rt.mapping.batch_size).min(self.buffer.len());
        let mut n = 0;
        let mut bytes = 0;
        for r in self.buffer.iter().take(limit) {
            if n > 0 && bytes + r.size > PAYLOAD_LIMIT {
                break;
            }
            bytes += r.size;
            n += 1;
        }

        if let Some(max_age) = self.rt.mapping.maximum_record_age {
            let expired = self.buffer.iter().take(n).take_while(|r| r.age() > max_age).count();
            if expired > 0 {
                tracing::warn!(shard = %self.shard, records = expired, max_age_s = max_age.as_secs(), "records older than MaximumRecordAgeInSeconds dropped");
                self.drop_head(expired, CONDITION_RECORD_AGE_EXCEEDED).await;
                return true;
            }
        }

        let records: Vec<Value> = self.buffer.iter().take(n).map(|r| r.record.clone()).collect();
        let seqs: Vec<&str> = self.buffer.iter().take(n).map(|r| r.seq.as_str()).collect();
        let is_retry = self.invocations > 0;
        self.invocations += 1;
        self.rt.stats.update(|s| {
            s.batches += 1;
            s.records += n as u64;
            s.in_flight_batches += 1;
            if is_retry {
                s.retries += 1;
            }
        });
        let result =
            call(&*self.rt.invoker, &self.rt.mapping.function, json!({ "Records": records }), self.rt.function_timeout)
                .await;
        let verdict = match &result {
            Invocation::FunctionError { error_type, message } => {
                tracing::warn!(shard = %self.shard, %error_type, %message, records = n, "function error");
                let timeout = super::is_timeout(&result);
                self.rt.stats.update(|s| {
                    if timeout {
                        s.timeouts += 1;
                    } else {
                        s.function_errors += 1;
                    }
                });
                Verdict::Failed { function_error: true }
            }
            Invocation::Response(_) if !self.rt.mapping.report_batch_item_failures => Verdict::Success,
            Invocation::Response(v) => match parse_batch_response(v, |id| seqs.contains(&id)) {
                BatchVerdict::AllSucceeded => Verdict::Success,
                BatchVerdict::Failed(ids) => {
                    let lowest = seqs.iter().position(|s| ids.iter().any(|id| id == s)).unwrap_or(0);
                    Verdict::Partial(lowest)
                }
                BatchVerdict::Invalid(reason) => {
                    tracing::warn!(shard = %self.shard, %reason, "invalid partial batch response: the whole batch failed");
                    self.rt.stats.update(|s| s.invalid_responses += 1);
                    Verdict::Failed { function_error: false }
                }
            },
        };
        drop(seqs);
        self.rt.stats.update(|s| s.in_flight_batches -= 1);

        match verdict {
            Verdict::Success => {
                self.rt.stats.update(|s| s.succeeded_batches += 1);
                self.advance(n);
                self.reset_head();
                true
            }
            Verdict::Partial(i) => {
                self.last_function_error = None;
                self.rt.stats.update(|s| {
                    s.partial_failures += 1;
                    s.failed_records += (n - i) as u64;
                });
                if i > 0 {
                    // Records before the lowest failure are done: the next
                    // invocation starts at it.
                    self.advance(i);
                    self.retries = 0;
                }
                self.retries += 1;
                self.after_failure(n - i).await
            }
            Verdict::Failed { function_error } => {
                self.last_function_error = function_error.then(|| "Unhandled".to_owned());
                self.rt.stats.update(|s| {
                    s.whole_failures += 1;
                    s.failed_records += n as u64;
                });
                if self.rt.mapping.bisect_batch_on_function_error && n > 1 {
                    let first = n.div_ceil(2);
                    tracing::info!(shard = %self.shard, records = n, first, second = n - first, "bisecting the failed batch");
                    self.rt.stats.update(|s| s.bisections += 1);
                    self.consume_forced(n);
                    self.forced.push(n - first);
                    self.forced.push(first);
                    self.retries = 0;
                    self.invocations = 0;
                    return !sleep_or_cancel(&self.rt.cancel, backoff(&self.rt.options, 1)).await;
                }
                // Retry the same batch: pin its size.
                match self.forced.last_mut() {
                    Some(top) if *top == n => {}
                    Some(top) => {
                        *top -= n;
                        self.forced.push(n);
                    }
                    None => self.forced.push(n),
                }
                self.retries += 1;
                self.after_failure(n).await
            }
        }
    }

    /// After a failed invocation of `failing` head records: drop them when
    /// retries ran out, else wait before the retry.
    async fn after_failure(&mut self, failing: usize) -> bool {
        if let Some(max) = self.rt.mapping.maximum_retry_attempts {
            if self.retries > max {
                tracing::warn!(shard = %self.shard, records = failing, retries = self.retries - 1, "MaximumRetryAttempts exhausted: dropping the batch");
                self.drop_head(failing, CONDITION_RETRIES_EXHAUSTED).await;
                return true;
            }
        }
        !sleep_or_cancel(&self.rt.cancel, backoff(&self.rt.options, self.retries)).await
    }

    /// Checkpoints after the first `n` buffered records and removes them.
    fn advance(&mut self, n: usize) {
        let done: Vec<Rec> = self.buffer.drain(..n).collect();
        if let Some(last) = done.last() {
            self.checkpoint = Some(last.seq.clone());
        }
        self.consume_forced(n);
    }

    fn consume_forced(&mut self, n: usize) {
        if let Some(top) = self.forced.last_mut() {
            *top = top.saturating_sub(n);
            if *top == 0 {
                self.forced.pop();
            }
        }
    }

    fn reset_head(&mut self) {
        self.retries = 0;
        self.invocations = 0;
        self.last_function_error = None;
    }

    /// Drops the first `n` buffered records: one OnFailure document, then
    /// the checkpoint moves past them.
    async fn drop_head(&mut self, n: usize, condition: &str) {
        let (first, last) = match (self.buffer.front(), self.buffer.get(n - 1)) {
            (Some(f), Some(l)) => (f, l),
            _ => return,
        };
        let doc = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": self.rt.function_arn,
                "condition": condition,
                "approximateInvokeCount": self.invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": self.last_function_error,
            },
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "DDBStreamBatchInfo": {
                "shardId": self.shard,
                "startSequenceNumber": first.seq,
                "endSequenceNumber": last.seq,
                "approximateArrivalOfFirstRecord": first.arrival(),
                "approximateArrivalOfLastRecord": last.arrival(),
                "batchSize": n,
                "streamArn": self.rt.mapping.stream_arn,
            },
        });
        match &self.rt.on_failure_url {
            Some(url) => {
                let body = doc.to_string();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self.rt.sqs.send_message().queue_url(url).message_body(&body).send().await {
                        Ok(_) => {
                            self.rt.stats.update(|s| s.on_failure_sent += 1);
                            break;
                        }
                        Err(e) => {
                            self.rt
                                .stats
                                .aws_error("SendMessage (OnFailure)", aws_sdk_sqs::error::DisplayErrorContext(&e));
                            if attempt >= 5 {
                                tracing::error!(shard = %self.shard, document = %body, "could not deliver the OnFailure document");
                                break;
                            }
                            tokio::time::sleep(backoff(&self.rt.options, attempt)).await;
                        }
                    }
                }
            }
            None => tracing::warn!(shard = %self.shard, document = %doc, "batch dropped (no OnFailure destination)"),
        }
        self.rt.stats.update(|s| s.dropped_records += n as u64);
        self.advance(n);
        self.reset_head();
    }
}
