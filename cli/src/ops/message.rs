//! What a dead-letter queue holds, and how each kind goes back.
//!
//! - **envelopes** (`docs/dead-letter-envelope.md`) written by the
//!   processors for permanent failures: `record` is the Lambda record as it
//!   arrived. An SQS record goes back as `record.body` with
//!   `record.messageAttributes`; a stream record is replayed through the
//!   stream processor.
//! - **raw** messages SQS moved after `maxReceiveCount`: they go back as
//!   they are, message attributes included.
//! - **stream batches**: the `OnFailure` documents of a DynamoDB stream
//!   mapping (LAMBDA-SEMANTICS.md section 2), pointers to a range of a
//!   shard; the records are re-read from the stream and replayed.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use aws_smithy_types::{base64, Blob};
use chrono::{DateTime, Utc};
use pipeline_core::DeadLetter;
use serde_json::{json, Map, Value};

/// The attribute added to every redriven message: the id of the
/// dead-letter message it came from, so a repeat failure can be traced.
pub const ATTR_REDRIVEN_FROM: &str = "pipeline.redriven_from";

/// SQS's limit on message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The pointer an `OnFailure` document holds (`DDBStreamBatchInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBatch {
    /// The stream.
    pub stream_arn: String,
    /// The shard.
    pub shard_id: String,
    /// First sequence number of the dropped batch.
    pub start_sequence_number: String,
    /// Last sequence number of the dropped batch.
    pub end_sequence_number: String,
    /// Records in the dropped batch, as Lambda counted them.
    pub batch_size: Option<u64>,
    /// `requestContext.condition` (why the batch was dropped).
    pub condition: Option<String>,
    /// `requestContext.functionArn`.
    pub function_arn: Option<String>,
}

impl StreamBatch {
    /// Reads an `OnFailure` document; `None` if `body` is not one.
    pub fn from_json(body: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(body).ok()?;
        let info = v.get("DDBStreamBatchInfo")?;
        let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        let rc = v.get("requestContext");
        Some(Self {
            stream_arn: s("streamArn")?,
            shard_id: s("shardId")?,
            start_sequence_number: s("startSequenceNumber")?,
            end_sequence_number: s("endSequenceNumber")?,
            batch_size: info.get("batchSize").and_then(Value::as_u64),
            condition: rc.and_then(|r| r.get("condition")).and_then(Value::as_str).map(str::to_owned),
            function_arn: rc.and_then(|r| r.get("functionArn")).and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// `shard <id> [<start> .. <end>]`.
    pub fn range(&self) -> String {
        format!("shard {} [{} .. {}]", self.shard_id, self.start_sequence_number, self.end_sequence_number)
    }
}

/// What a dead-letter message is.
#[derive(Debug, Clone)]
pub enum Content {
    /// A dead-letter envelope.
    Envelope(Box<DeadLetter>),
    /// A stream mapping's `OnFailure` document.
    StreamBatch(StreamBatch),
    /// An envelope this version cannot read (a newer schema version).
    Unsupported(String),
    /// Anything else: the original message, moved by SQS.
    Raw,
}

/// One message received from a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DlqMessage {
    /// `MessageId`.
    pub message_id: String,
    /// The receipt handle of this receive.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// System attributes (`SentTimestamp`, `ApproximateReceiveCount`,
    /// `MessageGroupId`, `DeadLetterQueueSourceArn`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Message attributes.
    pub message_attributes: HashMap<String, MessageAttributeValue>,
    /// What the body is.
    pub content: Content,
}

impl DlqMessage {
    /// Classifies a received message.
    pub fn from_sdk(m: Message) -> Self {
        let body = m.body.unwrap_or_default();
        let content = classify(&body);
        let attributes = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v): (MessageSystemAttributeName, String)| (k.as_str().to_owned(), v))
            .collect();
        Self {
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            body,
            attributes,
            message_attributes: m.message_attributes.unwrap_or_default(),
            content,
        }
    }

    /// When the message was sent (for a message SQS moved to a standard
    /// dead-letter queue: when it was first sent to its source queue).
    pub fn sent_at(&self) -> Option<DateTime<Utc>> {
        let ms: i64 = self.attributes.get("SentTimestamp")?.parse().ok()?;
        DateTime::from_timestamp_millis(ms)
    }

