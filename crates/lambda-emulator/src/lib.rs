//! A local stand-in for AWS Lambda behind a Function URL, for running
//! `flowchat-lambda` on a developer machine and in tests. Development and
//! tests only: it is never deployed.
//!
//! Two servers on 127.0.0.1:
//!
//! - the **Runtime API** (`runtime`), which the function's own runtime
//!   client (`lambda_runtime`) polls for events and answers on, including
//!   the streaming response form;
//! - the **HTTP front**, which turns each real HTTP request into a Function
//!   URL event (payload format 2.0, `requestContext.http.sourceIp` = the
//!   connection's peer address), queues it for the function, and turns the
//!   answer back into an HTTP response, streaming the body as it arrives.
//!
//! [`LambdaFront::start`] also spawns the function binary — several copies,
//! as Lambda scales out to concurrent requests, so one long SSE stream does
//! not hold up the others — and waits until each has asked for its first
//! event.

pub mod event;
mod runtime;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::runtime::{Invocation, Outcome, Shared};

/// How the emulated function runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Copies of the binary polling for events (Lambda's concurrent
    /// execution environments).
    pub instances: usize,
    /// The function's timeout: the longest the front waits for an answer to
    /// begin, and the deadline each invocation is given.
    pub timeout: Duration,
    /// How long start-up may take before `start` gives up.
    pub start_timeout: Duration,
    /// The front's port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            instances: 4,
            timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(60),
            port: 0,
        }
    }
}

/// A running emulator: the front's address, the Runtime API's, and the
/// function's processes (killed on [`LambdaFront::stop`] or when dropped).
pub struct LambdaFront {
    front: SocketAddr,
    runtime_api: SocketAddr,
    children: Vec<Child>,
    servers: Vec<JoinHandle<()>>,
}

impl LambdaFront {
    /// Starts the emulator and `instances` copies of `binary` (4 by
    /// default) with `env` on top of this process's environment, and waits
    /// until every copy polls for its first event. Fails if a copy exits
    /// first (a start-up error: its message is on its stderr) or reports an
    /// init error.
    pub async fn start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<LambdaFront> {
        Self::start_with(binary, env, Options::default()).await
    }

    /// [`LambdaFront::start`] with explicit [`Options`].
    pub async fn start_with(
        binary: &Path,
        env: &[(String, String)],
        options: Options,
    ) -> anyhow::Result<LambdaFront> {
        let mut front = Self::servers(options.timeout, options.port).await?;
        let shared = front.shared.take().context("servers just started")?;
        let mut emulator = front.running;
        for instance in 0..options.instances.max(1) {
            let child = Command::new(binary)
                .envs(lambda_environment(emulator.runtime_api, instance))
                .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            emulator.children.push(child);
        }
        let deadline = Instant::now() + options.start_timeout;
        loop {
            if shared.polls.load(Ordering::SeqCst) >= emulator.children.len() {
                return Ok(emulator);
            }
            if let Some(error) = shared
                .init_errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .first()
            {
                bail!("the function reported an init error: {error}");
            }
            for child in &mut emulator.children {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited during start-up ({status}); its stderr says why",
                        binary.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not poll the Runtime API within {:?}",
                    binary.display(),
                    options.start_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Only the two servers, no function: something else (a test acting as
    /// the runtime, or a binary started by hand with
    /// `AWS_LAMBDA_RUNTIME_API` = [`LambdaFront::runtime_api`]) polls.
    pub async fn without_function(timeout: Duration) -> anyhow::Result<LambdaFront> {
        Ok(Self::servers(timeout, 0).await?.running)
    }

    async fn servers(timeout: Duration, port: u16) -> anyhow::Result<Started> {
        let shared = Shared::new(timeout);
        let runtime_listener = TcpListener::bind("127.0.0.1:0").await?;
        let runtime_api = runtime_listener.local_addr()?;
        let runtime_app = runtime::router(shared.clone());
        let runtime_server = tokio::spawn(async move {
            let _ = axum::serve(runtime_listener, runtime_app).await;
        });

        let front_listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let front = front_listener.local_addr()?;
        let front_app = Router::new().fallback(invoke).with_state(shared.clone());
        let front_server = tokio::spawn(async move {
            // Streamed chunks leave at once instead of waiting out Nagle's
            // algorithm.
            let listener = axum::serve::ListenerExt::tap_io(front_listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(
                listener,
                front_app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ok(Started {
            running: LambdaFront {
                front,
                runtime_api,
                children: Vec::new(),
                servers: vec![runtime_server, front_server],
            },
            shared: Some(shared),
        })
    }

    /// The HTTP front, e.g. `http://127.0.0.1:41234` (the Function URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.front)
    }

    /// `host:port` of the Runtime API (`AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> String {
        self.runtime_api.to_string()
    }

    /// Kills the function's processes and stops both servers.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
        for server in &self.servers {
            server.abort();
        }
    }
}

impl Drop for LambdaFront {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for server in &self.servers {
            server.abort();
        }
    }
}

struct Started {
    running: LambdaFront,
    shared: Option<Arc<Shared>>,
}

/// The variables Lambda sets for a function's runtime; `lambda_runtime`
/// refuses to start without the first four.
fn lambda_environment(runtime_api: SocketAddr, instance: usize) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "flowchat-lambda".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/flowchat-lambda".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", format!("emulator/{instance}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The front: one HTTP request → one invocation → one HTTP response.
async fn invoke(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > event::MAX_REQUEST_PAYLOAD as u64) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, event::MAX_REQUEST_PAYLOAD).await else {
        return too_large();
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let event = event::function_url_event(&event::IncomingRequest {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
        source_ip: peer.ip(),
        request_id: &id,
        time_epoch_ms: now_ms,
    });
    let (reply, answer) = oneshot::channel();
    let invocation = Invocation {
        id,
        event: event.to_string().into_bytes(),
        reply,
    };
    if shared.queue.send(invocation).await.is_err() {
        return lambda_error(StatusCode::BAD_GATEWAY, "the emulator is shutting down");
    }
    match tokio::time::timeout(shared.timeout, answer).await {
        Ok(Ok(Outcome::Response { head, body })) => {
            let chunks = tokio_stream::wrappers::ReceiverStream::new(body)
                .map(|chunk| chunk.map_err(std::io::Error::other));
            let mut response = Response::new(Body::from_stream(chunks));
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            response
        }
        Ok(Ok(Outcome::Failed {
            error_type,
            message,
        })) => {
            tracing::warn!(%error_type, %message, "the function failed");
            lambda_error(StatusCode::BAD_GATEWAY, "Internal Server Error")
        }
        Ok(Err(_)) => lambda_error(StatusCode::BAD_GATEWAY, "Internal Server Error"),
        Err(_) => lambda_error(StatusCode::GATEWAY_TIMEOUT, "Task timed out"),
    }
}

/// Lambda's own refusal of a request over the payload limit (not the
/// function's: the function never sees it).
fn too_large() -> Response {
    lambda_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    )
}

fn lambda_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "Message": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
