//! `pipeline send` and `pipeline put-items`: jobs and items from JSON
//! Lines, through the typed [`Producer`] and [`ItemWriter`] of
//! pipeline-core. A line that is not a job (or an item) is reported with
//! its number and skipped; nothing is dropped silently.
//!
//! A job line is a [`Job`] (`{"type":"process_item","item_id":"42","version":1}`).
//!
//! An item line is either a whole [`Item`] as stored (with `pk`, `sk`,
//! `version`, ...), or the short form of a new item:
//!
//! ```json
//! {"id": "42", "name": "Lamp", "price": "19.99", "quantity": 2, "tags": ["home"], "attributes": {"colour": "red"}}
//! ```
//!
//! (`price` a decimal string or number, read exactly; `tags`,
//! `attributes`, `expires_at` and `version` optional).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use pipeline_core::model::ITEM_SK;
use pipeline_core::{Decimal, Item, ItemWriter, Job, OutgoingMessage, Producer, SqsQueue, WriteOutcome};
use serde::Deserialize;
use serde_json::Value;

use super::message::fnv_hex;
use super::progress::Progress;
use super::queue::{OpsContext, QueueRef};

/// The message attribute carrying the job type (as the stream processor
/// sets it).
pub const ATTR_JOB_TYPE: &str = "pipeline.job_type";

/// What `send` or `put-items` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinesReport {
    /// Jobs sent, or items written.
    pub done: usize,
    /// Lines that are not jobs / items: line number and why (skipped).
    pub bad_lines: Vec<(usize, String)>,
    /// Jobs / items SQS or DynamoDB refused: line number and why.
    pub failed: Vec<(usize, String)>,
    /// Conditional writes that did not apply (`--create`, `--update`):
    /// line number and why.
    pub conflicts: Vec<(usize, String)>,
}

impl LinesReport {
    /// Everything went through.
    pub fn ok(&self) -> bool {
        self.bad_lines.is_empty() && self.failed.is_empty() && self.conflicts.is_empty()
    }

    /// A summary (`sent 2 job(s) to Q, skipped 1 bad line(s), failed 0`),
    /// then every problem with its line number.
    pub fn summary(&self, verb: &str, noun: &str, target: &str) -> String {
        let mut out = format!(
            "{verb} {} {noun} to {target}, skipped {} bad line(s), failed {}{}\n",
            self.done,
            self.bad_lines.len(),
            self.failed.len(),
            if self.conflicts.is_empty() { String::new() } else { format!(", conflicts {}", self.conflicts.len()) }
        );
        let mut problems: Vec<(usize, &str, &str)> = Vec::new();
        problems.extend(self.bad_lines.iter().map(|(n, w)| (*n, "skipped", w.as_str())));
        problems.extend(self.failed.iter().map(|(n, w)| (*n, "failed", w.as_str())));
        problems.extend(self.conflicts.iter().map(|(n, w)| (*n, "conflict", w.as_str())));
        problems.sort_by_key(|p| p.0);
        for (n, what, why) in problems {
            out.push_str(&format!("  line {n}: {what}: {why}\n"));
        }
        out
    }
}

/// Parses a job line.
pub fn parse_job(line: &str) -> Result<Job, String> {
    serde_json::from_str::<Job>(line).map_err(|e| format!("not a job: {e}"))
}

