//! Event filtering: EventBridge-style patterns matched against a record.
//!
//! Lambda applies `FilterCriteria.Filters[].Pattern` to each stream record
//! (the record JSON as the function would see it, e.g.
//! `{"eventName": ..., "dynamodb": {"Keys": ..., "NewImage": ...}}`); a record
//! matching no pattern is dropped before batching and never invokes the
//! function. Supported operators: exact values (string, number, boolean,
//! null), `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (a value,
//! a list, or a `prefix`/`suffix`), `exists`, and `numeric` ranges. Numeric
//! matching is strict, as in EventBridge: it only matches JSON numbers, so a
//! DynamoDB `{"N": "5"}` (a string) never matches a `numeric` operator.
//! Anything else (`wildcard`, `cidr`, `$or`) is refused when the mapping is
//! configured, never silently ignored.

use serde_json::Value;

/// One compiled filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern {
    source: String,
    root: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Object(Vec<(String, Node)>),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Equals(Value),
    Prefix(String, bool),
    Suffix(String, bool),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Matcher>),
    Exists(bool),
    Numeric(Vec<(NumOp, f64)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl FilterPattern {
    /// Parses a pattern (the JSON string of `FilterCriteria.Filters[].Pattern`).
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(pattern).map_err(|e| format!("pattern is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("pattern must be a JSON object".into());
        };
        let root = compile_object(&map, "")?;
        Ok(Self { source: pattern.to_owned(), root })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `record` matches the pattern.
    pub fn matches(&self, record: &Value) -> bool {
        match_object(&self.root, Some(record))
    }
}

/// Whether `record` passes a set of filters: no filter, or any one matching.
pub fn passes(filters: &[FilterPattern], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(record))
}

fn compile_object(map: &serde_json::Map<String, Value>, path: &str) -> Result<Vec<(String, Node)>, String> {
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        if key.starts_with('$') {
            return Err(format!("{here}: operator {key} is not supported by the local runner"));
        }
        let node = match v {
            Value::Object(inner) => Node::Object(compile_object(inner, &here)?),
            Value::Array(items) => {
                Node::Leaf(items.iter().map(|m| compile_matcher(m, &here)).collect::<Result<_, _>>()?)
            }
            _ => return Err(format!("{here}: a pattern leaf must be an array of values or operators")),
        };
        out.push((key.clone(), node));
    }
    Ok(out)
}

fn compile_matcher(m: &Value, path: &str) -> Result<Matcher, String> {
    let Value::Object(op) = m else {
        return Ok(Matcher::Equals(m.clone()));
    };
    if op.len() != 1 {
        return Err(format!("{path}: an operator object must have exactly one key"));
    }
    let Some((name, arg)) = op.iter().next() else {
        return Err(format!("{path}: empty operator object"));
    };
    match (name.as_str(), arg) {
        ("prefix", Value::String(s)) => Ok(Matcher::Prefix(s.clone(), false)),
        ("suffix", Value::String(s)) => Ok(Matcher::Suffix(s.clone(), false)),
        ("prefix" | "suffix", Value::Object(inner)) => match inner.get("equals-ignore-case") {
            Some(Value::String(s)) if inner.len() == 1 => Ok(if name == "prefix" {
                Matcher::Prefix(s.to_lowercase(), true)
            } else {
                Matcher::Suffix(s.to_lowercase(), true)
            }),
            _ => Err(format!("{path}: unsupported {name} argument")),
        },
        ("equals-ignore-case", Value::String(s)) => Ok(Matcher::EqualsIgnoreCase(s.to_lowercase())),
        ("exists", Value::Bool(b)) => Ok(Matcher::Exists(*b)),
        ("anything-but", Value::Array(items)) => Ok(Matcher::AnythingBut(
            items
                .iter()
                .map(|v| match v {
                    Value::Object(_) | Value::Array(_) => Err(format!("{path}: anything-but lists take plain values")),
                    _ => Ok(Matcher::Equals(v.clone())),
                })
                .collect::<Result<_, _>>()?,
        )),
        ("anything-but", Value::Object(_)) => {
            let inner = compile_matcher(arg, path)?;
            match inner {
                Matcher::Prefix(..) | Matcher::Suffix(..) | Matcher::EqualsIgnoreCase(_) => {
                    Ok(Matcher::AnythingBut(vec![inner]))
                }
                _ => Err(format!("{path}: anything-but supports values, prefix, suffix and equals-ignore-case")),
            }
        }
        ("anything-but", v) => Ok(Matcher::AnythingBut(vec![Matcher::Equals(v.clone())])),
        ("numeric", Value::Array(items)) => {
            if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
                return Err(format!("{path}: numeric takes one or two (operator, number) pairs"));
            }
            let mut conds = Vec::new();
            for pair in items.chunks(2) {
                let op = match pair[0].as_str() {
                    Some("=") => NumOp::Eq,
                    Some("<") => NumOp::Lt,
                    Some("<=") => NumOp::Le,
                    Some(">") => NumOp::Gt,
                    Some(">=") => NumOp::Ge,
                    _ => return Err(format!("{path}: unknown numeric operator {}", pair[0])),
                };
                let n = pair[1].as_f64().ok_or_else(|| format!("{path}: numeric bound {} is not a number", pair[1]))?;
                conds.push((op, n));
            }
            Ok(Matcher::Numeric(conds))
        }
        (other, _) => {
            Err(format!("{path}: filter operator {other:?} (with this argument) is not supported by the local runner"))
        }
    }
}

