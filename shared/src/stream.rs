//! DynamoDB Streams events: raw records in, typed [`Change`]s out.
//!
//! A batch is first split into raw records ([`StreamEvent`]); each record is
//! then decoded on its own into `Result<StreamRecord<T>, DecodeError>`, so one
//! odd record fails only itself. The envelope is parsed leniently (a float or
//! string `ApproximateCreationDateTime`, a missing `SizeBytes`, `eventVersion`
//! 1.0 or 1.1 are all accepted); the item images are decoded strictly into
//! `T` with `serde_dynamo`'s semantics, and an error names the attribute path
//! at fault.
//!
//! Each record is read once, on a fast path: the envelope with its images
//! decoded straight from the JSON text into `T` (see `fast::dynamo`), with no
//! intermediate `serde_dynamo::Item` maps. If that fails for any reason, the
//! record is decoded again on the reference path (JSON → `serde_dynamo::Item`
//! → `serde_dynamo::Deserializer`, under `serde_path_to_error`), which gives
//! the error and its attribute path. Both paths give the same value for any
//! record the fast path accepts (`shared/tests/differential*.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item as DynItem};
use serde_json::value::RawValue;

use crate::error::{DecodeError, RecordRef};

#[path = "fast/mod.rs"]
pub(crate) mod fast;

use fast::dynamo::Image;

/// A DynamoDB Streams Lambda event, split into raw records.
///
/// Deserializing it fails only when the event is not an object with a
/// `Records` array; each record is kept verbatim and decoded later, on its
/// own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEvent {
    /// The records, verbatim.
    #[serde(rename = "Records")]
    pub records: Vec<Box<RawValue>>,
}

/// What the stream was configured to write (`StreamViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    /// Only the key attributes.
    KeysOnly,
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both images, where they exist.
    NewAndOldImages,
}

impl StreamViewType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "KEYS_ONLY" => Some(Self::KeysOnly),
            "NEW_IMAGE" => Some(Self::NewImage),
            "OLD_IMAGE" => Some(Self::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(Self::NewAndOldImages),
            _ => None,
        }
    }

    /// The name AWS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeysOnly => "KEYS_ONLY",
            Self::NewImage => "NEW_IMAGE",
            Self::OldImage => "OLD_IMAGE",
            Self::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// A typed change to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    /// A new item.
    Insert {
        /// The item as written.
        new: T,
    },
    /// An item overwritten or updated.
    Modify {
        /// Before the change.
        old: T,
        /// After the change.
        new: T,
    },
    /// An item deleted (by a writer or by TTL expiry, see
    /// [`StreamMeta::ttl_expired`]).
    Remove {
        /// The item as it was.
        old: T,
    },
}

impl<T> Change<T> {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Insert { .. } => "INSERT",
            Self::Modify { .. } => "MODIFY",
            Self::Remove { .. } => "REMOVE",
        }
    }

    /// The image after the change, if any.
    pub fn new_image(&self) -> Option<&T> {
        match self {
            Self::Insert { new } | Self::Modify { new, .. } => Some(new),
            Self::Remove { .. } => None,
        }
    }

    /// The image before the change, if any.
    pub fn old_image(&self) -> Option<&T> {
        match self {
            Self::Modify { old, .. } | Self::Remove { old } => Some(old),
            Self::Insert { .. } => None,
        }
    }
}

/// Everything about a stream record except the images.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMeta {
    /// `eventID`.
    pub event_id: Option<String>,
    /// `dynamodb.SequenceNumber`: the identifier reported in
    /// `batchItemFailures`.
    pub sequence_number: String,
    /// `dynamodb.Keys`.
    pub keys: DynItem,
    /// `dynamodb.ApproximateCreationDateTime`, however the emitter wrote it.
    pub approximate_creation_time: Option<DateTime<Utc>>,
    /// `dynamodb.SizeBytes`, if present.
    pub size_bytes: Option<u64>,
    /// `dynamodb.StreamViewType`, if present.
    pub view_type: Option<StreamViewType>,
    /// `eventSourceARN`: the stream.
    pub event_source_arn: Option<String>,
    /// `true` for a REMOVE made by DynamoDB's time-to-live expiry
    /// (`userIdentity` is the DynamoDB service).
    pub ttl_expired: bool,
}

