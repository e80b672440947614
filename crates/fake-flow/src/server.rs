//! HTTP side of the fake: one fallback handler that records every request,
//! validates it the way Flow would, applies a queued fault and answers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::answer::{expected_answer, split_words};
use crate::embed::{embedding, words};
use crate::{CLIENT_ID, CLIENT_SECRET, Fault, RecordedRequest, Shared, TENANT, Target};

pub(crate) const TOKEN_PATH: &str = "/auth-engine-api/v1/api-key/token";
pub(crate) const CHAT_PATH: &str = "/ai-orchestration-api/v1/openai/chat/completions";
pub(crate) const EMBEDDINGS_PATH: &str = "/ai-orchestration-api/v1/openai/embeddings";
const HEALTH_PATHS: [&str; 2] = [
    "/ai-orchestration-api/v1/health",
    "/auth-engine-api/v1/health",
];
/// Generous: embedding batches can be large, but a test must not OOM us.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) fn router(app: App) -> Router {
    // A single fallback rather than typed routes and extractors: every
    // request must be recorded, and bad input must get a JSON 400 from us
    // rather than an axum rejection.
    Router::new().fallback(handle).with_state(app)
}

fn target_for(path: &str) -> Option<Target> {
    match path {
        TOKEN_PATH => Some(Target::Token),
        CHAT_PATH => Some(Target::Chat),
        EMBEDDINGS_PATH => Some(Target::Embeddings),
        _ => None,
    }
}

/// The parts of a request the checks look at.
struct Ctx {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
    /// Why the body is not usable JSON, if it is not.
    body_error: Option<&'static str>,
}

impl Ctx {
    /// Trimmed, non-empty header value.
    fn header(&self, lower_name: &str) -> Option<&str> {
        self.headers
            .get(lower_name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// An error answer decided by validation.
struct Rejection {
    status: StatusCode,
    message: String,
}

fn reject(status: StatusCode, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        message: message.into(),
    }
}

/// Answer plus the status to record for it.
type Answer = (u16, Response);

async fn handle(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(existing) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => {
                headers.insert(name.as_str().to_owned(), value);
            }
        }
    }
    let (body, body_error) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => (v, None),
            Err(_) if bytes.is_empty() => (Value::Null, Some("empty body, expected a JSON object")),
            Err(_) => (Value::Null, Some("body is not valid JSON")),
        },
        Err(_) => (Value::Null, Some("body could not be read (too large?)")),
    };
    let ctx = Ctx {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body,
        body_error,
    };
    let target = target_for(&ctx.path);

    // Record first, then take the fault, in one critical section.
    let (index, fault) = {
        let mut inner = app.shared.lock();
        let index = inner.record_requests.then(|| {
            inner.requests.push(RecordedRequest {
                target,
                method: ctx.method.clone(),
                path: ctx.path.clone(),
                headers: ctx.headers.clone(),
                body: ctx.body.clone(),
                status: 0,
            });
            inner.requests.len() - 1
        });
        let fault = target.and_then(|t| {
            *inner.received.entry(t).or_default() += 1;
            match inner.faults.get_mut(&t).and_then(VecDeque::pop_front) {
                Some(fault) => Some(fault),
                None => inner.random_faults.get_mut(&t).and_then(|r| r.draw()),
            }
        });
        (index, fault)
    };

    let (status, response) = respond(&app, &ctx, target, fault).await;
    if let Some(index) = index
        && let Some(r) = app.shared.lock().requests.get_mut(index)
    {
        r.status = status;
    }
    response
}

