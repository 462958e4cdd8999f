//! The items table's record and the jobs that flow through the processing
//! queue.
//!
//! # Numbers
//!
//! DynamoDB's `N` is a decimal string of up to 38 significant digits.
//! `serde_dynamo` reads an `N` through `i64`, `u64` or `f64`, so only
//! integers that fit 64 bits survive a round trip exactly. This model
//! therefore keeps
//! - counters (`quantity`, `version`) as 64-bit integers in `N` attributes:
//!   exact;
//! - money (`price`, `total`) as [`Decimal`] in an `S` attribute holding the
//!   canonical decimal string (for example `"19.99"`): exact, never through
//!   `f64`. Up to 28 significant digits are accepted; a longer value is a
//!   decode error naming the attribute, not a silent rounding.
//!
//! Every [`Item`] round-trips through `serde_dynamo::to_item` /
//! `serde_dynamo::from_item` unchanged (a property test proves it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Prefix of every item's partition key: `ITEM#<id>`.
pub const ITEM_PK_PREFIX: &str = "ITEM#";
/// Sort key of an item's main record.
pub const ITEM_SK: &str = "ITEM";
/// Prefix of the GSI1 partition key: items are indexed by status.
pub const STATUS_GSI_PREFIX: &str = "STATUS#";
/// Prefix of the partition key of removal audit records (not item records,
/// so the stream filter and the stream processor skip them).
pub const AUDIT_PK_PREFIX: &str = "AUDIT#";

/// Where an item is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemStatus {
    /// Written by a producer, waiting to be processed.
    Pending,
    /// The queue processor has computed its derived fields.
    Processed,
    /// The queue processor rejected it; `failure_reason` says why.
    Failed,
}

impl ItemStatus {
    /// The value stored in DynamoDB (`PENDING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processed => "PROCESSED",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record of the items table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Partition key, `ITEM#<id>`.
    pub pk: String,
    /// Sort key, [`ITEM_SK`].
    pub sk: String,
    /// GSI1 partition key: `STATUS#<status>`.
    pub gsi1pk: String,
    /// GSI1 sort key: the partition key, so a status query lists items.
    pub gsi1sk: String,
    /// Display name.
    pub name: String,
    /// Life-cycle status.
    pub status: ItemStatus,
    /// Unit price, exact (stored as a decimal string).
    #[serde(with = "exact_decimal")]
    pub price: Decimal,
    /// Number of units. Signed so that invalid input (a negative quantity)
    /// reaches the processor and is rejected with a reason, not lost in
    /// decoding.
    pub quantity: i64,
    /// Tags, a DynamoDB string set (absent when empty: DynamoDB rejects
    /// empty sets).
    #[serde(with = "serde_dynamo::string_set", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    /// Free-form attributes, a DynamoDB map.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// When the item was first written.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    /// When the item was last written.
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub updated_at: DateTime<Utc>,
    /// Optimistic-locking version: every write sets `version + 1` under the
    /// condition that the stored version is still `version`.
    pub version: u64,
    /// `price * quantity`, set by the queue processor.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact_decimal::option")]
    pub total: Option<Decimal>,
    /// When the queue processor processed it.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "rfc3339::option::deserialize")]
    pub processed_at: Option<DateTime<Utc>>,
    /// Why the queue processor rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// TTL: epoch seconds after which DynamoDB may delete the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl Item {
    /// A new `PENDING` item at version 1.
    pub fn new(id: &str, name: impl Into<String>, price: Decimal, quantity: i64, now: DateTime<Utc>) -> Self {
        let pk = Self::pk_for(id);
        Self {
            gsi1pk: format!("{STATUS_GSI_PREFIX}{}", ItemStatus::Pending),
            gsi1sk: pk.clone(),
            pk,
            sk: ITEM_SK.to_owned(),
            name: name.into(),
            status: ItemStatus::Pending,
            price,
            quantity,
            tags: BTreeSet::new(),
            attributes: BTreeMap::new(),
            created_at: now,
            updated_at: now,
            version: 1,
            total: None,
            processed_at: None,
            failure_reason: None,
            expires_at: None,
        }
    }