/// A decoded stream record: the change and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord<T> {
    /// The typed change.
    pub change: Change<T>,
    /// Keys, sequence number and the rest.
    pub meta: StreamMeta,
}

/// The parts of a record the engine needs even when the record does not
/// decode: who it is, and which item it is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamHeader {
    pub(crate) reference: RecordRef,
    /// Canonical form of the keys, to keep one item's changes in order.
    pub(crate) key: Option<String>,
    /// The keys themselves, for key filters.
    pub(crate) keys: Option<DynItem>,
    pub(crate) event_name: Option<String>,
    pub(crate) source_arn: Option<String>,
}

/// A record's envelope. `I` is an image: a `serde_dynamo::Item` on the
/// reference path, `Image<T>` (already decoded) on the fast path; the two
/// paths share this type, so they read the envelope the same way.
#[derive(Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>, 'de: 'a"))]
struct RawRecord<'a, I> {
    #[serde(rename = "eventID", default)]
    event_id: Option<String>,
    #[serde(rename = "eventName", default, borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
    #[serde(rename = "userIdentity", default)]
    user_identity: Option<UserIdentity>,
    #[serde(default, borrow)]
    dynamodb: Option<RawData<'a, I>>,
}

#[derive(Deserialize)]
struct UserIdentity {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "principalId", default)]
    principal_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", bound(deserialize = "I: Deserialize<'de>, 'de: 'a"))]
struct RawData<'a, I> {
    #[serde(default)]
    approximate_creation_date_time: Option<serde_json::Value>,
    #[serde(default)]
    keys: Option<DynItem>,
    #[serde(default)]
    new_image: Option<I>,
    #[serde(default)]
    old_image: Option<I>,
    #[serde(default)]
    sequence_number: Option<Lenient>,
    #[serde(default)]
    size_bytes: Option<serde_json::Value>,
    #[serde(default, borrow)]
    stream_view_type: Option<Cow<'a, str>>,
}

/// Only the identifying fields, for a record whose full envelope is broken.
#[derive(Deserialize, Default)]
struct RawHeader {
    #[serde(rename = "eventID", default)]
    event_id: Option<Lenient>,
    #[serde(rename = "eventName", default)]
    event_name: Option<Lenient>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<Lenient>,
    #[serde(default)]
    dynamodb: Option<RawHeaderData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawHeaderData {
    #[serde(default)]
    sequence_number: Option<Lenient>,
    #[serde(default)]
    keys: Option<serde_json::Value>,
}

/// A string or a number, kept as text; anything else is ignored.
#[derive(Debug, Clone)]
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Keys in a canonical textual form (sorted by attribute name), so that two
/// records of the same item group together however the emitter ordered them.
fn canonical_keys(keys: &DynItem) -> String {
    let sorted: BTreeMap<&String, &AttributeValue> = keys.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_default()
}

fn lenient_time(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        // The same as `epoch_text` of the integer's text, without the text.
        serde_json::Value::Number(n) if n.is_i64() => {
            let whole = n.as_i64()?;
            if whole > 100_000_000_000 {
                DateTime::from_timestamp_millis(whole)
            } else {
                DateTime::from_timestamp(whole, 0)
            }
        }
        serde_json::Value::Number(n) => epoch_text(&n.to_string()),
        serde_json::Value::String(s) => {
            epoch_text(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
        }
        _ => None,
    }
}

/// Epoch seconds written as decimal text (`1700000000`, `1700000000.123`),
/// read exactly rather than through `f64`. Values too large to be seconds
/// are taken as milliseconds, which some emitters write.
fn epoch_text(text: &str) -> Option<DateTime<Utc>> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if whole > 100_000_000_000 {
        return DateTime::from_timestamp_millis(whole);
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    DateTime::from_timestamp(whole, digits.parse().ok()?)
}

fn lenient_u64(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The identifying fields when they have the expected types, borrowed.
#[derive(Deserialize)]
struct FastHeader<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    dynamodb: Option<FastHeaderData<'a>>,
}

#[derive(Deserialize)]
struct FastHeaderData<'a> {
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "Keys", default)]
    keys: Option<DynItem>,
}

