//! Naming queues and reading their facts.
//!
//! A queue is named by its URL (`https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq`),
//! its ARN (`arn:aws:sqs:us-east-1:123456789012:orders-dlq`), its name
//! (`orders-dlq`, in the configured region and account), or, with
//! `--stack-name`, the logical id of a queue of the template
//! (`ProcessingDeadLetterQueue`).

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::error::{aws_error, OpsError, Result};
use crate::provision::ProvisionedStack;

/// A resolved queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// Queue URL.
    pub url: String,
    /// Queue name.
    pub name: String,
    /// Queue ARN.
    pub arn: String,
    /// FIFO queue.
    pub fifo: bool,
}

impl std::fmt::Display for QueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.url)
    }
}

/// A queue's `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The dead-letter queue's ARN.
    pub dead_letter_target_arn: String,
    /// Receives before SQS moves a message there.
    pub max_receive_count: u32,
}

/// What `GetQueueAttributes` says about a queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueFacts {
    /// `ApproximateNumberOfMessages`: visible messages.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted.
    pub in_flight: u64,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: u64,
    /// `MessageRetentionPeriod`.
    pub retention: Duration,
    /// `VisibilityTimeout`.
    pub visibility_timeout: Duration,
    /// `RedrivePolicy`, if the queue has a dead-letter queue.
    pub redrive_policy: Option<RedrivePolicy>,
    /// `FifoQueue`.
    pub fifo: bool,
}

/// The SDK clients and, with `--stack-name`, the stack the commands work on.
#[derive(Debug, Clone)]
pub struct OpsContext {
    /// The SDK configuration.
    pub sdk: SdkConfig,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The region.
    pub region: String,
    /// The stack, resolved read-only from the template (see [`super::stack`]).
    pub stack: Option<ProvisionedStack>,
}

fn split_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() == 6 && parts[0] == "arn" && parts[2] == "sqs").then(|| (parts[3], parts[4], parts[5]))
}

/// The name of the queue with this URL (its last path segment).
pub fn name_from_url(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

impl OpsContext {
    /// A context over `sdk`, optionally with a resolved stack.
    pub fn new(sdk: &SdkConfig, stack: Option<ProvisionedStack>) -> Self {
        Self { sdk: sdk.clone(), sqs: aws_sdk_sqs::Client::new(sdk), region: crate::aws::region_of(sdk), stack }
    }

    /// Resolves a queue given by URL, ARN, template logical id (with a
    /// stack) or name, and checks that it exists.
    pub async fn queue(&self, spec: &str) -> Result<QueueRef> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(OpsError::usage("an empty queue name was given"));
        }
        let url = if spec.starts_with("https://") || spec.starts_with("http://") {
            spec.to_owned()
        } else if spec.starts_with("arn:") {
            self.url_for_arn(spec).await?
        } else if let Some(q) = self.stack.as_ref().and_then(|s| s.queues.get(spec)) {
            q.url.clone()
        } else {
            match self.sqs.get_queue_url().queue_name(spec).send().await {
                Ok(out) => out.queue_url.unwrap_or_default(),
                Err(e) => {
                    let mut err = aws_error("sqs:GetQueueUrl", &format!("queue {spec}"), &e);
                    if let OpsError::Aws { fix, .. } = &mut err {
                        if self.stack.is_none() && spec.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                            fix.push_str(&format!(
                                "; if {spec} is a logical id of template.yaml, add --stack-name (e.g. --stack-name \
                                 pipeline-local)"
                            ));
                        } else if let Some(stack) = &self.stack {
                            let ids: Vec<&str> = stack.queues.keys().map(String::as_str).collect();
                            fix.push_str(&format!(
                                "; the queues of stack {} are {}",
                                stack.context.stack_name,
                                ids.join(", ")
                            ));
                        }
                    }
                    return Err(err);
                }
            }
        };
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .attribute_names(QueueAttributeName::FifoQueue)
            .send()
            .await
            .map_err(|e| aws_error("sqs:GetQueueAttributes", &format!("queue {url}"), &e))?;
        let attrs = out.attributes.unwrap_or_default();
        let name = name_from_url(&url).to_owned();
        let arn = attrs.get(&QueueAttributeName::QueueArn).cloned().unwrap_or_default();
        let fifo = attrs.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true") || name.ends_with(".fifo");
        Ok(QueueRef { url, name, arn, fifo })
    }

    /// The URL of the queue with this ARN.
    pub async fn url_for_arn(&self, arn: &str) -> Result<String> {
        let Some((_, account, name)) = split_arn(arn) else {
            return Err(OpsError::usage(format!(
                "{arn} is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME); pass a queue URL or name instead"
            )));
        };
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| aws_error("sqs:GetQueueUrl", &format!("queue {arn}"), &e))?;
        out.queue_url.ok_or_else(|| OpsError::usage(format!("GetQueueUrl for {arn} returned no URL")))
    }

    /// Reads the queue's counts and settings.
    pub async fn facts(&self, queue: &QueueRef) -> Result<QueueFacts> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_error("sqs:GetQueueAttributes", &format!("queue {}", queue.url), &e))?;
        Ok(facts_from(&out.attributes.unwrap_or_default()))
    }

    /// The queues whose `RedrivePolicy` names `dlq` (ListDeadLetterSourceQueues).
    pub async fn dead_letter_sources(&self, dlq: &QueueRef) -> Result<Vec<String>> {
        let mut urls = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .sqs
                .list_dead_letter_source_queues()
                .queue_url(&dlq.url)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error("sqs:ListDeadLetterSourceQueues", &format!("queue {}", dlq.url), &e))?;
            urls.extend(out.queue_urls().iter().cloned());
            token = out.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(urls);
            }
        }
    }
}

