//! Creating the template's tables and queues on the configured endpoint.
//!
//! Every `AWS::DynamoDB::Table` and `AWS::SQS::Queue` is created (or reused
//! when it already exists), in dependency order, so a dead-letter queue
//! exists before the queue whose `RedrivePolicy` names it. Then each
//! `AWS::Serverless::Function` is resolved: its name, timeout, `Environment`
//! and its `SQS` / `DynamoDB` events (the event source mappings to emulate).
//! Nothing else (alarms, topics, keys, IAM) is created.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::mapping::{parse_event, EventMapping};
use crate::template::{Physical, PhysicalResource, Resolver, Resource, StackContext, Template, TemplateError};

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const FUNCTION: &str = "AWS::Serverless::Function";

/// Provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The template could not be resolved.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A call to the endpoint failed.
    #[error("{resource}: {operation} failed: {message}")]
    Aws {
        /// Logical id.
        resource: String,
        /// The API operation.
        operation: &'static str,
        /// The SDK error, with its context.
        message: String,
    },
    /// Resources refer to each other in a cycle.
    #[error("resources refer to each other in a cycle: {0}")]
    Cycle(String),
    /// A function's event cannot be emulated.
    #[error("{0}")]
    Event(String),
}

/// A provisioned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Logical id.
    pub logical_id: String,
    /// Table name.
    pub name: String,
    /// Table ARN.
    pub arn: String,
    /// Latest stream ARN, when a stream is enabled.
    pub stream_arn: Option<String>,
    /// Whether this run created it (false: it existed and was reused).
    pub created: bool,
}

/// A provisioned queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Logical id.
    pub logical_id: String,
    /// Queue name.
    pub name: String,
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// FIFO queue.
    pub fifo: bool,
    /// Whether this run created it (false: it existed and was reused).
    pub created: bool,
}

/// A function of the template, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInfo {
    /// Logical id, e.g. `QueueProcessorFunction`.
    pub logical_id: String,
    /// Function name (`FunctionName`, or `<stack>-<logical id>`).
    pub name: String,
    /// Function ARN.
    pub arn: String,
    /// `Metadata.BuildProperties.Binary`: what `cargo lambda watch` serves.
    pub binary: Option<String>,
    /// `Timeout` (default 3 s).
    pub timeout: Duration,
    /// `Environment.Variables`, resolved.
    pub environment: BTreeMap<String, String>,
    /// The `SQS` and `DynamoDB` events.
    pub mappings: Vec<EventMapping>,
}

/// Everything provisioning produced.
#[derive(Debug, Clone)]
pub struct ProvisionedStack {
    /// Stack name, region, account.
    pub context: StackContext,
    /// Tables by logical id.
    pub tables: BTreeMap<String, TableInfo>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, QueueInfo>,
    /// Functions by logical id.
    pub functions: BTreeMap<String, FunctionInfo>,
}

impl TableInfo {
    /// What `!Ref` and `!GetAtt` of this table resolve to.
    pub(crate) fn physical(&self) -> PhysicalResource {
        let mut attributes: BTreeMap<String, String> = [("Arn".to_owned(), self.arn.clone())].into();
        if let Some(s) = &self.stream_arn {
            attributes.insert("StreamArn".into(), s.clone());
        }
        PhysicalResource { ref_value: self.name.clone(), attributes }
    }
}

impl QueueInfo {
    /// What `!Ref` and `!GetAtt` of this queue resolve to.
    pub(crate) fn physical(&self) -> PhysicalResource {
        let attributes = [
            ("Arn".to_owned(), self.arn.clone()),
            ("QueueName".to_owned(), self.name.clone()),
            ("QueueUrl".to_owned(), self.url.clone()),
        ]
        .into();
        PhysicalResource { ref_value: self.url.clone(), attributes }
    }
}

impl ProvisionedStack {
    /// A stack with nothing in it yet.
    pub(crate) fn empty(context: &StackContext) -> Self {
        Self { context: context.clone(), tables: BTreeMap::new(), queues: BTreeMap::new(), functions: BTreeMap::new() }
    }

    /// The queue with this ARN, if the template created it.
    pub fn queue_by_arn(&self, arn: &str) -> Option<&QueueInfo> {
        self.queues.values().find(|q| q.arn == arn)
    }

    /// Every enabled event source mapping, with its function.
    pub fn mappings(&self) -> impl Iterator<Item = (&FunctionInfo, &EventMapping)> {
        self.functions.values().flat_map(|f| f.mappings.iter().filter(|m| m.enabled()).map(move |m| (f, m)))
    }
}