/// Reads the identifying fields of a record, whatever else is wrong with it:
/// a borrowed pass for the usual shape, a lenient one (a number for a
/// string, a broken `Keys`) otherwise. Both give the same fields for the
/// usual shape.
pub(crate) fn stream_header(index: usize, raw: &RawValue) -> StreamHeader {
    if let Ok(h) = serde_json::from_str::<FastHeader<'_>>(raw.get()) {
        let (seq, keys) = match h.dynamodb {
            Some(d) => (d.sequence_number.map(std::borrow::Cow::into_owned), d.keys),
            None => (None, None),
        };
        return StreamHeader {
            reference: RecordRef {
                index,
                message_id: None,
                event_id: non_empty(h.event_id.map(std::borrow::Cow::into_owned)),
                sequence_number: non_empty(seq),
            },
            key: keys.as_ref().map(canonical_keys),
            keys,
            event_name: h.event_name.map(std::borrow::Cow::into_owned),
            source_arn: h.event_source_arn.map(std::borrow::Cow::into_owned),
        };
    }
    let header: RawHeader = serde_json::from_str(raw.get()).unwrap_or_default();
    let data = header.dynamodb.unwrap_or_default();
    let keys = data.keys.and_then(|k| serde_json::from_value::<DynItem>(k).ok());
    let key = keys.as_ref().map(canonical_keys);
    StreamHeader {
        reference: RecordRef {
            index,
            message_id: None,
            event_id: non_empty(header.event_id.and_then(|l| l.0)),
            sequence_number: non_empty(data.sequence_number.and_then(|l| l.0)),
        },
        key,
        keys,
        event_name: header.event_name.and_then(|l| l.0),
        source_arn: header.event_source_arn.and_then(|l| l.0),
    }
}

/// What the engine needs of a stream record before it runs it: which item
/// it is about (so that one item's changes run in order) and its event name
/// (for the log).
pub(crate) struct StreamPlan {
    /// The canonical key, as [`StreamHeader::key`].
    pub(crate) key: Option<String>,
    /// The keys, only when asked for (key filters).
    pub(crate) keys: Option<DynItem>,
    pub(crate) event_name: Option<String>,
}

/// Reads a record's plan from its start, stopping as soon as `eventName`
/// and `dynamodb.Keys` are both known: Lambda writes them before the images,
/// so the images are usually not scanned at all. Anything unusual (a field
/// of another type, keys that are not plain strings) is read by
/// [`stream_header`] instead, so the plan always agrees with the header.
pub(crate) fn stream_plan(index: usize, raw: &RawValue, want_keys: bool) -> StreamPlan {
    let mut found = PlanFields::default();
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let read = serde::de::DeserializeSeed::deserialize(Plan::<false>(&mut found), &mut de);
    let complete = read.is_ok() || found.stopped;
    let key = match found.keys {
        Some(keys) if complete => canonical_key_text(keys),
        _ => None,
    };
    match (complete, key) {
        (true, Some(key)) => StreamPlan {
            keys: if want_keys { found.keys.and_then(|k| serde_json::from_str::<DynItem>(k.get()).ok()) } else { None },
            key: Some(key),
            event_name: found.event_name.map(fast::Text::into_owned),
        },
        _ => {
            let header = stream_header(index, raw);
            StreamPlan {
                key: header.key,
                keys: if want_keys { header.keys } else { None },
                event_name: header.event_name,
            }
        }
    }
}