fn number(attrs: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
    attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn facts_from(attrs: &HashMap<QueueAttributeName, String>) -> QueueFacts {
    let redrive_policy = attrs.get(&QueueAttributeName::RedrivePolicy).and_then(|v| {
        let v: Value = serde_json::from_str(v).ok()?;
        let target = v.get("deadLetterTargetArn")?.as_str()?.to_owned();
        let max = match v.get("maxReceiveCount")? {
            Value::Number(n) => n.as_u64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        Some(RedrivePolicy { dead_letter_target_arn: target, max_receive_count: max as u32 })
    });
    QueueFacts {
        visible: number(attrs, QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: number(attrs, QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: number(attrs, QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        retention: Duration::from_secs(number(attrs, QueueAttributeName::MessageRetentionPeriod)),
        visibility_timeout: Duration::from_secs(number(attrs, QueueAttributeName::VisibilityTimeout)),
        redrive_policy,
        fifo: attrs.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        assert_eq!(name_from_url("http://127.0.0.1:5000/123456789012/jobs-dlq"), "jobs-dlq");
        assert_eq!(split_arn("arn:aws:sqs:eu-west-1:123:q.fifo"), Some(("eu-west-1", "123", "q.fifo")));
        assert_eq!(split_arn("arn:aws:sns:eu-west-1:123:t"), None);
    }

    #[test]
    fn redrive_policy_is_read_with_a_string_or_number_count() {
        let attrs: HashMap<QueueAttributeName, String> = [
            (
                QueueAttributeName::RedrivePolicy,
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:d","maxReceiveCount":"5"}"#.to_owned(),
            ),
            (QueueAttributeName::ApproximateNumberOfMessages, "7".to_owned()),
        ]
        .into();
        let f = facts_from(&attrs);
        assert_eq!(f.visible, 7);
        assert_eq!(
            f.redrive_policy,
            Some(RedrivePolicy { dead_letter_target_arn: "arn:aws:sqs:us-east-1:1:d".into(), max_receive_count: 5 })
        );
    }
}
