//! Plain figures for `bench/compare` and BENCHMARKS.md (not criterion):
//!
//! ```text
//! cargo bench -p pipeline-core --bench figures -- gen DIR
//!     writes stream-{100,1000,5000}.json, sqs-{100,1000,5000}.json and
//!     stream-6mb.json (the same generator as the criterion benches)
//! cargo bench -p pipeline-core --bench figures -- throughput DIR [SECONDS]
//!     one JSON line per (implementation, source, size): median seconds per
//!     batch, with the raw-parse baseline of the same bytes measured in the
//!     same run, interleaved
//! cargo bench -p pipeline-core --bench figures -- peak FILE stream|sqs
//!     peak RSS (VmHWM) of one invocation on FILE, in a fresh process
//!     (`stream:split`, `stream:decode`: only up to that stage)
//! cargo bench -p pipeline-core --bench figures -- fanout
//!     SendMessageBatch calls for a 1,000-record fan-out, MemoryQueue 20 ms
//! cargo bench -p pipeline-core --bench figures -- coldstart BINARY EVENT [RUNS]
//!     process start to first response through a Runtime API emulator
//! ```
//!
//! `cargo bench` without arguments runs nothing here (criterion's `decode`
//! bench is the one to run then).
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod support;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pipeline_core::{
    Change, Deadline, Item, ItemStatus, Job, MemoryQueue, OutgoingMessage, Producer, RecordError, StreamEvent,
    StreamRecord,
};
use serde::de::IgnoredAny;
use support::{Handler, Sqs, Stream, Workload};

const SIZES: [usize; 3] = [100, 1_000, 5_000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("gen") => generate(Path::new(&args[1])),
        Some("throughput") => throughput(Path::new(&args[1]), args.get(2).map_or(2.0, |s| s.parse().unwrap())),
        Some("peak") => peak(Path::new(&args[1]), &args[2]),
        Some("fanout") => fanout(),
        Some("coldstart") => coldstart(&args[1], Path::new(&args[2]), args.get(3).map_or(15, |s| s.parse().unwrap())),
        _ => eprintln!("figures: nothing to do without a command (see the file's docs)"),
    }
}

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for n in SIZES {
        std::fs::write(dir.join(format!("{}-{n}.json", Stream::SOURCE)), Stream::event(n)).unwrap();
        std::fs::write(dir.join(format!("{}-{n}.json", Sqs::SOURCE)), Sqs::event(n)).unwrap();
    }
    // The largest batch Lambda passes (6 MB payload limit).
    let mut n = 4_000;
    let big = loop {
        let event = support::stream_event(n, 13);
        if event.len() > 5_900_000 {
            break event;
        }
        n += 250;
    };
    std::fs::write(dir.join("stream-6mb.json"), big).unwrap();
    std::fs::write(dir.join("coldstart-stream.json"), support::quiet_stream_event(10)).unwrap();
    std::fs::write(dir.join("coldstart-sqs.json"), r#"{"Records":[]}"#).unwrap();
    println!("events written to {}", dir.display());
}

/// The usual alternative: aws_lambda_events' types, serde_dynamo per image,
/// the same handler logic run in order, the same kind of response.
fn aws_lambda_events_stream(bytes: &[u8]) -> Vec<u8> {
    use aws_lambda_events::event::dynamodb::Event;
    use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
    let event: Event = serde_json::from_slice(bytes).unwrap();
    let mut response = DynamoDbEventResponse::default();
    // Every image is decoded (as the engine does); the first failure is the
    // checkpoint.
    for record in event.records {
        let old = serde_dynamo::from_item::<_, Item>(record.change.old_image).ok();
        let new = serde_dynamo::from_item::<_, Item>(record.change.new_image).ok();
        let image = if record.event_name == "REMOVE" { old } else { new };
        let ok = image.is_some_and(|item| !item.name.starts_with("fail-"));
        if !ok && response.batch_item_failures.is_empty() {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number;
            response.batch_item_failures.push(failure);
        }
    }
    serde_json::to_vec(&response).unwrap()
}