    /// The partition key of the item with this id.
    pub fn pk_for(id: &str) -> String {
        format!("{ITEM_PK_PREFIX}{id}")
    }

    /// The item's id (its partition key without the `ITEM#` prefix).
    pub fn id(&self) -> &str {
        self.pk.strip_prefix(ITEM_PK_PREFIX).unwrap_or(&self.pk)
    }

    /// Sets the status and keeps the GSI1 partition key in step with it.
    pub fn set_status(&mut self, status: ItemStatus) {
        self.status = status;
        self.gsi1pk = format!("{STATUS_GSI_PREFIX}{status}");
    }

    /// `true` when the fields a producer owns differ (name, price, quantity,
    /// tags, attributes, TTL). Status, version, timestamps and the fields the
    /// processor derives are not content.
    pub fn content_differs(&self, other: &Item) -> bool {
        self.name != other.name
            || self.price != other.price
            || self.quantity != other.quantity
            || self.tags != other.tags
            || self.attributes != other.attributes
            || self.expires_at != other.expires_at
    }
}

/// Serde for [`Decimal`] as an exact decimal string: parsing refuses any
/// value that would have to be rounded to fit.
pub mod exact_decimal {
    use rust_decimal::Decimal;
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the canonical decimal string (scale kept: `"1.50"`).
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// Reads a decimal string; more than 28 significant digits is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        struct Exact;
        impl Visitor<'_> for Exact {
            type Value = Decimal;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal number as a string, such as \"19.99\"")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Decimal, E> {
                Decimal::from_str_exact(v).map_err(|e| {
                    E::custom(format!("`{v}` is not an exact decimal of at most 28 significant digits ({e})"))
                })
            }
        }
        deserializer.deserialize_str(Exact)
    }

    /// The same for `Option<Decimal>`.
    pub mod option {
        use rust_decimal::Decimal;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some` as a decimal string (use with `skip_serializing_if`).
        pub fn serialize<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(d) => super::serialize(d, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Reads an optional decimal string.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Decimal);
            Ok(Option::<Wrap>::deserialize(deserializer)?.map(|Wrap(d)| d))
        }
    }
}

/// Reading RFC 3339 timestamps as `chrono` does, faster.
///
/// `DateTime<Utc>`'s own `Deserialize` goes through chrono's general
/// parser, a noticeable share of decoding an item. The form every writer of
/// this project produces, `YYYY-MM-DDTHH:MM:SS[.f]Z` with 1 to 9 fraction
/// digits, is read directly here; anything else (offsets, lower-case
/// letters, leap seconds, invalid dates, other types) goes to chrono's own
/// visitor, so values and errors are chrono's (a property test compares the
/// two on both valid and invalid texts).
pub mod rfc3339 {
    use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
    use serde::de::{Error, Visitor};
    use serde::{Deserialize, Deserializer};

    /// Reads a timestamp as `DateTime<Utc>`'s `Deserialize` does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        struct Rfc3339;
        impl Visitor<'_> for Rfc3339 {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 formatted date and time string")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<DateTime<Utc>, E> {
                match parse_utc(v) {
                    Some(t) => Ok(t),
                    None => v.parse::<DateTime<FixedOffset>>().map(|t| t.with_timezone(&Utc)).map_err(E::custom),
                }
            }
        }
        deserializer.deserialize_str(Rfc3339)
    }

    /// The direct reading of `YYYY-MM-DDTHH:MM:SS[.f]Z`, or `None` for
    /// anything else (which chrono then reads).
    pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
        };
        let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
        let nanos = match &b[19..] {
            [b'Z'] => 0,
            [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
                number(20, 20 + fraction.len())? * 10u32.pow(9 - fraction.len() as u32)
            }
            _ => return None,
        };
        if second > 59 {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        Some(date.and_hms_nano_opt(hour, minute, second, nanos)?.and_utc())
    }

    /// The same for `Option<DateTime<Utc>>`.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer};

        /// Reads an optional timestamp as `Option<DateTime<Utc>>` does.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            Ok(Option::<super::Wrap>::deserialize(deserializer)?.map(|super::Wrap(t)| t))
        }
    }

    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
}

/// Why an item was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Deleted by a writer.
    Deleted,
    /// Deleted by DynamoDB's time-to-live expiry.
    TtlExpired,
}

/// The audit record the queue processor writes when an item is removed:
/// `pk = AUDIT#<item id>`, `sk = REMOVED#<stream sequence number>`, so that
/// writing it twice for the same removal is detected by a key condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalAudit {
    /// `AUDIT#<item id>`.
    pub pk: String,
    /// `REMOVED#<sequence number>`.
    pub sk: String,
    /// The removed item's id.
    pub item_id: String,
    /// Its last version.
    pub version: u64,
    /// A writer's delete or TTL expiry.
    pub reason: RemovalReason,
    /// When it was removed, if the stream said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<DateTime<Utc>>,
    /// When this record was written.
    pub recorded_at: DateTime<Utc>,
}

