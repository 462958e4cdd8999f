//! The whole pipeline against the local endpoint: the template provisioned,
//! the event source mappings emulated, the real processors invoked
//! in-process. Items written and jobs sent go all the way through.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::{Dice, FlakyQueue, FlakyStore};
use pipeline_cli::esm::{DrainOptions, Emulator, EmulatorOptions};
use pipeline_cli::inprocess::{function_for, InProcessInvoker};
use pipeline_cli::provision::{provision, ProvisionedStack};
use pipeline_cli::template::{StackContext, Template};
use pipeline_core::{
    DeadLetter, Decimal, Item, ItemStatus, ItemWriter, Job, OutgoingMessage, Producer, SqsDeadLetterSink, SqsQueue,
};
use pipeline_tests::local::{drain, sdk_config, unique};
use queue_processor::{DynamoItemStore, QueueProcessor};
use stream_processor::StreamProcessor;

type Flaky = InProcessInvoker<
    StreamProcessor<SqsDeadLetterSink, FlakyQueue<SqsQueue>>,
    QueueProcessor<FlakyStore<DynamoItemStore>, SqsDeadLetterSink>,
>;

struct Stack {
    sdk: aws_config::SdkConfig,
    stack: ProvisionedStack,
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
}

impl Stack {
    async fn new(prefix: &str) -> Self {
        let sdk = sdk_config().await;
        // The real template, with the functions' 30 s timeout and the
        // processing queue's 181 s visibility timeout scaled down so that a
        // failed job comes back within the test (the emulator, like Lambda,
        // refuses a visibility timeout below the function timeout).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.matches("Timeout: 30").count(), 2, "both functions' Timeout");
        assert_eq!(text.matches("VisibilityTimeout: 181").count(), 1);
        let text = text.replace("Timeout: 30", "Timeout: 5").replace("VisibilityTimeout: 181", "VisibilityTimeout: 6");
        let template = Template::from_yaml(&text, path).unwrap();
        let ctx = StackContext::local(unique(prefix), "us-east-1");
        let stack = provision(&sdk, &template, &ctx).await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Self { sdk, stack, sqs, ddb }
    }

    fn queue(&self, id: &str) -> &str {
        &self.stack.queues[id].url
    }

    fn table(&self) -> &str {
        &self.stack.tables["ItemsTable"].name
    }

    /// The processors, with faults injected into their table and queue.
    fn invoker(&self, store_fail: f64, store_panic: f64, queue_fail: f64) -> Flaky {
        let sf = function_for(&self.stack, "stream-processor").unwrap();
        let qf = function_for(&self.stack, "queue-processor").unwrap();
        let stream = StreamProcessor::new(
            SqsDeadLetterSink::new(self.sqs.clone(), &sf.environment["DEAD_LETTER_QUEUE_URL"]),
            FlakyQueue {
                inner: SqsQueue::new(self.sqs.clone(), &sf.environment["PROCESSING_QUEUE_URL"]),
                fail: queue_fail,
                dice: Dice::new(7),
            },
        );
        let store = DynamoItemStore::new(self.ddb.clone(), &qf.environment["ITEMS_TABLE_NAME"]);
        let queue = QueueProcessor::new(
            FlakyStore::new(store, store_fail, store_panic, 11),
            SqsDeadLetterSink::new(self.sqs.clone(), &qf.environment["DEAD_LETTER_QUEUE_URL"]),
        );
        let timeouts = [(sf.logical_id.clone(), sf.timeout), (qf.logical_id.clone(), qf.timeout)].into();
        InProcessInvoker::new(&sf.logical_id, stream, &qf.logical_id, queue).with_timeouts(timeouts)
    }

