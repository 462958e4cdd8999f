//! `pipeline local up`: provision the template on the configured endpoint
//! and run its event source mappings until stopped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;

use crate::esm::{Emulator, EmulatorOptions, EmulatorReport, EsmError};
use crate::invoke::Invoker;
use crate::mapping::EventMapping;
use crate::provision::ProvisionedStack;
use crate::template::Template;

/// The function names an Invoke API endpoint serves (`cargo lambda watch`
/// serves each binary under its name), by logical id: the function's
/// `Metadata.BuildProperties.Binary`, else its logical id.
pub fn function_names(template: &Template) -> BTreeMap<String, String> {
    template
        .resources_of_type("AWS::Serverless::Function")
        .map(|f| (f.logical_id.clone(), f.build_binary().unwrap_or_else(|| f.logical_id.clone())))
        .collect()
}

/// A human-readable summary of what was provisioned.
pub fn describe(stack: &ProvisionedStack) -> String {
    let mut out = String::new();
    let c = &stack.context;
    let _ = writeln!(out, "stack {} (region {}, account {})", c.stack_name, c.region, c.account_id);
    for t in stack.tables.values() {
        let how = if t.created { "created" } else { "reused" };
        let _ = writeln!(out, "  table {:<28} {} ({how})", t.logical_id, t.name);
        if let Some(s) = &t.stream_arn {
            let _ = writeln!(out, "        stream {s}");
        }
    }
    for q in stack.queues.values() {
        let how = if q.created { "created" } else { "reused" };
        let _ = writeln!(out, "  queue {:<28} {} ({how})", q.logical_id, q.url);
    }
    for f in stack.functions.values() {
        let _ = writeln!(out, "  function {} (timeout {} s)", f.logical_id, f.timeout.as_secs());
        for (k, v) in &f.environment {
            let _ = writeln!(out, "        {k}={v}");
        }
        for m in &f.mappings {
            let (kind, source) = match m {
                EventMapping::Sqs(s) => ("SQS", s.queue_arn.as_str()),
                EventMapping::Stream(s) => ("DynamoDB", s.stream_arn.as_str()),
            };
            let state = if m.enabled() { "" } else { " (disabled)" };
            let _ = writeln!(out, "        event {} <- {kind} {source}{state}", m.name());
        }
    }
    out
}

/// Runs every mapping of `stack` through `invoker` until `signal`
/// completes, then stops gracefully and reports.
pub async fn up<I: Invoker + 'static>(
    sdk: &SdkConfig,
    stack: &ProvisionedStack,
    invoker: I,
    options: EmulatorOptions,
    signal: impl Future<Output = ()>,
) -> Result<EmulatorReport, EsmError> {
    let running = Emulator::start(sdk, stack, Arc::new(invoker), options).await?;
    tracing::info!("event source mappings running; press Ctrl-C to stop");
    Ok(running.run_until(signal).await)
}