    /// `ApproximateReceiveCount`.
    pub fn receive_count(&self) -> Option<u64> {
        self.attributes.get("ApproximateReceiveCount")?.parse().ok()
    }

    /// The error kind: the envelope's `error.kind`, `raw` for a message SQS
    /// moved, `stream_batch` for an `OnFailure` document, `unsupported` for
    /// an envelope of an unknown schema version.
    pub fn kind(&self) -> &str {
        match &self.content {
            Content::Envelope(l) => &l.error.kind,
            Content::StreamBatch(_) => "stream_batch",
            Content::Unsupported(_) => "unsupported",
            Content::Raw => "raw",
        }
    }

    /// The processor that dead-lettered it (the function, for a stream
    /// batch); `None` for raw messages.
    pub fn processor(&self) -> Option<&str> {
        match &self.content {
            Content::Envelope(l) => Some(&l.processor.name),
            Content::StreamBatch(b) => b.function_arn.as_deref().map(|a| a.rsplit(':').next().unwrap_or(a)),
            _ => None,
        }
    }

    /// `sqs` or `dynamodb_stream` for envelopes, `stream_batch`, `raw`,
    /// `unsupported`.
    pub fn source_kind(&self) -> &'static str {
        match &self.content {
            Content::Envelope(l) => l.source.kind.as_str(),
            Content::StreamBatch(_) => "stream_batch",
            Content::Unsupported(_) => "unsupported",
            Content::Raw => "raw",
        }
    }

    /// A one-line description: the error message, the range, or the start
    /// of the body.
    pub fn detail(&self) -> String {
        match &self.content {
            Content::Envelope(l) => l.error.message.clone(),
            Content::StreamBatch(b) => {
                format!("{} ({})", b.range(), b.condition.as_deref().unwrap_or("dropped batch"))
            }
            Content::Unsupported(why) => why.clone(),
            Content::Raw => self.body.clone(),
        }
    }

    /// The message as one JSON object: id, body, system attributes and
    /// message attributes (in the Lambda record's shape). The line format
    /// of `dlq export` / `dlq import`.
    pub fn to_json(&self) -> Value {
        json!({
            "messageId": self.message_id,
            "body": self.body,
            "attributes": self.attributes,
            "messageAttributes": attributes_to_json(&self.message_attributes),
        })
    }
}

/// Reads a body: envelope, `OnFailure` document, unsupported envelope, or
/// raw.
pub fn classify(body: &str) -> Content {
    if !body.trim_start().starts_with('{') {
        return Content::Raw;
    }
    match DeadLetter::from_json(body) {
        Ok(letter) => Content::Envelope(Box::new(letter)),
        Err(e) => {
            let Ok(v) = serde_json::from_str::<Value>(body) else { return Content::Raw };
            if v.get("schema").and_then(Value::as_str) == Some(pipeline_core::dlq::ENVELOPE_SCHEMA) {
                return Content::Unsupported(format!("cannot read this envelope: {e}; upgrade pipeline"));
            }
            match StreamBatch::from_json(body) {
                Some(b) => Content::StreamBatch(b),
                None => Content::Raw,
            }
        }
    }
}

/// Message attributes in the Lambda record's JSON shape
/// (`{"k": {"stringValue": "v", "dataType": "String", ...}}`), binary as
/// base64.
pub fn attributes_to_json(attrs: &HashMap<String, MessageAttributeValue>) -> Value {
    let mut sorted: Vec<_> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Map::new();
    for (name, v) in sorted {
        let mut a = Map::new();
        if let Some(s) = v.string_value() {
            a.insert("stringValue".into(), Value::String(s.to_owned()));
        }
        if let Some(b) = v.binary_value() {
            a.insert("binaryValue".into(), Value::String(base64::encode(b.as_ref())));
        }
        a.insert(
            "stringListValues".into(),
            Value::Array(v.string_list_values().iter().cloned().map(Value::String).collect()),
        );
        a.insert(
            "binaryListValues".into(),
            Value::Array(v.binary_list_values().iter().map(|b| Value::String(base64::encode(b.as_ref()))).collect()),
        );
        a.insert("dataType".into(), Value::String(v.data_type().to_owned()));
        out.insert(name.clone(), Value::Object(a));
    }
    Value::Object(out)
}

