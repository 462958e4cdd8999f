//! The event source mapping emulator: one task per mapping, calling
//! functions through an [`Invoker`] exactly as Lambda's SQS and DynamoDB
//! Streams pollers would (LAMBDA-SEMANTICS.md sections 1-2; see [`sqs`] and
//! [`stream`] for the rules each follows).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use pipeline_cli::esm::{DrainOptions, Emulator, EmulatorOptions};
//! # use pipeline_cli::invoke::{Invocation, Invoker};
//! # struct Ok200;
//! # impl Invoker for Ok200 {
//! #     async fn invoke(&self, _: &str, _: serde_json::Value) -> Invocation { Invocation::Response(serde_json::Value::Null) }
//! # }
//! # async fn demo(sdk: aws_config::SdkConfig, stack: pipeline_cli::provision::ProvisionedStack) -> Result<(), Box<dyn std::error::Error>> {
//! let running = Emulator::start(&sdk, &stack, Arc::new(Ok200), EmulatorOptions::fast()).await?;
//! // ... write items, send messages ...
//! let report = running.drain(DrainOptions { idle_polls: 3, deadline: Duration::from_secs(30) }).await;
//! assert!(report.drained);
//! println!("{report}");
//! # Ok(()) }
//! ```

pub(crate) mod events;
pub mod filter;
pub(crate) mod response;
pub mod sqs;
pub mod stats;
pub mod stream;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use stats::{MappingStats, SourceKind};

use crate::invoke::{Invocation, Invoker};
use crate::mapping::EventMapping;
use crate::provision::ProvisionedStack;
use stats::Stats;

/// Lambda's synchronous invocation payload limit (6 MB), less room for the
/// event envelope.
pub(crate) const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024 - 1024;

/// The `errorType` of an invocation that ran past the function's timeout.
pub const TIMEOUT_ERROR_TYPE: &str = "Sandbox.Timedout";

/// Timing knobs. [`EmulatorOptions::default`] suits interactive use,
/// [`EmulatorOptions::fast`] tests. None of them changes a semantic rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// First retry delay after a failure (doubles per attempt). AWS's own
    /// delays are longer; this is kept small on purpose.
    pub retry_backoff: Duration,
    /// Largest retry delay.
    pub max_retry_backoff: Duration,
    /// Sleep between polls that found nothing (streams; SQS short polls).
    pub poll_interval: Duration,
    /// Longest SQS long poll (whole seconds are used, at most 20).
    pub sqs_wait: Duration,
    /// How often the stream's shard list is refreshed.
    pub shard_refresh: Duration,
    /// Renew a shard iterator after this long (they expire after 15 min).
    pub iterator_refresh: Duration,
    /// How often progress is logged (and DLQ depths refreshed).
    pub stats_interval: Duration,
    /// SQS pollers when the event has no ScalingConfig.MaximumConcurrency
    /// (Lambda starts with 5).
    pub default_sqs_concurrency: usize,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            retry_backoff: Duration::from_millis(500),
            max_retry_backoff: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            sqs_wait: Duration::from_secs(5),
            shard_refresh: Duration::from_secs(10),
            iterator_refresh: Duration::from_secs(14 * 60),
            stats_interval: Duration::from_secs(30),
            default_sqs_concurrency: 5,
        }
    }
}

impl EmulatorOptions {
    /// Short delays for tests.
    pub fn fast() -> Self {
        Self {
            retry_backoff: Duration::from_millis(20),
            max_retry_backoff: Duration::from_millis(200),
            poll_interval: Duration::from_millis(50),
            sqs_wait: Duration::from_secs(1),
            shard_refresh: Duration::from_millis(500),
            iterator_refresh: Duration::from_secs(14 * 60),
            stats_interval: Duration::from_secs(10),
            default_sqs_concurrency: 5,
        }
    }
}

/// A mapping could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{mapping}: {message}")]
pub struct EsmError {
    /// `Function/Event`.
    pub mapping: String,
    /// What is wrong.
    pub message: String,
}

/// One mapping to run, with what the emulator needs about its function.
#[derive(Debug, Clone)]
pub struct MappingSpec {
    /// The mapping.
    pub mapping: EventMapping,
    /// The function's ARN (for OnFailure documents).
    pub function_arn: String,
    /// The function's `Timeout`.
    pub function_timeout: Duration,
}

