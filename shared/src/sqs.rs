//! SQS events: raw records in, typed [`Message`]s out.
//!
//! Like stream events, a batch is split into raw records first and each
//! record is decoded on its own: a body that is not a valid `T` fails only
//! its own message.
//!
//! Each record is read once on a fast path (borrowed strings, the known
//! attributes picked out as they are read, the body decoded without path
//! tracking). If anything fails, the record is decoded again on the
//! reference path (`serde_path_to_error` over the envelope and the body),
//! which names the path at fault; both give the same value for any record
//! the fast path accepts (`shared/tests/differential*.rs`).

use std::borrow::Cow;
use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsMessageAttribute;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{DecodeError, RecordRef};
use crate::stream::fast::Text;

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

fn millis(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| s.parse::<i64>().ok()).and_then(DateTime::from_timestamp_millis)
}

/// The identifying fields when they have the expected types, borrowed.
#[derive(Deserialize)]
struct FastSqsHeader<'a> {
    #[serde(rename = "messageId", borrow, default)]
    message_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    attributes: Option<FastSqsAttributes<'a>>,
}

#[derive(Deserialize)]
struct FastSqsAttributes<'a> {
    #[serde(rename = "MessageGroupId", borrow, default)]
    group_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ApproximateReceiveCount", borrow, default)]
    receive_count: Option<std::borrow::Cow<'a, str>>,
}

fn owned_non_empty(s: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(std::borrow::Cow::into_owned)
}

/// Reads the identifying fields of a record, whatever else is wrong with it:
/// a borrowed pass for the usual shape, a lenient one (odd types are
/// ignored) otherwise. Both give the same fields for the usual shape.
pub(crate) fn sqs_header(index: usize, raw: &RawValue) -> SqsHeader {
    if let Ok(h) = serde_json::from_str::<FastSqsHeader<'_>>(raw.get()) {
        let (group_id, receive_count) = match h.attributes {
            Some(a) => (owned_non_empty(a.group_id), owned_non_empty(a.receive_count)),
            None => (None, None),
        };
        return SqsHeader {
            reference: RecordRef { index, message_id: owned_non_empty(h.message_id), ..RecordRef::default() },
            group_id,
            receive_count: receive_count.and_then(|c| c.parse().ok()),
            source_arn: owned_non_empty(h.event_source_arn),
        };
    }
    let h: RawSqsHeader = serde_json::from_str(raw.get()).unwrap_or_default();
    let attr = |name: &str| as_text(h.attributes.as_ref().and_then(|a| a.get(name)));
    SqsHeader {
        reference: RecordRef { index, message_id: as_text(h.message_id.as_ref()), ..RecordRef::default() },
        group_id: attr("MessageGroupId"),
        receive_count: attr("ApproximateReceiveCount").and_then(|c| c.parse().ok()),
        source_arn: as_text(h.event_source_arn.as_ref()),
    }
}

/// The fast path's view of a record: the fields of [`RawMessage`], with the
/// body borrowed where it has no escapes and only the attributes the
/// processors read kept (every attribute must still be a string, as
/// `HashMap<String, String>` demands).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastMessage<'a> {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    receipt_handle: Option<String>,
    #[serde(default, borrow)]
    body: Option<Text<'a>>,
    #[serde(default, borrow)]
    attributes: Known<'a>,
    #[serde(default)]
    message_attributes: HashMap<String, SqsMessageAttribute>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
}

/// The SQS attributes the processors read, borrowed from the record where
/// they have no escapes. A repeated name keeps its last value, as the
/// reference's `HashMap` does.
#[derive(Default)]
struct Known<'a> {
    receive_count: Option<Cow<'a, str>>,
    sent_timestamp: Option<Cow<'a, str>>,
    first_received: Option<Cow<'a, str>>,
    group_id: Option<Cow<'a, str>>,
    deduplication_id: Option<Cow<'a, str>>,
    sequence_number: Option<Cow<'a, str>>,
}