/// The inverse of [`attributes_to_json`]; also reads the capitalised keys
/// of the SQS API (`StringValue`, `DataType`, ...).
pub fn attributes_from_json(v: &Value) -> Result<HashMap<String, MessageAttributeValue>, String> {
    let mut out = HashMap::new();
    let Some(obj) = v.as_object() else {
        return if v.is_null() { Ok(out) } else { Err("messageAttributes is not an object".into()) };
    };
    for (name, a) in obj {
        let get = |k: &str| {
            let mut cap = k.to_owned();
            if let Some(first) = cap.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            a.get(k).or_else(|| a.get(&cap))
        };
        let data_type = get("dataType")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("message attribute {name} has no dataType"))?;
        let mut b = MessageAttributeValue::builder().data_type(data_type);
        if let Some(s) = get("stringValue").and_then(Value::as_str) {
            b = b.string_value(s);
        }
        if let Some(s) = get("binaryValue").and_then(Value::as_str) {
            let bytes = base64::decode(s).map_err(|e| format!("message attribute {name}: binaryValue: {e}"))?;
            b = b.binary_value(Blob::new(bytes));
        }
        let value = b.build().map_err(|e| format!("message attribute {name}: {e}"))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// FIFO group and deduplication ids: at most 128 characters of
/// `[A-Za-z0-9!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~]`. Other values are replaced
/// by a stable hash.
pub fn fifo_token(s: &str) -> String {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        return s.to_owned();
    }
    format!("h{}", fnv_hex(s))
}

/// A stable 64-bit hash (FNV-1a) as 16 hex digits: the same across runs
/// and versions, unlike std's hasher.
pub fn fnv_hex(s: &str) -> String {
    let hash = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// A message to send back to a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The body.
    pub body: String,
    /// Message attributes.
    pub attributes: HashMap<String, MessageAttributeValue>,
    /// FIFO group id (of the original message).
    pub group_id: Option<String>,
    /// FIFO deduplication id.
    pub deduplication_id: Option<String>,
}

impl Outgoing {
    /// Body plus attribute names, types and values: what SQS counts against
    /// its size limit.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| {
                    k.len()
                        + v.data_type().len()
                        + v.string_value().map_or(0, str::len)
                        + v.binary_value().map_or(0, |b| b.as_ref().len())
                })
                .sum::<usize>()
    }
}

