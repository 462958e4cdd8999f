//! `dlq stats` and `dlq peek`: what is in a dead-letter queue, without
//! consuming it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::error::Result;
use super::filter::{matches_all, Filter};
use super::message::{Content, DlqMessage};
use super::queue::{name_from_url, OpsContext, QueueFacts, QueueRef};
use super::scan::scan;

/// How long a scan hides the messages it reads (they are made visible
/// again as soon as it ends).
const SCAN_VISIBILITY: Duration = Duration::from_secs(60);

/// `1d 2h`, `3m 4s`, `0s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{mins}m {secs}s"),
        (0, _, 0) => format!("{hours}h"),
        (0, _, _) => format!("{hours}h {mins}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d {hours}h"),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The oldest message of a dead-letter queue and when SQS deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oldest {
    /// Its id.
    pub message_id: String,
    /// `SentTimestamp`: on a standard queue, for a message SQS moved, the
    /// time it was first sent to its SOURCE queue (retention counts from
    /// there).
    pub sent_at: DateTime<Utc>,
    /// When the retention period ends and SQS deletes it.
    pub expires_at: DateTime<Utc>,
}

/// A queue that uses this one as its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceQueue {
    /// Its URL.
    pub url: String,
    /// Its `maxReceiveCount`.
    pub max_receive_count: Option<u32>,
}

/// What `dlq stats` reports.
#[derive(Debug, Clone)]
pub struct DlqStats {
    /// The queue.
    pub queue: QueueRef,
    /// Its counts and settings.
    pub facts: QueueFacts,
    /// The queues whose RedrivePolicy names it.
    pub sources: Vec<SourceQueue>,
    /// Messages read for the counts below.
    pub scanned: usize,
    /// The oldest message read.
    pub oldest: Option<Oldest>,
    /// Counts by error kind (`raw`, `stream_batch`, envelope kinds).
    pub by_kind: BTreeMap<String, usize>,
    /// Counts by processor (`-` for raw messages).
    pub by_processor: BTreeMap<String, usize>,
    /// Counts by source kind.
    pub by_source: BTreeMap<String, usize>,
    /// When the stats were taken.
    pub at: DateTime<Utc>,
}

/// Reads the queue's counts, then up to `scan_limit` messages (made
/// visible again at once) for the oldest message and the counts by kind,
/// processor and source.
pub async fn stats(ctx: &OpsContext, queue: &QueueRef, scan_limit: usize) -> Result<DlqStats> {
    // Counts first: the scan itself puts messages in flight.
    let facts = ctx.facts(queue).await?;
    let mut sources = Vec::new();
    for url in ctx.dead_letter_sources(queue).await? {
        let src = QueueRef { name: name_from_url(&url).to_owned(), url: url.clone(), arn: String::new(), fifo: false };
        let max_receive_count = ctx.facts(&src).await.ok().and_then(|f| f.redrive_policy).map(|p| p.max_receive_count);
        sources.push(SourceQueue { url, max_receive_count });
    }
    let messages = scan(ctx, queue, scan_limit, SCAN_VISIBILITY).await?;
    let at = Utc::now();
    let mut s = DlqStats {
        queue: queue.clone(),
        facts,
        sources,
        scanned: messages.len(),
        oldest: None,
        by_kind: BTreeMap::new(),
        by_processor: BTreeMap::new(),
        by_source: BTreeMap::new(),
        at,
    };
    let retention = chrono::Duration::from_std(s.facts.retention).unwrap_or_default();
    for m in &messages {
        *s.by_kind.entry(m.kind().to_owned()).or_default() += 1;
        *s.by_processor.entry(m.processor().unwrap_or("-").to_owned()).or_default() += 1;
        *s.by_source.entry(m.source_kind().to_owned()).or_default() += 1;
        if let Some(sent) = m.sent_at() {
            if s.oldest.as_ref().is_none_or(|o| sent < o.sent_at) {
                s.oldest =
                    Some(Oldest { message_id: m.message_id.clone(), sent_at: sent, expires_at: sent + retention });
            }
        }
    }
    Ok(s)
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

impl DlqStats {
    /// The stats as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "queue": {"name": self.queue.name, "url": self.queue.url, "arn": self.queue.arn, "fifo": self.queue.fifo},
            "visible": self.facts.visible,
            "in_flight": self.facts.in_flight,
            "delayed": self.facts.delayed,
            "retention_seconds": self.facts.retention.as_secs(),
            "sources": self.sources.iter().map(|s| json!({"url": s.url, "max_receive_count": s.max_receive_count})).collect::<Vec<_>>(),
            "scanned": self.scanned,
            "oldest": self.oldest.as_ref().map(|o| json!({
                "message_id": o.message_id,
                "sent_at": rfc3339(o.sent_at),
                "age_seconds": (self.at - o.sent_at).num_seconds().max(0),
                "expires_at": rfc3339(o.expires_at),
                "expires_in_seconds": (o.expires_at - self.at).num_seconds().max(0),
            })),
            "by_kind": self.by_kind,
            "by_processor": self.by_processor,
            "by_source": self.by_source,
        })
    }
}

