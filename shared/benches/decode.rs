//! Criterion benches: decode and engine on 100 / 1,000 / 5,000-record
//! DynamoDB Streams and SQS batches, beside the raw-parse baseline on the
//! same bytes.
//!
//! Every function in a group reads the same bytes, and the throughput is in
//! bytes of the event, so the ratio of any row to `raw_parse` is the ratio of
//! their MB/s.
//!
//! - `raw_parse`: `serde_json::from_slice::<IgnoredAny>`: the fastest way
//!   serde_json can read the event without keeping anything.
//! - `split`: the event into raw records (`StreamEvent` / `SqsEvent`), as the
//!   Lambda runtime does before the handler runs.
//! - `decode`: `split` + every record decoded into its typed form
//!   (`StreamRecord<Item>` / `Message<Job>`).
//! - `engine`: `split` + `BatchProcessor::process_*` with the bench handler
//!   (1 % retryable failures) + the response encoded to JSON: everything a
//!   warm invocation does. With 1 % failing records a stream batch stops
//!   at its first failure (Lambda delivers the rest again from there);
//! - `engine_no_failures`: the same with a handler that never fails, so
//!   every record is decoded and run.
//! - `aws_lambda_events`: the usual alternative, for reference:
//!   `aws_lambda_events`' event types, then `serde_dynamo::from_item` on each
//!   image / `serde_json::from_str` on each body.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipeline_core::{Item, Job};
use serde::de::IgnoredAny;
use support::{Handler, Sqs, Stream, Workload};

const SIZES: [usize; 3] = [100, 1_000, 5_000];

fn reference_stream(bytes: &[u8]) -> usize {
    use aws_lambda_events::event::dynamodb::Event;
    let event: Event = serde_json::from_slice(bytes).unwrap();
    // Both images where present, as `decode` does for a MODIFY.
    let mut ok = 0;
    for record in event.records {
        for image in [record.change.old_image, record.change.new_image] {
            if !image.is_empty() {
                ok += usize::from(serde_dynamo::from_item::<_, Item>(image).is_ok());
            }
        }
    }
    ok
}

fn reference_sqs(bytes: &[u8]) -> usize {
    use aws_lambda_events::event::sqs::SqsEvent as AwsSqsEvent;
    let event: AwsSqsEvent = serde_json::from_slice(bytes).unwrap();
    event
        .records
        .iter()
        .filter(|m| m.body.as_deref().and_then(|b| serde_json::from_str::<Job>(b).ok()).is_some())
        .count()
}

/// The groups `{source}/{n}` of one workload; `reference` is its
/// `aws_lambda_events` row.
fn groups<W: Workload>(c: &mut Criterion, reference: fn(&[u8]) -> usize) {
    let rt = support::runtime();
    let engine = support::engine();
    for n in SIZES {
        let bytes = W::event(n).into_bytes();
        let mut group = c.benchmark_group(format!("{}/{n}", W::SOURCE));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::from_parameter("raw_parse"), |b| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&bytes)).unwrap())
        });
        group.bench_function(BenchmarkId::from_parameter("split"), |b| b.iter(|| W::split(black_box(&bytes))));
        group.bench_function(BenchmarkId::from_parameter("decode"), |b| {
            b.iter(|| W::decode(&W::split(black_box(&bytes))))
        });
        group.bench_function(BenchmarkId::from_parameter("engine"), |b| {
            b.iter(|| W::invoke(&rt, &engine, black_box(&bytes), Handler::Failing))
        });
        group.bench_function(BenchmarkId::from_parameter("engine_no_failures"), |b| {
            b.iter(|| W::invoke(&rt, &engine, black_box(&bytes), Handler::NeverFails))
        });
        group.bench_function(BenchmarkId::from_parameter("aws_lambda_events"), |b| {
            b.iter(|| reference(black_box(&bytes)))
        });
        group.finish();
    }
}

fn stream(c: &mut Criterion) {
    groups::<Stream>(c, reference_stream);
}

fn sqs(c: &mut Criterion) {
    groups::<Sqs>(c, reference_sqs);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = stream, sqs }
criterion_main!(benches);
