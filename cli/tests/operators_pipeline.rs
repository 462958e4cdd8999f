//! The operator commands against the whole pipeline on the local endpoint:
//! the template provisioned, the processors run in-process, the `pipeline`
//! binary driven as an operator would.
#![allow(clippy::unwrap_used)]

mod operators_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::Utc;
use operators_support::{cli, depth, receive_all};
use pipeline_cli::esm::{DrainOptions, Emulator, EmulatorOptions};
use pipeline_cli::inprocess::{function_for, InProcessInvoker};
use pipeline_cli::provision::{provision, ProvisionedStack};
use pipeline_cli::template::{StackContext, Template};
use pipeline_core::{Item, ItemStatus, ItemWriter, Job, RemovalAudit, SqsDeadLetterSink, SqsQueue};
use pipeline_tests::local::{poll_until, sdk_config, unique};
use queue_processor::{DynamoItemStore, ItemStore, QueueProcessor, StoreError, WriteOutcome};
use serde_json::{json, Value};
use stream_processor::StreamProcessor;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// Provisions the template as a new stack, with `edits` applied to its
/// text (each `(from, to, times)`: `from` must occur `times` times).
async fn stack(prefix: &str, edits: &[(&str, &str, usize)]) -> (aws_config::SdkConfig, ProvisionedStack) {
    let sdk = sdk_config().await;
    let mut text = std::fs::read_to_string(TEMPLATE).unwrap();
    for (from, to, times) in edits {
        assert_eq!(text.matches(from).count(), *times, "{from} in template.yaml");
        text = text.replace(from, to);
    }
    let template = Template::from_yaml(&text, TEMPLATE).unwrap();
    let ctx = StackContext::local(unique(prefix), "us-east-1");
    let stack = provision(&sdk, &template, &ctx).await.unwrap();
    (sdk, stack)
}