#[derive(Default)]
struct PlanFields<'a> {
    event_name: Option<fast::Text<'a>>,
    keys: Option<&'a RawValue>,
    /// Both were found and reading stopped on purpose.
    stopped: bool,
}

impl PlanFields<'_> {
    fn stop_if_done<E: serde::de::Error>(&mut self) -> Result<(), E> {
        if self.event_name.is_some() && self.keys.is_some() {
            self.stopped = true;
            return Err(E::custom("plan complete"));
        }
        Ok(())
    }
}

/// Reads the plan's fields from a record (`DATA = false`) or from its
/// `dynamodb` object (`DATA = true`).
struct Plan<'o, 'a, const DATA: bool>(&'o mut PlanFields<'a>);

impl<'de: 'a, 'a, const DATA: bool> serde::de::DeserializeSeed<'de> for Plan<'_, 'a, DATA> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a, const DATA: bool> serde::de::Visitor<'de> for Plan<'_, 'a, DATA> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if DATA { "the record's dynamodb object" } else { "a stream record" })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<fast::Text<'de>>()? {
            match (DATA, name.as_str()) {
                (false, "eventName") if self.0.event_name.is_none() => self.0.event_name = Some(map.next_value()?),
                (false, "dynamodb") if self.0.keys.is_none() => map.next_value_seed(Plan::<true>(&mut *self.0))?,
                (true, "Keys") if self.0.keys.is_none() => self.0.keys = Some(map.next_value::<&'de RawValue>()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            }
            self.0.stop_if_done()?;
        }
        Ok(())
    }
}

/// [`canonical_keys`] of a `Keys` object whose attributes are all `S` or `N`
/// strings without escapes (what DynamoDB writes), computed from the text:
/// such a string is serialized exactly as it was read, so the result is the
/// same text `canonical_keys` gives. Anything else takes the long way.
fn canonical_key_text(keys: &RawValue) -> Option<String> {
    let quick = || -> Option<String> {
        let mut attrs: Vec<(&str, KeyAttr<'_>)> = serde_json::from_str::<KeyList<'_>>(keys.get()).ok()?.0;
        attrs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if attrs.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let mut out = String::with_capacity(keys.get().len());
        out.push('{');
        for (i, (name, attr)) in attrs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":{\"");
            out.push_str(attr.tag);
            out.push_str("\":\"");
            out.push_str(attr.value);
            out.push_str("\"}");
        }
        out.push('}');
        Some(out)
    };
    quick().or_else(|| serde_json::from_str::<DynItem>(keys.get()).ok().map(|k| canonical_keys(&k)))
}

/// `Keys` as borrowed `(name, attribute)` pairs, in the order written.
struct KeyList<'a>(Vec<(&'a str, KeyAttr<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for KeyList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = KeyList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("key attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KeyList<'a>, A::Error> {
                let mut out = Vec::with_capacity(2);
                while let Some(name) = map.next_key::<&'de str>()? {
                    out.push((name, map.next_value::<KeyAttr<'de>>()?));
                }
                Ok(KeyList(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// `{"S": "..."}` or `{"N": "..."}`, borrowed.
struct KeyAttr<'a> {
    tag: &'static str,
    value: &'a str,
}

impl<'de: 'a, 'a> Deserialize<'de> for KeyAttr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = KeyAttr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an S or N key attribute")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KeyAttr<'a>, A::Error> {
                use serde::de::Error as _;
                let tag = match map.next_key::<&'de str>()? {
                    Some("S") => "S",
                    Some("N") => "N",
                    _ => return Err(A::Error::custom("not a plain key attribute")),
                };
                let value = map.next_value::<&'de str>()?;
                if map.next_key::<&'de str>()?.is_some() {
                    return Err(A::Error::custom("more than one type"));
                }
                Ok(KeyAttr { tag, value })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// What the engine has for one raw stream record: the header it reads
/// identifiers from (only when it must report or dead-letter the record)
/// and the typed change. Kept for the differential tests.
pub(crate) fn decode_stream_record<T: DeserializeOwned>(
    index: usize,
    raw: &RawValue,
) -> (StreamHeader, Result<StreamRecord<T>, DecodeError>) {
    (stream_header(index, raw), decode_stream_change(index, raw))
}

/// Decodes one raw stream record into a typed change: the fast path, and
/// the reference path for anything it does not take (so values and errors
/// are the reference's).
pub(crate) fn decode_stream_change<T: DeserializeOwned>(
    index: usize,
    raw: &RawValue,
) -> Result<StreamRecord<T>, DecodeError> {
    match serde_json::from_str::<RawRecord<Image<T>>>(raw.get()) {
        Ok(record) => assemble(index, record, |_, _, Image(image)| Ok(image)),
        Err(_) => reference_decode(index, raw),
    }
}

/// [`decode_stream_record`] on the reference path only.
fn reference_stream_record<T: DeserializeOwned>(
    index: usize,
    raw: &RawValue,
) -> (StreamHeader, Result<StreamRecord<T>, DecodeError>) {
    (stream_header(index, raw), reference_decode(index, raw))
}

/// The reference path: the envelope and images into `serde_dynamo::Item`s
/// under `serde_path_to_error`, then each image into `T` with
/// `serde_dynamo`.
fn reference_decode<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Result<StreamRecord<T>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let record: RawRecord<'_, DynItem> = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(err) => {
            let reference = stream_header(index, raw).reference;
            let path = err.path().to_string();
            return Err(DecodeError::new(reference, path, err.into_inner().to_string()));
        }
    };
    assemble(index, record, decode_image)
}

