//! `dlq export`, `dlq import` and `dlq purge`.
//!
//! Export writes JSON Lines, one message per line:
//!
//! ```json
//! {"messageId":"…","body":"…","attributes":{"SentTimestamp":"…","ApproximateReceiveCount":"6"},"messageAttributes":{"k":{"stringValue":"v","dataType":"String","stringListValues":[],"binaryListValues":[]}}}
//! ```
//!
//! `attributes` are the system attributes (kept for the record; import
//! uses only `MessageGroupId`), `messageAttributes` use the Lambda record's
//! shape (binary values base64). Import sends each line's `body` and
//! `messageAttributes` to a queue (with `MessageGroupId` and a
//! deduplication id derived from `messageId` on a FIFO queue).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::error::{aws_error, OpsError, Result};
use super::filter::{matches_all, Filter};
use super::message::{attributes_from_json, fifo_token, Outgoing};
use super::progress::Progress;
use super::queue::{OpsContext, QueueFacts, QueueRef};
use super::scan::{delete, receive, set_visibility};
use super::sender::send_all;

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// At most this many messages.
    pub max: Option<usize>,
    /// Only messages passing every filter.
    pub filters: Vec<Filter>,
    /// Delete each message once it is safely on disk (the file is flushed
    /// and synced first).
    pub delete: bool,
    /// Overwrite an existing file.
    pub force: bool,
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub written: usize,
    /// Messages deleted after they were written (`--delete`).
    pub deleted: usize,
    /// Messages written but not deleted (with `--delete`).
    pub not_deleted: usize,
    /// Messages not matching the filters (left in the queue).
    pub skipped: usize,
}

/// Writes the queue's messages to `path` (JSON Lines). Without `delete`
/// every message is made visible again at the end; with it, each batch is
/// written and synced to disk before it is deleted, so a crash loses
/// nothing (a message may then be both in the file and in the queue).
pub async fn export(ctx: &OpsContext, queue: &QueueRef, path: &Path, options: &ExportOptions) -> Result<ExportReport> {
    let to_stdout = path == Path::new("-");
    if to_stdout && options.delete {
        return Err(OpsError::usage("--delete needs a file (the export must be on disk before messages are deleted)"));
    }
    let mut out: Box<dyn Write + Send> = if to_stdout {
        Box::new(std::io::stdout())
    } else {
        let mut open = std::fs::OpenOptions::new();
        open.write(true);
        if options.force {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        let file = open.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                OpsError::io(path.display(), "the file exists; pass --force to overwrite it")
            } else {
                OpsError::io(path.display(), e)
            }
        })?;
        Box::new(BufWriter::new(SyncOnFlush(file)))
    };
    let visibility = Duration::from_secs(300);
    let now = Utc::now();
    let mut report = ExportReport::default();
    let mut hidden = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut progress = Progress::new("export", options.max.map(|m| m as u64));
    let result: Result<()> = async {
        loop {
            let want = match options.max {
                Some(max) if report.written >= max => break,
                Some(max) => (max - report.written).min(10),
                None => 10,
            };
            let batch = receive(ctx, queue, want, visibility, Duration::from_secs(1)).await?;
            let fresh: Vec<_> = batch.into_iter().filter(|m| seen.insert(m.message_id.clone())).collect();
            if fresh.is_empty() {
                break;
            }
            let mut written = Vec::new();
            for m in fresh {
                if !matches_all(&options.filters, &m, now) {
                    report.skipped += 1;
                    hidden.push(m.receipt_handle);
                    continue;
                }
                let line = m.to_json().to_string();
                writeln!(out, "{line}").map_err(|e| OpsError::io(path.display(), e))?;
                report.written += 1;
                written.push(m.receipt_handle);
            }
            if options.delete {
                // On disk first, then deleted.
                out.flush().map_err(|e| OpsError::io(path.display(), e))?;
                for r in delete(ctx, queue, &written).await {
                    match r {
                        Ok(()) => report.deleted += 1,
                        Err(_) => report.not_deleted += 1,
                    }
                }
            } else {
                hidden.extend(written);
            }
            progress.update(report.written as u64, || format!("{} written", report.written));
        }
        out.flush().map_err(|e| OpsError::io(path.display(), e))?;
        Ok(())
    }
    .await;
    progress.finish();
    set_visibility(ctx, queue, &hidden, Duration::ZERO).await;
    result?;
    Ok(report)
}

/// A file that syncs to disk on every flush.
struct SyncOnFlush(File);

impl Write for SyncOnFlush {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.0.sync_data()
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Messages sent.
    pub sent: usize,
    /// Lines that are not messages: line number and why (skipped).
    pub bad_lines: Vec<(usize, String)>,
    /// Messages SQS refused: line number and why.
    pub failed: Vec<(usize, String)>,
}

/// One export line as a message to send.
pub fn outgoing_from_line(line: &str) -> std::result::Result<Outgoing, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let body = v.get("body").and_then(Value::as_str).ok_or("no \"body\" string")?.to_owned();
    let attributes = attributes_from_json(v.get("messageAttributes").unwrap_or(&Value::Null))?;
    if attributes.len() > super::message::MAX_MESSAGE_ATTRIBUTES {
        return Err(format!("{} message attributes, over the SQS limit of 10", attributes.len()));
    }
    let group_id = v.get("attributes").and_then(|a| a.get("MessageGroupId")).and_then(Value::as_str).map(str::to_owned);
    let deduplication_id = match v.get("messageId").and_then(Value::as_str) {
        Some(id) => format!("import-{id}"),
        None => format!("import-{}", super::message::fnv_hex(line)),
    };
    Ok(Outgoing { body, attributes, group_id, deduplication_id: Some(fifo_token(&deduplication_id)) })
}

/// Sends every line of an export to `queue`.
pub async fn import(ctx: &OpsContext, queue: &QueueRef, lines: Vec<(usize, String)>) -> ImportReport {
    let mut report = ImportReport::default();
    let mut progress = Progress::new("import", Some(lines.len() as u64));
    let mut done = 0u64;
    for chunk in lines.chunks(100) {
        let mut numbers = Vec::new();
        let mut messages = Vec::new();
        for (n, line) in chunk {
            match outgoing_from_line(line) {
                Ok(m) => {
                    numbers.push(*n);
                    messages.push(m);
                }
                Err(why) => report.bad_lines.push((*n, why)),
            }
        }
        for (n, r) in numbers.iter().zip(send_all(ctx, queue, &messages).await) {
            match r {
                Ok(()) => report.sent += 1,
                Err(why) => report.failed.push((*n, why)),
            }
        }
        done += chunk.len() as u64;
        progress.update(done, || format!("sent {}, bad {}", report.sent, report.bad_lines.len()));
    }
    progress.finish();
    report
}

/// Purges the queue (`PurgeQueue`) after reading how many messages it
/// holds; returns those counts. Only call it once the operator confirmed.
pub async fn purge(ctx: &OpsContext, queue: &QueueRef) -> Result<QueueFacts> {
    let facts = ctx.facts(queue).await?;
    ctx.sqs.purge_queue().queue_url(&queue.url).send().await.map_err(|e| {
        let mut err = aws_error("sqs:PurgeQueue", &format!("queue {}", queue.url), &e);
        if let OpsError::Aws { cause, fix, .. } = &mut err {
            if cause.contains("PurgeQueueInProgress") {
                *fix = "SQS allows one purge per queue every 60 seconds: wait and run it again".to_owned();
            }
        }
        err
    })?;
    Ok(facts)
}
