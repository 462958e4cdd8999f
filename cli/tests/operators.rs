//! The operator commands, run as the real `pipeline` binary against the
//! local endpoint (`scripts/test` starts it): redrive conserves messages,
//! filters and dry runs, FIFO groups, a redrive killed midway, stream
//! failure ranges, export / import / purge, `send` and `put-items`, and
//! errors that say what to fix.
#![allow(clippy::unwrap_used)]

mod operators_support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_types::Blob;
use operators_support::{cli, depth, envelope, receive_all, sqs_pair, Cli};
use pipeline_core::Job;
use pipeline_tests::local::{create_items_table, poll_until, sdk_config, unique};
use serde_json::{json, Value};

fn string_attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap()
}

/// Puts `raw` raw messages (bodies `raw-<i>`, a string and a binary
/// attribute each) and `validation` + `decode` SQS envelopes (original
/// bodies `env-<kind>-<i>` with an attribute) into `dlq`.
async fn fill(sqs: &aws_sdk_sqs::Client, dlq: &str, source_arn: &str, raw: usize, validation: usize, decode: usize) {
    for i in 0..raw {
        sqs.send_message()
            .queue_url(dlq)
            .message_body(format!("raw-{i}"))
            .message_attributes("tenant", string_attr(&format!("t{i}")))
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![0, 1, i as u8]))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    for (kind, n) in [("validation", validation), ("decode", decode)] {
        for i in 0..n {
            let body = envelope(
                source_arn,
                &format!("env-{kind}-{i}"),
                json!({"tenant": {"stringValue": format!("e{i}"), "dataType": "String"}}),
                kind,
            );
            sqs.send_message()
                .queue_url(dlq)
                .message_body(body)
                .message_attributes("pipeline.error_kind", string_attr(kind))
                .message_attributes("pipeline.processor", string_attr("queue-processor"))
                .message_attributes("pipeline.source_kind", string_attr("sqs"))
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn redrive_conserves_every_message_with_its_body_and_attributes() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "conserve", false).await;
    // GIVEN 20 raw messages and 10 envelopes in the DLQ
    fill(&sqs, &q.dlq, &q.source_arn, 20, 6, 4).await;
    assert_eq!(depth(&sqs, &q.dlq).await, 30);

    // WHEN it is redriven
    let out = cli(&["dlq", "redrive", &q.dlq]).await;
    out.success();
    assert!(out.stdout.contains("moved 30, skipped 0, failed 0"), "{out}");

    // THEN the 30 are back in the source queue, as they were sent originally
    assert_eq!(depth(&sqs, &q.dlq).await, 0);
    let back = receive_all(&sqs, &q.source).await;
    let mut bodies: Vec<&str> = back.iter().map(|m| m.body().unwrap()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<String> = (0..20).map(|i| format!("raw-{i}")).collect();
    expected.extend((0..6).map(|i| format!("env-validation-{i}")));
    expected.extend((0..4).map(|i| format!("env-decode-{i}")));
    expected.sort_unstable();
    assert_eq!(bodies, expected);
    for m in &back {
        let attrs = m.message_attributes().unwrap();
        let body = m.body().unwrap();
        assert!(attrs.contains_key("pipeline.redriven_from"), "{body}: traceable to its dead-letter message");
        assert!(!attrs.contains_key("pipeline.error_kind"), "{body}: envelope attributes stay behind");
        if let Some(i) = body.strip_prefix("raw-") {
            let i: u8 = i.parse().unwrap();
            assert_eq!(attrs["tenant"].string_value(), Some(format!("t{i}").as_str()));
            assert_eq!(attrs["blob"].binary_value().unwrap().as_ref(), &[0, 1, i]);
        } else {
            let i = body.rsplit('-').next().unwrap();
            assert_eq!(attrs["tenant"].string_value(), Some(format!("e{i}").as_str()));
        }
    }
}

#[tokio::test]
async fn a_dry_run_moves_nothing_and_a_filter_moves_only_what_matches() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "filter", false).await;
    fill(&sqs, &q.dlq, &q.source_arn, 4, 3, 2).await;

    // A dry run says what would move where, and moves nothing.
    let out = cli(&["dlq", "redrive", &q.dlq, "--dry-run"]).await;
    out.success();
    assert!(out.stdout.contains("would move 9") && out.stdout.contains("nothing was moved"), "{out}");
    assert!(out.stdout.contains(&format!("to {}: 9", q.source_name)), "{out}");
    assert_eq!((depth(&sqs, &q.dlq).await, depth(&sqs, &q.source).await), (9, 0));

    // Only the validation failures move.
    let out = cli(&["dlq", "redrive", &q.dlq, "--filter", "kind=validation", "--json"]).await;
    out.success();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((report["moved"].as_u64(), report["skipped"].as_u64()), (Some(3), Some(6)), "{out}");
    let moved: Vec<String> = receive_all(&sqs, &q.source).await.iter().map(|m| m.body().unwrap().to_owned()).collect();
    assert!(moved.len() == 3 && moved.iter().all(|b| b.starts_with("env-validation-")), "{moved:?}");
    // The skipped ones are visible again at once, for the next command.
    assert_eq!(depth(&sqs, &q.dlq).await, 6);

    // Filters combine: raw messages newer than an hour, at most 2.
    let out =
        cli(&["dlq", "redrive", &q.dlq, "--filter", "source=raw", "--filter", "newer-than=1h", "--max", "2"]).await;
    out.success();
    assert!(out.stdout.contains("moved 2,"), "{out}");
    assert_eq!(receive_all(&sqs, &q.source).await.len(), 2);
    assert_eq!(depth(&sqs, &q.dlq).await, 4);
}