fn match_object(nodes: &[(String, Node)], value: Option<&Value>) -> bool {
    let obj = value.and_then(Value::as_object);
    nodes.iter().all(|(key, node)| {
        let child = obj.and_then(|o| o.get(key));
        match node {
            Node::Object(inner) => match_object(inner, child),
            Node::Leaf(matchers) => matchers.iter().any(|m| match_leaf(m, child)),
        }
    })
}

fn match_leaf(m: &Matcher, value: Option<&Value>) -> bool {
    match m {
        Matcher::Exists(want) => value.is_some() == *want,
        _ => match value {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|v| match_scalar(m, v)),
            Some(v) => match_scalar(m, v),
        },
    }
}

fn match_scalar(m: &Matcher, v: &Value) -> bool {
    match m {
        Matcher::Equals(want) => match (want, v) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            _ => want == v,
        },
        Matcher::Prefix(p, ci) => {
            v.as_str().is_some_and(|s| if *ci { s.to_lowercase().starts_with(p) } else { s.starts_with(p) })
        }
        Matcher::Suffix(p, ci) => {
            v.as_str().is_some_and(|s| if *ci { s.to_lowercase().ends_with(p) } else { s.ends_with(p) })
        }
        Matcher::EqualsIgnoreCase(p) => v.as_str().is_some_and(|s| s.to_lowercase() == *p),
        Matcher::AnythingBut(not) => !not.iter().any(|n| match_scalar(n, v)),
        Matcher::Exists(want) => *want,
        Matcher::Numeric(conds) => v.as_f64().is_some_and(|x| {
            v.is_number()
                && conds.iter().all(|(op, n)| match op {
                    NumOp::Eq => x == *n,
                    NumOp::Lt => x < *n,
                    NumOp::Le => x <= *n,
                    NumOp::Gt => x > *n,
                    NumOp::Ge => x >= *n,
                })
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn rec(pk: &str) -> Value {
        json!({"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": pk}}, "NewImage": {"pk": {"S": pk}, "qty": {"N": "5"}}}, "n": 7})
    }

    fn m(p: &str, r: &Value) -> bool {
        FilterPattern::parse(p).unwrap().matches(r)
    }

    #[test]
    fn template_prefix_pattern() {
        let p = r#"{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "ITEM#"}]}}}}"#;
        assert!(m(p, &rec("ITEM#1")));
        assert!(!m(p, &rec("ORDER#1")));
        assert!(!m(p, &json!({"dynamodb": {}})));
    }

    #[test]
    fn exact_values_and_lists_are_or() {
        assert!(m(r#"{"eventName": ["MODIFY", "INSERT"]}"#, &rec("a")));
        assert!(!m(r#"{"eventName": ["REMOVE"]}"#, &rec("a")));
        assert!(m(r#"{"n": [7]}"#, &rec("a")));
        assert!(m(r#"{"dynamodb": {"NewImage": {"qty": {"N": ["5"]}}}}"#, &rec("a")));
    }

    #[test]
    fn anything_but_exists_suffix_ignore_case() {
        assert!(m(r#"{"eventName": [{"anything-but": "REMOVE"}]}"#, &rec("a")));
        assert!(!m(r#"{"eventName": [{"anything-but": ["INSERT", "REMOVE"]}]}"#, &rec("a")));
        assert!(!m(r#"{"dynamodb": {"Keys": {"pk": {"S": [{"anything-but": {"prefix": "IT"}}]}}}}"#, &rec("ITEM")));
        assert!(!m(r#"{"missing": [{"anything-but": "x"}]}"#, &rec("a")));
        assert!(m(r#"{"dynamodb": {"OldImage": [{"exists": false}]}}"#, &rec("a")));
        assert!(m(r#"{"dynamodb": {"NewImage": {"qty": [{"exists": true}]}}}"#, &rec("a")));
        assert!(!m(r#"{"dynamodb": {"NewImage": {"nope": [{"exists": true}]}}}"#, &rec("a")));
        assert!(m(r#"{"eventName": [{"suffix": "ERT"}]}"#, &rec("a")));
        assert!(m(r#"{"eventName": [{"equals-ignore-case": "insert"}]}"#, &rec("a")));
        assert!(m(r#"{"eventName": [{"prefix": {"equals-ignore-case": "ins"}}]}"#, &rec("a")));
    }

    #[test]
    fn numeric_ranges_only_match_numbers() {
        assert!(m(r#"{"n": [{"numeric": [">", 5, "<=", 7]}]}"#, &rec("a")));
        assert!(!m(r#"{"n": [{"numeric": [">", 7]}]}"#, &rec("a")));
        assert!(!m(r#"{"dynamodb": {"NewImage": {"qty": {"N": [{"numeric": [">", 1]}]}}}}"#, &rec("a")));
    }

    #[test]
    fn unsupported_operators_are_refused() {
        assert!(FilterPattern::parse(r#"{"a": [{"wildcard": "x*"}]}"#).unwrap_err().contains("wildcard"));
        assert!(FilterPattern::parse(r#"{"$or": []}"#).is_err());
        assert!(FilterPattern::parse(r#"{"a": "x"}"#).is_err());
        assert!(FilterPattern::parse("[1]").is_err());
    }

    #[test]
    fn no_filters_pass_everything() {
        assert!(passes(&[], &rec("x")));
    }
}
