//! Replaying stream records through the stream processor.
//!
//! A stream mapping's `OnFailure` document points at a range of a shard
//! (`DDBStreamBatchInfo`), not at the records. [`Replayer::replay_range`]
//! re-reads them (GetShardIterator `AT_SEQUENCE_NUMBER` start, then
//! GetRecords up to the end sequence number), keeps those the mapping's
//! FilterCriteria let through (as Lambda did), builds the Lambda records
//! exactly as the event source mapping emulator does, and invokes the
//! stream processor with them, in order, in batches of the mapping's
//! BatchSize. The range counts as done only when every record of it was
//! read and handled: a partial batch response or a function error stops
//! the replay, and a part of the range that is no longer in the stream
//! (trimmed after 24 h) is reported with its bounds.
//!
//! Stream records dead-lettered as envelopes (`source.kind =
//! dynamodb_stream`) are replayed one by one with
//! [`Replayer::replay_record`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{json, Value};

use super::error::{describe, OpsError, Result};
use super::message::StreamBatch;
use super::queue::OpsContext;
use crate::esm::filter::{passes, FilterPattern};
use crate::esm::response::{parse_batch_response, BatchVerdict};
use crate::esm::{call, events, PAYLOAD_LIMIT};
use crate::inprocess::{function_for, StackInvoker};
use crate::invoke::{Invocation, Invoker, LambdaApiInvoker};
use crate::mapping::{EventMapping, StreamMapping};

/// How the stream processor is invoked.
#[derive(Debug)]
pub enum StreamInvoker {
    /// In this process, configured from the stack (the default).
    InProcess(Box<StackInvoker>),
    /// Through a Lambda Invoke API endpoint (`--invoke-endpoint`).
    Endpoint(LambdaApiInvoker),
}

impl Invoker for StreamInvoker {
    async fn invoke(&self, function: &str, payload: Value) -> Invocation {
        match self {
            Self::InProcess(i) => i.invoke(function, payload).await,
            Self::Endpoint(i) => i.invoke(function, payload).await,
        }
    }
}

/// Replays stream records through the stream processor.
#[derive(Debug)]
pub struct Replayer {
    invoker: StreamInvoker,
    function: String,
    timeout: Duration,
    mappings: Vec<StreamMapping>,
    streams: aws_sdk_dynamodbstreams::Client,
    region: String,
}

/// What replaying one `OnFailure` range did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeReplay {
    /// Records of the range read from the stream.
    pub read: usize,
    /// Of those, records the mapping's FilterCriteria drop (Lambda never
    /// delivered them).
    pub filtered: usize,
    /// Records the stream processor handled.
    pub replayed: usize,
    /// The part of the range no longer in the stream, if any.
    pub missing: Option<String>,
    /// Why the replay stopped, if it did.
    pub failure: Option<String>,
}

impl RangeReplay {
    /// Every record of the range was read and handled.
    pub fn complete(&self) -> bool {
        self.missing.is_none() && self.failure.is_none()
    }
}

/// Orders decimal sequence numbers (strings of up to 40 digits).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn stream_mappings(stack: &crate::provision::ProvisionedStack) -> Vec<StreamMapping> {
    stack
        .functions
        .values()
        .flat_map(|f| f.mappings.iter())
        .filter_map(|m| match m {
            EventMapping::Stream(s) => Some(s.clone()),
            EventMapping::Sqs(_) => None,
        })
        .collect()
}

impl Replayer {
    /// The stream processor in this process, configured from the stack's
    /// template (its `Environment`), like `pipeline local up` runs it.
    pub fn in_process(ctx: &OpsContext) -> Result<Self> {
        let stack = ctx.stack.as_ref().ok_or_else(|| {
            OpsError::usage(
                "replaying stream records needs the stream processor: pass --stack-name (and --template if it is \
                 not ./template.yaml) to run it in-process, or --invoke-endpoint URL",
            )
        })?;
        let f = function_for(stack, stream_processor::NAME).map_err(OpsError::usage)?;
        let invoker = StackInvoker::for_stack(&ctx.sdk, stack).map_err(OpsError::usage)?;
        Ok(Self {
            invoker: StreamInvoker::InProcess(Box::new(invoker)),
            function: f.logical_id.clone(),
            timeout: f.timeout,
            mappings: stream_mappings(stack),
            streams: aws_sdk_dynamodbstreams::Client::new(&ctx.sdk),
            region: ctx.region.clone(),
        })
    }