impl fmt::Display for DlqStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = &self.queue;
        writeln!(f, "queue        {}", q.name)?;
        writeln!(f, "url          {}", q.url)?;
        writeln!(
            f,
            "type         {}, retention {}",
            if q.fifo { "FIFO" } else { "standard" },
            human(self.facts.retention)
        )?;
        if self.sources.is_empty() {
            writeln!(f, "dead-letter  of no queue (no RedrivePolicy names it; envelopes and OnFailure documents may still be sent here)")?;
        } else {
            let list: Vec<String> = self
                .sources
                .iter()
                .map(|s| match s.max_receive_count {
                    Some(n) => format!("{} (maxReceiveCount {n})", name_from_url(&s.url)),
                    None => name_from_url(&s.url).to_owned(),
                })
                .collect();
            writeln!(f, "dead-letter  of {}", list.join(", "))?;
        }
        writeln!(
            f,
            "messages     {} visible, {} in flight, {} delayed",
            self.facts.visible, self.facts.in_flight, self.facts.delayed
        )?;
        match &self.oldest {
            None => writeln!(f, "oldest       -")?,
            Some(o) => {
                let age = (self.at - o.sent_at).to_std().unwrap_or_default();
                let left = (o.expires_at - self.at).to_std().unwrap_or_default();
                let qualifier = if q.fifo { "at the latest " } else { "" };
                writeln!(
                    f,
                    "oldest       sent {} ({} ago); SQS deletes it {qualifier}in {} ({})",
                    rfc3339(o.sent_at),
                    human(age),
                    human(left),
                    rfc3339(o.expires_at)
                )?;
            }
        }
        writeln!(f, "by kind      {}", counts(&self.by_kind))?;
        writeln!(f, "by processor {}", counts(&self.by_processor))?;
        writeln!(f, "by source    {}", counts(&self.by_source))?;
        let total = self.facts.visible;
        if (self.scanned as u64) < total {
            writeln!(f, "(counts from {} of ~{total} messages; raise --scan to read more)", self.scanned)?;
        }
        Ok(())
    }
}

/// Up to `n` messages (that pass `filters`), made visible again at once.
pub async fn peek(ctx: &OpsContext, queue: &QueueRef, n: usize, filters: &[Filter]) -> Result<Vec<DlqMessage>> {
    let now = Utc::now();
    // With filters, read further so that `n` matching ones can be shown.
    let limit = if filters.is_empty() { n } else { n.saturating_mul(10).max(100) };
    let mut messages = scan(ctx, queue, limit, SCAN_VISIBILITY).await?;
    messages.retain(|m| matches_all(filters, m, now));
    messages.truncate(n);
    Ok(messages)
}

/// One message as JSON, with its envelope (or OnFailure pointer) decoded.
pub fn message_json(m: &DlqMessage, now: DateTime<Utc>) -> Value {
    let mut v = m.to_json();
    if let Value::Object(o) = &mut v {
        o.insert("sentAt".into(), m.sent_at().map(rfc3339).into());
        o.insert("ageSeconds".into(), m.sent_at().map(|t| (now - t).num_seconds().max(0)).into());
        o.insert("receiveCount".into(), m.receive_count().into());
        o.insert("kind".into(), m.kind().into());
        o.insert("processor".into(), m.processor().into());
        o.insert("source".into(), m.source_kind().into());
        let envelope = match &m.content {
            Content::Envelope(l) => serde_json::to_value(l).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        o.insert("envelope".into(), envelope);
        let batch = match &m.content {
            Content::StreamBatch(b) => json!({
                "streamArn": b.stream_arn, "shardId": b.shard_id,
                "startSequenceNumber": b.start_sequence_number, "endSequenceNumber": b.end_sequence_number,
                "batchSize": b.batch_size, "condition": b.condition,
            }),
            _ => Value::Null,
        };
        o.insert("streamBatch".into(), batch);
    }
    v
}

fn cut(s: &str, n: usize) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n.saturating_sub(1)).collect::<String>())
    }
}

/// Messages as a table: id, age, receive count, kind, processor, source,
/// and the error message (or the start of a raw body).
pub fn table(messages: &[DlqMessage], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:>8}  {:>4}  {:<12}  {:<16}  {:<15}  DETAIL",
        "MESSAGE ID", "AGE", "RECV", "KIND", "PROCESSOR", "SOURCE"
    );
    for m in messages {
        let age = m.sent_at().map(|t| human((now - t).to_std().unwrap_or_default())).unwrap_or_else(|| "?".into());
        let recv = m.receive_count().map(|n| n.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "{:<36}  {:>8}  {:>4}  {:<12}  {:<16}  {:<15}  {}",
            m.message_id,
            age,
            recv,
            cut(m.kind(), 12),
            cut(m.processor().unwrap_or("-"), 16),
            m.source_kind(),
            cut(&m.detail(), 100)
        );
    }
    if messages.is_empty() {
        out.push_str("(no messages)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(65)), "1m 5s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(human(Duration::from_secs(14 * 86_400 - 1)), "13d 23h");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