/// Creates (or reuses) the template's tables and queues and resolves its
/// functions. Idempotent: running it twice gives the same result.
pub async fn provision(
    sdk: &SdkConfig,
    template: &Template,
    ctx: &StackContext,
) -> Result<ProvisionedStack, ProvisionError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut physical = function_names(template, ctx)?;
    let mut stack = ProvisionedStack::empty(ctx);

    for other in template.resources().values() {
        if other.kind == "AWS::Lambda::EventSourceMapping" {
            tracing::warn!(resource = %other.logical_id, "AWS::Lambda::EventSourceMapping resources are not emulated; use the function's SAM Events");
        }
    }

    for id in creation_order(template)? {
        let Some(resource) = template.resource(&id) else { continue };
        match resource.kind.as_str() {
            TABLE => {
                let info = ensure_table(&dynamodb, template, ctx, &physical, resource).await?;
                physical.insert(id.clone(), info.physical());
                stack.tables.insert(id, info);
            }
            QUEUE => {
                let info = ensure_queue(&sqs, template, ctx, &physical, resource).await?;
                physical.insert(id.clone(), info.physical());
                stack.queues.insert(id, info);
            }
            _ => {}
        }
    }

    for f in template.resources_of_type(FUNCTION) {
        let info = resolve_function(template, ctx, &physical, f)?;
        stack.functions.insert(f.logical_id.clone(), info);
    }
    Ok(stack)
}

/// The functions' names and ARNs (`FunctionName`, or the generated name):
/// they need nothing else, and queue or table settings may (rarely) mention
/// them, so they are resolved first.
pub(crate) fn function_names(template: &Template, ctx: &StackContext) -> Result<Physical, ProvisionError> {
    let mut physical = Physical::default();
    for f in template.resources_of_type(FUNCTION) {
        let resolver = Resolver::new(template, ctx, &physical);
        let name = match resolver.property(f, "FunctionName")? {
            Some(Value::String(s)) => s,
            Some(other) => return Err(bad(f, "FunctionName", format!("expected a string, got {other}"))),
            None => generated_name(&ctx.stack_name, &f.logical_id, 64),
        };
        let arn = format!("arn:{}:lambda:{}:{}:function:{name}", ctx.partition(), ctx.region, ctx.account_id);
        physical.insert(
            f.logical_id.clone(),
            PhysicalResource { ref_value: name, attributes: [("Arn".to_owned(), arn)].into() },
        );
    }
    Ok(physical)
}

/// Tables and queues, dependencies first (Kahn's algorithm, ties broken by
/// logical id so the order is stable).
fn creation_order(template: &Template) -> Result<Vec<String>, ProvisionError> {
    let nodes: BTreeMap<&str, &Resource> = template
        .resources()
        .iter()
        .filter(|(_, r)| r.kind == TABLE || r.kind == QUEUE)
        .map(|(id, r)| (id.as_str(), r))
        .collect();
    let mut deps: BTreeMap<&str, BTreeSet<String>> = nodes
        .iter()
        .map(|(id, r)| {
            let refs = r.references().into_iter().filter(|d| nodes.contains_key(d.as_str()) && d != id).collect();
            (*id, refs)
        })
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while !deps.is_empty() {
        let ready: Vec<&str> = deps.iter().filter(|(_, d)| d.is_empty()).map(|(id, _)| *id).collect();
        if ready.is_empty() {
            return Err(ProvisionError::Cycle(deps.keys().copied().collect::<Vec<_>>().join(", ")));
        }
        for id in ready {
            deps.remove(id);
            for d in deps.values_mut() {
                d.remove(id);
            }
            order.push(id.to_owned());
        }
    }
    Ok(order)
}

/// A CloudFormation-like generated name, `<stack>-<logical id>`, cut to `max`.
/// The name CloudFormation-like tools give a resource without one.
pub(crate) fn generated_name(stack: &str, logical_id: &str, max: usize) -> String {
    let mut s = format!("{stack}-{logical_id}");
    s.truncate(max);
    s
}

fn bad(r: &Resource, property: &str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Template(TemplateError::BadProperty {
        resource: r.logical_id.clone(),
        property: property.to_owned(),
        message: message.into(),
    })
}

