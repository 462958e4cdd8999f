//! `pipeline local demo`: the whole pipeline once, with sample traffic.
//!
//! Provisions the template, starts every event source mapping, writes items
//! (some invalid), sends jobs straight to the queue (some poison), deletes a
//! few processed items, waits until everything settles and prints what
//! happened: items by status, removal audits, dead letters by kind, and each
//! mapping's counts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use pipeline_core::{DeadLetter, Item, ItemStatus, ItemWriter, Job, OutgoingMessage, Producer, SqsQueue};

use crate::esm::{DrainOptions, Emulator, EmulatorOptions, EmulatorReport};
use crate::invoke::Invoker;
use crate::provision::ProvisionedStack;

/// How much traffic the demo drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Valid items written.
    pub items: usize,
    /// Items written with a negative quantity (rejected, dead-lettered).
    pub invalid_items: usize,
    /// Processed items deleted afterwards (removal audits).
    pub deletes: usize,
    /// How long to wait for the pipeline to settle.
    pub deadline: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { items: 25, invalid_items: 2, deletes: 3, deadline: Duration::from_secs(180) }
    }
}

/// What the demo saw at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// What the demo sent in.
    pub traffic: Vec<String>,
    /// Items by status.
    pub items: BTreeMap<String, usize>,
    /// Removal audit records.
    pub audits: usize,
    /// Dead letters by queue, then by error kind (`raw` for messages SQS
    /// moved after maxReceiveCount).
    pub dead_letters: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per-mapping counts.
    pub mappings: Vec<String>,
    /// Whether everything settled before the deadline.
    pub settled: bool,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== pipeline demo summary ({})", if self.settled { "settled" } else { "DID NOT SETTLE" })?;
        writeln!(f, "traffic:")?;
        for line in &self.traffic {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "items by status:")?;
        for (status, n) in &self.items {
            writeln!(f, "  {status:<10} {n}")?;
        }
        writeln!(f, "removal audit records: {}", self.audits)?;
        writeln!(f, "dead letters:")?;
        for (queue, kinds) in &self.dead_letters {
            let total: usize = kinds.values().sum();
            let detail: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            writeln!(
                f,
                "  {queue:<28} {total} {}",
                if detail.is_empty() { String::new() } else { format!("({})", detail.join(", ")) }
            )?;
        }
        writeln!(f, "event source mappings:")?;
        for m in &self.mappings {
            writeln!(f, "  {m}")?;
        }
        Ok(())
    }
}

fn id_of(stack: &ProvisionedStack, logical: &str) -> Result<String, String> {
    stack.queues.get(logical).map(|q| q.url.clone()).ok_or_else(|| format!("the template has no queue {logical}"))
}

