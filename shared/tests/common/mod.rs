//! Helpers shared by the engine tests: events built in code, handlers that
//! follow a script, and counters.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use pipeline_core::{ProcessorInfo, RecordError, SqsEvent, StreamEvent};
use serde_json::{json, Value};

pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:jobs";
pub const FIFO_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:jobs.fifo";
pub const STREAM_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/items/stream/2026-01-01T00:00:00.000";

pub fn info() -> ProcessorInfo {
    ProcessorInfo::new("test-processor", "9.9.9")
}

pub fn sqs_record(id: &str, group: Option<&str>, arn: &str, body: Value) -> Value {
    let mut attributes = json!({"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"});
    if let Some(g) = group {
        attributes["MessageGroupId"] = json!(g);
    }
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body.to_string(),
        "attributes": attributes, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": arn, "awsRegion": "us-east-1"
    })
}

/// `(messageId, group)` pairs with a body `{"n": <index>}`.
pub fn sqs_event(records: &[(&str, Option<&str>)], arn: &str) -> SqsEvent {
    let records: Vec<Value> =
        records.iter().enumerate().map(|(i, (id, g))| sqs_record(id, *g, arn, json!({"n": i}))).collect();
    from_records(records)
}

pub fn from_records<T: serde::de::DeserializeOwned>(records: Vec<Value>) -> T {
    serde_json::from_value(json!({ "Records": records })).expect("valid event")
}

pub fn stream_record(seq: u64, key: &str, name: &str) -> Value {
    let image = json!({"pk": {"S": key}, "n": {"N": seq.to_string()}});
    let mut data = json!({
        "ApproximateCreationDateTime": 1_700_000_000, "Keys": {"pk": {"S": key}},
        "SequenceNumber": seq.to_string(), "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    match name {
        "INSERT" => data["NewImage"] = image,
        "MODIFY" => {
            data["NewImage"] = image.clone();
            data["OldImage"] = image;
        }
        _ => data["OldImage"] = image,
    }
    json!({
        "eventID": format!("e{seq}"), "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1", "eventSourceARN": STREAM_ARN, "dynamodb": data
    })
}

/// `(SequenceNumber, key)` pairs, all INSERTs.
pub fn stream_event(records: &[(u64, &str)]) -> StreamEvent {
    from_records(records.iter().map(|(seq, key)| stream_record(*seq, key, "INSERT")).collect())
}

/// A tiny typed body / image used by the engine tests.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
pub struct N {
    pub n: u64,
}

/// What a scripted handler does for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Ok,
    Retry,
    Permanent,
    Panic,
}

impl Act {
    pub fn fails(self) -> bool {
        matches!(self, Act::Retry | Act::Panic)
    }
}

/// Records which records ran, and acts by a script keyed by record id.
#[derive(Default)]
pub struct Script {
    pub acts: HashMap<String, Act>,
    pub ran: Mutex<Vec<String>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Script {
    pub fn new(acts: &[(&str, Act)]) -> Self {
        Self { acts: acts.iter().map(|(k, a)| (k.to_string(), *a)).collect(), ..Self::default() }
    }

    pub async fn act(&self, id: &str) -> Result<(), RecordError> {
        self.ran.lock().unwrap().push(id.to_owned());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Simulated work; tests run with paused time, so this advances a
        // virtual clock and lets other records interleave.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match self.acts.get(id).copied().unwrap_or(Act::Ok) {
            Act::Ok => Ok(()),
            Act::Retry => Err(RecordError::retryable(format!("{id}: transient"))),
            Act::Permanent => Err(RecordError::permanent("validation", format!("{id}: invalid"))),
            Act::Panic => panic!("{id}: handler bug"),
        }
    }

    pub fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }
}

impl Script {
    pub async fn act_on(&self, m: pipeline_core::Message<N>) -> Result<(), RecordError> {
        self.act(&m.meta.message_id).await
    }

    pub async fn act_on_stream(&self, r: pipeline_core::StreamRecord<N>) -> Result<(), RecordError> {
        self.act(&r.meta.sequence_number).await
    }
}