fn aws_lambda_events_sqs(bytes: &[u8]) -> Vec<u8> {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent as AwsSqsEvent};
    let event: AwsSqsEvent = serde_json::from_slice(bytes).unwrap();
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let job = message.body.as_deref().and_then(|b| serde_json::from_str::<Job>(b).ok());
        if job.is_none_or(|j| j.item_id().starts_with("fail-")) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    serde_json::to_vec(&response).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs each function in turn, round after round, for about `seconds`;
/// returns each one's median seconds per call.
fn interleaved(seconds: f64, fns: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for f in fns.iter_mut() {
        f();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); fns.len()];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times[0].len() < 11 {
        for (i, f) in fns.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    times.into_iter().map(median).collect()
}

fn line(implementation: &str, source: &str, records: usize, bytes: usize, seconds: f64, raw: f64) {
    println!(
        "{}",
        serde_json::json!({
            "impl": implementation, "source": source, "records": records, "bytes": bytes,
            "median_s": seconds, "raw_parse_median_s": raw,
        })
    );
}

/// The implementations `throughput` times, in the order of its closures.
const ROWS: [&str; 6] = [
    "serde_json raw parse (IgnoredAny)",
    "Rust pipeline-core engine",
    "Rust pipeline-core engine, no failures",
    "Rust pipeline-core decode only",
    "Rust split into raw records only",
    "Rust aws_lambda_events + serde_dynamo",
];

/// One line per row; `t[0]` is the raw-parse baseline of the same run.
fn rows(source: &str, records: usize, bytes: usize, t: &[f64]) {
    for (label, median) in ROWS.iter().zip(t) {
        line(label, source, records, bytes, *median, t[0]);
    }
}

fn throughput(dir: &Path, seconds: f64) {
    sizes::<Stream>(dir, seconds, aws_lambda_events_stream);
    sizes::<Sqs>(dir, seconds, aws_lambda_events_sqs);
}

/// The [`ROWS`] of one workload, for each size; `naive` is its
/// `aws_lambda_events` row.
fn sizes<W: Workload>(dir: &Path, seconds: f64, naive: fn(&[u8]) -> Vec<u8>) {
    let rt = support::runtime();
    let engine = support::engine();
    for n in SIZES {
        let bytes = std::fs::read(dir.join(format!("{}-{n}.json", W::SOURCE))).unwrap();
        let t = interleaved(
            seconds,
            &mut [
                &mut || {
                    black_box(serde_json::from_slice::<IgnoredAny>(&bytes).unwrap());
                },
                &mut || {
                    black_box(W::invoke(&rt, &engine, &bytes, Handler::Failing));
                },
                &mut || {
                    black_box(W::invoke(&rt, &engine, &bytes, Handler::NeverFails));
                },
                &mut || W::decode(&W::split(&bytes)),
                &mut || {
                    black_box(W::split(&bytes));
                },
                &mut || {
                    black_box(naive(&bytes));
                },
            ],
        );
        rows(W::SOURCE, n, bytes.len(), &t);
    }
}

/// `VmHWM` / `VmRSS` of this process, in bytes.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// One warm-path invocation on FILE: the payload read, parsed as the Lambda
/// runtime does, the bytes dropped, the batch run, the response encoded.
fn peak(file: &Path, source: &str) {
    let rt = support::runtime();
    let engine = support::engine();
    let before = status("VmHWM:");
    let bytes = std::fs::read(file).unwrap();
    let payload = bytes.len();
    let response = match source {
        // The same up to a stage, to see where the memory goes.
        "stream:split" => {
            let event = Stream::split(&bytes);
            drop(bytes);
            black_box(&event);
            Vec::new()
        }
        "stream:decode" => {
            let event = Stream::split(&bytes);
            drop(bytes);
            Stream::decode(&event);
            Vec::new()
        }
        "stream" => {
            let event = Stream::split(&bytes);
            drop(bytes);
            Stream::run(&rt, &engine, event, Handler::Failing)
        }
        _ => {
            let event = Sqs::split(&bytes);
            drop(bytes);
            Sqs::run(&rt, &engine, event, Handler::Failing)
        }
    };
    black_box(response);
    let after = status("VmHWM:");
    println!(
        "{}",
        serde_json::json!({
            "source": source, "payload_bytes": payload, "hwm_before_bytes": before, "hwm_after_bytes": after,
            "peak_rss_bytes": after, "batch_peak_bytes": after.saturating_sub(before),
        })
    );
}

