//! Shared by the benches: deterministic Lambda events and the handlers every
//! implementation runs (Rust here, Python and TypeScript in `bench/`).
//!
//! Stream batches: item images of 12-13 attributes shaped like
//! [`pipeline_core::Item`], 60 % INSERT / 30 % MODIFY / 10 % REMOVE, and 1 %
//! of records whose item `name` starts with `fail-`: the handler returns a
//! retryable error for them. SQS batches: `Job` bodies (70 % `process_item`,
//! 30 % `record_removal`), 1 % with an `item_id` starting with `fail-`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::fmt::Write as _;

use pipeline_core::{
    BatchProcessor, Change, Deadline, Item, Job, MemorySink, Message, ProcessorInfo, RecordError, SqsEvent,
    StreamEvent, StreamRecord,
};
use serde::de::DeserializeOwned;

pub const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/pipeline-items/stream/2026-11-20T10:00:00.000";
pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:pipeline-processing";

/// SplitMix64: small, deterministic, good enough to shuffle test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &["Blue Widget", "Red Gadget", "Green Sprocket", "Large \"Deluxe\" Gizmo", "Tiny Doohickey"];
const TAGS: &[&str] = &["blue", "sale", "new", "clearance", "eco", "bundle"];
const COLORS: &[&str] = &["blue", "red", "green", "black"];

