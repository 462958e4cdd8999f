//! Invoking the processors in-process: the very handler code the Lambda
//! binaries serve, built from each function's resolved `Environment` in the
//! template, just as the binaries' `main` builds it from the process
//! environment.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use pipeline_core::{
    BatchError, DeadLetterSink, Deadline, SqsDeadLetterSink, SqsEvent, SqsQueue, SqsTransport, StreamEvent,
};
use queue_processor::{DynamoItemStore, ItemStore, QueueProcessor};
use serde_json::Value;
use stream_processor::StreamProcessor;

use crate::invoke::{Invocation, Invoker};
use crate::provision::{FunctionInfo, ProvisionedStack};

/// A function body the in-process invoker can call: a JSON event in, a JSON
/// response or a function error out.
pub trait Handler: Send + Sync {
    /// Handles one invocation.
    fn call(&self, payload: Value, deadline: Deadline) -> impl Future<Output = Invocation> + Send;
}

fn respond<T: serde::Serialize>(result: Result<T, BatchError>) -> Invocation {
    match result {
        Ok(response) => match serde_json::to_value(response) {
            Ok(v) => Invocation::Response(v),
            Err(e) => Invocation::FunctionError { error_type: "Runtime.MarshalError".into(), message: e.to_string() },
        },
        Err(e) => {
            let diagnostic = lambda_runtime::Diagnostic::from(e);
            Invocation::FunctionError { error_type: diagnostic.error_type, message: diagnostic.error_message }
        }
    }
}

fn unmarshal_error(e: serde_json::Error) -> Invocation {
    Invocation::FunctionError { error_type: "Runtime.UnmarshalError".into(), message: e.to_string() }
}

impl<D: DeadLetterSink, Q: SqsTransport> Handler for StreamProcessor<D, Q> {
    async fn call(&self, payload: Value, deadline: Deadline) -> Invocation {
        match serde_json::from_value::<StreamEvent>(payload) {
            Ok(event) => respond(self.handle_event(event, deadline).await),
            Err(e) => unmarshal_error(e),
        }
    }
}

impl<S: ItemStore, D: DeadLetterSink> Handler for QueueProcessor<S, D> {
    async fn call(&self, payload: Value, deadline: Deadline) -> Invocation {
        match serde_json::from_value::<SqsEvent>(payload) {
            Ok(event) => respond(self.handle_event(event, deadline).await),
            Err(e) => unmarshal_error(e),
        }
    }
}

/// Calls the stream processor and the queue processor in this process.
#[derive(Debug)]
pub struct InProcessInvoker<S, Q> {
    stream_function: String,
    stream: S,
    queue_function: String,
    queue: Q,
    timeouts: BTreeMap<String, Duration>,
}

/// The real processors, configured for a provisioned stack.
pub type StackInvoker =
    InProcessInvoker<StreamProcessor<SqsDeadLetterSink, SqsQueue>, QueueProcessor<DynamoItemStore, SqsDeadLetterSink>>;

impl<S: Handler, Q: Handler> InProcessInvoker<S, Q> {
    /// Serves `stream_function` with `stream` and `queue_function` with
    /// `queue` (template logical ids).
    pub fn new(stream_function: &str, stream: S, queue_function: &str, queue: Q) -> Self {
        Self {
            stream_function: stream_function.to_owned(),
            stream,
            queue_function: queue_function.to_owned(),
            queue,
            timeouts: BTreeMap::new(),
        }
    }

    /// Gives each function its `Timeout` (the handler's deadline).
    pub fn with_timeouts(mut self, timeouts: BTreeMap<String, Duration>) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The stream processor.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The queue processor.
    pub fn queue(&self) -> &Q {
        &self.queue
    }
}

impl<S: Handler, Q: Handler> Invoker for InProcessInvoker<S, Q> {
    async fn invoke(&self, function: &str, payload: Value) -> Invocation {
        let deadline = self.timeouts.get(function).map_or_else(Deadline::none, |t| Deadline::after(*t));
        if function == self.stream_function {
            self.stream.call(payload, deadline).await
        } else if function == self.queue_function {
            self.queue.call(payload, deadline).await
        } else {
            Invocation::FunctionError {
                error_type: "ResourceNotFoundException".into(),
                message: format!(
                    "function {function} is not served in-process (only {} and {}); use --invoke-endpoint",
                    self.stream_function, self.queue_function
                ),
            }
        }
    }
}

/// The function of `stack` built from `binary` (its
/// `Metadata.BuildProperties.Binary`).
pub fn function_for<'a>(stack: &'a ProvisionedStack, binary: &str) -> Result<&'a FunctionInfo, String> {
    stack.functions.values().find(|f| f.binary.as_deref() == Some(binary)).ok_or_else(|| {
        format!("the template has no function with Metadata.BuildProperties.Binary `{binary}` to run in-process")
    })
}

fn env<'a>(f: &'a FunctionInfo, name: &str) -> Result<&'a str, String> {
    f.environment.get(name).map(String::as_str).ok_or_else(|| {
        format!("{}: Environment.Variables.{name} must be set in the template (the processor reads it)", f.logical_id)
    })
}

impl StackInvoker {
    /// The real processors, wired exactly as their `main` wires them, from
    /// the functions' resolved environment in `stack`.
    pub fn for_stack(sdk: &SdkConfig, stack: &ProvisionedStack) -> Result<Self, String> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let sf = function_for(stack, stream_processor::NAME)?;
        let qf = function_for(stack, queue_processor::NAME)?;
        let stream = StreamProcessor::new(
            SqsDeadLetterSink::new(sqs.clone(), env(sf, "DEAD_LETTER_QUEUE_URL")?),
            SqsQueue::new(sqs.clone(), env(sf, "PROCESSING_QUEUE_URL")?),
        );
        let queue = QueueProcessor::new(
            DynamoItemStore::new(ddb, env(qf, "ITEMS_TABLE_NAME")?),
            SqsDeadLetterSink::new(sqs, env(qf, "DEAD_LETTER_QUEUE_URL")?),
        );
        let timeouts = [(sf.logical_id.clone(), sf.timeout), (qf.logical_id.clone(), qf.timeout)].into();
        Ok(Self::new(&sf.logical_id, stream, &qf.logical_id, queue).with_timeouts(timeouts))
    }
}