#[tokio::test]
async fn fifo_redrive_keeps_message_groups_and_gives_deduplication_ids() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "fifo", true).await;
    for i in 0..6 {
        sqs.send_message()
            .queue_url(&q.dlq)
            .message_body(format!("job-{i}"))
            .message_group_id(format!("g{}", i % 2))
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .unwrap();
    }
    let out = cli(&["dlq", "redrive", &q.dlq]).await;
    out.success();
    assert!(out.stdout.contains("moved 6,"), "{out}");
    let back = receive_all(&sqs, &q.source).await;
    let groups: BTreeMap<String, Vec<String>> = back.iter().fold(BTreeMap::new(), |mut acc, m| {
        let g = m.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].clone();
        acc.entry(g).or_default().push(m.body().unwrap().to_owned());
        acc
    });
    assert_eq!(groups["g0"], ["job-0", "job-2", "job-4"], "order kept within a group");
    assert_eq!(groups["g1"], ["job-1", "job-3", "job-5"]);
    for m in &back {
        let dedup = &m.attributes().unwrap()[&MessageSystemAttributeName::MessageDeduplicationId];
        assert!(dedup.starts_with("redrive-"), "{dedup}");
    }
}

#[tokio::test]
async fn server_side_falls_back_to_a_client_side_move_where_the_endpoint_lacks_it() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "server", false).await;
    fill(&sqs, &q.dlq, &q.source_arn, 3, 0, 0).await;
    let out = cli(&["dlq", "redrive", &q.dlq, "--server-side"]).await;
    out.success();
    assert!(out.stdout.contains("does not support StartMessageMoveTask"), "{out}");
    assert!(out.stdout.contains("moved 3,"), "{out}");
    assert_eq!(receive_all(&sqs, &q.source).await.len(), 3);
    // Options a server-side move cannot honour are refused up front.
    let out = cli(&["dlq", "redrive", &q.dlq, "--server-side", "--max", "1"]).await;
    assert!(!out.status.success() && out.stderr.contains("client-side"), "{out}");
}

