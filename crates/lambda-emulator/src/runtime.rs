//! The Lambda Runtime API, as the function's runtime client sees it
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits for the next event;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` answers it, either
//!   as one JSON document or, with `Lambda-Runtime-Function-Response-Mode:
//!   streaming`, as a JSON prelude, eight NUL bytes, then the body as it is
//!   produced;
//! - `POST /2018-06-01/runtime/invocation/{id}/error` and
//!   `POST /2018-06-01/runtime/init/error` report failures.
//!
//! Invocations wait in one queue that every instance of the function polls,
//! so concurrent HTTP requests queue instead of failing, and each instance
//! handles one invocation at a time, as on Lambda.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::event::{self, ResponseHead};

/// The answer the front waits for.
pub(crate) enum Outcome {
    /// The head arrived; the body follows on the channel (a buffered answer
    /// sends it as one chunk). An `Err` chunk ends the body abnormally.
    Response {
        head: ResponseHead,
        body: mpsc::Receiver<Result<Bytes, String>>,
    },
    /// The function reported an error (or answered something unreadable).
    Failed { error_type: String, message: String },
}

pub(crate) struct Invocation {
    pub id: String,
    pub event: Vec<u8>,
    pub reply: oneshot::Sender<Outcome>,
}

/// State shared by the Runtime API and the front.
pub(crate) struct Shared {
    pub queue: mpsc::Sender<Invocation>,
    waiting: Mutex<mpsc::Receiver<Invocation>>,
    pending: std::sync::Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// `next` requests received so far: instances that reached their event
    /// loop (start-up waits for every instance's first one).
    pub polls: AtomicUsize,
    pub init_errors: std::sync::Mutex<Vec<String>>,
    pub timeout: Duration,
}

impl Shared {
    pub fn new(timeout: Duration) -> Arc<Self> {
        let (queue, waiting) = mpsc::channel(1024);
        Arc::new(Self {
            queue,
            waiting: Mutex::new(waiting),
            pending: std::sync::Mutex::new(HashMap::new()),
            polls: AtomicUsize::new(0),
            init_errors: std::sync::Mutex::new(Vec::new()),
            timeout,
        })
    }

    fn take_pending(&self, id: &str) -> Option<oneshot::Sender<Outcome>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.polls.fetch_add(1, Ordering::SeqCst);
    let invocation = {
        let mut waiting = shared.waiting.lock().await;
        waiting.recv().await
    };
    let Some(invocation) = invocation else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    shared
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(invocation.id.clone(), invocation.reply);
    let deadline = SystemTime::now()
        .checked_add(shared.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut response = Response::new(Body::from(invocation.event));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", invocation.id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:flowchat-lambda".into(),
    );
    set(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-00000000-{};Sampled=0",
            &invocation.id.replace('-', "")[..24]
        ),
    );
    response
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let Some(reply) = shared.take_pending(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        stream_response(reply, body).await;
    } else {
        let outcome = match axum::body::to_bytes(body, 2 * event::MAX_REQUEST_PAYLOAD).await {
            Ok(payload) => match event::parse_buffered(&payload) {
                Ok((head, bytes)) => {
                    let (sender, receiver) = mpsc::channel(1);
                    let _ = sender.try_send(Ok(bytes));
                    Outcome::Response {
                        head,
                        body: receiver,
                    }
                }
                Err(e) => failed("Runtime.InvalidResponse", e.to_string()),
            },
            Err(e) => failed("Runtime.InvalidResponse", e.to_string()),
        };
        let _ = reply.send(outcome);
    }
    StatusCode::ACCEPTED
}

/// Reads the prelude, hands the head to the front, then forwards the body
/// chunk by chunk. If the HTTP client has gone, the rest is still read (the
/// invocation runs to its end, as on Lambda) and dropped.
async fn stream_response(reply: oneshot::Sender<Outcome>, body: Body) {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    let rest = loop {
        if let Some(at) = event::find_delimiter(&buffer) {
            let rest = buffer.split_off(at + event::PRELUDE_DELIMITER.len());
            buffer.truncate(at);
            break rest.freeze();
        }
        match stream.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(e)) => {
                let _ = reply.send(failed("Runtime.StreamError", e.to_string()));
                return;
            }
            None => {
                let message = "the streamed response ended before its prelude did".to_owned();
                let _ = reply.send(failed("Runtime.InvalidResponse", message));
                return;
            }
        }
    };
    let head = match event::parse_prelude(&buffer) {
        Ok(head) => head,
        Err(e) => {
            let _ = reply.send(failed("Runtime.InvalidResponse", e.to_string()));
            return;
        }
    };
    let (sender, receiver) = mpsc::channel(64);
    let mut open = reply
        .send(Outcome::Response {
            head,
            body: receiver,
        })
        .is_ok();
    if !rest.is_empty() && open {
        open = sender.send(Ok(rest)).await.is_ok();
    }
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string());
        if open {
            let failed = chunk.is_err();
            open = sender.send(chunk).await.is_ok();
            if failed {
                break;
            }
        }
    }
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(reply) = shared.take_pending(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let _ = reply.send(function_error(&headers, &body));
    StatusCode::ACCEPTED
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Outcome::Failed {
        error_type,
        message,
    } = function_error(&headers, &body)
    {
        tracing::warn!(%error_type, %message, "the function reported an init error");
        shared
            .init_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{error_type}: {message}"));
    }
    StatusCode::ACCEPTED
}

/// An error report: `{"errorType": .., "errorMessage": ..}` with the type
/// also in `Lambda-Runtime-Function-Error-Type`.
fn function_error(headers: &HeaderMap, body: &[u8]) -> Outcome {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = json["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message = json["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    failed(&error_type, message)
}

fn failed(error_type: &str, message: String) -> Outcome {
    Outcome::Failed {
        error_type: error_type.to_owned(),
        message,
    }
}
