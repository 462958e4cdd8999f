//! The Lambda Invoke API invoker against a tiny stand-in for
//! `cargo lambda watch`.

use std::collections::BTreeMap;

use pipeline_cli::invoke::{Invocation, Invoker, LambdaApiInvoker};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `responses` (status line extra headers, body) to successive
/// requests; returns the base URL and the request paths/bodies seen.
async fn serve(
    responses: Vec<(&'static str, &'static str)>,
) -> (String, tokio::task::JoinHandle<Vec<(String, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (headers, body) in responses {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, rest) = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (String::from_utf8_lossy(&buf[..i]).to_string(), buf[i + 4..].to_vec());
                }
            };
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            let mut body_in = rest;
            while body_in.len() < len {
                let n = sock.read(&mut chunk).await.unwrap();
                body_in.extend_from_slice(&chunk[..n]);
            }
            let path = head.lines().next().unwrap().split(' ').nth(1).unwrap().to_owned();
            seen.push((path, String::from_utf8(body_in).unwrap()));
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
        }
        seen
    });
    (url, handle)
}

#[tokio::test]
async fn lambda_api_invoker_reads_responses_and_function_errors() {
    let (url, server) = serve(vec![
        ("", r#"{"batchItemFailures":[]}"#),
        ("X-Amz-Function-Error: Unhandled\r\n", r#"{"errorType":"Boom","errorMessage":"it broke"}"#),
        ("", ""),
    ])
    .await;
    let names = BTreeMap::from([("QueueProcessorFunction".to_owned(), "queue-processor".to_owned())]);
    let inv = LambdaApiInvoker::new(&url, names).unwrap();

    let r = inv.invoke("QueueProcessorFunction", json!({"Records": []})).await;
    assert_eq!(r, Invocation::Response(json!({"batchItemFailures": []})));
    let r = inv.invoke("QueueProcessorFunction", json!({})).await;
    assert_eq!(r, Invocation::FunctionError { error_type: "Boom".into(), message: "it broke".into() });
    let r = inv.invoke("QueueProcessorFunction", json!({})).await;
    assert_eq!(r, Invocation::Response(serde_json::Value::Null));

    let seen = server.await.unwrap();
    assert_eq!(seen[0].0, "/2015-03-31/functions/queue-processor/invocations");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&seen[0].1).unwrap(), json!({"Records": []}));
}

#[tokio::test]
async fn lambda_api_invoker_reports_an_unreachable_endpoint_as_a_failed_invoke() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let inv = LambdaApiInvoker::new(&url, BTreeMap::new()).unwrap();
    let r = inv.invoke("F", json!({})).await;
    assert!(
        matches!(r, Invocation::FunctionError { ref error_type, .. } if error_type == "Emulator.InvokeFailed"),
        "{r:?}"
    );
}
