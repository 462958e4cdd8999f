//! `dlq redrive`: moving dead-lettered messages back where they can be
//! processed, without losing one (LAMBDA-SEMANTICS.md section 6).
//!
//! # Client-side move (the default)
//!
//! One batch at a time:
//!
//! 1. receive up to `batch` messages with a visibility timeout longer than
//!    one batch's work (`--visibility-timeout`, default 120 s): no one
//!    else sees them meanwhile;
//! 2. decide each one's fate ([`Plan`]): back to a queue (the original body
//!    and message attributes, see [`outgoing_for`]), replay through the
//!    stream processor (OnFailure ranges, stream-record envelopes), or skip
//!    (filter, unreadable, dead-lettered again during this run);
//! 3. send (`SendMessageBatch`, every entry checked, retryable failures
//!    retried);
//! 4. delete from the dead-letter queue ONLY the messages whose send (or
//!    replay) succeeded (`DeleteMessageBatch`, every entry checked).
//!
//! A crash between 3 and 4 leaves the batch in the dead-letter queue; it
//! becomes visible again after the visibility timeout and the next run
//! moves it again: at most one batch (`--batch-size`, at most 10; 1 with
//! `--rate` below 2 per second) is duplicated, nothing is lost. On a FIFO
//! target the deduplication id is derived from the dead-letter message id,
//! so a repeat within SQS's 5-minute deduplication window is dropped by SQS.
//! Skipped and failed messages are made visible again when the run ends.
//! A message sent to the dead-letter queue after the run started (a
//! redriven message that failed again) is left for the next run, so a run
//! always ends.
//!
//! # Server-side move (`--server-side`)
//!
//! `StartMessageMoveTask` moves every message of the queue, as it is, back
//! to its source queue (or to `--to`), and the task's progress is polled
//! until it ends. Only raw messages can go that way (an envelope must be
//! unwrapped), so a queue holding envelopes or OnFailure documents, and an
//! endpoint without the API (the local emulator), fall back to the
//! client-side move, saying so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::error::{aws_error, classify, Failure, OpsError, Result};
use super::filter::{matches_all, Filter};
use super::message::{outgoing_for, Content, DlqMessage, Outgoing};
use super::progress::Progress;
use super::queue::{name_from_url, OpsContext, QueueRef};
use super::replay::Replayer;
use super::scan::{delete, not_a_dlq, receive, scan, set_visibility};
use super::sender::send_all;

/// How to redrive.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// Send every message here instead of its source queue.
    pub to: Option<String>,
    /// Move at most this many messages.
    pub max: Option<usize>,
    /// At most this many messages per second.
    pub rate: Option<f64>,
    /// Messages per receive (1-10). Default 10, or `rate` rounded down
    /// (at least 1) when a rate is given.
    pub batch_size: Option<usize>,
    /// Only messages passing every filter move.
    pub filters: Vec<Filter>,
    /// Decide and report, move nothing.
    pub dry_run: bool,
    /// Use StartMessageMoveTask where the endpoint supports it.
    pub server_side: bool,
    /// How long a received batch stays hidden (must exceed one batch's
    /// work; a crash leaves it hidden this long).
    pub visibility_timeout: Duration,
    /// Allow `--to` to name a queue that does not use this dead-letter queue.
    pub allow_any_target: bool,
    /// Delete OnFailure documents whose range is (partly) gone from the
    /// stream, after replaying what is left and reporting the gap.
    pub drop_trimmed: bool,
    /// Stops the run after the batch in progress.
    pub cancel: CancellationToken,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        Self {
            to: None,
            max: None,
            rate: None,
            batch_size: None,
            filters: Vec::new(),
            dry_run: false,
            server_side: false,
            visibility_timeout: Duration::from_secs(120),
            allow_any_target: false,
            drop_trimmed: false,
            cancel: CancellationToken::new(),
        }
    }
}

impl RedriveOptions {
    /// The receive batch size these options give.
    pub fn effective_batch_size(&self) -> usize {
        match (self.batch_size, self.rate) {
            (Some(b), _) => b.clamp(1, 10),
            (None, Some(r)) => (r.floor() as usize).clamp(1, 10),
            (None, None) => 10,
        }
    }
}