/// Everything after the envelope is parsed, shared by both paths so that
/// they cannot differ: the checks and their messages, the metadata, and the
/// change (with `image` turning an image into `T`). The record's reference
/// is built only for an error.
fn assemble<T, I>(
    index: usize,
    record: RawRecord<'_, I>,
    image: impl Fn(&dyn Fn() -> RecordRef, &str, I) -> Result<T, DecodeError>,
) -> Result<StreamRecord<T>, DecodeError> {
    let RawRecord { event_id, event_name, event_source_arn, user_identity, dynamodb: mut data } = record;
    let (seq, keys) = match &mut data {
        Some(d) => (non_empty(d.sequence_number.take().and_then(|l| l.0)), d.keys.take()),
        None => (None, None),
    };
    let event_id = non_empty(event_id);
    let reference = || RecordRef { index, message_id: None, event_id: event_id.clone(), sequence_number: seq.clone() };
    let fail = |path: &str, message: String| Err(DecodeError::new(reference(), path, message));

    let Some(data) = data else {
        return fail("dynamodb", "the record has no `dynamodb` object".into());
    };
    let Some(sequence_number) = seq.clone() else {
        return fail("dynamodb.SequenceNumber", "missing or empty".into());
    };
    let view = data.stream_view_type.as_deref();
    let event_name = event_name.unwrap_or_default();
    let take = |name: &'static str, present: Option<I>| -> Result<T, DecodeError> {
        let Some(present) = present else {
            let view = view.unwrap_or("unknown");
            return Err(DecodeError::new(
                reference(),
                format!("dynamodb.{name}"),
                format!(
                    "a {event_name} record needs {name} but it is absent (StreamViewType {view}); \
                     configure the stream with NEW_AND_OLD_IMAGES to receive typed changes"
                ),
            ));
        };
        image(&reference, name, present)
    };
    let change = match &*event_name {
        "INSERT" => take("NewImage", data.new_image).map(|new| Change::Insert { new }),
        "MODIFY" => take("OldImage", data.old_image)
            .and_then(|old| take("NewImage", data.new_image).map(|new| Change::Modify { old, new })),
        "REMOVE" => take("OldImage", data.old_image).map(|old| Change::Remove { old }),
        other => Err(DecodeError::new(
            reference(),
            "eventName",
            format!("unknown eventName `{other}` (expected INSERT, MODIFY or REMOVE)"),
        )),
    };
    let change = change?;
    let ttl_expired = user_identity.as_ref().is_some_and(|u| {
        u.kind.as_deref() == Some("Service") && u.principal_id.as_deref() == Some("dynamodb.amazonaws.com")
    });
    let meta = StreamMeta {
        event_id,
        sequence_number,
        keys: keys.unwrap_or_default(),
        approximate_creation_time: data.approximate_creation_date_time.as_ref().and_then(lenient_time),
        size_bytes: data.size_bytes.as_ref().and_then(lenient_u64),
        view_type: view.and_then(StreamViewType::parse),
        event_source_arn,
        ttl_expired,
    };
    Ok(StreamRecord { change, meta })
}