/// Sends the job lines to `queue` (batches of 10, retried, every entry
/// checked). On a FIFO queue a job's group is its item id (order per item)
/// and its deduplication id a hash of its body.
pub async fn send_jobs(ctx: &OpsContext, queue: &QueueRef, lines: &[(usize, String)]) -> LinesReport {
    let producer = Producer::new(SqsQueue::new(ctx.sqs.clone(), &queue.url));
    let mut report = LinesReport::default();
    let mut progress = Progress::new("send", Some(lines.len() as u64));
    let mut seen = 0u64;
    for chunk in lines.chunks(100) {
        let mut numbers = Vec::new();
        let mut messages = Vec::new();
        for (n, line) in chunk {
            let job = match parse_job(line) {
                Ok(job) => job,
                Err(why) => {
                    report.bad_lines.push((*n, why));
                    continue;
                }
            };
            let mut m = match OutgoingMessage::json(&job) {
                Ok(m) => m.attribute(ATTR_JOB_TYPE, job.kind()),
                Err(e) => {
                    report.bad_lines.push((*n, format!("cannot encode the job: {e}")));
                    continue;
                }
            };
            if queue.fifo {
                let dedup = format!("job-{}", fnv_hex(&m.body));
                m = m.group(super::message::fifo_token(job.item_id())).dedup(dedup);
            }
            numbers.push(*n);
            messages.push(m);
        }
        let sent = producer.send(messages).await;
        report.done += sent.sent;
        report.failed.extend(sent.failed.into_iter().map(|(i, why)| (numbers[i], why)));
        seen += chunk.len() as u64;
        progress.update(seen, || format!("sent {}, bad {}", report.done, report.bad_lines.len()));
    }
    progress.finish();
    report
}

/// How `put-items` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PutMode {
    /// `BatchWriteItem`: create or replace, unconditionally.
    #[default]
    Put,
    /// Only items that do not exist yet; existing ones are reported.
    Create,
    /// Replace existing items' content and make them `PENDING` again at
    /// the next version (so they are processed again), under the version
    /// condition: the line's `version`, else the stored item's.
    Update,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortItem {
    id: String,
    name: String,
    price: Value,
    quantity: i64,
    #[serde(default)]
    tags: BTreeSet<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    version: Option<u64>,
}

/// Parses an item line (a stored [`Item`], or the short form); returns the
/// item and the version the line names, if any.
pub fn parse_item(line: &str, now: DateTime<Utc>) -> Result<(Item, Option<u64>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if v.get("pk").is_some() {
        let item: Item = serde_json::from_value(v).map_err(|e| format!("not an item: {e}"))?;
        if !item.pk.starts_with(pipeline_core::model::ITEM_PK_PREFIX) || item.sk != ITEM_SK {
            return Err(format!("not an item record (pk {:?}, sk {:?})", item.pk, item.sk));
        }
        let version = item.version;
        return Ok((item, Some(version)));
    }
    let s: ShortItem = serde_json::from_value(v).map_err(|e| format!("not an item: {e}"))?;
    if s.id.is_empty() {
        return Err("\"id\" is empty".into());
    }
    let price_text = match &s.price {
        Value::String(t) => t.clone(),
        // The number's text as written (a parsed JSON number went through
        // f64 and may have lost digits).
        Value::Number(_) => {
            #[derive(serde::Deserialize)]
            struct PriceText<'a> {
                #[serde(borrow)]
                price: &'a serde_json::value::RawValue,
            }
            let raw: PriceText<'_> = serde_json::from_str(line).map_err(|e| format!("not an item: {e}"))?;
            raw.price.get().to_owned()
        }
        other => return Err(format!("\"price\" must be a decimal string or number, not {other}")),
    };
    let price = Decimal::from_str_exact(price_text.trim())
        .map_err(|e| format!("\"price\" {price_text:?} is not an exact decimal: {e}"))?;
    let mut item = Item::new(&s.id, s.name, price, s.quantity, now);
    item.tags = s.tags;
    item.attributes = s.attributes;
    item.expires_at = s.expires_at;
    if let Some(v) = s.version {
        item.version = v;
    }
    Ok((item, s.version))
}

