//! Sending messages to SQS in batches: at most 10 entries and at most the
//! queue's size limit per `SendMessageBatch` call, batches sent
//! concurrently, failed entries retried with backoff, and a report of every
//! entry that could not be sent, with the reason.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::error::BoxError;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    /// The body.
    pub body: String,
    /// FIFO `MessageGroupId`.
    pub group_id: Option<String>,
    /// FIFO `MessageDeduplicationId`.
    pub deduplication_id: Option<String>,
    /// String message attributes (at most 10).
    pub attributes: Vec<(String, String)>,
}

impl OutgoingMessage {
    /// A message with this body.
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), ..Self::default() }
    }

    /// A message whose body is `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::new(serde_json::to_string(value)?))
    }

    /// Sets the FIFO group id.
    pub fn group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Sets the FIFO deduplication id.
    pub fn dedup(mut self, id: impl Into<String>) -> Self {
        self.deduplication_id = Some(id.into());
        self
    }

    /// Adds a string attribute.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// The size SQS counts against its limit: body plus attribute names,
    /// types and values.
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(k, v)| k.len() + v.len() + "String".len()).sum::<usize>()
    }
}

/// Why SQS refused one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The SQS error code.
    pub code: String,
    /// The SQS message.
    pub message: String,
    /// `true` when the request was at fault (retrying will not help).
    pub sender_fault: bool,
}

/// Sends one batch of at most 10 entries.
pub trait SqsTransport: Send + Sync {
    /// One `SendMessageBatch` call. `Ok` holds one result per entry, in
    /// order; `Err` means the call itself failed (nothing known to be sent).
    fn send_batch(
        &self,
        entries: &[OutgoingMessage],
    ) -> impl Future<Output = Result<Vec<Result<(), EntryFailure>>, BoxError>> + Send;
}

/// How a [`Producer`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Maximum bytes per message and per batch. 262,144 (256 KiB) works on
    /// every queue; current SQS accepts 1 MiB.
    pub max_batch_bytes: usize,
    /// Attempts per entry, the first included. Default 4.
    pub max_attempts: u32,
    /// Backoff before the first retry, doubled for each later one. Default
    /// 50 ms.
    pub base_backoff: Duration,
    /// Batches in flight at once (standard queues). Default 8. Messages with
    /// a FIFO group id are sent one batch at a time to keep their order.
    pub concurrency: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self { max_batch_bytes: 262_144, max_attempts: 4, base_backoff: Duration::from_millis(50), concurrency: 8 }
    }
}

impl ProducerConfig {
    /// Sets [`ProducerConfig::max_batch_bytes`].
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n;
        self
    }

    /// Sets [`ProducerConfig::max_attempts`] (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`ProducerConfig::base_backoff`].
    pub fn base_backoff(mut self, d: Duration) -> Self {
        self.base_backoff = d;
        self
    }

    /// Sets [`ProducerConfig::concurrency`] (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

/// What a send achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Entries sent.
    pub sent: usize,
    /// Entries not sent: their position in the input and why.
    pub failed: Vec<(usize, String)>,
    /// `SendMessageBatch` calls made.
    pub calls: usize,
}

/// A batching, retrying SQS sender. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Producer<T> {
    transport: T,
    config: ProducerConfig,
}

/// SQS's limit on entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 10;

impl<T: SqsTransport> Producer<T> {
    /// A producer over `transport` with the default configuration.
    pub fn new(transport: T) -> Self {
        Self { transport, config: ProducerConfig::default() }
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Sends `jobs` as JSON bodies.
    pub async fn send_json<J: Serialize>(&self, jobs: &[J]) -> SendReport {
        let mut messages = Vec::with_capacity(jobs.len());
        let mut failed = Vec::new();
        let mut positions = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            match OutgoingMessage::json(job) {
                Ok(m) => {
                    messages.push(m);
                    positions.push(i);
                }
                Err(e) => failed.push((i, format!("cannot encode as JSON: {e}"))),
            }
        }
        let mut report = self.send(messages).await;
        for (pos, _) in &mut report.failed {
            *pos = positions[*pos];
        }
        report.failed.extend(failed);
        report.failed.sort_by_key(|(i, _)| *i);
        report
    }