impl RemovalAudit {
    /// The audit record of a removal announced by stream record `sequence_number`.
    pub fn new(
        item_id: &str,
        version: u64,
        reason: RemovalReason,
        sequence_number: &str,
        removed_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            pk: format!("{AUDIT_PK_PREFIX}{item_id}"),
            sk: format!("REMOVED#{sequence_number}"),
            item_id: item_id.to_owned(),
            version,
            reason,
            removed_at,
            recorded_at: now,
        }
    }
}

/// A unit of work on the processing queue. The JSON body is tagged by
/// `type`, for example
/// `{"type":"process_item","item_id":"42","version":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Compute the item's derived fields and mark it `PROCESSED`, if the item
    /// is still at `version` and `PENDING` (otherwise the job is stale and a
    /// no-op).
    ProcessItem {
        /// The item's id (without `ITEM#`).
        item_id: String,
        /// The version the job was made for.
        version: u64,
    },
    /// Write an audit record of an item's removal. Idempotent: the audit
    /// record's key is derived from the stream sequence number.
    RecordRemoval {
        /// The removed item's id.
        item_id: String,
        /// Its last version.
        version: u64,
        /// A writer's delete or TTL expiry.
        reason: RemovalReason,
        /// The stream record that announced the removal.
        sequence_number: String,
        /// When the removal happened (the stream record's time).
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "rfc3339::option::deserialize")]
        removed_at: Option<DateTime<Utc>>,
    },
}

impl Job {
    /// The id of the item the job is about.
    pub fn item_id(&self) -> &str {
        match self {
            Self::ProcessItem { item_id, .. } | Self::RecordRemoval { item_id, .. } => item_id,
        }
    }