/// When [`RunningEmulator::drain`] considers the work done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// Every mapping must have polled this many times in a row without
    /// finding anything (and every mapped queue must be empty, in-flight
    /// messages included).
    pub idle_polls: u64,
    /// Give up after this long.
    pub deadline: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self { idle_polls: 2, deadline: Duration::from_secs(60) }
    }
}

/// What the emulator did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorReport {
    /// Per mapping.
    pub mappings: Vec<MappingStats>,
    /// Whether the drain condition was met (false: deadline or stop).
    pub drained: bool,
    /// How long it ran.
    pub elapsed: Duration,
}

impl EmulatorReport {
    /// The stats of one mapping (`Function/Event` or just the function).
    pub fn mapping(&self, name: &str) -> Option<&MappingStats> {
        self.mappings.iter().find(|m| m.mapping == name || m.function == name)
    }
}

impl fmt::Display for EmulatorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "event source mappings ({:.1}s):", self.elapsed.as_secs_f64())?;
        for m in &self.mappings {
            writeln!(f, "  {m}")?;
        }
        Ok(())
    }
}

struct DepthProbe {
    stats: Stats,
    url: String,
    on_failure: bool,
}

/// Starts event source mappings.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Starts every enabled mapping of a provisioned stack.
    pub async fn start<I: Invoker + 'static>(
        sdk: &SdkConfig,
        stack: &ProvisionedStack,
        invoker: Arc<I>,
        options: EmulatorOptions,
    ) -> Result<RunningEmulator, EsmError> {
        let specs = stack
            .mappings()
            .map(|(f, m)| MappingSpec { mapping: m.clone(), function_arn: f.arn.clone(), function_timeout: f.timeout })
            .collect();
        Self::start_mappings(sdk, specs, invoker, options).await
    }

    /// Starts the given mappings (validating each against its source, as
    /// CreateEventSourceMapping would).
    pub async fn start_mappings<I: Invoker + 'static>(
        sdk: &SdkConfig,
        specs: Vec<MappingSpec>,
        invoker: Arc<I>,
        options: EmulatorOptions,
    ) -> Result<RunningEmulator, EsmError> {
        let region = crate::aws::region_of(sdk);
        let sqs_client = aws_sdk_sqs::Client::new(sdk);
        let streams_client = aws_sdk_dynamodbstreams::Client::new(sdk);
        let cancel = CancellationToken::new();
        let mut launch: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
        let mut all_stats = Vec::new();
        let mut queues = Vec::new();
        let mut probes = Vec::new();

        for spec in specs {
            let name = spec.mapping.name();
            let err = |message: String| EsmError { mapping: name.clone(), message };
            match spec.mapping {
                EventMapping::Sqs(m) => {
                    let url = queue_url_for_arn(&sqs_client, &m.queue_arn).await.map_err(err)?;
                    let facts = sqs::queue_facts(&sqs_client, &url).await.map_err(err)?;
                    if facts.visibility_timeout < spec.function_timeout {
                        return Err(err(format!(
                            "queue visibility timeout ({} s) is less than the function timeout ({} s); Lambda rejects this mapping",
                            facts.visibility_timeout.as_secs(),
                            spec.function_timeout.as_secs()
                        )));
                    }
                    if facts.visibility_timeout < spec.function_timeout + m.batching_window {
                        tracing::warn!(
                            mapping = %name,
                            visibility_timeout_s = facts.visibility_timeout.as_secs(),
                            "queue visibility timeout is shorter than the function timeout plus the batching window: \
                             messages can be delivered again while their batch is still being gathered or processed \
                             (AWS advises at least 6 x the function timeout + the window)"
                        );
                    }
                    if facts.fifo && m.batch_size > 10 {
                        return Err(err(format!("BatchSize {} is above 10, the FIFO maximum", m.batch_size)));
                    }
                    if facts.fifo && !m.batching_window.is_zero() {
                        return Err(err("MaximumBatchingWindowInSeconds is not available for FIFO queues".into()));
                    }
                    let stats = Stats::new(MappingStats {
                        mapping: name.clone(),
                        function: m.function.clone(),
                        source_arn: m.queue_arn.clone(),
                        kind: SourceKind::Sqs,
                        ..MappingStats::default()
                    });
                    if let Some(dlq) = &facts.dead_letter_arn {
                        match queue_url_for_arn(&sqs_client, dlq).await {
                            Ok(u) => probes.push(DepthProbe { stats: stats.clone(), url: u, on_failure: false }),
                            Err(e) => tracing::warn!(mapping = %name, error = %e, "dead-letter queue not found"),
                        }
                    }
                    queues.push(url.clone());
                    all_stats.push(stats.clone());
                    let rt = Arc::new(sqs::SqsRuntime {
                        mapping: m,
                        queue_url: url,
                        fifo: facts.fifo,
                        function_timeout: spec.function_timeout,
                        region: region.clone(),
                        client: sqs_client.clone(),
                        invoker: Arc::clone(&invoker),
                        stats,
                        options: options.clone(),
                        cancel: cancel.clone(),
                        groups_in_flight: Mutex::new(HashSet::new()),
                    });
                    launch.push(Box::pin(sqs::run(rt)));
                }
                EventMapping::Stream(m) => {
                    streams_client.describe_stream().stream_arn(&m.stream_arn).send().await.map_err(|e| {
                        err(format!(
                            "DescribeStream {}: {}",
                            m.stream_arn,
                            aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                        ))
                    })?;
                    let on_failure_url = match &m.on_failure {
                        None => None,
                        Some(arn) => {
                            let url = queue_url_for_arn(&sqs_client, arn).await.map_err(err)?;
                            if sqs::queue_facts(&sqs_client, &url).await.map_err(err)?.fifo {
                                return Err(err("the OnFailure destination must be a standard queue".into()));
                            }
                            Some(url)
                        }
                    };
                    let stats = Stats::new(MappingStats {
                        mapping: name.clone(),
                        function: m.function.clone(),
                        source_arn: m.stream_arn.clone(),
                        kind: SourceKind::DynamoDbStream,
                        ..MappingStats::default()
                    });
                    if let Some(u) = &on_failure_url {
                        probes.push(DepthProbe { stats: stats.clone(), url: u.clone(), on_failure: true });
                    }
                    all_stats.push(stats.clone());
                    let rt = Arc::new(stream::StreamRuntime {
                        mapping: m,
                        function_arn: spec.function_arn.clone(),
                        function_timeout: spec.function_timeout,
                        region: region.clone(),
                        streams: streams_client.clone(),
                        sqs: sqs_client.clone(),
                        on_failure_url,
                        invoker: Arc::clone(&invoker),
                        stats,
                        options: options.clone(),
                        cancel: cancel.clone(),
                    });
                    launch.push(Box::pin(stream::run(rt)));
                }
            }
        }

        let mut tasks = JoinSet::new();
        for fut in launch {
            tasks.spawn(fut);
        }
        let probes = Arc::new(probes);
        {
            let probes = Arc::clone(&probes);
            let stats = all_stats.clone();
            let client = sqs_client.clone();
            let cancel = cancel.clone();
            let every = options.stats_interval;
            tasks.spawn(async move {
                loop {
                    if sleep_or_cancel(&cancel, every).await {
                        break;
                    }
                    refresh_depths(&client, &probes).await;
                    for s in &stats {
                        tracing::info!("{}", s.snapshot());
                    }
                }
            });
        }
        Ok(RunningEmulator {
            cancel,
            tasks,
            stats: all_stats,
            queues,
            probes,
            sqs: sqs_client,
            started: Instant::now(),
        })
    }
}