fn aws_err<E>(r: &Resource, operation: &'static str, e: E) -> ProvisionError
where
    E: std::error::Error + 'static,
{
    ProvisionError::Aws {
        resource: r.logical_id.clone(),
        operation,
        message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
    }
}

/// A template scalar (string, number or boolean) as text.
pub(crate) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

// ------------------------------------------------------------------ tables

fn key_schema(r: &Resource, property: &str, v: &Value) -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
    let items = v.as_array().ok_or_else(|| bad(r, property, "expected a list"))?;
    items
        .iter()
        .map(|k| {
            let name = k.get("AttributeName").and_then(Value::as_str);
            let kind = k.get("KeyType").and_then(Value::as_str);
            match (name, kind) {
                (Some(n), Some(t)) => ddb::KeySchemaElement::builder()
                    .attribute_name(n)
                    .key_type(ddb::KeyType::from(t))
                    .build()
                    .map_err(|e| bad(r, property, e.to_string())),
                _ => Err(bad(r, property, "each key needs AttributeName and KeyType")),
            }
        })
        .collect()
}

fn projection(r: &Resource, property: &str, v: Option<&Value>) -> Result<ddb::Projection, ProvisionError> {
    let mut b = ddb::Projection::builder();
    if let Some(v) = v {
        if let Some(t) = v.get("ProjectionType").and_then(Value::as_str) {
            b = b.projection_type(ddb::ProjectionType::from(t));
        }
        if let Some(list) = v.get("NonKeyAttributes").and_then(Value::as_array) {
            for a in list {
                b = b.non_key_attributes(as_string(a).ok_or_else(|| bad(r, property, "NonKeyAttributes"))?);
            }
        }
    }
    Ok(b.build())
}

fn throughput(
    r: &Resource,
    property: &str,
    v: Option<&Value>,
) -> Result<Option<ddb::ProvisionedThroughput>, ProvisionError> {
    let Some(v) = v else { return Ok(None) };
    let read = v.get("ReadCapacityUnits").and_then(as_i64);
    let write = v.get("WriteCapacityUnits").and_then(as_i64);
    match (read, write) {
        (Some(rc), Some(wc)) => ddb::ProvisionedThroughput::builder()
            .read_capacity_units(rc)
            .write_capacity_units(wc)
            .build()
            .map(Some)
            .map_err(|e| bad(r, property, e.to_string())),
        _ => Err(bad(r, property, "needs ReadCapacityUnits and WriteCapacityUnits")),
    }
}

