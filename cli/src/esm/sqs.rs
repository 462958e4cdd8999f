//! The SQS event source mapping (LAMBDA-SEMANTICS.md section 1).
//!
//! `MaximumConcurrency` pollers (default 5, what Lambda starts with) each
//! loop: gather a batch, invoke, delete what succeeded. So at most that many
//! batches are in flight. A batch is cut at `BatchSize`, at the end of the
//! batching window (which starts when the previous invocation of that poller
//! completed), or before the event would pass 6 MB. Messages that failed are
//! left alone: they become visible again when their visibility timeout ends,
//! and the queue's RedrivePolicy moves them to the DLQ after
//! `maxReceiveCount` receives (SQS does that, not the emulator).
//!
//! FIFO: SQS hands out a message group only while no message of it is in
//! flight, so one batch per group is in flight and order within a group is
//! kept; the emulator never reorders or splits what one receive returned and
//! counts any overlap it would see (`fifo_group_conflicts`, expected 0).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::response::{parse_batch_response, BatchVerdict};
use super::stats::Stats;
use super::{backoff, call, events, is_timeout, sleep_or_cancel, EmulatorOptions, PAYLOAD_LIMIT};
use crate::invoke::{Invocation, Invoker};
use crate::mapping::SqsMapping;

pub(crate) struct SqsRuntime<I> {
    pub(crate) mapping: SqsMapping,
    pub(crate) queue_url: String,
    pub(crate) fifo: bool,
    pub(crate) function_timeout: Duration,
    pub(crate) region: String,
    pub(crate) client: aws_sdk_sqs::Client,
    pub(crate) invoker: Arc<I>,
    pub(crate) stats: Stats,
    pub(crate) options: EmulatorOptions,
    pub(crate) cancel: CancellationToken,
    pub(crate) groups_in_flight: Mutex<HashSet<String>>,
}

struct Received {
    message_id: String,
    receipt_handle: String,
    group: Option<String>,
    receive_count: u64,
    record: Value,
    size: usize,
}

/// Runs the mapping's pollers until cancelled.
pub(crate) async fn run<I: Invoker + 'static>(rt: Arc<SqsRuntime<I>>) {
    let pollers = rt.mapping.maximum_concurrency.unwrap_or(rt.options.default_sqs_concurrency).max(1);
    tracing::info!(
        mapping = %rt.stats.snapshot().mapping,
        queue = %rt.queue_url,
        pollers,
        batch_size = rt.mapping.batch_size,
        window_s = rt.mapping.batching_window.as_secs(),
        report_batch_item_failures = rt.mapping.report_batch_item_failures,
        "SQS event source mapping started"
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..pollers {
        set.spawn(poller(Arc::clone(&rt)));
    }
    while set.join_next().await.is_some() {}
}