    /// Sends every message; see [`SendReport`] for what comes back.
    pub async fn send(&self, messages: Vec<OutgoingMessage>) -> SendReport {
        let limit = self.config.max_batch_bytes;
        let mut failed = Vec::new();
        let mut batches: Vec<Vec<(usize, OutgoingMessage)>> = Vec::new();
        let mut current: Vec<(usize, OutgoingMessage)> = Vec::new();
        let mut current_bytes = 0;
        let ordered = messages.iter().any(|m| m.group_id.is_some());
        for (i, m) in messages.into_iter().enumerate() {
            let size = m.size();
            if size > limit {
                failed.push((i, format!("message of {size} bytes exceeds the {limit}-byte SQS limit")));
                continue;
            }
            if let Some(c) =
                std::iter::once(&m.body).chain(m.attributes.iter().map(|(_, v)| v)).find_map(|t| invalid_char(t))
            {
                failed.push((i, format!("contains the character U+{:04X}, which SQS does not accept", u32::from(c))));
                continue;
            }
            if current.len() == MAX_BATCH_ENTRIES || current_bytes + size > limit {
                batches.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current_bytes += size;
            current.push((i, m));
        }
        if !current.is_empty() {
            batches.push(current);
        }
        let concurrency = if ordered { 1 } else { self.config.concurrency };
        let results: Vec<SendReport> =
            futures::stream::iter(batches).map(|b| self.send_batch(b)).buffered(concurrency).collect().await;
        let mut report = SendReport::default();
        for batch in results {
            report.sent += batch.sent;
            report.calls += batch.calls;
            failed.extend(batch.failed);
        }
        failed.sort_by_key(|(i, _)| *i);
        report.failed = failed;
        report
    }

    /// Sends one batch, retrying what failed.
    async fn send_batch(&self, mut pending: Vec<(usize, OutgoingMessage)>) -> SendReport {
        let mut sent = 0;
        let mut calls = 0;
        let mut failed = Vec::new();
        for attempt in 0..self.config.max_attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(self.config.base_backoff * 2u32.saturating_pow(attempt - 1)).await;
            }
            let last = attempt + 1 == self.config.max_attempts;
            let entries: Vec<OutgoingMessage> = pending.iter().map(|(_, m)| m.clone()).collect();
            calls += 1;
            match self.transport.send_batch(&entries).await {
                Err(e) => {
                    tracing::warn!(attempt = attempt + 1, entries = entries.len(), error = %e, "SendMessageBatch failed");
                    if last {
                        failed.extend(pending.drain(..).map(|(i, _)| (i, format!("SendMessageBatch failed: {e}"))));
                    }
                }
                Ok(results) => {
                    let mut retry = Vec::new();
                    for ((i, m), result) in
                        pending.drain(..).zip(results.into_iter().map(Some).chain(std::iter::repeat(None)))
                    {
                        match result {
                            Some(Ok(())) => sent += 1,
                            Some(Err(f)) if f.sender_fault || last => {
                                failed.push((i, format!("{}: {}", f.code, f.message)));
                            }
                            Some(Err(_)) => retry.push((i, m)),
                            None if last => failed.push((i, "no result returned for this entry".to_owned())),
                            None => retry.push((i, m)),
                        }
                    }
                    pending = retry;
                }
            }
        }
        SendReport { sent, failed, calls }
    }
}

/// The first character SQS refuses in a message: it accepts only #x9,
/// #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF.
fn invalid_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        !matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// [`SqsTransport`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    /// Sends to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl SqsTransport for SqsQueue {
    async fn send_batch(&self, entries: &[OutgoingMessage]) -> Result<Vec<Result<(), EntryFailure>>, BoxError> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (i, m) in entries.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .set_message_group_id(m.group_id.clone())
                .set_message_deduplication_id(m.deduplication_id.clone());
            for (k, v) in &m.attributes {
                entry = entry.message_attributes(
                    k,
                    MessageAttributeValue::builder().data_type("String").string_value(v).build()?,
                );
            }
            request = request.entries(entry.build()?);
        }
        let output = request.send().await.map_err(|e| {
            format!("SendMessageBatch to {}: {}", self.queue_url, aws_sdk_sqs::error::DisplayErrorContext(&e))
        })?;
        let mut results: Vec<Option<Result<(), EntryFailure>>> = vec![None; entries.len()];
        for ok in output.successful() {
            if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Some(Ok(()));
            }
        }
        for f in output.failed() {
            if let Some(slot) = f.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Some(Err(EntryFailure {
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                    sender_fault: f.sender_fault(),
                }));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(EntryFailure {
                        code: "MissingResult".into(),
                        message: "SQS returned no result for this entry".into(),
                        sender_fault: false,
                    })
                })
            })
            .collect())
    }
}

/// An in-memory [`SqsTransport`] for tests: records what is sent and fails
/// entries on request.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    calls: Mutex<Vec<usize>>,
    /// body → how many more times to fail it (retryable).
    transient: Mutex<HashMap<String, u32>>,
    /// bodies always refused (sender fault).
    refused: Mutex<Vec<String>>,
    latency: Mutex<Duration>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

impl MemoryQueue {
    /// An empty queue that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the entry with this body `times` times (retryable), then
    /// accepts it.
    pub fn fail_transiently(&self, body: &str, times: u32) {
        self.transient.lock().unwrap_or_else(|p| p.into_inner()).insert(body.to_owned(), times);
    }

    /// Always refuses the entry with this body (sender fault).
    pub fn refuse(&self, body: &str) {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).push(body.to_owned());
    }

    /// Adds latency to every call.
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Messages accepted so far, in order.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The most calls that were in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Entries per call, one element per call.
    pub fn calls(&self) -> Vec<usize> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SqsTransport for MemoryQueue {
    async fn send_batch(&self, entries: &[OutgoingMessage]) -> Result<Vec<Result<(), EntryFailure>>, BoxError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        let latency = *self.latency.lock().unwrap_or_else(|p| p.into_inner());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        for m in entries {
            let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner()).contains(&m.body);
            let transient = {
                let mut t = self.transient.lock().unwrap_or_else(|p| p.into_inner());
                match t.get_mut(&m.body) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                }
            };
            if refused {
                out.push(Err(EntryFailure {
                    code: "InvalidMessageContents".into(),
                    message: "refused by MemoryQueue".into(),
                    sender_fault: true,
                }));
            } else if transient {
                out.push(Err(EntryFailure {
                    code: "InternalError".into(),
                    message: "transient failure injected by MemoryQueue".into(),
                    sender_fault: false,
                }));
            } else {
                self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(m.clone());
                out.push(Ok(()));
            }
        }
        Ok(out)
    }
}