    /// The stream processor behind a Lambda Invoke API endpoint (e.g.
    /// `cargo lambda watch`).
    pub fn endpoint(ctx: &OpsContext, url: &str) -> Result<Self> {
        let (function, timeout, names, mappings) = match &ctx.stack {
            Some(stack) => {
                let f = function_for(stack, stream_processor::NAME).map_err(OpsError::usage)?;
                let names: BTreeMap<String, String> = stack
                    .functions
                    .values()
                    .map(|f| (f.logical_id.clone(), f.binary.clone().unwrap_or_else(|| f.logical_id.clone())))
                    .collect();
                (f.logical_id.clone(), f.timeout, names, stream_mappings(stack))
            }
            None => (stream_processor::NAME.to_owned(), Duration::from_secs(60), BTreeMap::new(), Vec::new()),
        };
        let invoker =
            LambdaApiInvoker::new(url, names).map_err(|e| OpsError::usage(format!("--invoke-endpoint: {e}")))?;
        Ok(Self {
            invoker: StreamInvoker::Endpoint(invoker),
            function,
            timeout,
            mappings,
            streams: aws_sdk_dynamodbstreams::Client::new(&ctx.sdk),
            region: ctx.region.clone(),
        })
    }

    /// The mapping for `stream_arn` (its filters and batch size), if known.
    fn mapping(&self, stream_arn: &str) -> Option<&StreamMapping> {
        self.mappings.iter().find(|m| m.stream_arn == stream_arn).or_else(|| self.mappings.first())
    }

    /// The longest a replay of one range may take: one invocation per
    /// batch, each up to the function timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Re-reads the range `b` points at and replays it. See the module docs.
    pub async fn replay_range(&self, b: &StreamBatch) -> RangeReplay {
        let mut out = RangeReplay::default();
        let records = match self.read_range(b).await {
            Ok((records, missing)) => {
                out.missing = missing;
                records
            }
            Err(e) => {
                out.failure = Some(e);
                return out;
            }
        };
        out.read = records.len();
        let mapping = self.mapping(&b.stream_arn);
        let filters: &[FilterPattern] = mapping.map(|m| m.filters.as_slice()).unwrap_or_default();
        let batch_size = mapping.map_or(100, |m| m.batch_size).max(1);
        let delivered: Vec<Value> = records.into_iter().filter(|r| passes(filters, r)).collect();
        out.filtered = out.read - delivered.len();

        let mut start = 0;
        while start < delivered.len() {
            let mut n = 0;
            let mut bytes = 0;
            for r in delivered[start..].iter().take(batch_size) {
                let size = r.to_string().len() + 1;
                if n > 0 && bytes + size > PAYLOAD_LIMIT {
                    break;
                }
                bytes += size;
                n += 1;
            }
            let chunk = &delivered[start..start + n];
            match self.invoke(chunk).await {
                Ok(()) => out.replayed += n,
                Err(e) => {
                    out.failure = Some(e);
                    return out;
                }
            }
            start += n;
        }
        out
    }

    /// Replays one Lambda stream record (from an envelope).
    pub async fn replay_record(&self, record: &Value) -> std::result::Result<(), String> {
        self.invoke(std::slice::from_ref(record)).await
    }