/// Decodes a DynamoDB item into `T`, naming the attribute path on error.
pub fn decode_item<T: DeserializeOwned>(item: DynItem) -> Result<T, (String, String)> {
    let de = serde_dynamo::Deserializer::from_attribute_value(AttributeValue::M(item.into()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        (path, err.into_inner().to_string())
    })
}

fn decode_image<T: DeserializeOwned>(
    reference: &dyn Fn() -> RecordRef,
    name: &str,
    item: DynItem,
) -> Result<T, DecodeError> {
    decode_item(item).map_err(|(path, message)| {
        let path = if path == "." { format!("dynamodb.{name}") } else { format!("dynamodb.{name}.{path}") };
        DecodeError::new(reference(), path, message)
    })
}

/// Decodes every record of a stream event on its own.
///
/// Useful in tests and tools; processors get the same through
/// [`crate::BatchProcessor::process_stream`].
pub fn decode_stream_event<T: DeserializeOwned>(event: &StreamEvent) -> Vec<Result<StreamRecord<T>, DecodeError>> {
    event.records.iter().enumerate().map(|(i, raw)| decode_stream_change(i, raw)).collect()
}

/// Hooks for the differential tests (`shared/tests/differential*.rs`): the
/// fast and the reference decoders side by side. Not a supported API.
#[doc(hidden)]
pub mod differential {
    use serde::de::DeserializeOwned;
    use serde_dynamo::Item as DynItem;
    use serde_json::value::RawValue;

    use super::{StreamHeader, StreamRecord};
    use crate::error::{DecodeError, RecordRef};

    /// What the engine takes from a record besides the decoded value: the
    /// reference, the canonical key, the keys, the event name, the ARN.
    pub type Header = (RecordRef, Option<String>, Option<DynItem>, Option<String>, Option<String>);

    fn header(h: StreamHeader) -> Header {
        (h.reference, h.key, h.keys, h.event_name, h.source_arn)
    }

    /// The fast item decoder alone: the JSON text of an item into `T`.
    pub fn fast_item<T: DeserializeOwned>(json: &str) -> Result<T, String> {
        super::fast::dynamo::item_from_json(json).map_err(|e| e.to_string())
    }

    /// The reference: the JSON text into a `serde_dynamo::Item`, then
    /// [`super::decode_item`]. `Err` holds `(path, message)`.
    pub fn reference_item<T: DeserializeOwned>(json: &str) -> Result<T, (String, String)> {
        let item: DynItem = serde_json::from_str(json).map_err(|e| (String::new(), e.to_string()))?;
        super::decode_item(item)
    }

    /// What the engine gets for a record (fast path, falling back).
    pub fn stream_record<T: DeserializeOwned>(
        index: usize,
        raw: &RawValue,
    ) -> (Header, Result<StreamRecord<T>, DecodeError>) {
        let (h, r) = super::decode_stream_record(index, raw);
        (header(h), r)
    }

    /// The same on the reference path only.
    pub fn reference_stream_record<T: DeserializeOwned>(
        index: usize,
        raw: &RawValue,
    ) -> (Header, Result<StreamRecord<T>, DecodeError>) {
        let (h, r) = super::reference_stream_record(index, raw);
        (header(h), r)
    }

