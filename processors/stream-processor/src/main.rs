//! Lambda entry point: configuration and clients once, then the handler.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use pipeline_core::aws::{required_env, sdk_config};
use pipeline_core::{Deadline, SqsDeadLetterSink, SqsQueue, StreamEvent};
use stream_processor::StreamProcessor;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let queue_url = required_env("PROCESSING_QUEUE_URL", "the URL of the queue jobs are sent to")?;
    let dlq_url = required_env("DEAD_LETTER_QUEUE_URL", "the URL of the queue undecodable records go to")?;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let processor = StreamProcessor::new(SqsDeadLetterSink::new(sqs.clone(), dlq_url), SqsQueue::new(sqs, queue_url));
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
        processor.handle_event(event.payload, Deadline::from_context(&event.context)).await
    }))
    .await
}