/// The message that goes back to a queue for an SQS envelope or a raw
/// message: the original body and message attributes, the FIFO group id,
/// [`ATTR_REDRIVEN_FROM`] (when the message has fewer than 10 attributes,
/// SQS's limit), and a deduplication id derived from
/// the dead-letter message id (so a retried move within SQS's 5-minute
/// window is deduplicated, and a first move is never mistaken for a
/// duplicate of the original send). `None` for stream records, stream
/// batches and unsupported envelopes.
pub fn outgoing_for(m: &DlqMessage) -> Result<Option<Outgoing>, String> {
    let (body, mut attributes, group_id) = match &m.content {
        Content::Raw => (m.body.clone(), m.message_attributes.clone(), m.attributes.get("MessageGroupId").cloned()),
        Content::Envelope(l) if l.source.kind == pipeline_core::dlq::SourceKind::Sqs => {
            let record: Value = serde_json::from_str(l.record.get())
                .map_err(|e| format!("the envelope's record is not valid JSON: {e}"))?;
            let body = record
                .get("body")
                .and_then(Value::as_str)
                .ok_or("the envelope's record has no body (not an SQS record)")?
                .to_owned();
            let attrs = attributes_from_json(record.get("messageAttributes").unwrap_or(&Value::Null))?;
            let group = record
                .get("attributes")
                .and_then(|a| a.get("MessageGroupId"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| l.source.group.clone());
            (body, attrs, group)
        }
        _ => return Ok(None),
    };
    if attributes.len() < MAX_MESSAGE_ATTRIBUTES && !attributes.contains_key(ATTR_REDRIVEN_FROM) {
        let v = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&m.message_id)
            .build()
            .map_err(|e| e.to_string())?;
        attributes.insert(ATTR_REDRIVEN_FROM.to_owned(), v);
    }
    Ok(Some(Outgoing {
        body,
        attributes,
        group_id,
        deduplication_id: Some(fifo_token(&format!("redrive-{}", m.message_id))),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(body: &str) -> DlqMessage {
        DlqMessage::from_sdk(
            Message::builder()
                .message_id("dlq-1")
                .receipt_handle("rh")
                .body(body)
                .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
                .attributes(MessageSystemAttributeName::MessageGroupId, "g1")
                .message_attributes(
                    "trace",
                    MessageAttributeValue::builder().data_type("String").string_value("t-1").build().unwrap(),
                )
                .build(),
        )
    }

    #[test]
    fn raw_messages_go_back_as_they_are() {
        let m = message(r#"{"type":"process_item","item_id":"a","version":1}"#);
        assert_eq!(m.kind(), "raw");
        assert_eq!(m.sent_at().unwrap().timestamp(), 1_700_000_000);
        let out = outgoing_for(&m).unwrap().unwrap();
        assert_eq!(out.body, m.body);
        assert_eq!(out.group_id.as_deref(), Some("g1"));
        assert_eq!(out.attributes["trace"].string_value(), Some("t-1"));
        assert_eq!(out.attributes[ATTR_REDRIVEN_FROM].string_value(), Some("dlq-1"));
        assert_eq!(out.deduplication_id.as_deref(), Some("redrive-dlq-1"));
    }

    #[test]
    fn sqs_envelopes_go_back_as_the_original_record() {
        let envelope = json!({
            "schema": "lambda-pipeline/dead-letter", "schema_version": 1,
            "source": {"kind": "sqs", "arn": "arn:aws:sqs:us-east-1:1:q", "record_id": "m-1", "group": "g9"},
            "error": {"kind": "validation", "message": "quantity -1 is negative"},
            "processor": {"name": "queue-processor", "version": "0.1.0"},
            "attempts": 1,
            "first_failed_at": "2026-01-01T00:00:00Z", "dead_lettered_at": "2026-01-01T00:00:00Z",
            "record": {"messageId": "m-1", "body": "{\"x\":1}", "attributes": {"MessageGroupId": "g9"},
                       "messageAttributes": {"a": {"stringValue": "1", "dataType": "String",
                                                   "stringListValues": [], "binaryListValues": []},
                                             "b": {"binaryValue": "eHk=", "dataType": "Binary"}}}
        });
        let m = message(&envelope.to_string());
        assert_eq!((m.kind(), m.processor(), m.source_kind()), ("validation", Some("queue-processor"), "sqs"));
        let out = outgoing_for(&m).unwrap().unwrap();
        assert_eq!(out.body, "{\"x\":1}");
        assert_eq!(out.group_id.as_deref(), Some("g9"));
        assert_eq!(out.attributes["a"].string_value(), Some("1"));
        assert_eq!(out.attributes["b"].binary_value().unwrap().as_ref(), b"xy");
        assert!(!out.attributes.contains_key("pipeline.error_kind"));
        let round = attributes_from_json(&attributes_to_json(&out.attributes)).unwrap();
        assert_eq!(round, out.attributes);
    }

    #[test]
    fn on_failure_documents_and_foreign_envelopes_are_recognised() {
        let doc = json!({"requestContext": {"condition": "RetryAttemptsExhausted",
                            "functionArn": "arn:aws:lambda:us-east-1:1:function:s-StreamProcessorFunction"},
                         "DDBStreamBatchInfo": {"shardId": "sh-1", "startSequenceNumber": "100",
                            "endSequenceNumber": "120", "batchSize": 3, "streamArn": "arn:s"}});
        let m = message(&doc.to_string());
        let Content::StreamBatch(b) = &m.content else { panic!("{:?}", m.content) };
        assert_eq!((b.start_sequence_number.as_str(), b.end_sequence_number.as_str()), ("100", "120"));
        assert_eq!(m.processor(), Some("s-StreamProcessorFunction"));
        assert!(outgoing_for(&m).unwrap().is_none());
        let newer = message(r#"{"schema":"lambda-pipeline/dead-letter","schema_version":2}"#);
        assert_eq!(newer.kind(), "unsupported");
    }

    #[test]
    fn fifo_tokens_are_bounded() {
        assert_eq!(fifo_token("abc"), "abc");
        assert_eq!(fifo_token(&"x".repeat(200)).len(), 17);
        assert!(fifo_token("é").starts_with('h'));
    }
}