async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    template: &Template,
    ctx: &StackContext,
    physical: &Physical,
    r: &Resource,
) -> Result<TableInfo, ProvisionError> {
    let resolver = Resolver::new(template, ctx, physical);
    let prop = |name: &str| resolver.property(r, name);
    let name = match prop("TableName")? {
        Some(v) => as_string(&v).ok_or_else(|| bad(r, "TableName", "expected a string"))?,
        None => generated_name(&ctx.stack_name, &r.logical_id, 255),
    };
    let stream_view = match prop("StreamSpecification")? {
        Some(v) => Some(
            v.get("StreamViewType")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(r, "StreamSpecification", "needs StreamViewType"))?
                .to_owned(),
        ),
        None => None,
    };
    for ignored in ["SSESpecification", "PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "Tags"] {
        if r.raw_property(ignored).is_some() {
            tracing::debug!(resource = %r.logical_id, property = ignored, "not applied locally");
        }
    }

    let mut created = false;
    let described = match client.describe_table().table_name(&name).send().await {
        Ok(out) => {
            tracing::info!(resource = %r.logical_id, table = %name, "table exists, reusing it");
            out.table
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            let mut req = client.create_table().table_name(&name);
            let attrs = prop("AttributeDefinitions")?.ok_or_else(|| bad(r, "AttributeDefinitions", "is required"))?;
            for a in attrs.as_array().ok_or_else(|| bad(r, "AttributeDefinitions", "expected a list"))? {
                let (Some(n), Some(t)) =
                    (a.get("AttributeName").and_then(Value::as_str), a.get("AttributeType").and_then(Value::as_str))
                else {
                    return Err(bad(r, "AttributeDefinitions", "each needs AttributeName and AttributeType"));
                };
                req = req.attribute_definitions(
                    ddb::AttributeDefinition::builder()
                        .attribute_name(n)
                        .attribute_type(ddb::ScalarAttributeType::from(t))
                        .build()
                        .map_err(|e| bad(r, "AttributeDefinitions", e.to_string()))?,
                );
            }
            let ks = prop("KeySchema")?.ok_or_else(|| bad(r, "KeySchema", "is required"))?;
            req = req.set_key_schema(Some(key_schema(r, "KeySchema", &ks)?));
            let billing = prop("BillingMode")?.and_then(|v| as_string(&v)).unwrap_or_else(|| "PROVISIONED".into());
            req = req.billing_mode(ddb::BillingMode::from(billing.as_str()));
            if let Some(t) = throughput(r, "ProvisionedThroughput", prop("ProvisionedThroughput")?.as_ref())? {
                req = req.provisioned_throughput(t);
            }
            if let Some(gsis) = prop("GlobalSecondaryIndexes")? {
                for (i, g) in gsis
                    .as_array()
                    .ok_or_else(|| bad(r, "GlobalSecondaryIndexes", "expected a list"))?
                    .iter()
                    .enumerate()
                {
                    let path = format!("GlobalSecondaryIndexes[{i}]");
                    let index =
                        g.get("IndexName").and_then(Value::as_str).ok_or_else(|| bad(r, &path, "needs IndexName"))?;
                    let ks = g.get("KeySchema").ok_or_else(|| bad(r, &path, "needs KeySchema"))?;
                    let mut b = ddb::GlobalSecondaryIndex::builder()
                        .index_name(index)
                        .set_key_schema(Some(key_schema(r, &path, ks)?))
                        .projection(projection(r, &path, g.get("Projection"))?);
                    if let Some(t) = throughput(r, &path, g.get("ProvisionedThroughput"))? {
                        b = b.provisioned_throughput(t);
                    }
                    req = req.global_secondary_indexes(b.build().map_err(|e| bad(r, &path, e.to_string()))?);
                }
            }
            if let Some(lsis) = prop("LocalSecondaryIndexes")? {
                for (i, l) in lsis
                    .as_array()
                    .ok_or_else(|| bad(r, "LocalSecondaryIndexes", "expected a list"))?
                    .iter()
                    .enumerate()
                {
                    let path = format!("LocalSecondaryIndexes[{i}]");
                    let index =
                        l.get("IndexName").and_then(Value::as_str).ok_or_else(|| bad(r, &path, "needs IndexName"))?;
                    let ks = l.get("KeySchema").ok_or_else(|| bad(r, &path, "needs KeySchema"))?;
                    let b = ddb::LocalSecondaryIndex::builder()
                        .index_name(index)
                        .set_key_schema(Some(key_schema(r, &path, ks)?))
                        .projection(projection(r, &path, l.get("Projection"))?);
                    req = req.local_secondary_indexes(b.build().map_err(|e| bad(r, &path, e.to_string()))?);
                }
            }
            if let Some(view) = &stream_view {
                req = req.stream_specification(
                    ddb::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(ddb::StreamViewType::from(view.as_str()))
                        .build()
                        .map_err(|e| bad(r, "StreamSpecification", e.to_string()))?,
                );
            }
            let out = req.send().await.map_err(|e| aws_err(r, "CreateTable", e))?;
            tracing::info!(resource = %r.logical_id, table = %name, "table created");
            created = true;
            out.table_description
        }
        Err(e) => return Err(aws_err(r, "DescribeTable", e)),
    };
    let mut description = described.ok_or_else(|| bad(r, "TableName", "the endpoint returned no table description"))?;

    if !created {
        let enabled = description.stream_specification().is_some_and(|s| s.stream_enabled());
        if let (Some(view), false) = (&stream_view, enabled) {
            tracing::info!(resource = %r.logical_id, table = %name, "enabling the table's stream");
            let out = client
                .update_table()
                .table_name(&name)
                .stream_specification(
                    ddb::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(ddb::StreamViewType::from(view.as_str()))
                        .build()
                        .map_err(|e| bad(r, "StreamSpecification", e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| aws_err(r, "UpdateTable", e))?;
            if let Some(d) = out.table_description {
                description = d;
            }
        } else if let (Some(view), Some(actual)) =
            (&stream_view, description.stream_specification().and_then(|s| s.stream_view_type()))
        {
            if actual.as_str() != view {
                tracing::warn!(resource = %r.logical_id, table = %name, template = %view, actual = %actual.as_str(),
                    "existing table's StreamViewType differs from the template; delete the table to recreate it");
            }
        }
    }

    if created {
        if let Some(ttl) = prop("TimeToLiveSpecification")? {
            let attr = ttl.get("AttributeName").and_then(Value::as_str);
            let enabled = ttl.get("Enabled").and_then(as_bool).unwrap_or(false);
            if let (Some(attr), true) = (attr, enabled) {
                let spec = ddb::TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build();
                match spec {
                    Ok(spec) => {
                        if let Err(e) =
                            client.update_time_to_live().table_name(&name).time_to_live_specification(spec).send().await
                        {
                            tracing::warn!(resource = %r.logical_id, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "TTL not enabled locally");
                        }
                    }
                    Err(e) => tracing::warn!(resource = %r.logical_id, error = %e, "TTL not enabled locally"),
                }
            }
        }
    }

    let arn = description
        .table_arn()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("arn:{}:dynamodb:{}:{}:table/{name}", ctx.partition(), ctx.region, ctx.account_id));
    let stream_arn = description.latest_stream_arn().map(str::to_owned);
    if stream_view.is_some() && stream_arn.is_none() {
        return Err(bad(r, "StreamSpecification", "the endpoint reports no stream ARN for the table"));
    }
    Ok(TableInfo { logical_id: r.logical_id.clone(), name, arn, stream_arn, created })
}