    /// The job's kind as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ProcessItem { .. } => "process_item",
            Self::RecordRemoval { .. } => "record_removal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_dynamo::{from_item, to_item, AttributeValue, Item as DynItem};

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s))
    }

    fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_102_444_800, 0u32..1_000_000_000).prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
    }

    fn chrono_reading(text: &str) -> Option<DateTime<Utc>> {
        text.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc))
    }

    /// Texts shaped like `YYYY-MM-DDTHH:MM:SS[.f]Z` with any digits (invalid
    /// dates and times included), near misses, and anything at all.
    fn timestamp_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                timestamp(),
                prop_oneof![
                    Just(chrono::SecondsFormat::Secs),
                    Just(chrono::SecondsFormat::Millis),
                    Just(chrono::SecondsFormat::Micros),
                    Just(chrono::SecondsFormat::Nanos)
                ]
            )
                .prop_map(|(t, f)| t.to_rfc3339_opts(f, true)),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,11})?[Zz]",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?([Zz]|[+-][0-9]{2}:[0-9]{2})",
            ".{0,30}",
        ]
    }

    proptest! {
        /// The direct reading never differs from chrono's: where it reads a
        /// text, chrono reads the same instant; the rest goes to chrono.
        #[test]
        fn timestamps_read_as_chrono_reads_them(text in timestamp_text()) {
            if let Some(fast) = rfc3339::parse_utc(&text) {
                prop_assert_eq!(Some(fast), chrono_reading(&text), "{}", text);
            }
            let ours: Result<DateTime<Utc>, String> =
                rfc3339::deserialize(serde_json::Value::String(text.clone())).map_err(|e| e.to_string());
            let theirs: Result<DateTime<Utc>, String> =
                DateTime::<Utc>::deserialize(serde_json::Value::String(text.clone())).map_err(|e| e.to_string());
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_usual_timestamps_take_the_direct_reading() {
        for text in ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5Z", "2026-02-28T23:59:59.123456789Z"] {
            assert!(rfc3339::parse_utc(text).is_some(), "{text}");
        }
        for text in
            ["2026-02-30T10:00:00Z", "2026-11-26T10:00:60Z", "2026-11-26T10:00:00+00:00", "2026-11-26T10:00:00.Z"]
        {
            assert!(rfc3339::parse_utc(text).is_none(), "{text}");
        }
        let wrong_type = rfc3339::deserialize(serde_json::json!(5)).map_err(|e| e.to_string());
        let chrono_says = DateTime::<Utc>::deserialize(serde_json::json!(5)).map_err(|e| e.to_string());
        assert_eq!(wrong_type, chrono_says);
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            "[a-zA-Z0-9-]{1,20}",
            ".{0,30}",
            prop_oneof![Just(ItemStatus::Pending), Just(ItemStatus::Processed), Just(ItemStatus::Failed)],
            decimal(),
            any::<i64>(),
            proptest::collection::btree_set(".{0,10}", 0..5),
            proptest::collection::btree_map("[a-z]{1,8}", ".{0,10}", 0..5),
            (timestamp(), timestamp(), any::<u64>()),
            (
                proptest::option::of(decimal()),
                proptest::option::of(timestamp()),
                proptest::option::of(".{0,20}"),
                proptest::option::of(any::<i64>()),
            ),
        )
            .prop_map(|(id, name, status, price, quantity, tags, attributes, times, extra)| {
                let mut item = Item::new(&id, name, price, quantity, times.0);
                item.set_status(status);
                item.tags = tags;
                item.attributes = attributes;
                item.updated_at = times.1;
                item.version = times.2;
                (item.total, item.processed_at, item.failure_reason, item.expires_at) = extra;
                item
            })
    }

    proptest! {
        #[test]
        fn any_item_round_trips_through_serde_dynamo(item in item()) {
            let stored: DynItem = to_item(&item).expect("serializes");
            let back: Item = from_item(stored).expect("deserializes");
            prop_assert_eq!(back, item);
        }

        #[test]
        fn any_job_round_trips_through_json(id in "[0-9]{1,6}", version in any::<u64>()) {
            let job = Job::ProcessItem { item_id: id, version };
            let json = serde_json::to_string(&job).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<Job>(&json).expect("deserializes"), job);
        }
    }

    #[test]
    fn stored_attribute_types_are_exact() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let mut item = Item::new("42", "Widget", "12345678901234567890.12345678".parse().expect("decimal"), 3, now);
        item.version = u64::MAX;
        item.tags.insert("blue".into());
        let stored: DynItem = to_item(&item).expect("serializes");
        assert_eq!(stored["pk"], AttributeValue::S("ITEM#42".into()));
        assert_eq!(stored["price"], AttributeValue::S("12345678901234567890.12345678".into()));
        assert_eq!(stored["version"], AttributeValue::N(u64::MAX.to_string()));
        assert_eq!(stored["status"], AttributeValue::S("PENDING".into()));
        assert_eq!(stored["gsi1pk"], AttributeValue::S("STATUS#PENDING".into()));
        assert_eq!(stored["tags"], AttributeValue::Ss(vec!["blue".into()]));
        assert!(!stored.contains_key("total"), "absent options are not written as NULL");
    }

    #[test]
    fn a_price_with_too_many_digits_is_an_error_not_a_rounding() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let mut stored: DynItem = to_item(Item::new("1", "x", Decimal::ONE, 1, now)).expect("serializes");
        stored.insert("price".into(), AttributeValue::S("1234567890123456789012345678901234.5".into()));
        assert!(from_item::<_, Item>(stored).is_err());
    }
}
