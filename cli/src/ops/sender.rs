//! Sending messages with their attributes (`SendMessageBatch`, every entry
//! checked, retryable failures retried).

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::error::aws_error;
use super::message::{fifo_token, Outgoing};
use super::queue::{OpsContext, QueueRef};

/// Bytes per `SendMessageBatch` call that every queue accepts (256 KiB;
/// current SQS accepts 1 MiB).
pub const MAX_BATCH_BYTES: usize = 262_144;

/// Attempts per entry, the first included.
const ATTEMPTS: u32 = 4;

/// The group id a FIFO target gets for a message that had none.
pub const DEFAULT_GROUP: &str = "pipeline-redrive";

/// Sends `messages` to `target`: batches of at most 10 entries and
/// [`MAX_BATCH_BYTES`]; an entry SQS refuses with a sender fault fails at
/// once, others are retried with backoff. Returns one result per message,
/// in order. FIFO group and deduplication ids are only set for a FIFO
/// target.
pub async fn send_all(ctx: &OpsContext, target: &QueueRef, messages: &[Outgoing]) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Err("not sent".into()); messages.len()];
    let mut batch: Vec<usize> = Vec::new();
    let mut bytes = 0;
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let size = m.size();
        if size > MAX_BATCH_BYTES {
            results[i] = Err(format!("the message is {size} bytes, over the {MAX_BATCH_BYTES}-byte SQS limit"));
            continue;
        }
        if batch.len() == 10 || bytes + size > MAX_BATCH_BYTES {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(i);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    for batch in batches {
        let mut pending = batch;
        for attempt in 1..=ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(100 << (attempt - 2))).await;
            }
            let mut request = ctx.sqs.send_message_batch().queue_url(&target.url);
            for &i in &pending {
                let m = &messages[i];
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .set_message_attributes((!m.attributes.is_empty()).then(|| m.attributes.clone()));
                if target.fifo {
                    let group = m.group_id.clone().unwrap_or_else(|| DEFAULT_GROUP.to_owned());
                    entry = entry
                        .message_group_id(fifo_token(&group))
                        .set_message_deduplication_id(m.deduplication_id.as_deref().map(fifo_token));
                }
                match entry.build() {
                    Ok(e) => request = request.entries(e),
                    Err(e) => results[i] = Err(e.to_string()),
                }
            }
            let last = attempt == ATTEMPTS;
            match request.send().await {
                Ok(out) => {
                    let mut again = Vec::new();
                    let mut answered = std::collections::HashSet::new();
                    for ok in out.successful() {
                        if let Ok(i) = ok.id().parse::<usize>() {
                            if i < results.len() {
                                results[i] = Ok(());
                                answered.insert(i);
                            }
                        }
                    }
                    for f in out.failed() {
                        if let Ok(i) = f.id().parse::<usize>() {
                            if i < results.len() {
                                answered.insert(i);
                                results[i] = Err(format!("{}: {}", f.code(), f.message().unwrap_or_default()));
                                if !f.sender_fault() && !last {
                                    again.push(i);
                                }
                            }
                        }
                    }
                    for &i in &pending {
                        if !answered.contains(&i) {
                            results[i] = Err("SQS returned no result for this entry".into());
                            if !last {
                                again.push(i);
                            }
                        }
                    }
                    pending = again;
                }
                Err(e) => {
                    let why = aws_error("sqs:SendMessageBatch", &format!("queue {}", target.url), &e).to_string();
                    tracing::warn!(attempt, error = %why, "SendMessageBatch failed");
                    for &i in &pending {
                        results[i] = Err(why.clone());
                    }
                }
            }
        }
    }
    results
}