// ------------------------------------------------------------------ queues

/// Queue attributes that can be set at creation, and which of them can be
/// changed later with SetQueueAttributes.
const QUEUE_ATTRIBUTES: &[(&str, bool)] = &[
    ("FifoQueue", false),
    ("ContentBasedDeduplication", true),
    ("DeduplicationScope", true),
    ("FifoThroughputLimit", true),
    ("VisibilityTimeout", true),
    ("MessageRetentionPeriod", true),
    ("DelaySeconds", true),
    ("MaximumMessageSize", true),
    ("ReceiveMessageWaitTimeSeconds", true),
    ("SqsManagedSseEnabled", true),
];

async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    template: &Template,
    ctx: &StackContext,
    physical: &Physical,
    r: &Resource,
) -> Result<QueueInfo, ProvisionError> {
    let resolver = Resolver::new(template, ctx, physical);
    let mut attributes: HashMap<QueueAttributeName, String> = HashMap::new();
    let mut mutable: HashMap<QueueAttributeName, String> = HashMap::new();
    for (name, can_change) in QUEUE_ATTRIBUTES {
        if let Some(v) = resolver.property(r, name)? {
            let s = as_string(&v).ok_or_else(|| bad(r, name, format!("expected a scalar, got {v}")))?;
            attributes.insert(QueueAttributeName::from(*name), s.clone());
            if *can_change {
                mutable.insert(QueueAttributeName::from(*name), s);
            }
        }
    }
    let fifo = attributes.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true");
    if let Some(policy) = resolver.property(r, "RedrivePolicy")? {
        let target = policy
            .get("deadLetterTargetArn")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(r, "RedrivePolicy", "needs deadLetterTargetArn"))?;
        let max = policy
            .get("maxReceiveCount")
            .and_then(as_i64)
            .ok_or_else(|| bad(r, "RedrivePolicy", "needs an integer maxReceiveCount"))?;
        let json = serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max}).to_string();
        attributes.insert(QueueAttributeName::RedrivePolicy, json.clone());
        mutable.insert(QueueAttributeName::RedrivePolicy, json);
    }
    if r.raw_property("RedriveAllowPolicy").is_some() {
        // moto 5.2.5 ignores it on CreateQueue and rejects it in
        // GetQueueAttributes; AWS enforces it. Not needed for local runs.
        tracing::info!(resource = %r.logical_id, "RedriveAllowPolicy not applied locally (the local SQS does not support it)");
    }
    for ignored in ["KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Tags"] {
        if r.raw_property(ignored).is_some() {
            tracing::debug!(resource = %r.logical_id, property = ignored, "not applied locally");
        }
    }
    let name = match resolver.property(r, "QueueName")? {
        Some(v) => as_string(&v).ok_or_else(|| bad(r, "QueueName", "expected a string"))?,
        None if fifo => format!("{}.fifo", generated_name(&ctx.stack_name, &r.logical_id, 75)),
        None => generated_name(&ctx.stack_name, &r.logical_id, 80),
    };
    if fifo != name.ends_with(".fifo") {
        return Err(bad(r, "QueueName", "a FIFO queue's name must end in .fifo, and only a FIFO queue's"));
    }

    let (url, created) = match client.get_queue_url().queue_name(&name).send().await {
        Ok(out) => {
            let url = out.queue_url.ok_or_else(|| bad(r, "QueueName", "GetQueueUrl returned no URL"))?;
            tracing::info!(resource = %r.logical_id, queue = %name, "queue exists, reusing it (updating its attributes)");
            if !mutable.is_empty() {
                client
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(mutable))
                    .send()
                    .await
                    .map_err(|e| aws_err(r, "SetQueueAttributes", e))?;
            }
            (url, false)
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
            let out = client
                .create_queue()
                .queue_name(&name)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| aws_err(r, "CreateQueue", e))?;
            tracing::info!(resource = %r.logical_id, queue = %name, "queue created");
            (out.queue_url.ok_or_else(|| bad(r, "QueueName", "CreateQueue returned no URL"))?, true)
        }
        Err(e) => return Err(aws_err(r, "GetQueueUrl", e)),
    };
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_err(r, "GetQueueAttributes", e))?;
    let arn = attrs
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| format!("arn:{}:sqs:{}:{}:{name}", ctx.partition(), ctx.region, ctx.account_id));
    Ok(QueueInfo { logical_id: r.logical_id.clone(), name, url, arn, fifo, created })
}