async fn current_version(ddb: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> Result<Option<u64>, String> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(Item::pk_for(id)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(ITEM_SK.to_owned()))
        .consistent_read(true)
        .projection_expression("#v")
        .expression_attribute_names("#v", "version")
        .send()
        .await
        .map_err(|e| format!("GetItem on table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    Ok(out.item.and_then(|i| match i.get("version") {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }))
}

/// Writes the item lines to `table`.
pub async fn put_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    lines: &[(usize, String)],
    mode: PutMode,
) -> LinesReport {
    let writer = ItemWriter::new(ddb.clone(), table);
    let now = Utc::now();
    let mut report = LinesReport::default();
    let mut items: Vec<(usize, Item, Option<u64>)> = Vec::new();
    for (n, line) in lines {
        match parse_item(line, now) {
            Ok((item, version)) => items.push((*n, item, version)),
            Err(why) => report.bad_lines.push((*n, why)),
        }
    }
    let mut progress = Progress::new("put-items", Some(items.len() as u64));
    match mode {
        PutMode::Put => {
            let mut done = 0u64;
            for chunk in items.chunks(100) {
                let batch: Vec<Item> = chunk.iter().map(|(_, i, _)| i.clone()).collect();
                let written = writer.batch_put(&batch).await;
                report.done += written.written;
                report.failed.extend(written.failed.into_iter().map(|(i, why)| (chunk[i].0, why)));
                done += chunk.len() as u64;
                progress.update(done, || format!("written {}", report.done));
            }
        }
        PutMode::Create | PutMode::Update => {
            let results: Vec<(usize, Result<WriteOutcome, String>, String)> = futures::stream::iter(items.iter())
                .map(|(n, item, version)| {
                    let writer = &writer;
                    async move {
                        let id = item.id().to_owned();
                        let result = match mode {
                            PutMode::Create => writer.create(item).await.map_err(|e| e.to_string()),
                            _ => {
                                let expected = match version {
                                    Some(v) => Ok(Some(*v)),
                                    None => current_version(ddb, table, &id).await,
                                };
                                match expected {
                                    Ok(Some(v)) => writer.update(item, v, Utc::now()).await.map_err(|e| e.to_string()),
                                    Ok(None) => Err(format!(
                                        "item {id} does not exist (write it without --update, or with --create)"
                                    )),
                                    Err(e) => Err(e),
                                }
                            }
                        };
                        (*n, result, id)
                    }
                })
                .buffered(8)
                .collect()
                .await;
            for (i, (n, result, id)) in results.into_iter().enumerate() {
                match result {
                    Ok(WriteOutcome::Written) => report.done += 1,
                    Ok(WriteOutcome::Conflict) if mode == PutMode::Create => {
                        report.conflicts.push((n, format!("item {id} exists already (not overwritten)")))
                    }
                    Ok(WriteOutcome::Conflict) => report
                        .conflicts
                        .push((n, format!("item {id} is not at the expected version (changed meanwhile)"))),
                    Err(why) => report.failed.push((n, why)),
                }
                progress.update(i as u64 + 1, || format!("written {}", report.done));
            }
        }
    }
    progress.finish();
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn item_lines_short_and_full() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (item, v) =
            parse_item(r#"{"id":"a","name":"Lamp","price":"19.99","quantity":2,"tags":["x"]}"#, now).unwrap();
        assert_eq!((item.id(), item.price.to_string().as_str(), item.quantity, v), ("a", "19.99", 2, None));
        assert_eq!(item.tags.len(), 1);
        let (item, _) = parse_item(r#"{"id":"b","name":"n","price":2.5,"quantity":1}"#, now).unwrap();
        assert_eq!(item.price.to_string(), "2.5");
        // More digits than an f64 holds: read from the text, not rounded.
        let (item, _) = parse_item(r#"{"id":"b","name":"n","price":12345678901234567.89,"quantity":1}"#, now).unwrap();
        assert_eq!(item.price.to_string(), "12345678901234567.89");
        let full = serde_json::to_string(&Item::new("c", "n", Decimal::ONE, 1, now)).unwrap();
        assert_eq!(parse_item(&full, now).unwrap().1, Some(1));
        assert!(parse_item(r#"{"id":"a","name":"n","price":"1","quantity":1,"colour":"red"}"#, now)
            .unwrap_err()
            .contains("colour"));
        assert!(parse_item("{not json", now).unwrap_err().starts_with("not JSON"));
        assert!(parse_item(r#"{"id":"a","name":"n","price":"abc","quantity":1}"#, now).is_err());
    }

    #[test]
    fn job_lines() {
        assert!(parse_job(r#"{"type":"process_item","item_id":"a","version":1}"#).is_ok());
        assert!(parse_job(r#"{"type":"explode"}"#).unwrap_err().starts_with("not a job"));
    }
}