/// What a server-side move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSideReport {
    /// The task handle.
    pub task_handle: String,
    /// `COMPLETED`, `FAILED`, `CANCELLED`, ...
    pub status: String,
    /// Approximate messages moved.
    pub moved: i64,
    /// Approximate messages the task set out to move.
    pub to_move: Option<i64>,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
}

/// What a redrive did (or, in a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct RedriveReport {
    /// The dead-letter queue.
    pub queue: String,
    /// A dry run: nothing was moved.
    pub dry_run: bool,
    /// Messages that left the dead-letter queue: sent back to a queue, or
    /// replayed through the stream processor (would, in a dry run).
    pub moved: usize,
    /// Of `moved`, by target queue name.
    pub by_target: BTreeMap<String, usize>,
    /// Of `moved`, messages replayed through the stream processor.
    pub replayed: usize,
    /// Stream records those replays handed to the stream processor.
    pub replayed_records: usize,
    /// Messages left in the dead-letter queue on purpose.
    pub skipped: usize,
    /// Why they were skipped, with counts.
    pub skipped_reasons: BTreeMap<String, usize>,
    /// Messages that could not be moved (left in the dead-letter queue).
    pub failed: usize,
    /// Each failure: message id and reason.
    pub failures: Vec<String>,
    /// Messages sent but not deleted from the dead-letter queue: the next
    /// run sends them again.
    pub not_deleted: usize,
    /// OnFailure documents deleted although part of their range was gone
    /// (`--drop-trimmed`), with the gap.
    pub dropped_ranges: Vec<String>,
    /// Messages in flight in the dead-letter queue when the run ended.
    pub in_flight_left: u64,
    /// Why the server-side move was not used, if it was asked for.
    pub fallback: Option<String>,
    /// The server-side task, if one ran.
    pub server_side: Option<ServerSideReport>,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// How long it took.
    pub elapsed: Duration,
}

impl RedriveReport {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "queue": self.queue, "dry_run": self.dry_run, "moved": self.moved, "by_target": self.by_target,
            "replayed": self.replayed, "replayed_records": self.replayed_records,
            "skipped": self.skipped, "skipped_reasons": self.skipped_reasons,
            "failed": self.failed, "failures": self.failures, "not_deleted": self.not_deleted,
            "dropped_ranges": self.dropped_ranges, "in_flight_left": self.in_flight_left,
            "fallback": self.fallback, "interrupted": self.interrupted,
            "server_side": self.server_side.as_ref().map(|s| json!({
                "task_handle": s.task_handle, "status": s.status, "moved": s.moved, "to_move": s.to_move,
                "failure_reason": s.failure_reason })),
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }

    /// Whether everything asked for was done: nothing failed, and nothing
    /// was skipped for another reason than `--filter` or a repeat failure
    /// during the run.
    pub fn ok(&self) -> bool {
        self.failed == 0
            && self.not_deleted == 0
            && self.skipped_reasons.keys().all(|k| k == SKIP_FILTER || k == SKIP_AGAIN)
            && self.server_side.as_ref().is_none_or(|s| s.status == "COMPLETED" && s.failure_reason.is_none())
    }
}

impl fmt::Display for RedriveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.fallback {
            writeln!(f, "note: {why}")?;
        }
        if let Some(s) = &self.server_side {
            let of = s.to_move.map(|n| format!(" of {n}")).unwrap_or_default();
            writeln!(
                f,
                "server-side move of {}: {} ({} moved{of}){}",
                self.queue,
                s.status,
                s.moved,
                s.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            )?;
            return Ok(());
        }
        let (verb, title) = if self.dry_run { ("would move", "dry run of redrive") } else { ("moved", "redrive") };
        writeln!(
            f,
            "{title} of {}: {verb} {}, skipped {}, failed {} ({:.1}s){}",
            self.queue,
            self.moved,
            self.skipped,
            self.failed,
            self.elapsed.as_secs_f64(),
            if self.dry_run { "; nothing was moved" } else { "" }
        )?;
        for (target, n) in &self.by_target {
            writeln!(f, "  to {target}: {n}")?;
        }
        if self.replayed > 0 {
            let records = if self.dry_run { String::new() } else { format!(" ({} records)", self.replayed_records) };
            writeln!(f, "  replayed through the stream processor: {}{records}", self.replayed)?;
        }
        for (why, n) in &self.skipped_reasons {
            writeln!(f, "  skipped {n}: {why}")?;
        }
        for failure in &self.failures {
            writeln!(f, "  FAILED {failure}")?;
        }
        for gap in &self.dropped_ranges {
            writeln!(f, "  DROPPED (--drop-trimmed) {gap}")?;
        }
        if self.not_deleted > 0 {
            writeln!(
                f,
                "  warning: {} message(s) were sent but could not be deleted from the dead-letter queue; the next \
                 redrive sends them again (duplicates)",
                self.not_deleted
            )?;
        }
        if self.interrupted {
            writeln!(f, "  interrupted: run the command again to move the rest")?;
        }
        if self.in_flight_left > 0 && !self.dry_run {
            writeln!(
                f,
                "  note: {} message(s) are in flight in the dead-letter queue (an interrupted run or another \
                 consumer); they become visible again after their visibility timeout: run again then",
                self.in_flight_left
            )?;
        }
        Ok(())
    }
}

