//! SQS events: raw records in, typed [`Message`]s out.
//!
//! Like stream events, a batch is split into raw records first and each
//! record is decoded on its own: a body that is not a valid `T` fails only
//! its own message.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessageAttribute;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{DecodeError, RecordRef};

/// An SQS Lambda event, split into raw records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqsEvent {
    /// The records, verbatim.
    #[serde(rename = "Records")]
    pub records: Vec<Box<RawValue>>,
}

/// Everything about an SQS message except its body.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageMeta {
    /// `messageId`: the identifier reported in `batchItemFailures`.
    pub message_id: String,
    /// `receiptHandle`.
    pub receipt_handle: Option<String>,
    /// `ApproximateReceiveCount`: 1 on first delivery.
    pub receive_count: u32,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
    /// `ApproximateFirstReceiveTimestamp`.
    pub first_received_at: Option<DateTime<Utc>>,
    /// FIFO only: `MessageGroupId`.
    pub group_id: Option<String>,
    /// FIFO only: `MessageDeduplicationId`.
    pub deduplication_id: Option<String>,
    /// FIFO only: `SequenceNumber`.
    pub sequence_number: Option<String>,
    /// `messageAttributes`.
    pub message_attributes: HashMap<String, SqsMessageAttribute>,
    /// `eventSourceARN`: the queue.
    pub event_source_arn: Option<String>,
}

/// A decoded SQS message: the typed body and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<T> {
    /// The body, decoded from JSON.
    pub body: T,
    /// Identifiers, attributes and counts.
    pub meta: MessageMeta,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SqsHeader {
    pub(crate) reference: RecordRef,
    pub(crate) group_id: Option<String>,
    pub(crate) source_arn: Option<String>,
    pub(crate) receive_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    receipt_handle: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    message_attributes: HashMap<String, SqsMessageAttribute>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSqsHeader {
    #[serde(default)]
    message_id: Option<serde_json::Value>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<serde_json::Value>,
    #[serde(default)]
    attributes: Option<serde_json::Value>,
}

fn as_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn millis(s: Option<&String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| s.parse::<i64>().ok()).and_then(DateTime::from_timestamp_millis)
}

pub(crate) fn sqs_header(index: usize, raw: &RawValue) -> SqsHeader {
    let h: RawSqsHeader = serde_json::from_str(raw.get()).unwrap_or_default();
    let attr = |name: &str| as_text(h.attributes.as_ref().and_then(|a| a.get(name)));
    SqsHeader {
        reference: RecordRef { index, message_id: as_text(h.message_id.as_ref()), ..RecordRef::default() },
        group_id: attr("MessageGroupId"),
        receive_count: attr("ApproximateReceiveCount").and_then(|c| c.parse().ok()),
        source_arn: as_text(h.event_source_arn.as_ref()),
    }
}

/// Decodes one raw SQS record, returning its header in every case.
pub(crate) fn decode_sqs_record<T: DeserializeOwned>(
    index: usize,
    raw: &RawValue,
) -> (SqsHeader, Result<Message<T>, DecodeError>) {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let record: RawMessage = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(err) => {
            let header = sqs_header(index, raw);
            let path = err.path().to_string();
            let error = DecodeError::new(header.reference.clone(), path, err.into_inner().to_string());
            return (header, Err(error));
        }
    };
    let attrs = &record.attributes;
    let header = SqsHeader {
        reference: RecordRef {
            index,
            message_id: record.message_id.clone().filter(|s| !s.is_empty()),
            ..RecordRef::default()
        },
        group_id: attrs.get("MessageGroupId").cloned(),
        source_arn: record.event_source_arn.clone(),
        receive_count: attrs.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()),
    };
    let Some(message_id) = header.reference.message_id.clone() else {
        let err = DecodeError::new(header.reference.clone(), "messageId", "missing or empty");
        return (header, Err(err));
    };
    let Some(body) = record.body else {
        let err = DecodeError::new(header.reference.clone(), "body", "missing");
        return (header, Err(err));
    };
    let mut body_de = serde_json::Deserializer::from_str(&body);
    let decoded = serde_path_to_error::deserialize::<_, T>(&mut body_de)
        .map_err(|err| {
            let path = match err.path().to_string() {
                p if p == "." => "body".to_owned(),
                p => format!("body.{p}"),
            };
            (path, err.into_inner().to_string())
        })
        .and_then(|v| body_de.end().map(|()| v).map_err(|e| ("body".to_owned(), e.to_string())));
    let body = match decoded {
        Ok(b) => b,
        Err((path, message)) => {
            let message = format!("the body is not a valid {}: {message}", short_type_name::<T>());
            return (header.clone(), Err(DecodeError::new(header.reference, path, message)));
        }
    };
    let meta = MessageMeta {
        message_id,
        receipt_handle: record.receipt_handle,
        receive_count: header.receive_count.unwrap_or(1),
        sent_at: millis(attrs.get("SentTimestamp")),
        first_received_at: millis(attrs.get("ApproximateFirstReceiveTimestamp")),
        group_id: header.group_id.clone(),
        deduplication_id: attrs.get("MessageDeduplicationId").cloned(),
        sequence_number: attrs.get("SequenceNumber").cloned(),
        message_attributes: record.message_attributes,
        event_source_arn: record.event_source_arn,
    };
    (header, Ok(Message { body, meta }))
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Decodes every record of an SQS event on its own.
pub fn decode_sqs_event<T: DeserializeOwned>(event: &SqsEvent) -> Vec<Result<Message<T>, DecodeError>> {
    event.records.iter().enumerate().map(|(i, raw)| decode_sqs_record(i, raw).1).collect()
}
