//! Lambda entry point: configuration and clients once, then the handler.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use pipeline_core::aws::{required_env, sdk_config};
use pipeline_core::{Deadline, SqsDeadLetterSink, SqsEvent};
use queue_processor::{DynamoItemStore, QueueProcessor};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required_env("ITEMS_TABLE_NAME", "the name of the items table")?;
    let dlq_url = required_env("DEAD_LETTER_QUEUE_URL", "the URL of the queue invalid jobs go to")?;
    let config = sdk_config().await;
    let store = DynamoItemStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let sink = SqsDeadLetterSink::new(aws_sdk_sqs::Client::new(&config), dlq_url);
    let processor = QueueProcessor::new(store, sink);
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        processor.handle_event(event.payload, Deadline::from_context(&event.context)).await
    }))
    .await
}