async fn poller<I: Invoker + 'static>(rt: Arc<SqsRuntime<I>>) {
    let mut carry = Vec::new();
    while !rt.cancel.is_cancelled() {
        let batch = gather(&rt, &mut carry).await;
        if !batch.is_empty() {
            process(&rt, batch).await;
        }
    }
    // Messages held back by the 6 MB cut: make them visible again now
    // rather than at the end of their visibility timeout.
    for m in carry {
        let _ = rt
            .client
            .change_message_visibility()
            .queue_url(&rt.queue_url)
            .receipt_handle(&m.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

async fn gather<I>(rt: &SqsRuntime<I>, carry: &mut Vec<Received>) -> Vec<Received> {
    let max = rt.mapping.batch_size;
    let window = rt.mapping.batching_window;
    let mut batch: Vec<Received> = std::mem::take(carry);
    let mut bytes: usize = batch.iter().map(|m| m.size).sum();
    let mut window_start = Instant::now();
    let mut errors = 0u32;
    loop {
        if batch.len() >= max || !carry.is_empty() || rt.cancel.is_cancelled() {
            break;
        }
        let wait = if window.is_zero() {
            rt.options.sqs_wait
        } else {
            let elapsed = window_start.elapsed();
            if elapsed >= window {
                if !batch.is_empty() {
                    break;
                }
                window_start = Instant::now();
                window
            } else {
                window - elapsed
            }
        };
        let wait_s = wait.min(rt.options.sqs_wait).min(Duration::from_secs(20)).as_secs();
        let want = (max - batch.len()).min(10);
        let received = rt
            .client
            .receive_message()
            .queue_url(&rt.queue_url)
            .max_number_of_messages(want as i32)
            .wait_time_seconds(wait_s as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(out) => {
                errors = 0;
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                rt.stats.aws_error("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(&e));
                errors += 1;
                if sleep_or_cancel(&rt.cancel, backoff(&rt.options, errors)).await || window.is_zero() {
                    break;
                }
                continue;
            }
        };
        if messages.is_empty() {
            if batch.is_empty() {
                rt.stats.idle_poll();
            }
            if wait_s == 0 && sleep_or_cancel(&rt.cancel, rt.options.poll_interval.min(wait)).await {
                break;
            }
        } else {
            rt.stats.busy();
        }
        for m in messages {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let group = m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId)).cloned();
            let record = events::sqs_record(&m, &rt.mapping.queue_arn, &rt.region);
            let size = record.to_string().len() + 1;
            let r = Received {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                group,
                receive_count: count,
                record,
                size,
            };
            if !batch.is_empty() && (bytes + r.size > PAYLOAD_LIMIT || !carry.is_empty()) {
                carry.push(r);
            } else {
                bytes += r.size;
                batch.push(r);
            }
        }
        if window.is_zero() {
            break;
        }
    }
    batch
}

async fn process<I: Invoker>(rt: &SqsRuntime<I>, batch: Vec<Received>) {
    let n = batch.len() as u64;
    let redelivered = batch.iter().filter(|m| m.receive_count > 1).count() as u64;
    let mut conflicts = 0;
    let groups: Vec<String> =
        batch.iter().filter_map(|m| m.group.clone()).collect::<HashSet<_>>().into_iter().collect();
    if rt.fifo {
        let mut in_flight = rt.groups_in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in &groups {
            if !in_flight.insert(g.clone()) {
                conflicts += 1;
                tracing::error!(group = %g, "FIFO message group received while a batch of it is in flight");
            }
        }
    }
    rt.stats.update(|s| {
        s.batches += 1;
        s.records += n;
        s.retries += redelivered;
        s.fifo_group_conflicts += conflicts;
        s.in_flight_batches += 1;
    });
    let payload = json!({ "Records": batch.iter().map(|m| m.record.clone()).collect::<Vec<_>>() });
    let result = call(&*rt.invoker, &rt.mapping.function, payload, rt.function_timeout).await;

    let failed: HashSet<String> = match &result {
        Invocation::FunctionError { error_type, message } => {
            let timeout = is_timeout(&result);
            tracing::warn!(mapping = %rt.mapping.event, %error_type, %message, "function error: the whole batch stays on the queue");
            rt.stats.update(|s| {
                s.whole_failures += 1;
                s.failed_records += n;
                if timeout {
                    s.timeouts += 1;
                } else {
                    s.function_errors += 1;
                }
            });
            batch.iter().map(|m| m.message_id.clone()).collect()
        }
        Invocation::Response(_) if !rt.mapping.report_batch_item_failures => HashSet::new(),
        Invocation::Response(v) => {
            let ids: HashSet<&str> = batch.iter().map(|m| m.message_id.as_str()).collect();
            match parse_batch_response(v, |id| ids.contains(id)) {
                BatchVerdict::AllSucceeded => HashSet::new(),
                BatchVerdict::Failed(list) => {
                    rt.stats.update(|s| {
                        s.partial_failures += 1;
                        s.failed_records += list.len() as u64;
                    });
                    list.into_iter().collect()
                }
                BatchVerdict::Invalid(reason) => {
                    tracing::warn!(mapping = %rt.mapping.event, %reason, "invalid partial batch response: the whole batch failed");
                    rt.stats.update(|s| {
                        s.whole_failures += 1;
                        s.invalid_responses += 1;
                        s.failed_records += n;
                    });
                    batch.iter().map(|m| m.message_id.clone()).collect()
                }
            }
        }
    };
    if failed.is_empty() {
        rt.stats.update(|s| s.succeeded_batches += 1);
    }
    let to_delete: Vec<&Received> = batch.iter().filter(|m| !failed.contains(&m.message_id)).collect();
    delete(rt, &to_delete).await;

    if rt.fifo {
        let mut in_flight = rt.groups_in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in &groups {
            in_flight.remove(g);
        }
    }
    rt.stats.update(|s| s.in_flight_batches -= 1);
}

/// Deletes messages with DeleteMessageBatch (10 per call), checking every
/// entry; entries that failed for a reason other than the sender's fault are
/// retried a few times.
async fn delete<I>(rt: &SqsRuntime<I>, messages: &[&Received]) {
    for chunk in messages.chunks(10) {
        let mut pending: HashMap<String, &Received> =
            chunk.iter().enumerate().map(|(i, m)| (i.to_string(), *m)).collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let entries: Vec<DeleteMessageBatchRequestEntry> = pending
                .iter()
                .filter_map(|(id, m)| {
                    DeleteMessageBatchRequestEntry::builder().id(id).receipt_handle(&m.receipt_handle).build().ok()
                })
                .collect();
            match rt.client.delete_message_batch().queue_url(&rt.queue_url).set_entries(Some(entries)).send().await {
                Ok(out) => {
                    let ok = out.successful.len() as u64;
                    for s in &out.successful {
                        pending.remove(&s.id);
                    }
                    rt.stats.update(|s| s.deleted_messages += ok);
                    for f in &out.failed {
                        if f.sender_fault || attempt >= 3 {
                            tracing::error!(message_id = %pending.get(&f.id).map(|m| m.message_id.as_str()).unwrap_or("?"),
                                code = %f.code, message = ?f.message, "delete failed: the message will be delivered again");
                            pending.remove(&f.id);
                            rt.stats.update(|s| s.delete_errors += 1);
                        }
                    }
                }
                Err(e) => {
                    rt.stats.aws_error("DeleteMessageBatch", aws_sdk_sqs::error::DisplayErrorContext(&e));
                    if attempt >= 3 {
                        let lost = pending.len() as u64;
                        rt.stats.update(|s| s.delete_errors += lost);
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                tokio::time::sleep(backoff(&rt.options, attempt)).await;
            }
        }
    }
}

/// The queue attributes the mapping depends on.
pub(crate) struct QueueFacts {
    pub(crate) fifo: bool,
    pub(crate) visibility_timeout: Duration,
    pub(crate) dead_letter_arn: Option<String>,
}

pub(crate) async fn queue_facts(client: &aws_sdk_sqs::Client, url: &str) -> Result<QueueFacts, String> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::FifoQueue)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let attrs = out.attributes.unwrap_or_default();
    let fifo = attrs.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true");
    let visibility_timeout = Duration::from_secs(
        attrs.get(&QueueAttributeName::VisibilityTimeout).and_then(|v| v.parse().ok()).unwrap_or(30),
    );
    let dead_letter_arn = attrs
        .get(&QueueAttributeName::RedrivePolicy)
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p.get("deadLetterTargetArn").and_then(Value::as_str).map(str::to_owned));
    Ok(QueueFacts { fifo, visibility_timeout, dead_letter_arn })
}
