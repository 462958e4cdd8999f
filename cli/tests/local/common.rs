//! Shared helpers: SDK config from the environment, unique names, inline
//! templates, a scripted invoker and queue helpers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use pipeline_cli::esm::{DrainOptions, Emulator, EmulatorOptions, EmulatorReport, RunningEmulator};
use pipeline_cli::invoke::{Invocation, Invoker};
use pipeline_cli::provision::{provision, ProvisionedStack};
use pipeline_cli::template::{StackContext, Template};
use serde_json::{json, Value};

/// The SDK config for the local endpoint. Fails (never skips) when the
/// endpoint is not configured.
pub async fn sdk() -> SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: run these tests with scripts/test (it starts a local moto server \
         and sets the endpoint, region and test credentials)"
    );
    match pipeline_cli::aws::load_sdk_config().await {
        Ok(c) => c,
        Err(e) => panic!("{e}; run these tests with scripts/test"),
    }
}

/// A unique stack name: every resource name derives from it, so tests can
/// share one moto server and run in parallel.
pub fn unique_stack() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t{}", &id[..12])
}

/// A provisioned inline template.
pub struct Stack {
    pub sdk: SdkConfig,
    pub stack: ProvisionedStack,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Stack {
    pub async fn new(yaml: &str) -> Self {
        let sdk = sdk().await;
        let template = Template::from_yaml(yaml, "inline.yaml").unwrap();
        let ctx = StackContext::local(unique_stack(), pipeline_cli::aws::region_of(&sdk));
        let stack = provision(&sdk, &template, &ctx).await.unwrap();
        Self { sqs: aws_sdk_sqs::Client::new(&sdk), dynamodb: aws_sdk_dynamodb::Client::new(&sdk), sdk, stack }
    }

    pub fn queue_url(&self, logical_id: &str) -> String {
        self.stack.queues[logical_id].url.clone()
    }

    pub fn table_name(&self, logical_id: &str) -> String {
        self.stack.tables[logical_id].name.clone()
    }

    pub async fn start(&self, invoker: &Arc<Scripted>, options: EmulatorOptions) -> RunningEmulator {
        Emulator::start(&self.sdk, &self.stack, Arc::clone(invoker), options).await.unwrap()
    }

    /// Sends messages (bodies) to a queue; FIFO queues get `group`.
    pub async fn send(&self, queue: &str, bodies: &[&str], group: Option<&str>) {
        let url = self.queue_url(queue);
        for b in bodies {
            let mut req = self.sqs.send_message().queue_url(&url).message_body(*b).message_attributes(
                "origin",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("test")
                    .build()
                    .unwrap(),
            );
            if let Some(g) = group {
                req = req.message_group_id(g);
            }
            req.send().await.unwrap();
        }
    }

    /// Puts an item `{pk: <pk>, n: <n>}`.
    pub async fn put(&self, table: &str, pk: &str, n: i64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.dynamodb
            .put_item()
            .table_name(self.table_name(table))
            .item("pk", AttributeValue::S(pk.to_owned()))
            .item("n", AttributeValue::N(n.to_string()))
            .send()
            .await
            .unwrap();
    }

    /// Receives (and deletes) every message currently in a queue.
    pub async fn drain_queue(&self, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let url = self.queue_url(queue);
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return out;
            }
            for m in &got {
                self.sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            out.extend(got);
        }
    }
}

/// Drains with a deadline and asserts it drained.
pub async fn drain(running: RunningEmulator) -> EmulatorReport {
    let report = running.drain(DrainOptions { idle_polls: 2, deadline: Duration::from_secs(40) }).await;
    assert!(report.drained, "not drained before the deadline:\n{report}");
    report
}

/// Options for tests: fast backoffs, and `pollers` SQS pollers by default.
pub fn options(pollers: usize) -> EmulatorOptions {
    EmulatorOptions { default_sqs_concurrency: pollers, ..EmulatorOptions::fast() }
}

type Script = dyn Fn(usize, &Value) -> Invocation + Send + Sync;
type Delay = dyn Fn(usize) -> Duration + Send + Sync;

/// One recorded invocation.
#[derive(Debug, Clone)]
pub struct Call {
    pub function: String,
    pub payload: Value,
    #[allow(dead_code)]
    pub at: Instant,
}

impl Call {
    pub fn records(&self) -> Vec<Value> {
        self.payload["Records"].as_array().cloned().unwrap_or_default()
    }

    /// SQS bodies, or stream `pk`s, in order.
    pub fn keys(&self) -> Vec<String> {
        self.records().iter().map(key_of).collect()
    }

    pub fn seqs(&self) -> Vec<String> {
        self.records().iter().map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned()).collect()
    }
}

/// The body of an SQS record, or the `pk` of a stream record.
pub fn key_of(r: &Value) -> String {
    match r.get("body") {
        Some(b) => b.as_str().unwrap().to_owned(),
        None => r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().to_owned(),
    }
}

/// A scripted invoker: `script(call index, payload)` decides the outcome;
/// every call is recorded, with the maximum number of concurrent calls.
pub struct Scripted {
    script: Box<Script>,
    delay: Box<Delay>,
    calls: Mutex<Vec<Call>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
    groups_active: Mutex<HashMap<String, usize>>,
    group_overlaps: AtomicUsize,
}

