//! Receiving, hiding, restoring and deleting dead-letter messages.
//!
//! Looking without consuming: messages are received with a visibility
//! timeout (hidden from other consumers), read, and made visible again at
//! once (`ChangeMessageVisibilityBatch` to 0). Each receive counts in the
//! message's `ApproximateReceiveCount` (which only matters if the
//! dead-letter queue has a redrive policy of its own). On a FIFO queue a
//! received message holds back the rest of its message group until it is
//! visible again, so a scan sees the head of each group.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
};

use super::error::{aws_error, OpsError, Result};
use super::message::DlqMessage;
use super::queue::{OpsContext, QueueRef};

/// Receives up to `max` (1-10) messages, hiding them for `visibility`;
/// waits up to `wait` (whole seconds, at most 20) when none is there.
pub async fn receive(
    ctx: &OpsContext,
    queue: &QueueRef,
    max: usize,
    visibility: Duration,
    wait: Duration,
) -> Result<Vec<DlqMessage>> {
    let out = ctx
        .sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(max.clamp(1, 10) as i32)
        .visibility_timeout(visibility.as_secs().clamp(0, 43_200) as i32)
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| aws_error("sqs:ReceiveMessage", &format!("queue {}", queue.url), &e))?;
    Ok(out.messages.unwrap_or_default().into_iter().map(DlqMessage::from_sdk).collect())
}

/// Sets the visibility timeout of received messages (0: visible again at
/// once). Returns the receipt handles it could not change, with the reason.
pub async fn set_visibility(
    ctx: &OpsContext,
    queue: &QueueRef,
    handles: &[String],
    timeout: Duration,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for chunk in handles.chunks(10) {
        let mut request = ctx.sqs.change_message_visibility_batch().queue_url(&queue.url);
        for (i, h) in chunk.iter().enumerate() {
            match ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .visibility_timeout(timeout.as_secs().min(43_200) as i32)
                .build()
            {
                Ok(entry) => request = request.entries(entry),
                Err(e) => failed.push((h.clone(), e.to_string())),
            }
        }
        match request.send().await {
            Ok(out) => {
                for f in out.failed() {
                    if let Some(h) = f.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                        failed.push((h.clone(), format!("{}: {}", f.code(), f.message().unwrap_or_default())));
                    }
                }
            }
            Err(e) => {
                let why = aws_error("sqs:ChangeMessageVisibilityBatch", &queue.url, &e).to_string();
                failed.extend(chunk.iter().map(|h| (h.clone(), why.clone())));
            }
        }
    }
    for (_, why) in &failed {
        tracing::warn!(queue = %queue.url, %why, "could not change a message's visibility; it becomes visible when its visibility timeout ends");
    }
    failed
}

/// Deletes received messages (`DeleteMessageBatch`, every entry checked,
/// failed entries retried up to 3 times). Returns, per message in order,
/// `Ok` or why it could not be deleted.
pub async fn delete(ctx: &OpsContext, queue: &QueueRef, handles: &[String]) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Err("not attempted".into()); handles.len()];
    for (chunk_no, chunk) in handles.chunks(10).enumerate() {
        let base = chunk_no * 10;
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        for attempt in 1..=3u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            let mut request = ctx.sqs.delete_message_batch().queue_url(&queue.url);
            for &i in &pending {
                match DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(&chunk[i]).build() {
                    Ok(entry) => request = request.entries(entry),
                    Err(e) => results[base + i] = Err(e.to_string()),
                }
            }
            match request.send().await {
                Ok(out) => {
                    let index = |id: &str| id.parse::<usize>().ok().filter(|&i| i < chunk.len());
                    let mut answered = HashSet::new();
                    let mut again = Vec::new();
                    for ok in out.successful() {
                        if let Some(i) = index(ok.id()) {
                            results[base + i] = Ok(());
                            answered.insert(i);
                        }
                    }
                    for f in out.failed() {
                        if let Some(i) = index(f.id()) {
                            results[base + i] = Err(format!("{}: {}", f.code(), f.message().unwrap_or_default()));
                            answered.insert(i);
                            if !f.sender_fault() {
                                again.push(i);
                            }
                        }
                    }
                    // An entry with no result at all is retried too.
                    for &i in &pending {
                        if !answered.contains(&i) {
                            results[base + i] = Err("SQS returned no result for this entry".into());
                            again.push(i);
                        }
                    }
                    pending = again;
                }
                Err(e) => {
                    let why = aws_error("sqs:DeleteMessageBatch", &queue.url, &e).to_string();
                    for &i in &pending {
                        results[base + i] = Err(why.clone());
                    }
                }
            }
        }
    }
    results
}

/// Receives up to `limit` messages without consuming them: every message
/// is hidden while the scan goes on (so none is counted twice), then all
/// are made visible again. Stops when a receive that waited a second
/// finds nothing new.
pub async fn scan(ctx: &OpsContext, queue: &QueueRef, limit: usize, visibility: Duration) -> Result<Vec<DlqMessage>> {
    let mut seen = HashSet::new();
    let mut out: Vec<DlqMessage> = Vec::new();
    let mut handles = Vec::new();
    let result: Result<()> = async {
        while out.len() < limit {
            let batch = receive(ctx, queue, (limit - out.len()).min(10), visibility, Duration::from_secs(1)).await?;
            let mut new = 0;
            for m in batch {
                handles.push(m.receipt_handle.clone());
                if seen.insert(m.message_id.clone()) {
                    new += 1;
                    out.push(m);
                }
            }
            if new == 0 {
                break;
            }
        }
        Ok(())
    }
    .await;
    set_visibility(ctx, queue, &handles, Duration::ZERO).await;
    result?;
    Ok(out)
}

/// Fails with a message that says so when `queue` looks like a source
/// queue rather than a dead-letter queue (it has a redrive policy of its
/// own, and nothing names it as dead-letter queue).
pub fn not_a_dlq(queue: &QueueRef, why: &str) -> OpsError {
    OpsError::usage(format!(
        "{} does not look like a dead-letter queue: {why}. Fix: name the dead-letter queue (its RedrivePolicy's \
         deadLetterTargetArn), not the queue it protects",
        queue.url
    ))
}