async fn respond(app: &App, ctx: &Ctx, target: Option<Target>, fault: Option<Fault>) -> Answer {
    let Some(target) = target else {
        return other_path(app, ctx);
    };
    if ctx.method != "POST" {
        add_problems(app, ctx, vec![format!("{target:?} endpoint needs POST")]);
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }

    let mut problems = Vec::new();
    let validated = match target {
        Target::Token => validate_token(ctx, &mut problems).map(|()| Valid::Token),
        Target::Chat => {
            let headers = validate_llm_headers(app, ctx, &mut problems);
            let body = validate_chat(ctx, &mut problems);
            headers.and(body).map(Valid::Chat)
        }
        Target::Embeddings => {
            let headers = validate_llm_headers(app, ctx, &mut problems);
            let body = validate_embeddings(ctx, &mut problems);
            headers.and(body).map(Valid::Embeddings)
        }
    };
    add_problems(app, ctx, problems);

    let mut cut = None;
    match fault {
        Some(Fault::Status {
            status,
            retry_after_secs,
        }) => return fault_status(status, retry_after_secs),
        Some(Fault::Hang) => {
            let mut shutdown = app.shutdown.clone();
            let _ = shutdown.wait_for(|stop| *stop).await;
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "fake-flow is shutting down",
            );
        }
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(Fault::CutStream { after_chunks }) => cut = Some(after_chunks),
        Some(Fault::Endless { every_ms }) => {
            if let Ok(Valid::Chat(req)) = &validated
                && req.stream
            {
                return endless_answer(app, req, every_ms);
            }
        }
        None => {}
    }

    match validated {
        Err(r) => error(r.status, &r.message),
        Ok(Valid::Token) => json_answer(&issue_token(app), cut),
        Ok(Valid::Embeddings(req)) => json_answer(&embeddings_answer(&req), cut),
        Ok(Valid::Chat(req)) => chat_answer(app, &req, cut),
    }
}

enum Valid {
    Token,
    Chat(ChatReq),
    Embeddings(EmbeddingsReq),
}

fn add_problems(app: &App, ctx: &Ctx, problems: Vec<String>) {
    if problems.is_empty() {
        return;
    }
    let mut inner = app.shared.lock();
    for p in problems {
        inner
            .problems
            .push(format!("{} {}: {p}", ctx.method, ctx.path));
    }
}

fn other_path(app: &App, ctx: &Ctx) -> Answer {
    if HEALTH_PATHS.contains(&ctx.path.as_str()) {
        if ctx.method == "GET" || ctx.method == "HEAD" {
            return json_status(StatusCode::OK, &json!({"status": "ok"}));
        }
        add_problems(app, ctx, vec!["health endpoint needs GET".to_owned()]);
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    add_problems(app, ctx, vec!["unknown path".to_owned()]);
    error(StatusCode::NOT_FOUND, "not found")
}

// ---------------------------------------------------------------- responses

fn json_status(status: StatusCode, value: &Value) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        status.as_u16(),
        bytes_response(status, "application/json", body),
    )
}

fn bytes_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(status: StatusCode, message: &str) -> Answer {
    json_status(status, &json!({"error": {"message": message}}))
}

/// 200 with `value`, or with its first half only when a [`Fault::CutStream`] applies.
fn json_answer(value: &Value, cut: Option<usize>) -> Answer {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    if cut.is_some() {
        body.truncate(body.len() / 2);
    }
    (
        200,
        bytes_response(StatusCode::OK, "application/json", body),
    )
}

fn fault_status(status: u16, retry_after_secs: Option<u64>) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status.as_u16() {
        401 => "access token expired or invalid",
        403 => "tenant or agent not allowed",
        429 => "too many requests: quota exceeded",
        500..=599 => "upstream provider error",
        _ => "fake-flow injected fault",
    };
    let (code, mut response) = error(status, message);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    (code, response)
}

// ---------------------------------------------------------------- token

fn validate_token(ctx: &Ctx, problems: &mut Vec<String>) -> Result<(), Rejection> {
    let mut bad_request = false;
    match ctx.header("content-type") {
        None => {
            problems.push("missing Content-Type: application/json header".to_owned());
            bad_request = true;
        }
        Some(ct) if !ct.to_ascii_lowercase().starts_with("application/json") => {
            problems.push(format!(
                "Content-Type header is {ct:?}, expected application/json"
            ));
            bad_request = true;
        }
        Some(_) => {}
    }
    let tenant = ctx.header("flowtenant");
    if tenant.is_none() {
        problems.push("missing FlowTenant header".to_owned());
        bad_request = true;
    }
    let fields = body_object(ctx, problems).map(|obj| {
        let mut get = |name: &str| required_string(obj, name, problems);
        (get("clientId"), get("clientSecret"), get("appToAccess"))
    });
    let Some((Some(id), Some(secret), Some(_app))) = fields else {
        return Err(reject(StatusCode::BAD_REQUEST, "malformed token request"));
    };
    if bad_request {
        return Err(reject(StatusCode::BAD_REQUEST, "malformed token request"));
    }
    if tenant != Some(TENANT) || id != CLIENT_ID || secret != CLIENT_SECRET {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "invalid client credentials or tenant",
        ));
    }
    Ok(())
}

