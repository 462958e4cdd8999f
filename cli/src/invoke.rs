//! How the emulator calls a function.
//!
//! The emulator only needs [`Invoker`]: give it the template logical id of a
//! function and the event, get back the response or the function error. A
//! timeout is applied by the caller (the function's `Timeout`), so an
//! implementation never has to time out by itself.
//!
//! [`LambdaApiInvoker`] calls the Lambda Invoke API at an endpoint, e.g. what
//! `cargo lambda watch` serves. An in-process invoker (calling the handlers
//! directly) is a plain implementation of the trait.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::Value;

/// The outcome of one synchronous invocation, as Lambda reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function returned. Unparseable output is passed as a JSON string
    /// holding the raw text (the emulator treats it as an invalid response).
    Response(Value),
    /// The function failed (threw, panicked, timed out, crashed).
    FunctionError {
        /// `errorType`, e.g. `Sandbox.Timedout` or the handler's error type.
        error_type: String,
        /// `errorMessage`.
        message: String,
    },
}

/// Calls functions synchronously. The emulator calls it concurrently (one
/// call per batch in flight), so implementations must be `Send + Sync`.
pub trait Invoker: Send + Sync {
    /// `function` is the template logical id, e.g. "QueueProcessorFunction".
    fn invoke(&self, function: &str, payload: Value) -> impl Future<Output = Invocation> + Send;
}

/// An invoker setup error.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The endpoint is not an http(s) URL.
    #[error("invoke endpoint {0:?} must be an http:// or https:// URL")]
    Endpoint(String),
}

/// Calls `POST {endpoint}/2015-03-31/functions/{name}/invocations` (the
/// Lambda Invoke API, request-response) for each invocation. `name` is the
/// function's `Metadata.BuildProperties.Binary` (what `cargo lambda watch`
/// serves), else its logical id. A function error is the
/// `X-Amz-Function-Error` response header; the body then holds
/// `{"errorType", "errorMessage"}`.
#[derive(Debug, Clone)]
pub struct LambdaApiInvoker {
    endpoint: String,
    names: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl LambdaApiInvoker {
    /// An invoker for `endpoint`; `names` maps logical ids to the function
    /// names the endpoint knows (logical ids not in it are used as names).
    pub fn new(endpoint: &str, names: BTreeMap<String, String>) -> Result<Self, InvokerError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(InvokerError::Endpoint(endpoint));
        }
        let http = reqwest::Client::builder().build().map_err(|e| InvokerError::Client(e.to_string()))?;
        Ok(Self { endpoint, names, http })
    }

    /// The URL invoked for a logical id.
    pub fn url_for(&self, function: &str) -> String {
        let name = self.names.get(function).map(String::as_str).unwrap_or(function);
        format!("{}/2015-03-31/functions/{name}/invocations", self.endpoint)
    }
}

impl Invoker for LambdaApiInvoker {
    fn invoke(&self, function: &str, payload: Value) -> impl Future<Output = Invocation> + Send {
        let url = self.url_for(function);
        let http = self.http.clone();
        async move {
            let response =
                match http.post(&url).header("X-Amz-Invocation-Type", "RequestResponse").json(&payload).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        // Lambda would retry an invoke that never reached the
                        // function; the emulator treats it like a failed batch.
                        return Invocation::FunctionError {
                            error_type: "Emulator.InvokeFailed".into(),
                            message: format!("POST {url}: {e}"),
                        };
                    }
                };
            let status = response.status();
            let function_error =
                response.headers().get("X-Amz-Function-Error").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = match response.text().await {
                Ok(b) => b,
                Err(e) => {
                    return Invocation::FunctionError {
                        error_type: "Emulator.InvokeFailed".into(),
                        message: format!("reading the response of {url}: {e}"),
                    }
                }
            };
            if function_error.is_some() || !status.is_success() {
                let parsed: Option<Value> = serde_json::from_str(&body).ok();
                let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_owned);
                return Invocation::FunctionError {
                    error_type: field("errorType")
                        .or(function_error)
                        .unwrap_or_else(|| format!("Emulator.HttpStatus{}", status.as_u16())),
                    message: field("errorMessage").unwrap_or(body),
                };
            }
            Invocation::Response(parse_body(&body))
        }
    }
}

/// The response body as JSON: empty means `null`, text that is not JSON is
/// kept as a JSON string (an invalid batch response for the emulator).
fn parse_body(body: &str) -> Value {
    if body.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_use_the_binary_name() {
        let inv = LambdaApiInvoker::new("http://127.0.0.1:9000/", [("F".to_owned(), "bin".to_owned())].into()).unwrap();
        assert_eq!(inv.url_for("F"), "http://127.0.0.1:9000/2015-03-31/functions/bin/invocations");
        assert_eq!(inv.url_for("G"), "http://127.0.0.1:9000/2015-03-31/functions/G/invocations");
        assert!(LambdaApiInvoker::new("127.0.0.1:9000", BTreeMap::new()).is_err());
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(""), Value::Null);
        assert_eq!(parse_body("null"), Value::Null);
        assert_eq!(parse_body(r#"{"batchItemFailures":[]}"#), json!({"batchItemFailures": []}));
        assert_eq!(parse_body("not json"), json!("not json"));
    }
}