// --------------------------------------------------------------- functions

/// A function's name, ARN, binary, timeout, resolved environment and event
/// mappings, given the physical names of everything it refers to.
pub(crate) fn resolve_function(
    template: &Template,
    ctx: &StackContext,
    physical: &Physical,
    f: &Resource,
) -> Result<FunctionInfo, ProvisionError> {
    let resolver = Resolver::new(template, ctx, physical);
    let me = physical.get(&f.logical_id).cloned().unwrap_or_default();
    let timeout = match resolver.property(f, "Timeout")? {
        None => 3,
        Some(v) => as_i64(&v).filter(|t| (1..=900).contains(t)).ok_or_else(|| bad(f, "Timeout", "expected 1..=900"))?,
    };
    let mut environment = BTreeMap::new();
    if let Some(env) = f.raw_property("Environment") {
        let env = resolver.resolve(&f.logical_id, "Environment", env)?;
        if let Some(vars) = env.get("Variables").and_then(Value::as_object) {
            for (k, v) in vars {
                let s = as_string(v)
                    .ok_or_else(|| bad(f, &format!("Environment.Variables.{k}"), "expected a scalar value"))?;
                environment.insert(k.clone(), s);
            }
        }
    }
    let mut mappings = Vec::new();
    if let Some(events) = f.raw_property("Events") {
        let serde_norway::Value::Mapping(events) = events else {
            return Err(bad(f, "Events", "expected a mapping"));
        };
        for (name, ev) in events {
            let name = name.as_str().ok_or_else(|| bad(f, "Events", "an event name is not a string"))?;
            let kind = ev.get("Type").and_then(serde_norway::Value::as_str).unwrap_or_default();
            if kind != "SQS" && kind != "DynamoDB" {
                tracing::info!(function = %f.logical_id, event = name, kind, "event type not emulated by the local runner");
                continue;
            }
            let props = match ev.get("Properties") {
                Some(p) => resolver.resolve(&f.logical_id, &format!("Events.{name}.Properties"), p)?,
                None => Value::Object(Default::default()),
            };
            if let Some(m) = parse_event(&f.logical_id, name, kind, &props).map_err(ProvisionError::Event)? {
                if !m.enabled() {
                    tracing::info!(function = %f.logical_id, event = name, "event source mapping disabled (Enabled: false)");
                }
                mappings.push(m);
            }
        }
    }
    Ok(FunctionInfo {
        logical_id: f.logical_id.clone(),
        name: me.ref_value.clone(),
        arn: me.attributes.get("Arn").cloned().unwrap_or_default(),
        binary: f.build_binary(),
        timeout: Duration::from_secs(timeout as u64),
        environment,
        mappings,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn project_template_creates_dead_letter_queues_before_their_sources() {
        let t = Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let order = creation_order(&t).unwrap();
        let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
        assert!(pos("ProcessingDeadLetterQueue") < pos("ProcessingQueue"));
        assert!(order.contains(&"ItemsTable".to_owned()));
        assert!(!order.contains(&"AlarmTopic".to_owned()));
    }

    #[test]
    fn cycles_are_reported() {
        let t = Template::from_yaml(
            "Resources:\n  A:\n    Type: AWS::SQS::Queue\n    Properties: {X: !GetAtt B.Arn}\n  B:\n    Type: AWS::SQS::Queue\n    Properties: {X: !Ref A}\n",
            "c.yaml",
        )
        .unwrap();
        assert!(matches!(creation_order(&t), Err(ProvisionError::Cycle(s)) if s == "A, B"));
    }
}