fn issue_token(app: &App) -> Value {
    let mut inner = app.shared.lock();
    inner.issued_tokens += 1;
    let token = format!("fake-token-{}-{}", inner.issued_tokens, random_hex());
    inner.tokens.insert(token.clone(), Instant::now());
    json!({
        "access_token": token,
        "expires_in": inner.token_lifetime_secs,
        "token_type": "Bearer",
    })
}

/// 16 hex digits from std's randomly keyed hasher: unpredictable enough for
/// telling tokens apart, without a dependency.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish())
}

// ---------------------------------------------------------------- LLM calls

/// Checks `Authorization`, `FlowTenant`, `FlowAgent` and the token itself.
/// Precedence of answers: no bearer 401, missing header 400, wrong tenant
/// 403, expired/unknown token 401.
fn validate_llm_headers(app: &App, ctx: &Ctx, problems: &mut Vec<String>) -> Result<(), Rejection> {
    let token = match ctx.header("authorization") {
        None => {
            problems.push("missing Authorization: Bearer header".to_owned());
            None
        }
        Some(auth) => {
            let token = auth
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty());
            if token.is_none() {
                problems.push("Authorization header is not `Bearer <token>`".to_owned());
            }
            token
        }
    };
    let tenant = ctx.header("flowtenant");
    if tenant.is_none() {
        problems.push("missing FlowTenant header".to_owned());
    }
    let agent = ctx.header("flowagent");
    if agent.is_none() {
        problems.push("missing FlowAgent header".to_owned());
    }
    let Some(token) = token else {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "missing or malformed Authorization: Bearer header",
        ));
    };
    let (Some(tenant), Some(_)) = (tenant, agent) else {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "missing FlowTenant or FlowAgent header",
        ));
    };
    if tenant != TENANT {
        return Err(reject(
            StatusCode::FORBIDDEN,
            format!("tenant {tenant:?} is not allowed"),
        ));
    }
    let valid = {
        let inner = app.shared.lock();
        let lifetime = Duration::from_secs(inner.token_lifetime_secs);
        inner
            .tokens
            .get(token)
            .is_some_and(|issued| issued.elapsed() < lifetime)
    };
    if !valid {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "access token expired or invalid",
        ));
    }
    Ok(())
}

/// The body as an object, or `None` after recording why not.
fn body_object<'a>(ctx: &'a Ctx, problems: &mut Vec<String>) -> Option<&'a Map<String, Value>> {
    match (&ctx.body, ctx.body_error) {
        (Value::Object(obj), _) => Some(obj),
        (_, Some(why)) => {
            problems.push(why.to_owned());
            None
        }
        _ => {
            problems.push("body is not a JSON object".to_owned());
            None
        }
    }
}

/// A present, non-empty string field; records a problem otherwise.
fn required_string<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<&'a str> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        None | Some(Value::Null) => {
            problems.push(format!("missing body field `{name}`"));
            None
        }
        Some(_) => {
            problems.push(format!("body field `{name}` must be a non-empty string"));
            None
        }
    }
}

struct ChatReq {
    model: String,
    /// (role, text) of every message.
    messages: Vec<(String, String)>,
    stream: bool,
}

fn validate_chat(ctx: &Ctx, problems: &mut Vec<String>) -> Result<ChatReq, Rejection> {
    let bad = || reject(StatusCode::BAD_REQUEST, "malformed chat completion request");
    let obj = body_object(ctx, problems).ok_or_else(bad)?;
    let before = problems.len();
    let model = required_string(obj, "model", problems);
    let mut messages = Vec::new();
    match obj.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, m) in list.iter().enumerate() {
                match chat_message(m) {
                    Ok(msg) => messages.push(msg),
                    Err(why) => problems.push(format!("messages[{i}]: {why}")),
                }
            }
        }
        None | Some(Value::Null) => problems.push("missing body field `messages`".to_owned()),
        Some(_) => problems.push("body field `messages` must be a non-empty array".to_owned()),
    }
    if !matches!(
        obj.get("temperature"),
        None | Some(Value::Null | Value::Number(_))
    ) {
        problems.push("body field `temperature` must be a number".to_owned());
    }
    if !obj
        .get("max_tokens")
        .is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|n| n > 0))
    {
        problems.push("body field `max_tokens` must be a positive integer".to_owned());
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push("body field `stream` must be a boolean".to_owned());
            false
        }
    };
    match model {
        Some(model) if problems.len() == before => Ok(ChatReq {
            model: model.to_owned(),
            messages,
            stream,
        }),
        _ => Err(bad()),
    }
}