fn item(id: &str, quantity: i64) -> Item {
    Item::new(id, format!("item {id}"), "2.50".parse().unwrap(), quantity, Utc::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_failure_redrive_replays_exactly_the_pointed_range_and_reports_what_is_gone() {
    // GIVEN six items on the stream, nothing consuming it, and two OnFailure
    // documents: one for records 2-4, one for a range the stream no longer has
    let (sdk, stack) = stack("onfail", &[]).await;
    let name = stack.context.stack_name.clone();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let table = &stack.tables["ItemsTable"];
    let writer = ItemWriter::new(ddb.clone(), &table.name);
    for i in 0..6 {
        writer.create(&item(&format!("s{i}"), 1)).await.unwrap();
    }
    let stream_arn = table.stream_arn.clone().unwrap();
    let shard = streams.describe_stream().stream_arn(&stream_arn).send().await.unwrap();
    let shard_id = shard.stream_description().unwrap().shards()[0].shard_id().unwrap().to_owned();
    let it = streams
        .get_shard_iterator()
        .stream_arn(&stream_arn)
        .shard_id(&shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = streams.get_records().shard_iterator(it).send().await.unwrap().records.unwrap();
    let seqs: Vec<String> =
        records.iter().map(|r| r.dynamodb().unwrap().sequence_number().unwrap().to_owned()).collect();
    assert_eq!(seqs.len(), 6);
    let doc = |start: &str, end: &str, size: usize| {
        json!({
            "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0", "timestamp": "2026-01-01T00:00:00.000Z",
            "DDBStreamBatchInfo": {"shardId": shard_id, "startSequenceNumber": start, "endSequenceNumber": end,
                                   "batchSize": size, "streamArn": stream_arn}
        })
        .to_string()
    };
    let failures = &stack.queues["StreamFailureQueue"].url;
    sqs.send_message().queue_url(failures).message_body(doc(&seqs[1], &seqs[3], 3)).send().await.unwrap();
    let gone: u128 = seqs[5].parse::<u128>().unwrap() + 1000;
    sqs.send_message()
        .queue_url(failures)
        .message_body(doc(&gone.to_string(), &(gone + 5).to_string(), 2))
        .send()
        .await
        .unwrap();

    // WHEN the OnFailure queue is redriven
    let out = cli(&["dlq", "redrive", "StreamFailureQueue", "--stack-name", &name]).await;

    // THEN exactly records 2-4 went through the stream processor: their jobs
    // are on the processing queue, and nothing else
    assert!(!out.status.success(), "a range could not be replayed: {out}");
    assert!(out.stdout.contains("replayed through the stream processor: 1 (3 records)"), "{out}");
    assert!(out.stdout.contains(&format!("{gone} .. {}", gone + 5)) && out.stdout.contains(&shard_id), "{out}");
    assert!(out.stdout.contains("--drop-trimmed"), "{out}");
    let jobs: Vec<Job> = receive_all(&sqs, &stack.queues["ProcessingQueue"].url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let mut ids: Vec<&str> = jobs.iter().map(Job::item_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["s1", "s2", "s3"], "{jobs:?}");
    // ... the replayed pointer is gone, the other one stays until told
    assert_eq!(depth(&sqs, failures).await, 1);
    let out = cli(&["dlq", "redrive", "StreamFailureQueue", "--stack-name", &name, "--drop-trimmed"]).await;
    out.success();
    assert!(out.stdout.contains("DROPPED (--drop-trimmed)") && out.stdout.contains(&gone.to_string()), "{out}");
    assert_eq!(depth(&sqs, failures).await, 0);

    // A stream record dead-lettered as an envelope is replayed too.
    let s9 = serde_json::to_value(serde_dynamo::to_item::<_, serde_dynamo::Item>(item("s9", 1)).unwrap()).unwrap();
    let envelope = json!({
        "schema": "lambda-pipeline/dead-letter", "schema_version": 1,
        "source": {"kind": "dynamodb_stream", "arn": stream_arn, "record_id": "999"},
        "error": {"kind": "decode", "message": "a stream record that once did not decode"},
        "processor": {"name": "stream-processor", "version": "0.1.0"},
        "first_failed_at": "2026-01-01T00:00:00Z", "dead_lettered_at": "2026-01-01T00:00:00Z",
        "record": {"eventID": "e9", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                   "awsRegion": "us-east-1", "eventSourceARN": stream_arn,
                   "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "SequenceNumber": "999",
                                "Keys": {"pk": {"S": "ITEM#s9"}, "sk": {"S": "ITEM"}}, "NewImage": s9,
                                "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    });
    let stream_dlq = &stack.queues["StreamDeadLetterQueue"].url;
    sqs.send_message().queue_url(stream_dlq).message_body(envelope.to_string()).send().await.unwrap();
    let out = cli(&["dlq", "redrive", "StreamDeadLetterQueue", "--stack-name", &name]).await;
    out.success();
    assert!(out.stdout.contains("moved 1,") && out.stdout.contains("stream processor: 1 (1 records)"), "{out}");
    let jobs: Vec<Job> = receive_all(&sqs, &stack.queues["ProcessingQueue"].url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(jobs, [Job::ProcessItem { item_id: "s9".into(), version: 1 }]);
    assert_eq!(depth(&sqs, stream_dlq).await, 0);
}

/// The items table, failing every call about items whose id starts with
/// `flaky` while `outage` is on (a retryable error, as throttling would).
struct Outage {
    inner: DynamoItemStore,
    outage: AtomicBool,
}

impl Outage {
    fn check(&self, id: &str) -> Result<(), StoreError> {
        if self.outage.load(Ordering::SeqCst) && id.starts_with("flaky") {
            return Err(StoreError(format!("GetItem {id}: injected ProvisionedThroughputExceededException")));
        }
        Ok(())
    }
}

impl ItemStore for Outage {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.check(id)?;
        self.inner.get(id).await
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, StoreError> {
        self.check(item.id())?;
        self.inner.put_if_version(item, expected_version).await
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, StoreError> {
        self.inner.put_audit(audit).await
    }
}

async fn statuses(ddb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<String, (ItemStatus, u64)> {
    let mut out = BTreeMap::new();
    let page = ddb.scan().table_name(table).send().await.unwrap();
    for raw in page.items.unwrap_or_default() {
        if matches!(raw.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("ITEM#")) {
            let item: Item = serde_dynamo::from_item(raw).unwrap();
            out.insert(item.id().to_owned(), (item.status, item.version));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_goes_from_dlq_alarm_to_everything_processed() {
    // The real template, scaled down so that a failing job reaches the DLQ
    // within the test: function timeout 4 s, visibility 4 s, 2 receives.
    let (sdk, stack) = stack(
        "operator",
        &[
            ("Timeout: 30", "Timeout: 4", 2),
            ("VisibilityTimeout: 181", "VisibilityTimeout: 4", 1),
            ("maxReceiveCount: 5", "maxReceiveCount: 2", 1),
        ],
    )
    .await;
    let name = stack.context.stack_name.clone();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let table = stack.tables["ItemsTable"].name.clone();
    let dlq = stack.queues["ProcessingDeadLetterQueue"].url.clone();

    let sf = function_for(&stack, "stream-processor").unwrap();
    let qf = function_for(&stack, "queue-processor").unwrap();
    let store = Arc::new(Outage {
        inner: DynamoItemStore::new(ddb.clone(), &qf.environment["ITEMS_TABLE_NAME"]),
        outage: AtomicBool::new(true),
    });
    let invoker = InProcessInvoker::new(
        &sf.logical_id,
        StreamProcessor::new(
            SqsDeadLetterSink::new(sqs.clone(), &sf.environment["DEAD_LETTER_QUEUE_URL"]),
            SqsQueue::new(sqs.clone(), &sf.environment["PROCESSING_QUEUE_URL"]),
        ),
        &qf.logical_id,
        QueueProcessor::new(
            ArcStore(Arc::clone(&store)),
            SqsDeadLetterSink::new(sqs.clone(), &qf.environment["DEAD_LETTER_QUEUE_URL"]),
        ),
    )
    .with_timeouts([(sf.logical_id.clone(), sf.timeout), (qf.logical_id.clone(), qf.timeout)].into());
    let running = Emulator::start(&sdk, &stack, Arc::new(invoker), EmulatorOptions::fast()).await.unwrap();

    // GIVEN four good items, two whose table calls fail (an outage), and two
    // with a negative quantity
    let writer = ItemWriter::new(ddb.clone(), &table);
    let mut items: Vec<Item> = (0..4).map(|i| item(&format!("ok{i}"), 2)).collect();
    items.extend((0..2).map(|i| item(&format!("flaky{i}"), 2)));
    items.extend((0..2).map(|i| item(&format!("bad{i}"), -1)));
    assert!(writer.batch_put(&items).await.failed.is_empty());

    // WHEN the alarm fires: the DLQ is not empty
    poll_until("4 dead letters", Duration::from_secs(90), || async { (depth(&sqs, &dlq).await >= 4).then_some(()) })
        .await;
    let out = cli(&["dlq", "stats", "ProcessingDeadLetterQueue", "--stack-name", &name, "--json"]).await;
    out.success();
    let stats: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(stats["visible"], 4, "{out}");
    assert_eq!(stats["by_kind"], json!({"raw": 2, "validation": 2}), "{out}");
    assert!(stats["oldest"]["expires_in_seconds"].as_i64().unwrap() > 13 * 86_400, "{out}");
    let out = cli(&["dlq", "peek", "ProcessingDeadLetterQueue", "--stack-name", &name]).await;
    out.success();
    assert!(out.stdout.contains("quantity -1 is negative") && out.stdout.contains("flaky0"), "{out}");
    assert_eq!(depth(&sqs, &dlq).await, 4, "peek consumes nothing");

    // THEN the operator fixes the causes: the outage ends, the invalid items
    // get a valid quantity (and are PENDING again) ...
    store.outage.store(false, Ordering::SeqCst);
    let fixed = std::env::temp_dir().join(format!("{}.jsonl", unique("fixed")));
    std::fs::write(
        &fixed,
        "{\"id\":\"bad0\",\"name\":\"item bad0\",\"price\":\"2.50\",\"quantity\":3}\n\
         {\"id\":\"bad1\",\"name\":\"item bad1\",\"price\":\"2.50\",\"quantity\":3}\n",
    )
    .unwrap();
    let out = cli(&["put-items", fixed.to_str().unwrap(), "--stack-name", &name, "--update"]).await;
    out.success();
    let _ = std::fs::remove_file(&fixed);
    // ... and redrives
    let out = cli(&["dlq", "redrive", "ProcessingDeadLetterQueue", "--stack-name", &name]).await;
    out.success();
    assert!(out.stdout.contains("moved 4, skipped 0, failed 0"), "{out}");

    // AND everything ends processed, with every dead-letter queue empty
    let report = running.drain(DrainOptions { idle_polls: 3, deadline: Duration::from_secs(120) }).await;
    assert!(report.drained, "{report}");
    let all = statuses(&ddb, &table).await;
    assert_eq!(all.len(), 8);
    for (id, (status, _)) in &all {
        assert_eq!(*status, ItemStatus::Processed, "{id}: {all:?}");
    }
    let out = cli(&["dlq", "stats", "ProcessingDeadLetterQueue", "--stack-name", &name, "--json"]).await;
    let stats: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((stats["visible"].as_u64(), stats["in_flight"].as_u64()), (Some(0), Some(0)), "{out}");
    for q in ["StreamDeadLetterQueue", "StreamFailureQueue"] {
        assert_eq!(depth(&sqs, &stack.queues[q].url).await, 0, "{q}");
    }
}

/// Shares the store between the processor and the test.
struct ArcStore(Arc<Outage>);

impl ItemStore for ArcStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.0.get(id).await
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, StoreError> {
        self.0.put_if_version(item, expected_version).await
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, StoreError> {
        self.0.put_audit(audit).await
    }
}
