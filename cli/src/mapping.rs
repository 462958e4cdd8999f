//! Event source mapping settings, read from a function's `Events` in the
//! template (SAM event types `SQS` and `DynamoDB`), with Lambda's defaults
//! and limits (LAMBDA-SEMANTICS.md sections 1-2).

use std::time::Duration;

use serde_json::Value;

use crate::esm::filter::FilterPattern;

/// Where a stream mapping starts reading a shard that exists when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Only records written after the mapping started.
    Latest,
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMapping {
    /// Logical id of the function.
    pub function: String,
    /// Name of the event in the function's `Events`.
    pub event: String,
    /// `Queue`: the queue ARN.
    pub queue_arn: String,
    /// `BatchSize` (default 10).
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub batching_window: Duration,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: Option<usize>,
    /// `Enabled` (default true).
    pub enabled: bool,
}

/// A DynamoDB Streams event source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMapping {
    /// Logical id of the function.
    pub function: String,
    /// Name of the event in the function's `Events`.
    pub event: String,
    /// `Stream`: the stream ARN.
    pub stream_arn: String,
    /// `StartingPosition`.
    pub starting_position: StartingPosition,
    /// `BatchSize` (default 100).
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub batching_window: Duration,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `BisectBatchOnFunctionError`.
    pub bisect_batch_on_function_error: bool,
    /// `MaximumRetryAttempts`; `None` = retry until the records expire (-1).
    pub maximum_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds`; `None` = no limit (-1).
    pub maximum_record_age: Option<Duration>,
    /// `ParallelizationFactor` (the emulator always uses 1).
    pub parallelization_factor: u32,
    /// `DestinationConfig.OnFailure.Destination`: an SQS queue ARN.
    pub on_failure: Option<String>,
    /// `FilterCriteria.Filters[].Pattern`.
    pub filters: Vec<FilterPattern>,
    /// `Enabled` (default true).
    pub enabled: bool,
}

/// One event source mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum EventMapping {
    /// SQS.
    Sqs(SqsMapping),
    /// DynamoDB Streams.
    Stream(StreamMapping),
}

impl EventMapping {
    /// `Function/Event`, for logs and stats.
    pub fn name(&self) -> String {
        match self {
            Self::Sqs(m) => format!("{}/{}", m.function, m.event),
            Self::Stream(m) => format!("{}/{}", m.function, m.event),
        }
    }

    /// Whether the mapping is enabled.
    pub fn enabled(&self) -> bool {
        match self {
            Self::Sqs(m) => m.enabled,
            Self::Stream(m) => m.enabled,
        }
    }
}

/// Parses one SAM event (`Type` + resolved `Properties`). `Ok(None)` for
/// event types the runner does not emulate (the caller logs them).
pub(crate) fn parse_event(
    function: &str,
    event: &str,
    kind: &str,
    props: &Value,
) -> Result<Option<EventMapping>, String> {
    let p = Props { function, event, props };
    match kind {
        "SQS" => parse_sqs(&p).map(|m| Some(EventMapping::Sqs(m))),
        "DynamoDB" => parse_stream(&p).map(|m| Some(EventMapping::Stream(m))),
        _ => Ok(None),
    }
}

struct Props<'a> {
    function: &'a str,
    event: &'a str,
    props: &'a Value,
}

impl Props<'_> {
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> String {
        format!("{} event {}: {key}: {msg}", self.function, self.event)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.props.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(key, format!("expected a string, got {other}"))),
        }
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
        let v = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        let v = v.ok_or_else(|| self.err(key, "expected an integer"))?;
        if v < min || v > max {
            return Err(self.err(key, format!("{v} is outside {min}..={max}")));
        }
        Ok(Some(v))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.err(key, format!("expected a boolean, got {other}"))),
        }
    }

    fn report_batch_item_failures(&self) -> Result<bool, String> {
        match self.get("FunctionResponseTypes") {
            None => Ok(false),
            Some(Value::Array(items)) => {
                let mut on = false;
                for item in items {
                    match item.as_str() {
                        Some("ReportBatchItemFailures") => on = true,
                        _ => return Err(self.err("FunctionResponseTypes", format!("unknown value {item}"))),
                    }
                }
                Ok(on)
            }
            Some(other) => Err(self.err("FunctionResponseTypes", format!("expected a list, got {other}"))),
        }
    }

    fn refuse(&self, keys: &[&str]) -> Result<(), String> {
        for key in keys {
            if self.get(key).is_some() {
                return Err(self.err(key, "is not emulated by the local runner"));
            }
        }
        Ok(())
    }

    fn warn_unknown(&self, known: &[&str]) {
        if let Some(obj) = self.props.as_object() {
            for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
                tracing::warn!(function = self.function, event = self.event, property = %key, "event property ignored by the local runner");
            }
        }
    }
}

fn parse_sqs(p: &Props<'_>) -> Result<SqsMapping, String> {
    p.refuse(&["FilterCriteria", "MetricsConfig", "ProvisionedPollerConfig", "KmsKeyArn"])?;
    p.warn_unknown(&[
        "Queue",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "ScalingConfig",
        "Enabled",
    ]);
    let queue_arn = p.string("Queue")?.ok_or_else(|| p.err("Queue", "is required"))?;
    let batch_size = p.int("BatchSize", 1, 10_000)?.unwrap_or(10) as usize;
    let window = p.int("MaximumBatchingWindowInSeconds", 0, 300)?.unwrap_or(0);
    if batch_size > 10 && window < 1 {
        return Err(
            p.err("BatchSize", "above 10 needs MaximumBatchingWindowInSeconds of at least 1 (Lambda rejects it)")
        );
    }
    let maximum_concurrency = match p.get("ScalingConfig") {
        None => None,
        Some(sc) => {
            let inner = Props { function: p.function, event: p.event, props: sc };
            inner.int("MaximumConcurrency", 2, 1000)?.map(|v| v as usize)
        }
    };
    Ok(SqsMapping {
        function: p.function.to_owned(),
        event: p.event.to_owned(),
        queue_arn,
        batch_size,
        batching_window: Duration::from_secs(window as u64),
        report_batch_item_failures: p.report_batch_item_failures()?,
        maximum_concurrency,
        enabled: p.bool("Enabled")?.unwrap_or(true),
    })
}

fn parse_stream(p: &Props<'_>) -> Result<StreamMapping, String> {
    p.refuse(&["TumblingWindowInSeconds", "StartingPositionTimestamp", "MetricsConfig", "KmsKeyArn"])?;
    p.warn_unknown(&[
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "ParallelizationFactor",
        "DestinationConfig",
        "FilterCriteria",
        "Enabled",
    ]);
    let stream_arn = p.string("Stream")?.ok_or_else(|| p.err("Stream", "is required"))?;
    let starting_position = match p.string("StartingPosition")?.as_deref() {
        Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
        Some("LATEST") => StartingPosition::Latest,
        Some(other) => return Err(p.err("StartingPosition", format!("{other} (expected TRIM_HORIZON or LATEST)"))),
        None => return Err(p.err("StartingPosition", "is required")),
    };
    let batch_size = p.int("BatchSize", 1, 10_000)?.unwrap_or(100) as usize;
    let window = p.int("MaximumBatchingWindowInSeconds", 0, 300)?.unwrap_or(0);
    let retries = p.int("MaximumRetryAttempts", -1, 10_000)?.unwrap_or(-1);
    let age = p.int("MaximumRecordAgeInSeconds", -1, 604_800)?.unwrap_or(-1);
    if (0..60).contains(&age) {
        // Lambda's minimum is 60 s; a smaller value is accepted locally so
        // tests of record expiry do not have to wait a minute.
        tracing::warn!(
            function = p.function,
            event = p.event,
            age,
            "MaximumRecordAgeInSeconds below Lambda's minimum of 60 accepted by the local runner only"
        );
    }
    let parallelization_factor = p.int("ParallelizationFactor", 1, 10)?.unwrap_or(1) as u32;
    if parallelization_factor > 1 {
        tracing::info!(
            function = p.function,
            event = p.event,
            parallelization_factor,
            "ParallelizationFactor > 1 is treated as 1 by the local runner (strict per-shard order)"
        );
    }
    let on_failure = match p.get("DestinationConfig") {
        None => None,
        Some(dc) => match dc.get("OnFailure").filter(|v| !v.is_null()) {
            None => None,
            Some(of) => {
                let dest = of
                    .get("Destination")
                    .and_then(Value::as_str)
                    .ok_or_else(|| p.err("DestinationConfig.OnFailure.Destination", "is required"))?;
                let kind = of.get("Type").and_then(Value::as_str);
                if kind.is_some_and(|k| k != "SQS")
                    || !dest.starts_with("arn:")
                    || dest.split(':').nth(2) != Some("sqs")
                {
                    return Err(p.err(
                        "DestinationConfig.OnFailure",
                        format!("only SQS destinations are emulated locally (got {dest})"),
                    ));
                }
                Some(dest.to_owned())
            }
        },
    };
    let mut filters = Vec::new();
    if let Some(fc) = p.get("FilterCriteria") {
        let list =
            fc.get("Filters").and_then(Value::as_array).ok_or_else(|| p.err("FilterCriteria", "needs Filters"))?;
        if list.len() > 5 {
            return Err(p.err("FilterCriteria.Filters", "at most 5 patterns"));
        }
        for (i, f) in list.iter().enumerate() {
            let pattern = f
                .get("Pattern")
                .and_then(Value::as_str)
                .ok_or_else(|| p.err(&format!("FilterCriteria.Filters[{i}].Pattern"), "is required (a JSON string)"))?;
            filters.push(
                FilterPattern::parse(pattern).map_err(|e| p.err(&format!("FilterCriteria.Filters[{i}].Pattern"), e))?,
            );
        }
    }
    Ok(StreamMapping {
        function: p.function.to_owned(),
        event: p.event.to_owned(),
        stream_arn,
        starting_position,
        batch_size,
        batching_window: Duration::from_secs(window as u64),
        report_batch_item_failures: p.report_batch_item_failures()?,
        bisect_batch_on_function_error: p.bool("BisectBatchOnFunctionError")?.unwrap_or(false),
        maximum_retry_attempts: u32::try_from(retries).ok(),
        maximum_record_age: u64::try_from(age).ok().map(Duration::from_secs),
        parallelization_factor,
        on_failure,
        filters,
        enabled: p.bool("Enabled")?.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sqs_defaults_and_limits() {
        let m = parse_event("F", "E", "SQS", &json!({"Queue": "arn:aws:sqs:r:1:q"})).unwrap().unwrap();
        let EventMapping::Sqs(m) = m else { panic!() };
        assert_eq!((m.batch_size, m.batching_window, m.report_batch_item_failures), (10, Duration::ZERO, false));
        let e = parse_event("F", "E", "SQS", &json!({"Queue": "q", "BatchSize": 11})).unwrap_err();
        assert!(e.contains("MaximumBatchingWindowInSeconds"), "{e}");
        let e = parse_event("F", "E", "SQS", &json!({"Queue": "q", "ScalingConfig": {"MaximumConcurrency": 1}}))
            .unwrap_err();
        assert!(e.contains("MaximumConcurrency"), "{e}");
        assert!(parse_event("F", "E", "Api", &json!({})).unwrap().is_none());
    }

    #[test]
    fn stream_settings() {
        let m = parse_event(
            "F",
            "E",
            "DynamoDB",
            &json!({"Stream": "arn:s", "StartingPosition": "LATEST", "MaximumRetryAttempts": -1,
                    "MaximumRecordAgeInSeconds": 3600, "BisectBatchOnFunctionError": true,
                    "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": "arn:aws:sqs:us-east-1:1:f"}},
                    "FilterCriteria": {"Filters": [{"Pattern": "{\"a\": [1]}"}]}}),
        )
        .unwrap()
        .unwrap();
        let EventMapping::Stream(m) = m else { panic!() };
        assert_eq!(m.maximum_retry_attempts, None);
        assert_eq!(m.maximum_record_age, Some(Duration::from_secs(3600)));
        assert_eq!(m.batch_size, 100);
        assert_eq!(m.starting_position, StartingPosition::Latest);
        assert_eq!(m.filters.len(), 1);
        assert!(m.bisect_batch_on_function_error);
        let e =
            parse_event("F", "E", "DynamoDB", &json!({"Stream": "s", "StartingPosition": "AT_TIMESTAMP"})).unwrap_err();
        assert!(e.contains("AT_TIMESTAMP"), "{e}");
        let e = parse_event(
            "F",
            "E",
            "DynamoDB",
            &json!({"Stream": "s", "StartingPosition": "LATEST",
                    "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sns:r:1:t"}}}),
        )
        .unwrap_err();
        assert!(e.contains("only SQS"), "{e}");
    }
}
