//! Running the `pipeline` binary and setting up queues for the operator
//! tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt;
use std::process::{ExitStatus, Stdio};

use aws_sdk_sqs::types::QueueAttributeName;
use pipeline_tests::local::{endpoint, unique};
use serde_json::{json, Value};

/// What a finished `pipeline` run printed.
pub struct Output {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output unless the run succeeded.
    pub fn success(&self) {
        assert!(self.status.success(), "pipeline failed: {self}");
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n$ pipeline {}\n[{}]\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// The real binary, with the test's environment (AWS_ENDPOINT_URL, region,
/// test credentials) and quiet logs.
pub struct Cli;

impl Cli {
    fn command(args: &[&str]) -> tokio::process::Command {
        endpoint(); // fails the test, saying what to do, without a local endpoint
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline"));
        c.args(args).env("RUST_LOG", "warn").current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        c.kill_on_drop(true);
        c
    }

    /// Starts a run in the background (output discarded).
    pub fn spawn(args: &[&str]) -> tokio::process::Child {
        Self::command(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }
}

/// Runs `pipeline ARGS` to completion.
pub async fn cli(args: &[&str]) -> Output {
    let out = Cli::command(args).stdin(Stdio::null()).output().await.unwrap();
    Output {
        args: args.iter().map(|s| s.to_string()).collect(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A source queue whose RedrivePolicy names a dead-letter queue.
pub struct Pair {
    pub source: String,
    pub source_name: String,
    pub source_arn: String,
    pub dlq: String,
    pub dlq_arn: String,
}

pub async fn arn_of(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    facts(sqs, url).await[&QueueAttributeName::QueueArn].clone()
}

/// Creates a dead-letter queue and a source queue dead-lettering into it
/// (maxReceiveCount 5).
pub async fn sqs_pair(sqs: &aws_sdk_sqs::Client, prefix: &str, fifo: bool) -> Pair {
    let base = unique(prefix);
    let suffix = if fifo { ".fifo" } else { "" };
    let mut attrs: HashMap<QueueAttributeName, String> = HashMap::new();
    if fifo {
        attrs.insert(QueueAttributeName::FifoQueue, "true".into());
    }
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{base}-dlq{suffix}"))
        .set_attributes(Some(attrs.clone()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = arn_of(sqs, &dlq).await;
    attrs.insert(
        QueueAttributeName::RedrivePolicy,
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string(),
    );
    let source_name = format!("{base}{suffix}");
    let source = sqs
        .create_queue()
        .queue_name(&source_name)
        .set_attributes(Some(attrs))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let source_arn = arn_of(sqs, &source).await;
    Pair { source, source_name, source_arn, dlq, dlq_arn }
}

pub async fn facts(sqs: &aws_sdk_sqs::Client, url: &str) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
}

/// Visible messages.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    facts(sqs, url)
        .await
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Receives (and deletes) every message, with all attributes.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    pipeline_tests::local::drain(sqs, url).await
}

/// A dead-letter envelope of an SQS record with this original body and
/// message attributes (Lambda shape).
pub fn envelope(source_arn: &str, body: &str, message_attributes: Value, kind: &str) -> String {
    json!({
        "schema": "lambda-pipeline/dead-letter", "schema_version": 1,
        "source": {"kind": "sqs", "arn": source_arn, "record_id": format!("orig-{body}")},
        "error": {"kind": kind, "message": format!("{kind} failure of {body}")},
        "processor": {"name": "queue-processor", "version": "0.1.0"},
        "attempts": 1,
        "first_failed_at": "2026-01-01T00:00:00Z", "dead_lettered_at": "2026-01-01T00:00:00Z",
        "record": {"messageId": format!("orig-{body}"), "body": body, "attributes": {},
                   "messageAttributes": message_attributes, "eventSource": "aws:sqs", "eventSourceARN": source_arn}
    })
    .to_string()
}