    async fn items(&self) -> BTreeMap<String, Item> {
        let mut out = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self.ddb.scan().table_name(self.table()).set_exclusive_start_key(start).send().await.unwrap();
            for raw in page.items.unwrap_or_default() {
                if matches!(raw.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("ITEM#")) {
                    let item: Item = serde_dynamo::from_item(raw).unwrap();
                    out.insert(item.id().to_owned(), item);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }
}

fn item(id: &str, quantity: i64) -> Item {
    Item::new(id, format!("  item   {id} "), "2.50".parse().unwrap(), quantity, Utc::now())
}

/// What is in a dead-letter queue: envelopes by record id, and raw
/// messages moved there by SQS after maxReceiveCount.
fn classify(messages: &[aws_sdk_sqs::types::Message]) -> (Vec<DeadLetter>, Vec<String>) {
    let mut letters = Vec::new();
    let mut raw = Vec::new();
    for m in messages {
        match DeadLetter::from_json(m.body().unwrap()) {
            Ok(l) => letters.push(l),
            Err(_) => raw.push(m.body().unwrap().to_owned()),
        }
    }
    (letters, raw)
}

async fn run(stack: &Stack, invoker: Arc<Flaky>, valid: usize) {
    let running = Emulator::start(&stack.sdk, &stack.stack, invoker.clone(), EmulatorOptions::fast()).await.unwrap();

    // Items: `valid` good ones, 3 with a negative quantity.
    let writer = ItemWriter::new(stack.ddb.clone(), stack.table());
    let mut items: Vec<Item> = (0..valid).map(|i| item(&format!("v{i}"), i as i64 + 1)).collect();
    items.extend((0..3).map(|i| item(&format!("bad{i}"), -1)));
    let written = writer.batch_put(&items).await;
    assert!(written.failed.is_empty(), "{:?}", written.failed);

    // Jobs straight from a producer: duplicates of what the stream sends
    // for five items, and three poison bodies.
    let producer = Producer::new(SqsQueue::new(stack.sqs.clone(), stack.queue("ProcessingQueue")));
    let mut messages: Vec<OutgoingMessage> = (0..5)
        .map(|i| OutgoingMessage::json(&Job::ProcessItem { item_id: format!("v{i}"), version: 1 }).unwrap())
        .collect();
    messages.push(OutgoingMessage::new("this is not json {"));
    messages.push(OutgoingMessage::new(r#"{"type":"explode_item","item_id":"v1"}"#));
    messages.push(OutgoingMessage::new(r#"{"type":"process_item","item_id":"v1"}"#));
    let sent = producer.send(messages).await;
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);

    let report = running.drain(DrainOptions { idle_polls: 3, deadline: Duration::from_secs(240) }).await;
    println!("{report}");
    assert!(report.drained, "the pipeline did not settle: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_are_processed_exactly_once_and_poison_is_dead_lettered_with_its_reason() {
    let stack = Stack::new("e2e").await;
    let invoker = Arc::new(stack.invoker(0.0, 0.0, 0.0));
    run(&stack, invoker.clone(), 30).await;

    let items = stack.items().await;
    for i in 0..30 {
        let item = &items[&format!("v{i}")];
        assert_eq!(item.status, ItemStatus::Processed, "{item:?}");
        assert_eq!(item.version, 2, "processed exactly once: {item:?}");
        assert_eq!(item.total, Some(Decimal::new(250, 2) * Decimal::from(i + 1)));
        assert_eq!(item.name, format!("item v{i}"));
        assert_eq!(invoker.queue().store().writes_of(&format!("v{i}")), 1);
    }
    for i in 0..3 {
        let item = &items[&format!("bad{i}")];
        assert_eq!((item.status, item.version), (ItemStatus::Failed, 2), "{item:?}");
        assert_eq!(item.failure_reason.as_deref(), Some("quantity -1 is negative"));
    }

    let (letters, raw) = classify(&drain(&stack.sqs, stack.queue("ProcessingDeadLetterQueue")).await);
    assert!(raw.is_empty(), "nothing exhausted its retries: {raw:?}");
    let decode: Vec<&DeadLetter> = letters.iter().filter(|l| l.error.kind == "decode").collect();
    assert_eq!(decode.len(), 3, "the three poison bodies: {letters:#?}");
    let invalid: HashSet<String> = letters
        .iter()
        .filter(|l| l.error.kind == "validation")
        .map(|l| l.error.message.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(invalid, ["bad0", "bad1", "bad2"].map(String::from).into(), "{letters:#?}");
    assert_eq!(letters.len(), 6, "nothing else is dead-lettered: {letters:#?}");
    assert!(drain(&stack.sqs, stack.queue("StreamDeadLetterQueue")).await.is_empty());
    assert!(drain(&stack.sqs, stack.queue("StreamFailureQueue")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_faults_and_panics_nothing_is_lost_and_nothing_applied_twice() {
    // GIVEN 15% of table calls failing, 5% panicking (also after a write
    // landed), and 20% of the stream processor's queue calls failing
    let stack = Stack::new("chaos").await;
    let invoker = Arc::new(stack.invoker(0.15, 0.05, 0.2));
    // WHEN 30 items and the producer's jobs go through
    run(&stack, invoker.clone(), 30).await;
    assert!(invoker.queue().store().injected.load(std::sync::atomic::Ordering::SeqCst) > 0, "faults were injected");

    // THEN every item ended processed (written once) or its job is in the DLQ
    let items = stack.items().await;
    let (letters, raw) = classify(&drain(&stack.sqs, stack.queue("ProcessingDeadLetterQueue")).await);
    let raw_jobs: Vec<Job> = raw.iter().filter_map(|b| serde_json::from_str(b).ok()).collect();
    let mut processed = 0;
    let mut dead = 0;
    for i in 0..30 {
        let id = format!("v{i}");
        let item = &items[&id];
        let writes = invoker.queue().store().writes_of(&id);
        assert!(writes <= 1, "{id} written {writes} times");
        if item.status == ItemStatus::Processed {
            assert_eq!((item.version, writes), (2, 1), "{item:?}");
            processed += 1;
        } else {
            assert_eq!(item.status, ItemStatus::Pending);
            assert!(raw_jobs.iter().any(|j| j.item_id() == id), "{id} neither processed nor dead-lettered");
            dead += 1;
        }
    }
    println!("processed {processed}, dead-lettered after maxReceiveCount {dead}, raw in DLQ {}", raw.len());
    assert_eq!(processed + dead, 30);
    assert_eq!(letters.iter().filter(|l| l.error.kind == "decode").count(), 3, "{letters:#?}");
    for i in 0..3 {
        let item = &items[&format!("bad{i}")];
        let failed = item.status == ItemStatus::Failed;
        let in_dlq = letters.iter().any(|l| l.error.message.contains(&format!("bad{i} ")))
            || raw_jobs.iter().any(|j| j.item_id() == format!("bad{i}"));
        assert!(in_dlq, "bad{i}'s job is dead-lettered");
        assert!(failed || item.status == ItemStatus::Pending, "{item:?}");
    }
}