fn timestamp(rng: &mut Rng) -> String {
    let secs = 1_795_000_000 + rng.below(1_000_000) as i64;
    let t = chrono::DateTime::from_timestamp(secs, (rng.below(1000) * 1_000_000) as u32).unwrap();
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One item image in DynamoDB JSON.
fn image(out: &mut String, rng: &mut Rng, id: u64, status: &str, version: u64, fail: bool) {
    let name = if fail { format!("fail-{}", rng.pick(NAMES)) } else { rng.pick(NAMES).to_owned() };
    let name = serde_json::to_string(&name).unwrap();
    let price = format!("{}.{:02}", rng.below(500), rng.below(100));
    let created = timestamp(rng);
    let updated = timestamp(rng);
    write!(
        out,
        r#"{{"pk":{{"S":"ITEM#{id}"}},"sk":{{"S":"ITEM"}},"gsi1pk":{{"S":"STATUS#{status}"}},"gsi1sk":{{"S":"ITEM#{id}"}},"name":{{"S":{name}}},"status":{{"S":"{status}"}},"price":{{"S":"{price}"}},"quantity":{{"N":"{q}"}},"attributes":{{"M":{{"color":{{"S":"{color}"}},"size":{{"S":"{size}"}}}}}},"created_at":{{"S":"{created}"}},"updated_at":{{"S":"{updated}"}},"version":{{"N":"{version}"}}"#,
        q = rng.below(1000),
        color = rng.pick(COLORS),
        size = rng.pick(&["S", "M", "L", "XL"]),
    )
    .unwrap();
    if rng.below(4) != 0 {
        let a = rng.pick(TAGS);
        let b = rng.pick(TAGS);
        if a == b {
            write!(out, r#","tags":{{"SS":["{a}"]}}"#).unwrap();
        } else {
            write!(out, r#","tags":{{"SS":["{a}","{b}"]}}"#).unwrap();
        }
    }
    out.push('}');
}

/// Whether record `i` of a batch is one of the 1 % that fail.
pub fn fails(i: usize) -> bool {
    i % 100 == 42
}

/// A DynamoDB Streams event of `n` records, compact JSON as Lambda sends it.
pub fn stream_event(n: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(n * 1400 + 16);
    out.push_str(r#"{"Records":["#);
    let pool = (n as u64 / 3).max(1);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let id = 10_000 + rng.below(pool);
        let roll = rng.below(10);
        let name = match roll {
            0..=5 => "INSERT",
            6..=8 => "MODIFY",
            _ => "REMOVE",
        };
        let version = 1 + rng.below(20);
        let seq = 100_000_000_000_000_000_000u128 + i as u128 * 100;
        write!(
            out,
            r#"{{"eventID":"{:032x}","eventName":"{name}","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{{"ApproximateCreationDateTime":{},"Keys":{{"pk":{{"S":"ITEM#{id}"}},"sk":{{"S":"ITEM"}}}}"#,
            rng.next() as u128 * 7919,
            1_795_600_000 + i as u64,
        )
        .unwrap();
        let fail = fails(i);
        if name != "INSERT" {
            out.push_str(r#","OldImage":"#);
            image(&mut out, &mut rng, id, "PROCESSED", version, fail && name == "REMOVE");
        }
        if name != "REMOVE" {
            out.push_str(r#","NewImage":"#);
            image(&mut out, &mut rng, id, "PENDING", version + 1, fail);
        }
        write!(
            out,
            r#","SequenceNumber":"{seq}","SizeBytes":{},"StreamViewType":"NEW_AND_OLD_IMAGES"}},"eventSourceARN":"{STREAM_ARN}"}}"#,
            300 + rng.below(400)
        )
        .unwrap();
    }
    out.push_str("]}");
    out
}

/// A stream batch the stream processor sends nothing for: every record a
/// MODIFY to a `PROCESSED` item (the queue processor's own write). For cold
/// starts, which must not reach out to SQS.
pub fn quiet_stream_event(n: usize) -> String {
    let mut rng = Rng::new(3);
    let mut out = String::from(r#"{"Records":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let id = 20_000 + i as u64;
        write!(
            out,
            r#"{{"eventID":"e{i}","eventName":"MODIFY","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{{"ApproximateCreationDateTime":1795600000,"Keys":{{"pk":{{"S":"ITEM#{id}"}},"sk":{{"S":"ITEM"}}}},"OldImage":"#
        )
        .unwrap();
        image(&mut out, &mut rng, id, "PENDING", 1, false);
        out.push_str(r#","NewImage":"#);
        image(&mut out, &mut rng, id, "PROCESSED", 2, false);
        write!(out, r#","SequenceNumber":"{}","SizeBytes":700,"StreamViewType":"NEW_AND_OLD_IMAGES"}},"eventSourceARN":"{STREAM_ARN}"}}"#, 1000 + i).unwrap();
    }
    out.push_str("]}");
    out
}

fn hex(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len);
    while s.len() < len {
        write!(s, "{:016x}", rng.next()).unwrap();
    }
    s.truncate(len);
    s
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// An SQS event of `n` messages with JSON `Job` bodies.
pub fn sqs_event(n: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(n * 900 + 16);
    out.push_str(r#"{"Records":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let h = hex(&mut rng, 32);
        let message_id = format!("{}-{}-4{}-8{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32]);
        let receipt: String = (0..172).map(|_| B64[rng.below(64) as usize] as char).collect();
        let item_id = if fails(i) { format!("fail-{}", rng.below(100_000)) } else { rng.below(100_000).to_string() };
        let version = 1 + rng.below(50);
        let job = if rng.below(10) < 7 {
            Job::ProcessItem { item_id, version }
        } else {
            Job::RecordRemoval {
                item_id,
                version,
                reason: if rng.below(2) == 0 {
                    pipeline_core::RemovalReason::Deleted
                } else {
                    pipeline_core::RemovalReason::TtlExpired
                },
                sequence_number: format!("{}", 100_000_000_000_000_000_000u128 + rng.below(1 << 40) as u128),
                removed_at: chrono::DateTime::from_timestamp(1_795_600_000 + i as i64, 0),
            }
        };
        let body = serde_json::to_string(&serde_json::to_string(&job).unwrap()).unwrap();
        let sent = 1_795_600_000_000u64 + i as u64 * 3;
        write!(
            out,
            r#"{{"messageId":"{message_id}","receiptHandle":"{receipt}","body":{body},"attributes":{{"ApproximateReceiveCount":"1","SentTimestamp":"{sent}","SenderId":"AIDAIENQZJOLO23YVJ4VO","ApproximateFirstReceiveTimestamp":"{}"}},"messageAttributes":{{}},"md5OfBody":"{}","eventSource":"aws:sqs","eventSourceARN":"{QUEUE_ARN}","awsRegion":"us-east-1"}}"#,
            sent + 7,
            hex(&mut rng, 32),
        )
        .unwrap();
    }
    out.push_str("]}");
    out
}

/// An error type for the handlers' injected failures.
#[derive(Debug)]
pub struct Injected(pub String);

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected failure for {}", self.0)
    }
}

impl std::error::Error for Injected {}

/// The stream handler: reads the typed change, fails the `fail-` items.
pub async fn stream_handler(record: StreamRecord<Item>) -> Result<(), RecordError> {
    let item = match &record.change {
        Change::Insert { new } | Change::Modify { new, .. } => new,
        Change::Remove { old } => old,
    };
    if item.name.starts_with("fail-") {
        return Err(RecordError::retryable(Injected(item.pk.clone())));
    }
    std::hint::black_box(item.quantity);
    Ok(())
}

/// The SQS handler: reads the typed job, fails the `fail-` jobs.
pub async fn sqs_handler(message: Message<Job>) -> Result<(), RecordError> {
    let id = message.body.item_id();
    if id.starts_with("fail-") {
        return Err(RecordError::retryable(Injected(id.to_owned())));
    }
    std::hint::black_box(id.len());
    Ok(())
}

/// [`stream_handler`] for a batch where nothing fails: reads the same
/// fields, so that every record of the batch is decoded and run (with a
/// failure, a stream batch stops at it and Lambda delivers the rest again).
pub async fn stream_handler_all(record: StreamRecord<Item>) -> Result<(), RecordError> {
    let item = match &record.change {
        Change::Insert { new } | Change::Modify { new, .. } => new,
        Change::Remove { old } => old,
    };
    std::hint::black_box((item.name.len(), item.quantity));
    Ok(())
}

/// [`sqs_handler`] for a batch where nothing fails.
pub async fn sqs_handler_all(message: Message<Job>) -> Result<(), RecordError> {
    std::hint::black_box(message.body.item_id().len());
    Ok(())
}

/// A current-thread runtime, as in a Lambda function.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The engine every bench runs: default configuration, dead letters kept in
/// memory.
pub fn engine() -> BatchProcessor<MemorySink> {
    BatchProcessor::new(ProcessorInfo::new("bench", "0"), MemorySink::new())
}

/// Which handler a batch runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// [`stream_handler`] / [`sqs_handler`]: the 1 % `fail-` records fail.
    Failing,
    /// [`stream_handler_all`] / [`sqs_handler_all`]: nothing fails.
    NeverFails,
}

/// One kind of event, run the same way by every bench: its batches, its
/// split, its typed decode and a warm invocation.
pub trait Workload {
    /// The event as the Lambda runtime hands it over: raw records.
    type Event: DeserializeOwned;
    /// `stream` / `sqs`: in group names, file names and output lines.
    const SOURCE: &'static str;

    /// The batch of `n` records every bench measures.
    fn event(n: usize) -> String;

    /// The bytes into raw records, as the Lambda runtime does.
    fn split(bytes: &[u8]) -> Self::Event {
        serde_json::from_slice(bytes).unwrap()
    }

    /// Every record decoded into its typed form, nothing run.
    fn decode(event: &Self::Event);

    /// The batch run by the engine and the response encoded: what a warm
    /// invocation does after the split.
    fn run(
        rt: &tokio::runtime::Runtime,
        engine: &BatchProcessor<MemorySink>,
        event: Self::Event,
        handler: Handler,
    ) -> Vec<u8>;

    /// [`Workload::split`] then [`Workload::run`]: a whole warm invocation.
    fn invoke(
        rt: &tokio::runtime::Runtime,
        engine: &BatchProcessor<MemorySink>,
        bytes: &[u8],
        handler: Handler,
    ) -> Vec<u8> {
        Self::run(rt, engine, Self::split(bytes), handler)
    }
}

/// DynamoDB Streams batches of [`Item`] images.
pub struct Stream;

impl Workload for Stream {
    type Event = StreamEvent;
    const SOURCE: &'static str = "stream";

    fn event(n: usize) -> String {
        stream_event(n, 7)
    }

    fn decode(event: &StreamEvent) {
        std::hint::black_box(pipeline_core::decode_stream_event::<Item>(event));
    }

    fn run(
        rt: &tokio::runtime::Runtime,
        engine: &BatchProcessor<MemorySink>,
        event: StreamEvent,
        handler: Handler,
    ) -> Vec<u8> {
        let response = match handler {
            Handler::Failing => rt.block_on(engine.process_stream(event, Deadline::none(), stream_handler)),
            Handler::NeverFails => rt.block_on(engine.process_stream(event, Deadline::none(), stream_handler_all)),
        };
        serde_json::to_vec(&response.unwrap()).unwrap()
    }
}

/// SQS batches of [`Job`] bodies.
pub struct Sqs;

impl Workload for Sqs {
    type Event = SqsEvent;
    const SOURCE: &'static str = "sqs";

    fn event(n: usize) -> String {
        sqs_event(n, 11)
    }

    fn decode(event: &SqsEvent) {
        std::hint::black_box(pipeline_core::decode_sqs_event::<Job>(event));
    }

    fn run(
        rt: &tokio::runtime::Runtime,
        engine: &BatchProcessor<MemorySink>,
        event: SqsEvent,
        handler: Handler,
    ) -> Vec<u8> {
        let response = match handler {
            Handler::Failing => rt.block_on(engine.process_sqs(event, Deadline::none(), sqs_handler)),
            Handler::NeverFails => rt.block_on(engine.process_sqs(event, Deadline::none(), sqs_handler_all)),
        };
        serde_json::to_vec(&response.unwrap()).unwrap()
    }
}
