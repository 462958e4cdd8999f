//! A Lambda Runtime API emulator: enough of
//! `/2018-06-01/runtime/invocation/{next,response,error}` and
//! `/runtime/init/error` to start a real Lambda binary (`bootstrap`) and
//! invoke it exactly as the Lambda service does.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::{oneshot, Notify};

/// What an invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler's response body.
    Response(serde_json::Value),
    /// The handler's error (`errorType`, `errorMessage`).
    Error(serde_json::Value),
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>, u64)>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<serde_json::Value>,
    next_id: u64,
}

/// A running emulator on a loopback port.
#[derive(Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
}

impl RuntimeApi {
    /// Starts the emulator on 127.0.0.1 (any free port).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Self { addr: listener.local_addr().unwrap(), state: Arc::default(), ready: Arc::new(Notify::new()) };
        let served = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let api = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.route(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        api
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The error the function reported at init, if any.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.state.lock().unwrap().init_error.clone()
    }

    /// Queues an invocation and waits for its outcome.
    pub async fn invoke(&self, payload: &serde_json::Value, timeout: Duration) -> Outcome {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state.lock().unwrap();
            state.next_id += 1;
            let id = format!("req-{}", state.next_id);
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + timeout;
            state.queue.push_back((id.clone(), serde_json::to_vec(payload).unwrap(), deadline.as_millis() as u64));
            state.waiting.insert(id, tx);
        }
        self.ready.notify_waiters();
        self.ready.notify_one();
        tokio::time::timeout(timeout + Duration::from_secs(5), rx)
            .await
            .expect("the function did not answer in time")
            .expect("the emulator dropped the invocation")
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let json = || serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        match (method.as_str(), path.trim_start_matches("/2018-06-01/runtime")) {
            ("GET", "/invocation/next") => loop {
                let notified = self.ready.notified();
                let next = self.state.lock().unwrap().queue.pop_front();
                if let Some((id, payload, deadline)) = next {
                    return Response::builder()
                        .header("Lambda-Runtime-Aws-Request-Id", &id)
                        .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                        .header(
                            "Lambda-Runtime-Invoked-Function-Arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:local",
                        )
                        .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                        .body(Full::new(Bytes::from(payload)))
                        .unwrap();
                }
                notified.await;
            },
            ("POST", "/init/error") => {
                self.state.lock().unwrap().init_error = Some(json());
                accepted()
            }
            ("POST", p) => {
                let mut parts = p.trim_start_matches("/invocation/").splitn(2, '/');
                let (id, kind) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let outcome = match kind {
                    "response" => Outcome::Response(json()),
                    _ => Outcome::Error(json()),
                };
                if let Some(tx) = self.state.lock().unwrap().waiting.remove(id) {
                    let _ = tx.send(outcome);
                }
                accepted()
            }
            _ => Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::new())).unwrap(),
        }
    }
}

fn accepted() -> Response<Full<Bytes>> {
    Response::builder().status(StatusCode::ACCEPTED).body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

/// A Lambda binary started against a [`RuntimeApi`].
pub struct Function {
    pub child: tokio::process::Child,
}

impl Function {
    /// Starts `binary` as Lambda would, with `env` on top of the runtime's
    /// own variables. Its output goes to the test's output.
    pub fn spawn(binary: &str, api: &RuntimeApi, name: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self { child: cmd.spawn().unwrap() }
    }
}

/// Starts `binary` against a [`RuntimeApi`] without `variable` and asserts
/// that it exits with an error that names it.
pub async fn assert_exits_naming_missing(binary: &str, variable: &str) {
    let api = RuntimeApi::start().await;
    let out = tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env_remove(variable)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{binary} started without {variable}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{variable} must be set")), "{stderr}");
}
