//! The HTTP side: routes, authentication, body limits, answers.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /` | `200 {"result"}`, `400 {"error"}` |
//! | `POST /pipeline` | `200 [{"result"} or {"error"}, ...]` |
//! | `POST /multi-exec` | `200 [...]`, or `400 {"error"}` when the transaction is discarded |
//! | `GET /__gateway/stats` | `200 {"requests", "commands"}` (token required) |
//! | `POST /__gateway/stats/reset` | the counts before the reset (token required) |
//! | `GET /__gateway/health` | `200 {"status":"ok"}` or `503` when Redis does not answer (no token) |
//!
//! Every other answer: `401 {"error":"Unauthorized"}`, `413 {"error":"ERR max request
//! size exceeded..."}`, `503 {"error"}` when Redis is unreachable, `404`/`405`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use redis::Value;
use serde_json::{Value as Json, json};

use crate::backend::{Backend, Unavailable};
use crate::policy;
use crate::protocol::{self, Args};
use crate::reply::{self, Encoding};
use crate::scripts::ScriptTranslator;
use crate::stats::Stats;

/// Shared by every request.
pub(crate) struct Shared {
    pub backend: Backend,
    pub stats: Arc<Stats>,
    /// Emulates Upstash's `allow-key-locking` script flag (see `scripts.rs`).
    pub scripts: ScriptTranslator,
    pub token: String,
    pub max_request_bytes: usize,
}

type App = Arc<Shared>;

pub(crate) fn router(shared: App) -> Router {
    Router::new()
        .route("/", post(single))
        .route("/pipeline", post(pipeline))
        .route("/multi-exec", post(multi_exec))
        .route("/__gateway/stats", get(stats))
        .route("/__gateway/stats/reset", post(reset_stats))
        .route("/__gateway/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// A JSON answer.
fn answer(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

/// The reply Upstash would give: a successful `SCRIPT LOAD` of a flagged
/// source answers the digest of the source as sent (see `scripts.rs`).
fn as_upstash(value: Value, digest: &Option<String>) -> Value {
    match (value, digest) {
        (Value::ServerError(err), _) => Value::ServerError(err),
        (_, Some(digest)) => Value::BulkString(digest.clone().into_bytes()),
        (value, None) => value,
    }
}

/// An error answer not yet rendered (small, unlike `Response`).
struct ErrorReply(StatusCode, String);

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn unavailable(err: Unavailable) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, err.0)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// `Authorization: Bearer <token>`, compared in constant time.
fn authorized(shared: &Shared, headers: &HeaderMap) -> Result<(), ErrorReply> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => Ok(()),
        _ => Err(ErrorReply(
            StatusCode::UNAUTHORIZED,
            "Unauthorized".to_owned(),
        )),
    }
}

/// Compares without stopping at the first difference; the running time depends
/// only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

fn encoding(headers: &HeaderMap) -> Encoding {
    let base64 = headers
        .get("upstash-encoding")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("base64"));
    if base64 {
        Encoding::Base64
    } else {
        Encoding::Utf8
    }
}