/// Running mappings. Stop them with [`drain`](Self::drain),
/// [`run_until`](Self::run_until) or [`stop`](Self::stop).
pub struct RunningEmulator {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    stats: Vec<Stats>,
    queues: Vec<String>,
    probes: Arc<Vec<DepthProbe>>,
    sqs: aws_sdk_sqs::Client,
    started: Instant,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator").field("mappings", &self.stats()).finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// A snapshot of every mapping's stats.
    pub fn stats(&self) -> Vec<MappingStats> {
        self.stats.iter().map(Stats::snapshot).collect()
    }

    /// Polls the stats until `condition` holds or `timeout` passes; returns
    /// whether it held.
    pub async fn wait_for(&self, timeout: Duration, condition: impl Fn(&[MappingStats]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.stats()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs until every mapped queue is empty (in-flight messages included)
    /// and every mapping has been idle for `idle_polls` polls, or until the
    /// deadline; then stops gracefully (batches in flight finish) and
    /// reports.
    pub async fn drain(self, options: DrainOptions) -> EmulatorReport {
        let deadline = Instant::now() + options.deadline;
        let mut drained = false;
        loop {
            if self.is_drained(options.idle_polls).await {
                drained = true;
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(deadline_s = options.deadline.as_secs_f64(), "drain deadline reached");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shutdown(drained).await
    }

    async fn is_drained(&self, idle_polls: u64) -> bool {
        let idle =
            |stats: &[MappingStats]| stats.iter().all(|s| s.idle_polls >= idle_polls && s.in_flight_batches == 0);
        if !idle(&self.stats()) {
            return false;
        }
        for url in &self.queues {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
                .await;
            let Ok(out) = out else { return false };
            let total: u64 = out.attributes.unwrap_or_default().values().filter_map(|v| v.parse::<u64>().ok()).sum();
            if total > 0 {
                return false;
            }
        }
        idle(&self.stats())
    }

    /// Runs until `signal` completes (e.g. Ctrl-C), then stops gracefully.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> EmulatorReport {
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                done = self.tasks.join_next() => match done {
                    None => break,
                    Some(Err(e)) => tracing::error!(error = %e, "an event source mapping task failed"),
                    Some(Ok(())) => {}
                },
            }
        }
        self.shutdown(false).await
    }

    /// Stops now (batches in flight finish) and reports.
    pub async fn stop(self) -> EmulatorReport {
        self.shutdown(false).await
    }

    async fn shutdown(mut self, drained: bool) -> EmulatorReport {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        refresh_depths(&self.sqs, &self.probes).await;
        EmulatorReport { mappings: self.stats(), drained, elapsed: self.started.elapsed() }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn refresh_depths(client: &aws_sdk_sqs::Client, probes: &[DepthProbe]) {
    for p in probes {
        let out = client
            .get_queue_attributes()
            .queue_url(&p.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        let depth = out.ok().and_then(|o| {
            o.attributes
                .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages).and_then(|v| v.parse().ok()))
        });
        p.stats.update(|s| {
            if p.on_failure {
                s.on_failure_depth = depth;
            } else {
                s.dlq_depth = depth;
            }
        });
    }
}

/// The URL of the queue with this ARN (`arn:aws:sqs:region:account:name`).
pub async fn queue_url_for_arn(client: &aws_sdk_sqs::Client, arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sqs" {
        return Err(format!("{arn} is not an SQS queue ARN"));
    }
    let out = client
        .get_queue_url()
        .queue_name(parts[5])
        .queue_owner_aws_account_id(parts[4])
        .send()
        .await
        .map_err(|e| format!("GetQueueUrl {arn}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    out.queue_url.ok_or_else(|| format!("GetQueueUrl {arn}: no URL returned"))
}

/// Invokes with the function's timeout; running past it is a function error
/// of type [`TIMEOUT_ERROR_TYPE`], as in Lambda.
pub(crate) async fn call<I: Invoker>(invoker: &I, function: &str, payload: Value, timeout: Duration) -> Invocation {
    match tokio::time::timeout(timeout, invoker.invoke(function, payload)).await {
        Ok(result) => result,
        Err(_) => Invocation::FunctionError {
            error_type: TIMEOUT_ERROR_TYPE.into(),
            message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        },
    }
}

pub(crate) fn is_timeout(result: &Invocation) -> bool {
    matches!(result, Invocation::FunctionError { error_type, .. } if error_type == TIMEOUT_ERROR_TYPE)
}

/// The delay before retry `attempt` (1-based): doubling from
/// `retry_backoff`, capped at `max_retry_backoff`.
pub(crate) fn backoff(options: &EmulatorOptions, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    options.retry_backoff.saturating_mul(factor).min(options.max_retry_backoff)
}

/// Sleeps; returns true (early) when cancelled.
pub(crate) async fn sleep_or_cancel(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let o = EmulatorOptions::fast();
        assert_eq!(backoff(&o, 1), Duration::from_millis(20));
        assert_eq!(backoff(&o, 2), Duration::from_millis(40));
        assert_eq!(backoff(&o, 30), Duration::from_millis(200));
    }
}