impl<'a> Known<'a> {
    fn slot(&mut self, name: &str) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match name {
            "ApproximateReceiveCount" => &mut self.receive_count,
            "SentTimestamp" => &mut self.sent_timestamp,
            "ApproximateFirstReceiveTimestamp" => &mut self.first_received,
            "MessageGroupId" => &mut self.group_id,
            "MessageDeduplicationId" => &mut self.deduplication_id,
            "SequenceNumber" => &mut self.sequence_number,
            _ => return None,
        })
    }

    fn from_map(mut map: HashMap<String, String>) -> Self {
        let mut known = Self::default();
        for name in [
            "ApproximateReceiveCount",
            "SentTimestamp",
            "ApproximateFirstReceiveTimestamp",
            "MessageGroupId",
            "MessageDeduplicationId",
            "SequenceNumber",
        ] {
            if let Some(slot) = known.slot(name) {
                *slot = map.remove(name).map(Cow::Owned);
            }
        }
        known
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Known<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Known<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Known<'a>, A::Error> {
                let mut known = Known::default();
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    let value = map.next_value::<Text<'de>>()?;
                    if let Some(slot) = known.slot(name.as_str()) {
                        *slot = Some(value.0);
                    }
                }
                Ok(known)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A parsed envelope, from either path.
struct Envelope<'a> {
    message_id: Option<String>,
    receipt_handle: Option<String>,
    attributes: Known<'a>,
    message_attributes: HashMap<String, SqsMessageAttribute>,
    event_source_arn: Option<String>,
}

/// Decodes one raw SQS record, returning its header in every case.
pub(crate) fn decode_sqs_record<T: DeserializeOwned>(
    index: usize,
    raw: &RawValue,
) -> (SqsHeader, Result<Message<T>, DecodeError>) {
    match decode_sqs_message(index, raw) {
        Ok(message) => (header_of(index, &message.meta), Ok(message)),
        Err(failed) => (failed.0, Err(failed.1)),
    }
}

/// A record that did not decode: its header and the error (boxed: the
/// success path must stay small).
pub(crate) type Failed = Box<(SqsHeader, DecodeError)>;

/// The header of a record that decoded, from its metadata.
fn header_of(index: usize, meta: &MessageMeta) -> SqsHeader {
    SqsHeader {
        reference: RecordRef { index, message_id: Some(meta.message_id.clone()), ..RecordRef::default() },
        group_id: meta.group_id.clone(),
        source_arn: meta.event_source_arn.clone(),
        receive_count: Some(meta.receive_count),
    }
}

/// Decodes one raw SQS record; the header is built only for a record that
/// fails (one that decodes carries the same fields in its metadata).
pub(crate) fn decode_sqs_message<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Result<Message<T>, Failed> {
    if let Ok(record) = serde_json::from_str::<FastMessage<'_>>(raw.get()) {
        // A body that does not decode goes to the reference path for its
        // error; so does everything else that fails here.
        let body = match record.body {
            None => None,
            Some(body) => match fast_body::<T>(body.as_str()) {
                Some(value) => Some(Ok(value)),
                None => return reference_sqs_record(index, raw),
            },
        };
        let envelope = Envelope {
            message_id: record.message_id,
            receipt_handle: record.receipt_handle,
            attributes: record.attributes,
            message_attributes: record.message_attributes,
            event_source_arn: record.event_source_arn,
        };
        return assemble(index, envelope, body);
    }
    reference_sqs_record(index, raw)
}

fn fast_body<T: DeserializeOwned>(body: &str) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(body);
    let value = T::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// The reference path: `serde_path_to_error` over the envelope, then over
/// the body.
fn reference_sqs_record<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Result<Message<T>, Failed> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let record: RawMessage = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(err) => {
            let header = sqs_header(index, raw);
            let path = err.path().to_string();
            let error = DecodeError::new(header.reference.clone(), path, err.into_inner().to_string());
            return Err(Box::new((header, error)));
        }
    };
    let body = record.body.map(|body| {
        let mut body_de = serde_json::Deserializer::from_str(&body);
        serde_path_to_error::deserialize::<_, T>(&mut body_de)
            .map_err(|err| {
                let path = match err.path().to_string() {
                    p if p == "." || p == "?" => "body".to_owned(),
                    p => format!("body.{p}"),
                };
                (path, err.into_inner().to_string())
            })
            .and_then(|v| body_de.end().map(|()| v).map_err(|e| ("body".to_owned(), e.to_string())))
    });
    let envelope = Envelope {
        message_id: record.message_id,
        receipt_handle: record.receipt_handle,
        attributes: Known::from_map(record.attributes),
        message_attributes: record.message_attributes,
        event_source_arn: record.event_source_arn,
    };
    assemble(index, envelope, body)
}