    /// `true` when the fast path alone decodes the record (no fallback).
    pub fn fast_path_accepts<T: DeserializeOwned>(raw: &RawValue) -> bool {
        serde_json::from_str::<super::RawRecord<super::Image<T>>>(raw.get()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::*;

    fn raw(text: String) -> Box<RawValue> {
        RawValue::from_string(text).expect("valid JSON")
    }

    fn record(keys: &str, tail: &str) -> Box<RawValue> {
        raw(format!(
            r#"{{"eventID":"e1","eventName":"MODIFY","dynamodb":{{"Keys":{keys},"SequenceNumber":"100"{tail}}},"eventSourceARN":"arn"}}"#
        ))
    }

    fn attr() -> impl Strategy<Value = (String, String, String)> {
        (
            prop_oneof!["[a-z]{1,4}", "[a-zA-Z0-9 #\u{e9}\u{1f600}]{0,6}", "\\PC{0,5}"],
            prop_oneof![Just("S".to_owned()), Just("N".to_owned()), Just("B".to_owned()), Just("BOOL".to_owned())],
            prop_oneof!["[A-Za-z0-9#]{0,8}", "\\PC{0,5}", Just("YWJj".to_owned())],
        )
    }

    fn keys_text(attrs: &[(String, String, String)]) -> String {
        let body: Vec<String> = attrs
            .iter()
            .map(|(name, tag, value)| {
                let value =
                    if tag == "BOOL" { "true".to_owned() } else { serde_json::to_string(value).unwrap_or_default() };
                format!("{}:{{\"{tag}\":{value}}}", serde_json::to_string(name).unwrap_or_default())
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }

    proptest! {
        /// The plan read from the start of a record names the same item key
        /// and event as the full header, whatever the keys hold.
        #[test]
        fn the_plan_agrees_with_the_header(attrs in prop::collection::vec(attr(), 0..4), late_name in any::<bool>()) {
            let keys = keys_text(&attrs);
            let text = if late_name {
                format!(r#"{{"eventID":"e1","dynamodb":{{"Keys":{keys},"SequenceNumber":"100"}},"eventName":"INSERT"}}"#)
            } else {
                format!(r#"{{"eventID":"e1","eventName":"INSERT","dynamodb":{{"Keys":{keys},"SequenceNumber":"100"}}}}"#)
            };
            let raw = raw(text);
            let header = stream_header(0, &raw);
            let plan = stream_plan(0, &raw, true);
            prop_assert_eq!(&plan.key, &header.key);
            prop_assert_eq!(&plan.keys, &header.keys);
            prop_assert_eq!(&plan.event_name, &header.event_name);
        }
    }

    #[test]
    fn the_plan_stops_before_the_images() {
        // Keys written out of order still name the item canonically.
        let raw = record(r#"{"sk":{"S":"ITEM"},"pk":{"S":"ITEM#1"}}"#, r#","NewImage":{"x":{"N":"1"}}"#);
        let plan = stream_plan(0, &raw, false);
        assert_eq!(plan.key.as_deref(), Some(r#"{"pk":{"S":"ITEM#1"},"sk":{"S":"ITEM"}}"#));
        assert_eq!(plan.event_name.as_deref(), Some("MODIFY"));
        assert_eq!(plan.keys, None, "keys are read only when asked for");
    }

    #[test]
    fn odd_records_fall_back_to_the_header() {
        for raw in [
            record(r#"{"pk":{"N":5}}"#, ""),
            record("null", ""),
            record(r#"{"pk":{"S":"a\"b"}}"#, ""),
            raw(r#"{"eventName":7,"dynamodb":{"Keys":{"pk":{"S":"x"}}}}"#.to_owned()),
            raw(r#"{"dynamodb":{"SequenceNumber":"1"}}"#.to_owned()),
        ] {
            let header = stream_header(0, &raw);
            let plan = stream_plan(0, &raw, true);
            assert_eq!(plan.key, header.key, "{}", raw.get());
            assert_eq!(plan.keys, header.keys, "{}", raw.get());
            assert_eq!(plan.event_name, header.event_name, "{}", raw.get());
        }
    }
}
