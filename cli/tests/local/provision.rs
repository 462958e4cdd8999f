//! Provisioning the project's template.

use std::sync::Arc;

use pipeline_cli::esm::Emulator;
use pipeline_cli::mapping::{EventMapping, StartingPosition};
use pipeline_cli::provision::provision;
use pipeline_cli::template::{StackContext, Template};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_the_project_template_idempotently() {
    let sdk = sdk().await;
    let template = Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let stack_name = unique_stack();
    let ctx = StackContext::local(&stack_name, "us-east-1");

    let first = provision(&sdk, &template, &ctx).await.unwrap();
    let second = provision(&sdk, &template, &ctx).await.unwrap();
    assert!(first.tables.values().all(|t| t.created) && first.queues.values().all(|q| q.created));
    assert!(second.tables.values().all(|t| !t.created) && second.queues.values().all(|q| !q.created));
    assert_eq!(
        first.tables,
        second
            .tables
            .iter()
            .map(|(k, t)| (k.clone(), {
                let mut t = t.clone();
                t.created = true;
                t
            }))
            .collect()
    );
    assert_eq!(first.functions, second.functions);

    let table = &second.tables["ItemsTable"];
    assert_eq!(table.name, format!("{stack_name}-items"));
    let q = |id: &str| second.queues[id].clone();
    assert_eq!(q("ProcessingQueue").name, format!("{stack_name}-processing"));
    assert_eq!(q("ProcessingQueue").arn, format!("arn:aws:sqs:us-east-1:123456789012:{stack_name}-processing"));

    // Environment variables, resolved.
    let f = &second.functions["QueueProcessorFunction"];
    assert_eq!(f.environment["ITEMS_TABLE_NAME"], table.name);
    assert_eq!(f.environment["DEAD_LETTER_QUEUE_URL"], q("ProcessingDeadLetterQueue").url);
    assert_eq!(f.binary.as_deref(), Some("queue-processor"));
    assert_eq!(f.timeout.as_secs(), 30);
    let sp = &second.functions["StreamProcessorFunction"];
    assert_eq!(sp.environment["PROCESSING_QUEUE_URL"], q("ProcessingQueue").url);
    assert_eq!(sp.environment["DEAD_LETTER_QUEUE_URL"], q("StreamDeadLetterQueue").url);

    // Event source mappings, with the template's settings.
    let [EventMapping::Stream(stream)] = sp.mappings.as_slice() else { panic!("{:?}", sp.mappings) };
    assert_eq!(Some(&stream.stream_arn), table.stream_arn.as_ref());
    assert_eq!(stream.on_failure.as_deref(), Some(q("StreamFailureQueue").arn.as_str()));
    assert_eq!(stream.starting_position, StartingPosition::TrimHorizon);
    assert_eq!((stream.batch_size, stream.maximum_retry_attempts, stream.filters.len()), (100, Some(10), 1));
    assert!(stream.bisect_batch_on_function_error && stream.report_batch_item_failures);
    let [EventMapping::Sqs(jobs)] = f.mappings.as_slice() else { panic!("{:?}", f.mappings) };
    assert_eq!(jobs.queue_arn, q("ProcessingQueue").arn);
    assert_eq!((jobs.batch_size, jobs.maximum_concurrency), (10, Some(5)));

    // The queue's RedrivePolicy points at its DLQ (created first).
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(q("ProcessingQueue").url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&attrs[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(policy["deadLetterTargetArn"], q("ProcessingDeadLetterQueue").arn.as_str());
    assert_eq!(policy["maxReceiveCount"].as_i64(), Some(5));
    assert_eq!(attrs[&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout], "181");

    // The table has its GSI and stream.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let desc = ddb.describe_table().table_name(&table.name).send().await.unwrap().table.unwrap();
    assert_eq!(desc.global_secondary_indexes()[0].index_name(), Some("GSI1"));
    assert_eq!(desc.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str()), Some("PAY_PER_REQUEST"));

    // Every mapping of the real template passes the emulator's checks.
    let inv = Scripted::new(|_, _| ok());
    let running = Emulator::start(&sdk, &second, Arc::clone(&inv), options(1)).await.unwrap();
    let report = running.stop().await;
    assert_eq!(report.mappings.len(), 2);
}
