//! A deployed stack, resolved READ-ONLY from the template.
//!
//! `pipeline local up` provisions (creates or updates) the template's tables
//! and queues. The operator commands must not change anything they only
//! look at, so this resolves the same names without creating anything:
//! each table's and queue's physical name comes from the template
//! (`TableName` / `QueueName` with `!Sub`, or `<stack>-<logical id>` like
//! the local runner), then DescribeTable / GetQueueUrl find the existing
//! resource; a missing one is an error that says how to create it. The
//! functions' `Environment` and stream event mappings are resolved against
//! those, so the stream processor can be run in-process
//! ([`crate::inprocess::StackInvoker::for_stack`]) with its real
//! configuration.
//!
//! On AWS the names only match when the template sets `TableName` /
//! `QueueName` (this one does): CloudFormation's generated names carry a
//! random suffix. The account id used in `!Sub` is the local one.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;

use super::error::{aws_error, OpsError, Result};
use crate::provision::{
    as_string, function_names, generated_name, resolve_function, ProvisionedStack, QueueInfo, TableInfo,
};
use crate::template::{Resolver, Resource, StackContext, Template};

fn template_err(e: impl std::fmt::Display) -> OpsError {
    OpsError::usage(format!("template: {e}"))
}

fn missing(kind: &str, name: &str, r: &Resource, ctx: &StackContext, e: OpsError) -> OpsError {
    match e {
        OpsError::Aws { operation, cause, .. } => OpsError::Aws {
            operation,
            resource: format!("{kind} {name} (logical id {} of stack {})", r.logical_id, ctx.stack_name),
            cause,
            fix: format!(
                "check --stack-name and the region; locally, create the stack first with `pipeline local up \
                 --stack-name {}`; on AWS, deploy it (sam deploy) or pass the queue URL instead of a logical id",
                ctx.stack_name
            ),
        },
        other => other,
    }
}

/// Resolves the stack `ctx.stack_name` of `template` without creating or
/// changing anything.
pub async fn resolve_stack(sdk: &SdkConfig, template: &Template, ctx: &StackContext) -> Result<ProvisionedStack> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut physical = function_names(template, ctx).map_err(template_err)?;
    let mut stack = ProvisionedStack::empty(ctx);

    for t in template.resources_of_type("AWS::DynamoDB::Table") {
        let resolver = Resolver::new(template, ctx, &physical);
        let name = match resolver.property(t, "TableName").map_err(template_err)? {
            Some(v) => as_string(&v).unwrap_or_default(),
            None => generated_name(&ctx.stack_name, &t.logical_id, 255),
        };
        let out = ddb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| missing("table", &name, t, ctx, aws_error("dynamodb:DescribeTable", &name, &e)))?;
        let d = out.table.unwrap_or_else(|| aws_sdk_dynamodb::types::TableDescription::builder().build());
        let arn = d.table_arn().unwrap_or_default().to_owned();
        let stream_arn = d.latest_stream_arn().map(str::to_owned);
        let info = TableInfo { logical_id: t.logical_id.clone(), name, arn, stream_arn, created: false };
        physical.insert(t.logical_id.clone(), info.physical());
        stack.tables.insert(t.logical_id.clone(), info);
    }

    for q in template.resources_of_type("AWS::SQS::Queue") {
        let resolver = Resolver::new(template, ctx, &physical);
        let fifo = matches!(resolver.property(q, "FifoQueue").map_err(template_err)?, Some(v) if as_string(&v).as_deref() == Some("true"));
        let name = match resolver.property(q, "QueueName").map_err(template_err)? {
            Some(v) => as_string(&v).unwrap_or_default(),
            None if fifo => format!("{}.fifo", generated_name(&ctx.stack_name, &q.logical_id, 75)),
            None => generated_name(&ctx.stack_name, &q.logical_id, 80),
        };
        let url = sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| missing("queue", &name, q, ctx, aws_error("sqs:GetQueueUrl", &name, &e)))?
            .queue_url
            .unwrap_or_default();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_error("sqs:GetQueueAttributes", &url, &e))?;
        let arn = attrs.attributes.and_then(|mut a| a.remove(&QueueAttributeName::QueueArn)).unwrap_or_default();
        let info = QueueInfo { logical_id: q.logical_id.clone(), name, url, arn, fifo, created: false };
        physical.insert(q.logical_id.clone(), info.physical());
        stack.queues.insert(q.logical_id.clone(), info);
    }

    for f in template.resources_of_type("AWS::Serverless::Function") {
        let info = resolve_function(template, ctx, &physical, f).map_err(template_err)?;
        stack.functions.insert(f.logical_id.clone(), info);
    }
    Ok(stack)
}