/// Everything after the envelope and body are parsed, shared by both paths:
/// the checks and their messages, the metadata (and the header, for a
/// record that fails). `body` is the decoded body, or `(path, message)`, or
/// `None` when there is none.
fn assemble<T>(
    index: usize,
    record: Envelope<'_>,
    body: Option<Result<T, (String, String)>>,
) -> Result<Message<T>, Failed> {
    let attrs = record.attributes;
    let receive_count = attrs.receive_count.as_deref().and_then(|c| c.parse().ok());
    let fail = |message_id: Option<String>, path: String, message: String| {
        let header = SqsHeader {
            reference: RecordRef { index, message_id, ..RecordRef::default() },
            group_id: attrs.group_id.as_deref().map(str::to_owned),
            source_arn: record.event_source_arn.clone(),
            receive_count,
        };
        let err = DecodeError::new(header.reference.clone(), path, message);
        Err(Box::new((header, err)))
    };
    let Some(message_id) = record.message_id.filter(|s| !s.is_empty()) else {
        return fail(None, "messageId".into(), "missing or empty".into());
    };
    let body = match body {
        None => return fail(Some(message_id), "body".into(), "missing".into()),
        Some(Ok(b)) => b,
        Some(Err((path, message))) => {
            let message = format!("the body is not a valid {}: {message}", short_type_name::<T>());
            return fail(Some(message_id), path, message);
        }
    };
    let meta = MessageMeta {
        message_id,
        receipt_handle: record.receipt_handle,
        receive_count: receive_count.unwrap_or(1),
        sent_at: millis(attrs.sent_timestamp.as_deref()),
        first_received_at: millis(attrs.first_received.as_deref()),
        group_id: attrs.group_id.map(Cow::into_owned),
        deduplication_id: attrs.deduplication_id.map(Cow::into_owned),
        sequence_number: attrs.sequence_number.map(Cow::into_owned),
        message_attributes: record.message_attributes,
        event_source_arn: record.event_source_arn,
    };
    Ok(Message { body, meta })
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Decodes every record of an SQS event on its own.
pub fn decode_sqs_event<T: DeserializeOwned>(event: &SqsEvent) -> Vec<Result<Message<T>, DecodeError>> {
    event.records.iter().enumerate().map(|(i, raw)| decode_sqs_record(i, raw).1).collect()
}

/// Hooks for the differential tests (`shared/tests/differential*.rs`): the
/// fast and the reference decoders side by side. Not a supported API.
#[doc(hidden)]
pub mod differential {
    use serde::de::DeserializeOwned;
    use serde_json::value::RawValue;

    use super::Message;
    use crate::error::{DecodeError, RecordRef};

    /// What the engine takes from a record besides the decoded value: the
    /// reference, the FIFO group, the ARN, the receive count.
    pub type Header = (RecordRef, Option<String>, Option<String>, Option<u32>);

    /// What the engine gets for a record (fast path, falling back).
    pub fn sqs_record<T: DeserializeOwned>(index: usize, raw: &RawValue) -> (Header, Result<Message<T>, DecodeError>) {
        let (h, r) = super::decode_sqs_record(index, raw);
        ((h.reference, h.group_id, h.source_arn, h.receive_count), r)
    }

    /// The same on the reference path only.
    pub fn reference_sqs_record<T: DeserializeOwned>(
        index: usize,
        raw: &RawValue,
    ) -> (Header, Result<Message<T>, DecodeError>) {
        let (h, r) = match super::reference_sqs_record(index, raw) {
            Ok(message) => (super::header_of(index, &message.meta), Ok(message)),
            Err(failed) => (failed.0, Err(failed.1)),
        };
        ((h.reference, h.group_id, h.source_arn, h.receive_count), r)
    }
}