/// Reads the whole body, refusing more than the limit (checked on the declared
/// length first, then while reading).
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Vec<u8>, ErrorReply> {
    let too_large = || {
        ErrorReply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("ERR max request size exceeded. Limit: {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ErrorReply(
                StatusCode::BAD_REQUEST,
                format!("ERR failed to read the request body: {err}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// The common front of the three protocol routes: count, authenticate, read.
async fn accept(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ErrorReply> {
    shared.stats.count_request();
    authorized(shared, headers)?;
    read_body(body, headers, shared.max_request_bytes).await
}

/// Counts, authenticates and reads a protocol request, then parses its body;
/// any failure is already the answer to send.
async fn accept_parsed<T>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    parse: fn(&[u8]) -> Result<T, String>,
) -> Result<T, Response> {
    let body = accept(shared, headers, body)
        .await
        .map_err(IntoResponse::into_response)?;
    parse(&body).map_err(|message| error(StatusCode::BAD_REQUEST, message))
}

async fn single(State(shared): State<App>, headers: HeaderMap, body: Body) -> Response {
    let mut args = match accept_parsed(&shared, &headers, body, protocol::parse_command).await {
        Ok(args) => args,
        Err(response) => return response,
    };
    if let Err(message) = policy::check(&args) {
        return error(StatusCode::BAD_REQUEST, message);
    }
    let digest = shared.scripts.translate(&mut args);
    shared.stats.count_commands(1);
    match shared
        .backend
        .command(&args)
        .await
        .map(|v| as_upstash(v, &digest))
    {
        Ok(Value::ServerError(err)) => error(StatusCode::BAD_REQUEST, reply::error_text(&err)),
        Ok(value) => answer(
            StatusCode::OK,
            json!({ "result": reply::to_json(value, encoding(&headers)) }),
        ),
        Err(err) => unavailable(err),
    }
}

async fn pipeline(State(shared): State<App>, headers: HeaderMap, body: Body) -> Response {
    let mut commands = match accept_parsed(&shared, &headers, body, protocol::parse_batch).await {
        Ok(commands) => commands,
        Err(response) => return response,
    };
    // Refused commands answer with their error in place; the rest go to Redis.
    let checks: Vec<Result<(), String>> = commands.iter().map(policy::check).collect();
    let digests: Vec<Option<String>> = commands
        .iter_mut()
        .map(|args| shared.scripts.translate(args))
        .collect();
    let allowed: Vec<&Args> = commands
        .iter()
        .zip(&checks)
        .filter(|(_, check)| check.is_ok())
        .map(|(args, _)| args)
        .collect();
    let mut replies = if allowed.is_empty() {
        Vec::new()
    } else {
        shared.stats.count_commands(allowed.len());
        match shared.backend.pipeline(&allowed).await {
            Ok(replies) => replies,
            Err(err) => return unavailable(err),
        }
    }
    .into_iter();
    let encoding = encoding(&headers);
    let entries: Vec<Json> = checks
        .into_iter()
        .zip(&digests)
        .map(|(check, digest)| match check {
            Err(message) => json!({ "error": message }),
            Ok(()) => match replies.next() {
                Some(value) => reply::entry(as_upstash(value, digest), encoding),
                None => json!({ "error": "ERR missing reply from redis" }),
            },
        })
        .collect();
    answer(StatusCode::OK, Json::Array(entries))
}

async fn multi_exec(State(shared): State<App>, headers: HeaderMap, body: Body) -> Response {
    let mut commands = match accept_parsed(&shared, &headers, body, protocol::parse_batch).await {
        Ok(commands) => commands,
        Err(response) => return response,
    };
    // A refused command discards the whole transaction, as a queueing error would.
    if let Some(message) = commands.iter().find_map(|args| policy::check(args).err()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "EXECABORT Transaction discarded because of previous errors. First error: {message}"
            ),
        );
    }
    let digests: Vec<Option<String>> = commands
        .iter_mut()
        .map(|args| shared.scripts.translate(args))
        .collect();
    shared.stats.count_commands(commands.len());
    let replies = match shared.backend.transaction(&commands).await {
        Ok(replies) => replies,
        Err(err) => return unavailable(err),
    };
    transaction_answer(replies, &digests, encoding(&headers))
}

/// Turns `OK, QUEUED..., <EXEC reply>` into the Upstash answer.
fn transaction_answer(
    replies: Vec<Value>,
    digests: &[Option<String>],
    encoding: Encoding,
) -> Response {
    let count = digests.len();
    if replies.len() != count + 2 {
        return error(
            StatusCode::BAD_REQUEST,
            "ERR unexpected transaction replies from redis",
        );
    }
    let mut replies = replies.into_iter();
    if let Some(Value::ServerError(err)) = replies.next() {
        return error(StatusCode::BAD_REQUEST, reply::error_text(&err));
    }
    let queueing_error = replies.by_ref().take(count).find_map(|value| match value {
        Value::ServerError(err) => Some(reply::error_text(&err)),
        _ => None,
    });
    match replies.last() {
        Some(Value::Array(results)) => answer(
            StatusCode::OK,
            Json::Array(
                results
                    .into_iter()
                    .zip(digests.iter().chain(std::iter::repeat(&None)))
                    .map(|(value, digest)| reply::entry(as_upstash(value, digest), encoding))
                    .collect(),
            ),
        ),
        Some(Value::ServerError(err)) => {
            let mut message = reply::error_text(&err);
            if let Some(first) = queueing_error {
                message = format!("{message} First error: {first}");
            }
            error(StatusCode::BAD_REQUEST, message)
        }
        _ => error(StatusCode::BAD_REQUEST, "ERR transaction aborted"),
    }
}

async fn stats(State(shared): State<App>, headers: HeaderMap) -> Response {
    if let Err(failure) = authorized(&shared, &headers) {
        return failure.into_response();
    }
    answer(StatusCode::OK, json!(shared.stats.snapshot()))
}

async fn reset_stats(State(shared): State<App>, headers: HeaderMap) -> Response {
    if let Err(failure) = authorized(&shared, &headers) {
        return failure.into_response();
    }
    answer(StatusCode::OK, json!(shared.stats.reset()))
}

async fn health(State(shared): State<App>) -> Response {
    match shared.backend.ping().await {
        Ok(()) => answer(StatusCode::OK, json!({ "status": "ok" })),
        Err(err) => unavailable(err),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