/// Runs the demo against a provisioned stack, invoking functions through
/// `invoker`.
pub async fn run<I: Invoker + 'static>(
    sdk: &SdkConfig,
    stack: &ProvisionedStack,
    invoker: Arc<I>,
    options: DemoOptions,
) -> Result<(DemoSummary, EmulatorReport), String> {
    let table = stack.tables.get("ItemsTable").map(|t| t.name.clone()).ok_or("the template has no ItemsTable")?;
    let processing = id_of(stack, "ProcessingQueue")?;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let running = Emulator::start(sdk, stack, invoker, EmulatorOptions::fast()).await.map_err(|e| e.to_string())?;

    let run_id = Utc::now().format("%H%M%S").to_string();
    let writer = ItemWriter::new(ddb.clone(), &table);
    let mut items: Vec<Item> = (0..options.items)
        .map(|i| {
            let mut item = Item::new(
                &format!("{run_id}-{i:03}"),
                format!("  sample   item {i} "),
                format!("{}.{:02}", 1 + i % 40, (i * 37) % 100).parse().unwrap_or_default(),
                1 + (i as i64 % 5),
                Utc::now(),
            );
            item.tags = ["Demo".to_owned(), format!(" Batch-{} ", i % 3)].into_iter().collect();
            item
        })
        .collect();
    items.extend(
        (0..options.invalid_items)
            .map(|i| Item::new(&format!("{run_id}-bad{i}"), "broken", Default::default(), -3, Utc::now())),
    );
    tracing::info!(items = items.len(), table = %table, "writing items");
    let written = writer.batch_put(&items).await;
    for (i, why) in &written.failed {
        tracing::warn!(item = %items[*i].id(), %why, "item not written");
    }

    let producer = Producer::new(SqsQueue::new(sqs.clone(), &processing));
    let mut jobs: Vec<OutgoingMessage> = items
        .iter()
        .take(3)
        .filter_map(|item| OutgoingMessage::json(&Job::ProcessItem { item_id: item.id().to_owned(), version: 1 }).ok())
        .collect();
    jobs.push(OutgoingMessage::new("{ this is not a job"));
    jobs.push(OutgoingMessage::new(r#"{"type":"explode_item","item_id":"nobody"}"#));
    tracing::info!(jobs = jobs.len(), "sending jobs straight to the processing queue (3 duplicates, 2 poison)");
    let sent = producer.send(jobs).await;
    for (i, why) in &sent.failed {
        tracing::warn!(job = i, %why, "job not sent");
    }

    // Once the first items are processed, delete some: REMOVE records become
    // removal audit jobs.
    let deletes: Vec<&Item> = items.iter().take(options.deletes).collect();
    let deadline = tokio::time::Instant::now() + options.deadline;
    for item in &deletes {
        loop {
            let current = get(&ddb, &table, item.id()).await;
            match current {
                Some(i) if i.status == ItemStatus::Processed => {
                    let _ = writer
                        .delete(item.id(), i.version)
                        .await
                        .map_err(|e| tracing::warn!(error = %e, "delete failed"));
                    break;
                }
                _ if tokio::time::Instant::now() > deadline => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let report = running.drain(DrainOptions { idle_polls: 3, deadline: left.max(Duration::from_secs(5)) }).await;

    let mut summary = DemoSummary { settled: report.drained, ..DemoSummary::default() };
    summary.traffic = vec![
        format!(
            "{} items written ({} with a negative quantity), {} not written",
            written.written,
            options.invalid_items,
            written.failed.len()
        ),
        format!("{} jobs sent straight to the queue (3 duplicates of stream jobs, 2 poison bodies)", sent.sent),
        format!("{} processed items deleted", deletes.len()),
    ];
    let mut start = None;
    loop {
        let page =
            ddb.scan().table_name(&table).set_exclusive_start_key(start).send().await.map_err(|e| e.to_string())?;
        for raw in page.items.unwrap_or_default() {
            match raw.get("pk") {
                Some(AttributeValue::S(pk)) if pk.starts_with("AUDIT#") => summary.audits += 1,
                Some(AttributeValue::S(pk)) if pk.starts_with("ITEM#") => {
                    let status = match raw.get("status") {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => "?".to_owned(),
                    };
                    *summary.items.entry(status).or_default() += 1;
                }
                _ => {}
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    for logical in ["ProcessingDeadLetterQueue", "StreamDeadLetterQueue", "StreamFailureQueue"] {
        if let Ok(url) = id_of(stack, logical) {
            summary.dead_letters.insert(logical.to_owned(), peek_kinds(&sqs, &url).await);
        }
    }
    summary.mappings = report.mappings.iter().map(ToString::to_string).collect();
    Ok((summary, report))
}

async fn get(ddb: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> Option<Item> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(Item::pk_for(id)))
        .key("sk", AttributeValue::S(pipeline_core::model::ITEM_SK.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    serde_dynamo::from_item(out.item?).ok()
}

/// Counts the messages of a queue by error kind without consuming them:
/// they are hidden while counted, then made visible again.
async fn peek_kinds(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    let mut handles = Vec::new();
    loop {
        let Ok(out) =
            sqs.receive_message().queue_url(url).max_number_of_messages(10).visibility_timeout(60).send().await
        else {
            break;
        };
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let body = m.body().unwrap_or_default();
            let kind = match DeadLetter::from_json(body) {
                Ok(letter) => letter.error.kind,
                Err(_) if body.contains("DDBStreamBatchInfo") => "stream batch".to_owned(),
                Err(_) => "raw".to_owned(),
            };
            *kinds.entry(kind).or_default() += 1;
            handles.extend(m.receipt_handle);
        }
    }
    for handle in handles {
        let _ =
            sqs.change_message_visibility().queue_url(url).receipt_handle(handle).visibility_timeout(0).send().await;
    }
    kinds
}