/// Why a message that does not match `--filter` stays.
pub const SKIP_FILTER: &str = "does not match --filter";
/// Why a message dead-lettered during the run stays.
pub const SKIP_AGAIN: &str = "dead-lettered again during this run (run again to retry it)";

/// What happens to one message.
#[derive(Debug, Clone)]
enum Plan {
    Send(QueueRef, Outgoing),
    ReplayRange(super::message::StreamBatch),
    ReplayRecord(Value),
    Skip(String),
}

/// Finds the queue a message goes back to: `--to`, else the envelope's
/// `source.arn` (or a raw message's `DeadLetterQueueSourceArn`), else the
/// one queue whose RedrivePolicy names the dead-letter queue.
struct Targets<'a> {
    ctx: &'a OpsContext,
    dlq: &'a QueueRef,
    explicit: Option<QueueRef>,
    by_arn: HashMap<String, QueueRef>,
    sources: Option<Vec<String>>,
}

impl Targets<'_> {
    async fn for_arn(&mut self, arn: &str, m: &DlqMessage) -> Result<QueueRef> {
        if let Some(q) = self.by_arn.get(arn) {
            return Ok(q.clone());
        }
        let q = self.ctx.queue(arn).await.map_err(|e| {
            OpsError::usage(format!(
                "message {} of {} names its source queue {arn}, which cannot be used ({e}). Fix: pass --to QUEUE",
                m.message_id, self.dlq.name
            ))
        })?;
        self.by_arn.insert(arn.to_owned(), q.clone());
        Ok(q)
    }

    async fn for_message(&mut self, m: &DlqMessage) -> Result<QueueRef> {
        if let Some(q) = &self.explicit {
            return Ok(q.clone());
        }
        let named = match &m.content {
            Content::Envelope(l) => l.source.arn.clone(),
            Content::Raw => m.attributes.get("DeadLetterQueueSourceArn").cloned(),
            _ => None,
        };
        if let Some(arn) = named.filter(|a| a.starts_with("arn:") && a.contains(":sqs:")) {
            return self.for_arn(&arn, m).await;
        }
        if self.sources.is_none() {
            self.sources = Some(self.ctx.dead_letter_sources(self.dlq).await?);
        }
        match self.sources.as_deref().unwrap_or_default() {
            [one] => {
                let one = one.clone();
                if let Some(q) = self.by_arn.values().find(|q| q.url == one) {
                    return Ok(q.clone());
                }
                let q = self.ctx.queue(&one).await?;
                self.by_arn.insert(q.arn.clone(), q.clone());
                Ok(q)
            }
            [] => Err(OpsError::usage(format!(
                "message {} of {} does not say where it came from, and no queue uses {} as its dead-letter queue \
                 (ListDeadLetterSourceQueues is empty). Fix: pass --to QUEUE",
                m.message_id, self.dlq.name, self.dlq.name
            ))),
            many => Err(OpsError::usage(format!(
                "message {} of {} does not say where it came from, and several queues use {} as their dead-letter \
                 queue ({}). Fix: pass --to QUEUE (and --filter to pick the messages for it)",
                m.message_id,
                self.dlq.name,
                self.dlq.name,
                many.iter().map(|u| name_from_url(u)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// Checks that `target` uses `dlq` as its dead-letter queue.
async fn check_target(ctx: &OpsContext, dlq: &QueueRef, target: &QueueRef) -> Result<()> {
    let facts = ctx.facts(target).await?;
    match facts.redrive_policy {
        Some(p) if p.dead_letter_target_arn == dlq.arn => Ok(()),
        other => Err(OpsError::usage(format!(
            "{} is not a dead-letter queue of {} (the target's RedrivePolicy {}), so messages that fail again \
             would not come back to {}. Fix: check --to (the queue whose RedrivePolicy names {}), or pass \
             --allow-any-target if this is intended",
            dlq.name,
            target.name,
            match other {
                Some(p) => format!("names {}", p.dead_letter_target_arn),
                None => "is not set".to_owned(),
            },
            dlq.name,
            dlq.name
        ))),
    }
}

/// Redrives `dlq`; `replayer` handles stream records (without one they
/// are skipped, with the reason). See the module docs.
pub async fn redrive(
    ctx: &OpsContext,
    dlq: &QueueRef,
    replayer: Option<&Replayer>,
    options: &RedriveOptions,
) -> Result<RedriveReport> {
    let started = Instant::now();
    let dlq_facts = ctx.facts(dlq).await?;
    if let Some(p) = &dlq_facts.redrive_policy {
        if ctx.dead_letter_sources(dlq).await?.is_empty() {
            return Err(not_a_dlq(
                dlq,
                &format!(
                    "it has a RedrivePolicy of its own (dead-letter queue {}) and no queue names it as dead-letter \
                     queue; did you mean {}?",
                    p.dead_letter_target_arn,
                    p.dead_letter_target_arn.rsplit(':').next().unwrap_or_default()
                ),
            ));
        }
    }
    let explicit = match &options.to {
        Some(spec) => {
            let q = ctx.queue(spec).await?;
            if q.url == dlq.url {
                return Err(OpsError::usage("--to names the dead-letter queue itself"));
            }
            if !options.allow_any_target {
                check_target(ctx, dlq, &q).await?;
            }
            Some(q)
        }
        None => None,
    };
    let mut report = RedriveReport { queue: dlq.name.clone(), dry_run: options.dry_run, ..Default::default() };

    if options.server_side {
        if options.dry_run || options.max.is_some() || !options.filters.is_empty() {
            return Err(OpsError::usage(
                "--server-side moves every message of the queue: --dry-run, --max and --filter need the \
                 client-side move (drop --server-side)",
            ));
        }
        match server_side(ctx, dlq, explicit.as_ref(), options).await? {
            ServerSide::Done(s) => {
                report.server_side = Some(s);
                report.elapsed = started.elapsed();
                return Ok(report);
            }
            ServerSide::NotUsed(why) => report.fallback = Some(why),
        }
    }

    let mut targets = Targets { ctx, dlq, explicit, by_arn: HashMap::new(), sources: None };
    let batch = options.effective_batch_size();
    let run_start: DateTime<Utc> = Utc::now();
    let mut seen: HashSet<String> = HashSet::new();
    // Messages left in the queue on purpose (skipped, failed, dry run):
    // made visible again when the run ends.
    let mut hidden: HashMap<String, String> = HashMap::new();
    let mut taken = 0usize;
    let depth = dlq_facts.visible + dlq_facts.delayed;
    let total = options.max.map_or(depth, |m| depth.min(m as u64));
    let mut progress = Progress::new(if options.dry_run { "redrive (dry run)" } else { "redrive" }, Some(total));

    let outcome: Result<()> = async {
        loop {
            if options.cancel.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let want = match options.max {
                Some(max) if taken >= max => break,
                Some(max) => batch.min(max - taken),
                None => batch,
            };
            if let Some(rate) = options.rate.filter(|r| *r > 0.0) {
                let due = Duration::from_secs_f64(taken as f64 / rate);
                let now = started.elapsed();
                if due > now {
                    tokio::select! {
                        _ = options.cancel.cancelled() => { report.interrupted = true; break; }
                        _ = tokio::time::sleep(due - now) => {}
                    }
                }
            }
            let messages = receive(ctx, dlq, want, options.visibility_timeout, Duration::from_secs(1)).await?;
            let mut fresh = Vec::new();
            for m in messages {
                if seen.contains(&m.message_id) {
                    hidden.insert(m.message_id.clone(), m.receipt_handle.clone());
                } else {
                    seen.insert(m.message_id.clone());
                    // Until it is deleted, a message is made visible again
                    // when the run ends (or fails).
                    hidden.insert(m.message_id.clone(), m.receipt_handle.clone());
                    fresh.push(m);
                }
            }
            if fresh.is_empty() {
                break;
            }

            // Decide.
            let mut plans = Vec::with_capacity(fresh.len());
            for m in &fresh {
                let plan = plan(m, &mut targets, replayer, options, run_start).await?;
                plans.push(plan);
            }

            // Act.
            let mut sends: BTreeMap<String, (QueueRef, Vec<(usize, Outgoing)>)> = BTreeMap::new();
            for (i, plan) in plans.iter().enumerate() {
                match plan {
                    Plan::Skip(why) => {
                        report.skipped += 1;
                        *report.skipped_reasons.entry(why.clone()).or_default() += 1;
                    }
                    _ if options.dry_run => {
                        taken += 1;
                        report.moved += 1;
                        match plan {
                            Plan::Send(q, _) => *report.by_target.entry(q.name.clone()).or_default() += 1,
                            _ => report.replayed += 1,
                        }
                    }
                    Plan::Send(q, out) => {
                        taken += 1;
                        sends.entry(q.url.clone()).or_insert_with(|| (q.clone(), Vec::new())).1.push((i, out.clone()));
                    }
                    Plan::ReplayRange(_) | Plan::ReplayRecord(_) => taken += 1,
                }
            }
            if !options.dry_run {
                for (_, (target, entries)) in sends {
                    let outgoing: Vec<Outgoing> = entries.iter().map(|(_, o)| o.clone()).collect();
                    let sent = send_all(ctx, &target, &outgoing).await;
                    let mut to_delete = Vec::new();
                    for ((i, _), result) in entries.iter().zip(sent) {
                        let m = &fresh[*i];
                        match result {
                            Ok(()) => to_delete.push(*i),
                            Err(why) => {
                                report.failed += 1;
                                report.failures.push(format!("{}: not sent to {}: {why}", m.message_id, target.name));
                            }
                        }
                    }
                    let handles: Vec<String> = to_delete.iter().map(|i| fresh[*i].receipt_handle.clone()).collect();
                    for (i, deleted) in to_delete.iter().zip(delete(ctx, dlq, &handles).await) {
                        let m = &fresh[*i];
                        report.moved += 1;
                        *report.by_target.entry(target.name.clone()).or_default() += 1;
                        if deleted.is_ok() {
                            hidden.remove(&m.message_id);
                        }
                        if let Err(why) = deleted {
                            report.not_deleted += 1;
                            report.failures.push(format!(
                                "{}: sent to {} but not deleted from {} ({why}): the next redrive sends it again",
                                m.message_id, target.name, dlq.name
                            ));
                        }
                    }
                }
                for (m, plan) in fresh.iter().zip(plans.iter()) {
                    match plan {
                        Plan::ReplayRange(b) => {
                            let Some(replayer) = replayer else { continue };
                            // Re-reading and replaying a range may take several
                            // invocations: keep the document hidden meanwhile.
                            let longer = options.visibility_timeout.max(Duration::from_secs(900));
                            set_visibility(ctx, dlq, std::slice::from_ref(&m.receipt_handle), longer).await;
                            let r = replayer.replay_range(b).await;
                            report.replayed_records += r.replayed;
                            let detail = format!(
                                "{} records read, {} filtered out by the mapping, {} replayed",
                                r.read, r.filtered, r.replayed
                            );
                            let deletable = r.complete() || (r.failure.is_none() && options.drop_trimmed);
                            if deletable {
                                if let Some(gap) = &r.missing {
                                    report.dropped_ranges.push(format!("{}: {gap} ({detail})", m.message_id));
                                }
                                if finish_one(ctx, dlq, m, &mut report, "the stream processor").await {
                                    hidden.remove(&m.message_id);
                                }
                                report.replayed += 1;
                            } else {
                                report.failed += 1;
                                let why = match (&r.failure, &r.missing) {
                                    (Some(f), _) => f.clone(),
                                    (None, Some(gap)) => format!(
                                        "{gap}; the pointer is left in the queue (pass --drop-trimmed to delete it \
                                         after replaying what is left)"
                                    ),
                                    (None, None) => "incomplete".to_owned(),
                                };
                                report.failures.push(format!("{}: {} ({detail}): {why}", m.message_id, b.range()));
                            }
                        }
                        Plan::ReplayRecord(record) => {
                            let Some(replayer) = replayer else { continue };
                            match replayer.replay_record(record).await {
                                Ok(()) => {
                                    report.replayed_records += 1;
                                    if finish_one(ctx, dlq, m, &mut report, "the stream processor").await {
                                        hidden.remove(&m.message_id);
                                    }
                                    report.replayed += 1;
                                }
                                Err(why) => {
                                    report.failed += 1;
                                    report
                                        .failures
                                        .push(format!("{}: stream record not replayed: {why}", m.message_id));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            progress.update((report.moved + report.failed) as u64, || {
                format!("moved {}, skipped {}, failed {}", report.moved, report.skipped, report.failed)
            });
        }
        Ok(())
    }
    .await;
    progress.finish();
    let handles: Vec<String> = hidden.into_values().collect();
    set_visibility(ctx, dlq, &handles, Duration::ZERO).await;
    outcome?;
    report.in_flight_left = ctx.facts(dlq).await.map(|f| f.in_flight).unwrap_or(0);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Deletes a message whose replay succeeded and counts it; `false` if it
/// could not be deleted.
async fn finish_one(ctx: &OpsContext, dlq: &QueueRef, m: &DlqMessage, report: &mut RedriveReport, to: &str) -> bool {
    report.moved += 1;
    match delete(ctx, dlq, std::slice::from_ref(&m.receipt_handle)).await.pop() {
        Some(Ok(())) => true,
        Some(Err(why)) => {
            report.not_deleted += 1;
            report.failures.push(format!(
                "{}: replayed through {to} but not deleted from {} ({why}): the next redrive replays it again",
                m.message_id, dlq.name
            ));
            false
        }
        None => false,
    }
}

async fn plan(
    m: &DlqMessage,
    targets: &mut Targets<'_>,
    replayer: Option<&Replayer>,
    options: &RedriveOptions,
    run_start: DateTime<Utc>,
) -> Result<Plan> {
    if m.sent_at().is_some_and(|t| t >= run_start) {
        return Ok(Plan::Skip(SKIP_AGAIN.into()));
    }
    if !matches_all(&options.filters, m, Utc::now()) {
        return Ok(Plan::Skip(SKIP_FILTER.into()));
    }
    let no_replayer = "a stream record: replaying it needs the stream processor (pass --stack-name, or \
                       --invoke-endpoint)";
    match &m.content {
        Content::Unsupported(why) => Ok(Plan::Skip(why.clone())),
        Content::StreamBatch(b) => match replayer {
            Some(_) => Ok(Plan::ReplayRange(b.clone())),
            None if options.dry_run => Ok(Plan::ReplayRange(b.clone())),
            None => Ok(Plan::Skip(no_replayer.into())),
        },
        Content::Envelope(l) if l.source.kind == pipeline_core::dlq::SourceKind::DynamodbStream => {
            let record: Value = match serde_json::from_str(l.record.get()) {
                Ok(v) => v,
                Err(e) => return Ok(Plan::Skip(format!("the envelope's record is not valid JSON: {e}"))),
            };
            if let Some(q) = targets.explicit.clone() {
                // With --to, the stream record itself goes to that queue.
                let out = Outgoing {
                    body: record.to_string(),
                    attributes: HashMap::new(),
                    group_id: l.source.group.clone(),
                    deduplication_id: Some(format!("redrive-{}", m.message_id)),
                };
                return Ok(Plan::Send(q, out));
            }
            match replayer {
                Some(_) => Ok(Plan::ReplayRecord(record)),
                None if options.dry_run => Ok(Plan::ReplayRecord(record)),
                None => Ok(Plan::Skip(no_replayer.into())),
            }
        }
        _ => match outgoing_for(m) {
            Ok(Some(out)) => Ok(Plan::Send(targets.for_message(m).await?, out)),
            Ok(None) => Ok(Plan::Skip("nothing to send".into())),
            Err(why) => Ok(Plan::Skip(format!("cannot rebuild the original message: {why}"))),
        },
    }
}

enum ServerSide {
    Done(ServerSideReport),
    NotUsed(String),
}

async fn server_side(
    ctx: &OpsContext,
    dlq: &QueueRef,
    to: Option<&QueueRef>,
    options: &RedriveOptions,
) -> Result<ServerSide> {
    // A server-side move sends bodies as they are: envelopes would reach the
    // processors as undecodable jobs.
    let sample = scan(ctx, dlq, 10, Duration::from_secs(30)).await?;
    if let Some(m) = sample.iter().find(|m| !matches!(m.content, Content::Raw)) {
        return Ok(ServerSide::NotUsed(format!(
            "{} holds {} messages (e.g. {}), which must be unwrapped or replayed: a server-side move would send \
             them as they are; moving client-side instead",
            dlq.name,
            m.kind(),
            m.message_id
        )));
    }
    let rate = options.rate.map(|r| (r.round() as i32).clamp(1, 500));
    let started = ctx
        .sqs
        .start_message_move_task()
        .source_arn(&dlq.arn)
        .set_destination_arn(to.map(|q| q.arn.clone()))
        .set_max_number_of_messages_per_second(rate)
        .send()
        .await;
    let handle = match started {
        Ok(out) => out.task_handle.unwrap_or_default(),
        Err(e) if classify(&e) == Failure::Unsupported => {
            return Ok(ServerSide::NotUsed(format!(
                "the endpoint does not support StartMessageMoveTask (the local emulator does not implement it); \
                 falling back to a client-side move of {}",
                dlq.name
            )));
        }
        Err(e) => return Err(aws_error("sqs:StartMessageMoveTask", &dlq.arn, &e)),
    };
    let mut progress = Progress::new("server-side move", None);
    let mut cancelled = false;
    let mut unseen = 0;
    loop {
        let tasks = ctx
            .sqs
            .list_message_move_tasks()
            .source_arn(&dlq.arn)
            .max_results(10)
            .send()
            .await
            .map_err(|e| aws_error("sqs:ListMessageMoveTasks", &dlq.arn, &e))?;
        let task = tasks
            .results()
            .iter()
            .find(|t| t.task_handle() == Some(handle.as_str()))
            .or_else(|| tasks.results().first());
        if task.is_none() {
            unseen += 1;
            if unseen >= 10 {
                return Err(OpsError::usage(format!(
                    "the move task {handle} of {} does not appear in ListMessageMoveTasks; follow it in the SQS \
                     console (it may still be running)",
                    dlq.name
                )));
            }
        }
        if let Some(t) = task {
            if let Some(n) = t.approximate_number_of_messages_to_move() {
                progress.set_total(n.max(0) as u64);
            }
            let moved = t.approximate_number_of_messages_moved();
            let status = t.status().unwrap_or("UNKNOWN").to_owned();
            progress.update(moved.max(0) as u64, || status.clone());
            if status != "RUNNING" && status != "CANCELLING" {
                progress.finish();
                return Ok(ServerSide::Done(ServerSideReport {
                    task_handle: handle,
                    status,
                    moved,
                    to_move: t.approximate_number_of_messages_to_move(),
                    failure_reason: t.failure_reason().map(str::to_owned),
                }));
            }
        }
        tokio::select! {
            _ = options.cancel.cancelled(), if !cancelled => {
                cancelled = true;
                eprintln!("cancelling the move task (messages already moved stay moved)");
                if let Err(e) = ctx.sqs.cancel_message_move_task().task_handle(&handle).send().await {
                    eprintln!("{}", aws_error("sqs:CancelMessageMoveTask", &dlq.arn, &e));
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_rate_means_batches_of_one() {
        let with = |rate: Option<f64>, batch: Option<usize>| {
            RedriveOptions { rate, batch_size: batch, ..RedriveOptions::default() }.effective_batch_size()
        };
        assert_eq!(with(None, None), 10);
        assert_eq!(with(Some(0.5), None), 1);
        assert_eq!(with(Some(1.9), None), 1);
        assert_eq!(with(Some(4.0), None), 4);
        assert_eq!(with(Some(100.0), None), 10);
        assert_eq!(with(Some(100.0), Some(1)), 1);
        assert_eq!(with(None, Some(50)), 10);
    }
}
