//! Interpreting a function's partial batch response
//! (`{"batchItemFailures":[{"itemIdentifier": ...}]}`), exactly as
//! LAMBDA-SEMANTICS.md sections 1 and 2 describe.

use serde_json::Value;

/// What a response says about a batch (with `ReportBatchItemFailures` on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchVerdict {
    /// Every record succeeded: a null or empty response, a null or empty
    /// `batchItemFailures` list.
    AllSucceeded,
    /// These identifiers failed (each one a member of the batch; in response
    /// order, duplicates removed).
    Failed(Vec<String>),
    /// The whole batch failed: the response is not a batch response, or an
    /// identifier is empty, null, wrongly keyed, not a string, or not in the
    /// batch (the last one is *unconfirmed* for streams; the safer choice).
    Invalid(String),
}

/// Reads `response`; `is_member` says whether an identifier (a messageId, or
/// a stream record's SequenceNumber) belongs to the batch that was invoked.
pub(crate) fn parse_batch_response(response: &Value, is_member: impl Fn(&str) -> bool) -> BatchVerdict {
    let obj = match response {
        Value::Null => return BatchVerdict::AllSucceeded,
        Value::Object(o) => o,
        Value::String(s) => {
            let shown: String = s.chars().take(80).collect();
            return BatchVerdict::Invalid(format!("the response is not a JSON object but the string {shown:?}"));
        }
        other => return BatchVerdict::Invalid(format!("the response is not a JSON object: {other}")),
    };
    let list = match obj.get("batchItemFailures") {
        None | Some(Value::Null) => return BatchVerdict::AllSucceeded,
        Some(Value::Array(items)) => items,
        Some(other) => return BatchVerdict::Invalid(format!("batchItemFailures is not a list: {other}")),
    };
    let mut failed: Vec<String> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Value::Object(item) = item else {
            return BatchVerdict::Invalid(format!("batchItemFailures[{i}] is not an object"));
        };
        let id = match item.get("itemIdentifier") {
            None => return BatchVerdict::Invalid(format!("batchItemFailures[{i}] has no itemIdentifier key")),
            Some(Value::Null) => {
                return BatchVerdict::Invalid(format!("batchItemFailures[{i}].itemIdentifier is null"))
            }
            Some(Value::String(s)) if s.is_empty() => {
                return BatchVerdict::Invalid(format!("batchItemFailures[{i}].itemIdentifier is empty"))
            }
            Some(Value::String(s)) => s,
            Some(other) => {
                return BatchVerdict::Invalid(format!("batchItemFailures[{i}].itemIdentifier is not a string: {other}"))
            }
        };
        if !is_member(id) {
            return BatchVerdict::Invalid(format!("batchItemFailures[{i}].itemIdentifier {id:?} is not in the batch"));
        }
        if !failed.iter().any(|f| f == id) {
            failed.push(id.clone());
        }
    }
    if failed.is_empty() {
        BatchVerdict::AllSucceeded
    } else {
        BatchVerdict::Failed(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdict(v: Value) -> BatchVerdict {
        parse_batch_response(&v, |id| id == "a" || id == "b")
    }

    #[test]
    fn success_forms() {
        for v in [json!(null), json!({}), json!({"batchItemFailures": null}), json!({"batchItemFailures": []})] {
            assert_eq!(verdict(v.clone()), BatchVerdict::AllSucceeded, "{v}");
        }
    }

    #[test]
    fn partial() {
        assert_eq!(
            verdict(
                json!({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}, {"itemIdentifier": "b"}]})
            ),
            BatchVerdict::Failed(vec!["b".into(), "a".into()])
        );
    }

    #[test]
    fn whole_batch_failure_forms() {
        for v in [
            json!("not json"),
            json!(42),
            json!([]),
            json!({"batchItemFailures": "a"}),
            json!({"batchItemFailures": ["a"]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"itemId": "a"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": 1}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "zzz"}]}),
        ] {
            assert!(matches!(verdict(v.clone()), BatchVerdict::Invalid(_)), "{v}");
        }
    }
}
