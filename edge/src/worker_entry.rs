//! The `fetch` event: settings and context once per isolate, then every
//! request through `flowchat_api`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowchat_api::{AppContext, ClientIp};
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_upstash::UpstashClient;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use wasm_bindgen::JsValue;
use worker::{Context, Env, HttpRequest, ResponseBuilder, event};

use crate::platform::{EdgePlatform, EdgeSleeper};
use crate::settings::{self, EdgeSettings};
use crate::transport::FetchTransport;

thread_local! {
    /// The context built by the isolate's first successful request. A
    /// Worker isolate runs one request at a time on one thread, and its
    /// bindings do not change while it lives.
    static APP: RefCell<Option<Rc<AppContext>>> = const { RefCell::new(None) };
}

/// Why the Worker cannot serve: shown to the operator (logs) and, without
/// any secret, in the 500 answer.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] flowchat_config::ConfigError),
    #[error("the Web Crypto API (crypto.getRandomValues) is unavailable")]
    NoCrypto,
}

/// A request body that failed to arrive, as an error `read_limited` takes.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
struct BodyError(String);

#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let app = match app_context(&env) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("FlowChat cannot start: {e}");
            return misconfigured(&e);
        }
    };
    let (mut parts, body) = req.into_parts();
    let limit = flowchat_api::body_limit(&app, &parts.method, parts.uri.path());
    if declared_length(&parts.headers).is_some_and(|length| length > limit as u64) {
        // Refused without keeping a byte, as on every runtime. But workerd
        // turns an answer given while the body is still arriving into a 503
        // ("worker restarted mid-request"), so what the client does send is
        // read and dropped first; a client that sends nothing more for a
        // second gets its 413 then.
        discard(body).await;
        return to_worker(flowchat_api::payload_too_large(&app, &parts.headers, limit));
    }
    let body = body.map_err(|e| BodyError(e.to_string()));
    let bytes = match flowchat_api::read_limited(&app, &parts, body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return to_worker(refusal),
    };
    let trusted = settings::trusted_ip_header(&app.config);
    parts
        .extensions
        .insert(ClientIp::resolve(&parts.headers, Some(trusted), None));
    to_worker(flowchat_api::handle(&app, http::Request::from_parts(parts, bytes)).await)
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads a refused body to its end (the platform caps its size) without
/// keeping it, or until it stalls for [`DISCARD_IDLE_MS`].
async fn discard(mut body: worker::Body) {
    loop {
        let next = body.frame();
        let idle = worker::Delay::from(Duration::from_millis(DISCARD_IDLE_MS));
        futures_util::pin_mut!(next);
        match futures_util::future::select(next, idle).await {
            futures_util::future::Either::Left((Some(Ok(_)), _)) => continue,
            _ => break,
        }
    }
}

/// How long a refused body may stall before the 413 is sent anyway.
const DISCARD_IDLE_MS: u64 = 1_000;

fn app_context(env: &Env) -> Result<Rc<AppContext>, StartError> {
    if let Some(app) = APP.with(|app| app.borrow().clone()) {
        return Ok(app);
    }
    let EdgeSettings {
        config,
        upstash,
        secret,
    } = settings::read(|name| binding(env, name))?;
    crate::logging::init(config.log_format);
    let platform = EdgePlatform::probe().map_err(|_| StartError::NoCrypto)?;
    let client =
        UpstashClient::new(upstash, Arc::new(FetchTransport)).with_sleeper(Arc::new(EdgeSleeper));
    const DAY: u64 = 24 * 60 * 60;
    let ttls = Ttls {
        job: Duration::from_secs(u64::from(config.ttls.job_days) * DAY),
        conversation: Duration::from_secs(u64::from(config.ttls.conversation_days) * DAY),
        upload: Duration::from_secs(u64::from(config.ttls.upload_hours) * 3600),
    };
    let store = UpstashStore::new(client, &config.namespace, ttls);
    let app = Rc::new(AppContext::new(
        config,
        Arc::new(store),
        Arc::new(platform),
        secret,
    ));
    APP.with(|cached| *cached.borrow_mut() = Some(app.clone()));
    Ok(app)
}

/// A `[vars]` entry or a secret, as text. `[vars]` may hold TOML numbers and
/// booleans (`MAX_UPLOAD_MB = 4`); they read as their usual spelling.
fn binding(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    if let Some(flag) = value.as_bool() {
        return Some(flag.to_string());
    }
    let number = value.as_f64()?;
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Some(format!("{}", number as i64))
    } else {
        Some(number.to_string())
    }
}

fn to_worker(response: http::Response<flowchat_api::Body>) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let headers = worker::Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
    let builder = ResponseBuilder::new()
        .with_status(parts.status.as_u16())
        .with_headers(headers);
    match body {
        flowchat_api::Body::Full(bytes) if bytes.is_empty() => Ok(builder.empty()),
        flowchat_api::Body::Full(bytes) => Ok(builder.fixed(bytes.to_vec())),
        // A `ReadableStream` the runtime pulls from as the client reads:
        // each event leaves as soon as the API yields it.
        flowchat_api::Body::Events(stream) => {
            builder.from_stream(stream.map(Ok::<Bytes, worker::Error>))
        }
    }
}

fn misconfigured(error: &StartError) -> worker::Result<worker::Response> {
    let problem = serde_json::json!({
        "type": "urn:flowchat:problem:misconfigured",
        "title": "Server misconfigured",
        "status": 500,
        "detail": error.to_string(),
    });
    let headers = worker::Headers::new();
    headers.set("content-type", "application/problem+json")?;
    headers.set("cache-control", "no-store")?;
    Ok(ResponseBuilder::new()
        .with_status(500)
        .with_headers(headers)
        .fixed(problem.to_string().into_bytes()))
}