#[tokio::test]
async fn a_redrive_killed_midway_loses_nothing_and_duplicates_at_most_the_batch_in_flight() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "crash", false).await;
    const N: usize = 40;
    for chunk in (0..N).collect::<Vec<_>>().chunks(10) {
        let mut batch = sqs.send_message_batch().queue_url(&q.dlq);
        for i in chunk {
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(format!("m-{i:02}"))
                    .build()
                    .unwrap(),
            );
        }
        assert!(batch.send().await.unwrap().failed().is_empty());
    }

    // GIVEN a slow redrive (8 per second, batches of 1: at most one message
    // between its send and its delete)
    let args = ["dlq", "redrive", &q.dlq, "--rate", "8", "--batch-size", "1", "--visibility-timeout", "2"];
    let mut child = Cli::spawn(&args);
    // WHEN it is killed (SIGKILL) once some messages have moved
    let moved_before = poll_until("the redrive to move 10 messages", Duration::from_secs(60), || async {
        let n = depth(&sqs, &q.source).await;
        (n >= 10).then_some(n)
    })
    .await;
    child.kill().await.unwrap();
    assert!(moved_before < N, "killed midway ({moved_before} moved)");
    // ... and run again once the batch it had in flight is visible again
    poll_until("the killed run's batch to become visible", Duration::from_secs(30), || async {
        let f = operators_support::facts(&sqs, &q.dlq).await;
        (f.get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible).map(String::as_str) == Some("0"))
            .then_some(())
    })
    .await;
    let out = cli(&["dlq", "redrive", &q.dlq]).await;
    out.success();

    // THEN every message is in the source queue, at most one twice
    assert_eq!(depth(&sqs, &q.dlq).await, 0);
    let bodies: Vec<String> = receive_all(&sqs, &q.source).await.iter().map(|m| m.body().unwrap().to_owned()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &bodies {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    for i in 0..N {
        assert!(counts.contains_key(format!("m-{i:02}").as_str()), "m-{i:02} lost: {bodies:?}");
    }
    let duplicates = bodies.len() - counts.len();
    println!("killed after {moved_before} moved; {duplicates} duplicate(s)");
    assert!(duplicates <= 1, "at most the one message in flight is duplicated: {bodies:?}");
}

#[tokio::test]
async fn export_is_non_destructive_import_restores_and_purge_asks_first() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let q = sqs_pair(&sqs, "export", false).await;
    fill(&sqs, &q.dlq, &q.source_arn, 3, 2, 0).await;
    let dir = std::env::temp_dir().join(unique("pipeline-export"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dlq.jsonl");
    let file = file.to_str().unwrap();

    let out = cli(&["dlq", "export", &q.dlq, file]).await;
    out.success();
    let lines: Vec<Value> =
        std::fs::read_to_string(file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines.iter().all(|l| l["body"].is_string() && l["attributes"]["SentTimestamp"].is_string()));
    assert!(lines.iter().any(|l| l["messageAttributes"]["blob"]["dataType"] == "Binary"));
    assert_eq!(depth(&sqs, &q.dlq).await, 5, "export leaves the messages in the queue");
    assert!(!cli(&["dlq", "export", &q.dlq, file]).await.status.success(), "an existing file is not overwritten");

    // purge without --yes only tells how many
    let out = cli(&["dlq", "purge", &q.dlq]).await;
    assert!(!out.status.success());
    assert!(out.stdout.contains("holds 5 message(s)") && out.stdout.contains("--yes"), "{out}");
    assert_eq!(depth(&sqs, &q.dlq).await, 5);

    // import into another queue: same bodies and attributes
    let other = pipeline_tests::local::create_queue(&sqs, &unique("import")).await;
    let out = cli(&["dlq", "import", &other, file]).await;
    out.success();
    let imported = receive_all(&sqs, &other).await;
    assert_eq!(imported.len(), 5, "{out}");
    let blob =
        imported.iter().find(|m| m.body() == Some("raw-1")).unwrap().message_attributes().unwrap()["blob"].clone();
    assert_eq!(blob.binary_value().unwrap().as_ref(), &[0, 1, 1]);

    // export --delete moves them to the file; purge --yes empties a queue
    let moved = dir.join("moved.jsonl");
    let out = cli(&["dlq", "export", &q.dlq, moved.to_str().unwrap(), "--delete"]).await;
    out.success();
    assert_eq!(std::fs::read_to_string(&moved).unwrap().lines().count(), 5);
    assert_eq!(depth(&sqs, &q.dlq).await, 0);
    let out = cli(&["dlq", "import", &q.source, moved.to_str().unwrap()]).await;
    out.success();
    let out = cli(&["dlq", "purge", &q.source, "--yes"]).await;
    out.success();
    assert!(out.stdout.contains("5 message(s) deleted"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn send_and_put_items_report_bad_lines_by_number_and_write_the_rest() {
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let queue = pipeline_tests::local::create_queue(&sqs, &unique("send")).await;
    let dir = std::env::temp_dir().join(unique("pipeline-send"));
    std::fs::create_dir_all(&dir).unwrap();

    let jobs = dir.join("jobs.jsonl");
    std::fs::write(
        &jobs,
        [
            r#"{"type":"process_item","item_id":"a","version":1}"#,
            "",
            r#"{"type":"explode_item","item_id":"b"}"#,
            r#"{"type":"process_item","item_id":"c","version":2}"#,
            "not json",
        ]
        .join("\n"),
    )
    .unwrap();
    let out = cli(&["send", &queue, jobs.to_str().unwrap()]).await;
    assert!(!out.status.success(), "bad lines make the exit status non-zero");
    assert!(out.stdout.contains("sent 2 job(s) to") && out.stdout.contains("skipped 2 bad line(s), failed 0"), "{out}");
    assert!(out.stdout.contains("line 3: skipped: not a job") && out.stdout.contains("line 5: skipped"), "{out}");
    let sent: Vec<Job> =
        receive_all(&sqs, &queue).await.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert_eq!(sent.len(), 2);

    let table = unique("put-items");
    create_items_table(&ddb, &table).await;
    let items = dir.join("items.jsonl");
    std::fs::write(
        &items,
        [
            r#"{"id":"i1","name":"Lamp","price":"19.99","quantity":2,"tags":["home"]}"#,
            r#"{"id":"i2","name":"Desk","price":"120","quantity":-1}"#,
            r#"{"id":"i3","name":"Chair","price":"abc","quantity":1}"#,
            r#"{"id":"i4","name":"Rug","quantity":1}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = cli(&["put-items", items.to_str().unwrap(), "--table", &table]).await;
    assert!(out.stdout.contains("wrote 2 item(s) to") && out.stdout.contains("skipped 2 bad line(s)"), "{out}");
    assert!(out.stdout.contains("line 3: skipped") && out.stdout.contains("line 4: skipped"), "{out}");
    let count = ddb.scan().table_name(&table).select(aws_sdk_dynamodb::types::Select::Count).send().await.unwrap();
    assert_eq!(count.count, 2);
    // --create refuses to overwrite
    let out = cli(&["put-items", items.to_str().unwrap(), "--table", &table, "--create"]).await;
    assert!(out.stdout.contains("line 1: conflict: item i1 exists already"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn errors_name_the_queue_the_cause_and_the_fix() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let out = cli(&["dlq", "stats", "no-such-queue-anywhere"]).await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("no-such-queue-anywhere") && out.stderr.contains("Fix:"), "{out}");
    assert!(out.stderr.contains("NonExistentQueue") || out.stderr.contains("does not exist"), "{out}");

    let out = cli(&["dlq", "stats", "ProcessingDeadLetterQueue"]).await;
    assert!(out.stderr.contains("--stack-name"), "a logical id without a stack: {out}");

    // --to a queue that does not dead-letter into this one
    let q = sqs_pair(&sqs, "wrongto", false).await;
    let unrelated = pipeline_tests::local::create_queue(&sqs, &unique("unrelated")).await;
    fill(&sqs, &q.dlq, &q.source_arn, 1, 0, 0).await;
    let out = cli(&["dlq", "redrive", &q.dlq, "--to", &unrelated]).await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("is not a dead-letter queue of") && out.stderr.contains("--allow-any-target"), "{out}");
    assert_eq!(depth(&sqs, &q.dlq).await, 1, "nothing moved");

    // the source queue given instead of its DLQ
    let out = cli(&["dlq", "redrive", &q.source]).await;
    assert!(
        out.stderr.contains("does not look like a dead-letter queue") && out.stderr.contains("did you mean"),
        "{out}"
    );

    // a raw message with no known source
    let lonely = pipeline_tests::local::create_queue(&sqs, &unique("lonely")).await;
    sqs.send_message().queue_url(&lonely).message_body("x").send().await.unwrap();
    let out = cli(&["dlq", "redrive", &lonely]).await;
    assert!(out.stderr.contains("pass --to"), "{out}");
    assert_eq!(depth(&sqs, &lonely).await, 1, "made visible again after the error");
}
