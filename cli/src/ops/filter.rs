//! `--filter` for `dlq redrive` (and `dlq peek`, `dlq export`).
//!
//! Each `--filter KEY=VALUE[,VALUE...]` must hold (filters are ANDed; the
//! values of one filter are ORed):
//!
//! | key | matches |
//! |---|---|
//! | `kind` | the error kind: an envelope's `error.kind` (`validation`, `decode`, ...), `raw` for messages SQS moved after maxReceiveCount, `stream_batch` for OnFailure documents |
//! | `processor` | the envelope's `processor.name` (`queue-processor`, ...); never matches raw messages |
//! | `source` | `sqs`, `dynamodb_stream` (envelopes), `raw`, `stream_batch` |
//! | `older-than` | the message was sent to the dead-letter queue (for raw messages on a standard queue: to its source queue) longer ago than this (`90s`, `15m`, `2h`, `3d`) |
//! | `newer-than` | ... less long ago than this |

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::OpsError;
use super::message::DlqMessage;

/// One `--filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `kind=...`
    Kind(Vec<String>),
    /// `processor=...`
    Processor(Vec<String>),
    /// `source=...`
    Source(Vec<String>),
    /// `older-than=...`
    OlderThan(Duration),
    /// `newer-than=...`
    NewerThan(Duration),
}

/// Parses `90s`, `15m`, `2h`, `3d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration (like 90s, 15m, 2h, 3d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

impl std::str::FromStr for Filter {
    type Err = OpsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(OpsError::usage(format!(
                "--filter {s:?}: expected KEY=VALUE, with KEY one of kind, processor, source, older-than, newer-than"
            )));
        };
        let values =
            || -> Vec<String> { value.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect() };
        let dur = || parse_duration(value).map_err(|e| OpsError::usage(format!("--filter {s:?}: {e}")));
        match key.trim() {
            "kind" => Ok(Self::Kind(values())),
            "processor" => Ok(Self::Processor(values())),
            "source" => Ok(Self::Source(values())),
            "older-than" => Ok(Self::OlderThan(dur()?)),
            "newer-than" => Ok(Self::NewerThan(dur()?)),
            other => Err(OpsError::usage(format!(
                "--filter {s:?}: unknown key {other:?} (use kind, processor, source, older-than, newer-than)"
            ))),
        }
    }
}

impl Filter {
    /// Whether `m` passes this filter at `now`.
    pub fn matches(&self, m: &DlqMessage, now: DateTime<Utc>) -> bool {
        let age = || m.sent_at().map(|t| (now - t).to_std().unwrap_or_default());
        match self {
            Self::Kind(v) => v.iter().any(|k| k == m.kind()),
            Self::Processor(v) => m.processor().is_some_and(|p| v.iter().any(|x| x == p)),
            Self::Source(v) => v.iter().any(|k| k == m.source_kind()),
            Self::OlderThan(d) => age().is_some_and(|a| a > *d),
            Self::NewerThan(d) => age().is_some_and(|a| a < *d),
        }
    }
}

/// Whether `m` passes every filter.
pub fn matches_all(filters: &[Filter], m: &DlqMessage, now: DateTime<Utc>) -> bool {
    filters.iter().all(|f| f.matches(m, now))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

    #[test]
    fn filters_parse_and_match() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("2w").is_err());
        assert!("colour=red".parse::<Filter>().is_err());
        let raw = DlqMessage::from_sdk(
            Message::builder()
                .message_id("m")
                .body("x")
                .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
                .build(),
        );
        let now = DateTime::from_timestamp(1_700_000_600, 0).unwrap();
        let f = |s: &str| s.parse::<Filter>().unwrap();
        assert!(f("kind=validation,raw").matches(&raw, now));
        assert!(!f("kind=validation").matches(&raw, now));
        assert!(!f("processor=queue-processor").matches(&raw, now));
        assert!(f("older-than=5m").matches(&raw, now));
        assert!(!f("newer-than=5m").matches(&raw, now));
        assert!(matches_all(&[f("source=raw"), f("newer-than=1h")], &raw, now));
    }
}