fn chat_message(m: &Value) -> Result<(String, String), &'static str> {
    let obj = m
        .as_object()
        .ok_or("must be an object with role and content")?;
    let role = match obj.get("role") {
        Some(Value::String(r)) if !r.trim().is_empty() => r.clone(),
        _ => return Err("missing or empty `role`"),
    };
    let text = match obj.get("content") {
        Some(Value::String(s)) => s.clone(),
        // OpenAI content parts: keep the text parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Null) if role == "assistant" => String::new(),
        _ => return Err("missing `content` (a string)"),
    };
    Ok((role, text))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn chat_answer(app: &App, req: &ChatReq, cut: Option<usize>) -> Answer {
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, text)| text.as_str())
        .unwrap_or("");
    let answer = expected_answer(last_user);
    let (id, delay_ms) = {
        let mut inner = app.shared.lock();
        inner.chat_completions += 1;
        (
            format!("chatcmpl-fake-{}", inner.chat_completions),
            inner.chunk_delay_ms,
        )
    };
    let created = unix_now();
    if !req.stream {
        let prompt_tokens: usize = req
            .messages
            .iter()
            .map(|(_, text)| text.split_whitespace().count())
            .sum();
        let completion_tokens = answer.split_whitespace().count();
        let value = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        });
        return json_answer(&value, cut);
    }

    let chunk = |choices: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "choices": choices,
        })
    };
    let mut steps = VecDeque::new();
    // Azure content-filter preamble: no choices at all.
    steps.push_back(Step::Write(event(&json!({
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [{
            "prompt_index": 0,
            "content_filter_results": {
                "hate": {"filtered": false, "severity": "safe"},
                "self_harm": {"filtered": false, "severity": "safe"},
                "sexual": {"filtered": false, "severity": "safe"},
                "violence": {"filtered": false, "severity": "safe"},
            },
        }],
    }))));
    steps.push_back(Step::Write(event(&chunk(json!([{
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": null,
    }])))));
    let pieces = split_words(&answer);
    for (i, piece) in pieces.iter().enumerate() {
        if cut == Some(i) {
            steps.push_back(Step::Fail);
            break;
        }
        if i > 0 && delay_ms > 0 {
            steps.push_back(Step::Sleep(delay_ms));
        }
        let bytes = event(&chunk(json!([{
            "index": 0,
            "delta": {"content": piece},
            "finish_reason": null,
        }])));
        if i == 0 {
            // One event split across two writes, so parsers must buffer.
            let mid = bytes.len() / 2;
            steps.push_back(Step::Write(bytes.slice(..mid)));
            steps.push_back(Step::Yield);
            steps.push_back(Step::Write(bytes.slice(mid..)));
        } else {
            steps.push_back(Step::Write(bytes));
        }
    }
    if cut.is_some_and(|after| after >= pieces.len()) {
        steps.push_back(Step::Fail);
    }
    steps.push_back(Step::Write(event(&chunk(json!([{
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
    }])))));
    steps.push_back(Step::Write(Bytes::from_static(b"data: [DONE]\n\n")));

    let stream = futures_util::stream::unfold(steps, |mut steps| async move {
        loop {
            match steps.pop_front()? {
                Step::Write(bytes) => return Some((Ok(bytes), steps)),
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Yield => tokio::task::yield_now().await,
                Step::Fail => {
                    // Let the server flush what was written so far; the
                    // client must see the partial answer before the break.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    steps.clear();
                    return Some((
                        Err(std::io::Error::other("fake-flow: stream cut by fault")),
                        steps,
                    ));
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (200, response)
}

/// A streamed answer that never ends: a word every `every_ms` until the
/// client hangs up or the fake stops.
fn endless_answer(app: &App, req: &ChatReq, every_ms: u64) -> Answer {
    let chunk = event(&json!({
        "id": "chatcmpl-fake-endless",
        "object": "chat.completion.chunk",
        "created": unix_now(),
        "model": req.model,
        "choices": [{"index": 0, "delta": {"content": "and "}, "finish_reason": null}],
    }));
    let shutdown = app.shutdown.clone();
    let stream = futures_util::stream::unfold(shutdown, move |mut shutdown| {
        let chunk = chunk.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(every_ms)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return None,
            }
            Some((Ok::<_, std::io::Error>(chunk), shutdown))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (200, response)
}

/// One step of a streamed answer.
enum Step {
    Write(Bytes),
    Sleep(u64),
    /// Let the server flush what it has before the next write.
    Yield,
    /// Abort the body (no terminating chunk).
    Fail,
}

fn event(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend(serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

// ---------------------------------------------------------------- embeddings

struct EmbeddingsReq {
    model: String,
    inputs: Vec<String>,
}

fn validate_embeddings(ctx: &Ctx, problems: &mut Vec<String>) -> Result<EmbeddingsReq, Rejection> {
    let bad = || reject(StatusCode::BAD_REQUEST, "malformed embeddings request");
    let Some(obj) = body_object(ctx, problems) else {
        if ctx.header("x-ms-model-mesh-model-name").is_none() {
            problems.push("missing x-ms-model-mesh-model-name header".to_owned());
        }
        return Err(bad());
    };
    let before = problems.len();
    let mut inputs = Vec::new();
    match obj.get("input") {
        Some(Value::String(s)) if !s.is_empty() => inputs.push(s.clone()),
        Some(Value::String(_)) => problems.push("body field `input` is an empty string".to_owned()),
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                match item {
                    Value::String(s) if !s.is_empty() => inputs.push(s.clone()),
                    _ => problems.push(format!("input[{i}] must be a non-empty string")),
                }
            }
        }
        Some(Value::Array(_)) => problems.push("body field `input` is an empty list".to_owned()),
        None | Some(Value::Null) => problems.push("missing body field `input`".to_owned()),
        Some(_) => {
            problems.push("body field `input` must be a string or a list of strings".to_owned())
        }
    }
    let allowed = match obj.get("allowedModels") {
        Some(Value::Array(list)) if !list.is_empty() => {
            match list.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(names) if names.iter().all(|n| !n.trim().is_empty()) => Some(names[0]),
                _ => {
                    problems
                        .push("body field `allowedModels` must hold non-empty strings".to_owned());
                    None
                }
            }
        }
        None | Some(Value::Null) => {
            problems.push("missing body field `allowedModels`".to_owned());
            None
        }
        Some(_) => {
            problems.push("body field `allowedModels` must be a non-empty list".to_owned());
            None
        }
    };
    match obj.get("user") {
        None | Some(Value::Null) => {
            // Documented (`"user": "flow"`) but not enforced: reported only.
            problems.push("missing body field `user`".to_owned());
        }
        Some(Value::String(_)) => {}
        Some(_) => problems.push("body field `user` must be a string".to_owned()),
    }
    let mut header_ok = true;
    match (ctx.header("x-ms-model-mesh-model-name"), allowed) {
        (None, _) => {
            problems.push("missing x-ms-model-mesh-model-name header".to_owned());
            header_ok = false;
        }
        (Some(h), Some(first)) if h != first => {
            problems.push(format!(
                "x-ms-model-mesh-model-name header {h:?} does not match allowedModels[0] {first:?}"
            ));
            header_ok = false;
        }
        _ => {}
    }
    let model = match obj.get("model") {
        None | Some(Value::Null) => allowed.map(str::to_owned),
        Some(Value::String(m)) if !m.trim().is_empty() => Some(m.clone()),
        Some(_) => {
            problems.push("body field `model` must be a non-empty string".to_owned());
            None
        }
    };
    // A missing `user` is reported but tolerated.
    let tolerated = problems[before..]
        .iter()
        .all(|p| p == "missing body field `user`");
    match (model, allowed) {
        (Some(model), Some(_)) if header_ok && tolerated => Ok(EmbeddingsReq { model, inputs }),
        _ => Err(bad()),
    }
}

fn embeddings_answer(req: &EmbeddingsReq) -> Value {
    let data: Vec<Value> = req
        .inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            json!({
                "object": "embedding",
                "index": i,
                "embedding": embedding(text),
            })
        })
        .collect();
    let tokens: usize = req.inputs.iter().map(|t| words(t).len().max(1)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}