/// The stream processor's fan-out: a job per change, sent through the
/// batching producer to a queue with 20 ms of latency per call.
fn fanout() {
    let rt = support::runtime();
    let bytes = Stream::event(1_000);
    let engine = support::engine();
    let queue = MemoryQueue::new();
    queue.set_latency(Duration::from_millis(20));
    let producer = Producer::new(queue);
    let handler = |record: StreamRecord<Item>| async move {
        let job = match &record.change {
            Change::Insert { new } | Change::Modify { new, .. } if new.status == ItemStatus::Pending => {
                Some(Job::ProcessItem { item_id: new.id().to_owned(), version: new.version })
            }
            Change::Remove { old } => Some(Job::RecordRemoval {
                item_id: old.id().to_owned(),
                version: old.version,
                reason: pipeline_core::RemovalReason::Deleted,
                sequence_number: record.meta.sequence_number.clone(),
                removed_at: None,
            }),
            _ => None,
        };
        let messages: Vec<OutgoingMessage> = job
            .iter()
            .map(|j| OutgoingMessage::json(j).map_err(|e| RecordError::permanent("encode", e)))
            .collect::<Result<_, _>>()?;
        Ok(messages)
    };
    let event: StreamEvent = serde_json::from_str(&bytes).unwrap();
    let start = Instant::now();
    let report = rt.block_on(engine.run_stream_fanout(event, Deadline::none(), &producer, handler)).unwrap();
    let elapsed = start.elapsed();
    let calls = producer.transport().calls();
    let jobs: usize = calls.iter().sum();
    println!(
        "{}",
        serde_json::json!({
            "records": 1_000, "jobs": jobs, "send_message_batch_calls": calls.len(),
            "max_entries_per_call": calls.iter().max(), "calls_in_flight_max": producer.transport().max_in_flight(),
            "latency_per_call_ms": 20, "batch_wall_ms": elapsed.as_secs_f64() * 1e3,
            "succeeded": report.summary.succeeded,
        })
    );
}

// ------------------------------------------------------------ cold start

/// A minimal Lambda Runtime API: hands out one invocation, reports when its
/// response arrives.
fn serve(listener: TcpListener, event: Vec<u8>, done: mpsc::Sender<(Instant, String)>) {
    let mut handed_out = false;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let event = event.clone();
        let done = done.clone();
        let first = !handed_out;
        handed_out = true;
        std::thread::spawn(move || connection(stream, first, &event, &done));
    }
}

fn connection(stream: TcpStream, mut give: bool, event: &[u8], done: &mpsc::Sender<(Instant, String)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
        if path.ends_with("/invocation/next") {
            if !give {
                // Later polls wait until the process is killed.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
            give = false;
            let deadline =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 60_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                event.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(event)).is_err() {
                return;
            }
        } else {
            let at = Instant::now();
            let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
            let _ = done.send((at, format!("{path} {}", String::from_utf8_lossy(&body))));
        }
    }
}

fn coldstart(binary: &str, event: &Path, runs: usize) {
    let event = std::fs::read(event).unwrap();
    let mut times = Vec::new();
    let mut last = String::new();
    for _ in 0..runs {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let payload = event.clone();
        std::thread::spawn(move || serve(listener, payload, tx));
        let start = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PROCESSING_QUEUE_URL", "http://127.0.0.1:9/123456789012/processing")
            .env("DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:9/123456789012/dead-letters")
            .env("ITEMS_TABLE_NAME", "items")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let answer = rx.recv_timeout(Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        let (at, what) = answer.expect("the function did not answer within 30 s");
        times.push(at.duration_since(start).as_secs_f64());
        last = what;
    }
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "binary": binary, "binary_bytes": size, "runs": runs, "median_ms": median(times.clone()) * 1e3,
            "min_ms": times.iter().copied().fold(f64::INFINITY, f64::min) * 1e3, "response": last,
        })
    );
}