    async fn invoke(&self, records: &[Value]) -> std::result::Result<(), String> {
        let seqs: Vec<&str> = records
            .iter()
            .filter_map(|r| r.get("dynamodb").and_then(|d| d.get("SequenceNumber")).and_then(Value::as_str))
            .collect();
        let result = call(&self.invoker, &self.function, json!({ "Records": records }), self.timeout).await;
        match result {
            Invocation::FunctionError { error_type, message } => {
                Err(format!("the stream processor failed ({error_type}): {message}"))
            }
            Invocation::Response(v) => match parse_batch_response(&v, |id| seqs.contains(&id)) {
                BatchVerdict::AllSucceeded => Ok(()),
                BatchVerdict::Failed(ids) => {
                    Err(format!("the stream processor reported records as failed (SequenceNumber {})", ids.join(", ")))
                }
                BatchVerdict::Invalid(why) => Err(format!("invalid response from the stream processor: {why}")),
            },
        }
    }

    /// The records of the range as Lambda records, and a description of
    /// the part of the range that could not be read (trimmed), if any.
    async fn read_range(&self, b: &StreamBatch) -> std::result::Result<(Vec<Value>, Option<String>), String> {
        let (start, end) = (b.start_sequence_number.as_str(), b.end_sequence_number.as_str());
        let gone = |why: &str| format!("{} of stream {}: {why}", b.range(), b.stream_arn);
        let iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&b.stream_arn)
            .shard_id(&b.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(start)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator,
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_trimmed_data_access_exception()) {
                    return Ok((
                        Vec::new(),
                        Some(gone("every record was trimmed from the stream (24 h retention) before this redrive")),
                    ));
                }
                if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                    return Ok((Vec::new(), Some(gone("the stream or shard no longer exists"))));
                }
                return Err(format!(
                    "GetShardIterator (AT_SEQUENCE_NUMBER {start}) on stream {} failed: {}",
                    b.stream_arn,
                    describe(&e)
                ));
            }
        };
        let mut records = Vec::new();
        let mut last: Option<String> = None;
        let mut empty_pages = 0;
        let mut reached_end = false;
        while let Some(it) = iterator.take() {
            let page = match self.streams.get_records().shard_iterator(it).limit(1000).send().await {
                Ok(p) => p,
                Err(e) => {
                    if e.as_service_error().is_some_and(|s| s.is_trimmed_data_access_exception()) {
                        let after = last.as_deref().unwrap_or(start);
                        return Ok((records, Some(gone(&format!("the records after {after} were trimmed")))));
                    }
                    return Err(format!(
                        "GetRecords on {} of stream {} failed: {}",
                        b.range(),
                        b.stream_arn,
                        describe(&e)
                    ));
                }
            };
            let page_records = page.records.unwrap_or_default();
            if page_records.is_empty() {
                empty_pages += 1;
                // An open shard answers empty pages at its tip: a few in a
                // row mean the rest of the range is not there.
                if empty_pages >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                empty_pages = 0;
            }
            for r in &page_records {
                let Some(seq) = r.dynamodb().and_then(|d| d.sequence_number()) else { continue };
                if seq_cmp(seq, start) == Ordering::Less {
                    continue;
                }
                if seq_cmp(seq, end) == Ordering::Greater {
                    reached_end = true;
                    break;
                }
                records.push(events::stream_record(r, &b.stream_arn, &self.region));
                last = Some(seq.to_owned());
                if seq_cmp(seq, end) == Ordering::Equal {
                    reached_end = true;
                    break;
                }
            }
            if reached_end {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        let first = records
            .first()
            .and_then(|r| r.get("dynamodb"))
            .and_then(|d| d.get("SequenceNumber"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let missing = match (first, &last) {
            (None, _) => Some(gone("no record of the range is in the stream any more (trimmed after 24 h, or the pointer does not match this stream)")),
            (Some(f), _) if seq_cmp(&f, start) != Ordering::Equal => {
                Some(gone(&format!("the records from {start} up to {f} (excluded) are no longer in the stream")))
            }
            (_, Some(l)) if !reached_end => {
                Some(gone(&format!("the records after {l} up to {end} were not found (trimmed, or the shard ended)")))
            }
            _ => None,
        };
        Ok((records, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(seq_cmp("900", "1000"), Ordering::Less);
        assert_eq!(seq_cmp("1100000000017454423009", "1100000000017454423010"), Ordering::Less);
        assert_eq!(seq_cmp("0042", "42"), Ordering::Equal);
    }
}