impl Scripted {
    pub fn new(script: impl Fn(usize, &Value) -> Invocation + Send + Sync + 'static) -> Arc<Self> {
        Self::with_delay(|_| Duration::ZERO, script)
    }

    /// `delay(call index)`: how long the call takes.
    pub fn with_delay(
        delay: impl Fn(usize) -> Duration + Send + Sync + 'static,
        script: impl Fn(usize, &Value) -> Invocation + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            delay: Box::new(delay),
            calls: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            groups_active: Mutex::new(HashMap::new()),
            group_overlaps: AtomicUsize::new(0),
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_active.load(Ordering::SeqCst)
    }

    /// How often a FIFO group was in two invocations at the same time.
    pub fn group_overlaps(&self) -> usize {
        self.group_overlaps.load(Ordering::SeqCst)
    }

    /// How many times each key (body / pk) was handed to the function.
    pub fn deliveries(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for c in self.calls() {
            for k in c.keys() {
                *out.entry(k).or_insert(0) += 1;
            }
        }
        out
    }

    fn groups(payload: &Value) -> Vec<String> {
        let mut g: Vec<String> = payload["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["attributes"]["MessageGroupId"].as_str().map(str::to_owned))
            .collect();
        g.sort();
        g.dedup();
        g
    }
}

impl Invoker for Scripted {
    async fn invoke(&self, function: &str, payload: Value) -> Invocation {
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call { function: function.to_owned(), payload: payload.clone(), at: Instant::now() });
            calls.len() - 1
        };
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        let groups = Self::groups(&payload);
        {
            let mut active = self.groups_active.lock().unwrap();
            for g in &groups {
                let n = active.entry(g.clone()).or_insert(0);
                if *n > 0 {
                    self.group_overlaps.fetch_add(1, Ordering::SeqCst);
                }
                *n += 1;
            }
        }
        let result = (self.script)(index, &payload);
        let delay = (self.delay)(index);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        {
            let mut active = self.groups_active.lock().unwrap();
            for g in &groups {
                if let Some(n) = active.get_mut(g) {
                    *n -= 1;
                }
            }
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

pub fn ok() -> Invocation {
    Invocation::Response(Value::Null)
}

pub fn error() -> Invocation {
    Invocation::FunctionError { error_type: "Scripted".into(), message: "scripted failure".into() }
}

/// `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`.
pub fn failures(ids: &[&str]) -> Invocation {
    Invocation::Response(json!({
        "batchItemFailures": ids.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()
    }))
}

/// The messageId of the record whose body is `body`, if in the payload.
pub fn message_id(payload: &Value, body: &str) -> Option<String> {
    payload["Records"]
        .as_array()?
        .iter()
        .find(|r| r["body"] == body)
        .and_then(|r| r["messageId"].as_str().map(str::to_owned))
}

/// The SequenceNumber of the stream record with `pk`, if in the payload.
pub fn sequence_of(payload: &Value, pk: &str) -> Option<String> {
    payload["Records"]
        .as_array()?
        .iter()
        .find(|r| r["dynamodb"]["Keys"]["pk"]["S"] == pk)
        .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned))
}

/// An SQS stack: queue `Queue` (with DLQ `Dlq`) and function `Fn` with
/// event `Jobs`. `queue` and `event` are extra `Key: value` entries.
pub fn sqs_template(fifo: bool, queue: &[&str], event: &[&str], timeout: u32) -> String {
    let (suffix, fifo_props) =
        if fifo { (".fifo", "FifoQueue: true, ContentBasedDeduplication: true, ") } else { ("", "") };
    let queue = queue.join(", ");
    let event = event.iter().map(|e| format!(", {e}")).collect::<String>();
    format!(
        r#"
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties: {{QueueName: !Sub "${{AWS::StackName}}-dlq{suffix}", {fifo_props}MessageRetentionPeriod: 600}}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {{QueueName: !Sub "${{AWS::StackName}}-q{suffix}", {fifo_props}{queue}}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: {timeout}
      Environment:
        Variables: {{QUEUE_URL: !Ref Queue, DLQ_ARN: !GetAtt Dlq.Arn}}
      Events:
        Jobs:
          Type: SQS
          Properties: {{Queue: !GetAtt Queue.Arn{event}}}
"#
    )
}

/// A stream stack: table `Items` (pk), OnFailure queue `Failures` and
/// function `Fn` with event `Changes`; `event` adds `Key: value` entries.
pub fn stream_template(event: &[&str]) -> String {
    let start =
        if event.iter().any(|e| e.starts_with("StartingPosition:")) { "" } else { "StartingPosition: TRIM_HORIZON" };
    let event = event.join("\n            ");
    format!(
        r#"
Resources:
  Items:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${{AWS::StackName}}-items"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{{AttributeName: pk, AttributeType: S}}]
      KeySchema: [{{AttributeName: pk, KeyType: HASH}}]
      StreamSpecification: {{StreamViewType: NEW_AND_OLD_IMAGES}}
  Failures:
    Type: AWS::SQS::Queue
    Properties: {{QueueName: !Sub "${{AWS::StackName}}-failures"}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 5
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Items.StreamArn
            {start}
            DestinationConfig: {{OnFailure: {{Type: SQS, Destination: !GetAtt Failures.Arn}}}}
            {event}
"#
    )
}
