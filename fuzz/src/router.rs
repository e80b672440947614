//! `router` and `upload`: requests through `flowchat_api::handle`, the one
//! entry point every runtime calls, over a real SQLite store.
//!
//! Every input gets a fresh store (a copy of a migrated template file on
//! tmpfs), so a run is repeatable and the store never grows across inputs.
//!
//! `router` input: up to [`MAX_REQUESTS`] requests separated by a line
//! `=====`, each written like HTTP/1.1:
//!
//! ```text
//! POST /api/chat
//! content-type: application/json
//! authorization: Bearer $SESSION
//!
//! {"message":"hi"}
//! ```
//!
//! `$SESSION`, `$OTHER` (a second session), `$EXPIRED` and `$ADMIN` become
//! real tokens; `$JOB`, `$CONV` and `$DOC` the last job, conversation and
//! document id a response named (else a well-formed unknown one), so
//! sequences like "submit, then read it" are reachable. A
//! header `x-client-ip` sets the client address the runtime would.
//!
//! `upload` input: a `Content-Type` line, then the body of a
//! `POST /api/documents` by a session: the multipart reader, the file name
//! and content checks and the upload's store writes.
//!
//! Properties: no 500; every error is problem+json whose `status` is the
//! response's and whose `request_id` is the `x-request-id` header; JSON
//! answers are JSON; a refused upload leaves no document behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flowchat_api::{AppContext, ClientIp, Platform};
use flowchat_domain::token::{self, SessionClaims};
use flowchat_domain::{Nickname, SessionId, Timestamp};
use flowchat_store::Store;
use flowchat_store::sqlite::SqliteStore;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use serde_json::Value;

use crate::runtime::{block_on, scratch_dir};

/// The most requests one input may carry.
pub const MAX_REQUESTS: usize = 4;
/// Separates the requests of one input.
pub const SEPARATOR: &str = "\n=====\n";

pub const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
pub const ADMIN: &str = "fuzz-admin-token-0123456789abcdef";
/// The client address of requests that name none.
const CLIENT_IP: &str = "203.0.113.7";
/// 2025-01-01T00:00:00Z.
const START_MS: i64 = 1_735_689_600_000;

/// A clock that moves only when a handler sleeps, and random bytes from a
/// counter: the same input gives the same ids and times.
struct FuzzPlatform {
    now_ms: AtomicI64,
    counter: AtomicU64,
}

#[async_trait::async_trait]
impl Platform for FuzzPlatform {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms.load(Ordering::SeqCst))
    }

    fn random_bytes(&self) -> [u8; 16] {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        bytes
    }

    async fn sleep_ms(&self, ms: u64) {
        self.now_ms
            .fetch_add(ms.min(i64::MAX as u64) as i64, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

fn config() -> flowchat_domain::config::Config {
    let vars: &[(&str, &str)] = &[
        ("SESSION_SECRET", SECRET),
        ("ADMIN_TOKEN", ADMIN),
        ("CORS_ORIGINS", "https://app.example"),
        ("MAX_UPLOAD_MB", "1"),
        // Rate limits high enough that inputs reach the handlers; the
        // limiter itself still runs on every write.
        ("RATE_LIMIT_CHAT_PER_MINUTE", "1000000"),
        ("RATE_LIMIT_IP_PER_MINUTE", "1000000"),
    ];
    flowchat_config::app_config(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("the fuzz configuration is valid")
}

/// The migrated, empty store file every input starts from.
struct Template {
    _dir: tempfile::TempDir,
    /// The template file's bytes: written out for each input with
    /// `fs::write`, which retries the system calls libFuzzer's timer signal
    /// interrupts (`fs::copy` gave up with EINTR).
    bytes: Vec<u8>,
    scratch: PathBuf,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = scratch_dir("flowchat-fuzz-router");
        let file = dir.path().join("template.sqlite3");
        drop(SqliteStore::open(&file).expect("the template store opens"));
        let bytes = std::fs::read(&file).expect("read the template store");
        let scratch = dir.path().join(format!("live-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("scratch directory");
        Template {
            _dir: dir,
            bytes,
            scratch,
        }
    })
}

fn remove_store_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

struct Api {
    ctx: AppContext,
    store: Arc<dyn Store>,
    session: SessionId,
    tokens: [(&'static str, String); 4],
}

fn fresh_api() -> Api {
    let template = template();
    let live = template.scratch.join("store.sqlite3");
    remove_store_files(&live);
    std::fs::write(&live, &template.bytes).expect("write the store file");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&live).expect("the store opens"));
    let platform = Arc::new(FuzzPlatform {
        now_ms: AtomicI64::new(START_MS),
        counter: AtomicU64::new(0),
    });
    let config = config();
    let secret = config
        .session_secret
        .clone()
        .expect("SESSION_SECRET is set");
    let now = platform.now();
    let claims = |byte: u8, nick: &str, at: Timestamp| {
        let nickname = Nickname::parse(nick).expect("a valid nickname");
        SessionClaims::new(SessionId::from_random([byte; 16]), &nickname, at)
    };
    let session = claims(1, "ana", now);
    let other = claims(2, "bruno", now);
    let expired = claims(3, "caio", Timestamp::from_millis(0));
    let tokens = [
        ("$SESSION", token::issue(&secret, &session)),
        ("$OTHER", token::issue(&secret, &other)),
        ("$EXPIRED", token::issue(&secret, &expired)),
        ("$ADMIN", ADMIN.to_owned()),
    ];
    let ctx = AppContext::new(config, store.clone(), platform, secret);
    Api {
        ctx,
        store,
        session: session.session_id,
        tokens,
    }
}

/// One request of an input, as far as it could be built; `None` when its
/// head is not a request line (the input is then just skipped).
fn parse_request(api: &Api, text: &[u8], named: &Named) -> Option<Request<Bytes>> {
    let split = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((text, &b""[..]), |at| (&text[..at], &text[at + 2..]));
    let (head, body) = split;
    let head = substitute(api, &String::from_utf8_lossy(head), named);
    let body = match std::str::from_utf8(body) {
        Ok(s) if s.contains('$') => Bytes::from(substitute(api, s, named)),
        _ => Bytes::copy_from_slice(body),
    };
    let mut lines = head.lines();
    let (method, target) = lines.next()?.trim_end_matches('\r').split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let uri: Uri = target.trim().parse().ok()?;
    let mut request = Request::builder().method(method).uri(uri);
    let mut ip = CLIENT_IP.to_owned();
    for line in lines {
        let Some((name, value)) = line.trim_end_matches('\r').split_once(':') else {
            continue;
        };
        let value = value.trim_start();
        if name.eq_ignore_ascii_case("x-client-ip") {
            ip = value.to_owned();
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        request = request.header(name, value);
    }
    request.extension(ClientIp(ip)).body(body).ok()
}

/// The ids earlier responses of one input named, by placeholder.
#[derive(Default)]
struct Named {
    job: Option<String>,
    conversation: Option<String>,
    document: Option<String>,
}

impl Named {
    fn learn(&mut self, body: &Value) {
        let get = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if let Some(id) = get("/job_id") {
            self.job = Some(id);
        }
        if let Some(id) = get("/conversation_id") {
            self.conversation = Some(id);
        }
        if let Some(id) = get("/document/id") {
            self.document = Some(id);
        }
    }
}

/// Well-formed ids nothing has: the route runs, the lookup misses.
const UNKNOWN_UUID: &str = "00000000-0000-4000-8000-000000000000";
const UNKNOWN_DOCUMENT: &str = "00000000000000000000000000000000";

fn substitute(api: &Api, text: &str, named: &Named) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    for (name, value) in &api.tokens {
        out = out.replace(name, value);
    }
    out.replace("$JOB", named.job.as_deref().unwrap_or(UNKNOWN_UUID))
        .replace(
            "$CONV",
            named.conversation.as_deref().unwrap_or(UNKNOWN_UUID),
        )
        .replace(
            "$DOC",
            named.document.as_deref().unwrap_or(UNKNOWN_DOCUMENT),
        )
}

/// What [`run_traced`] reports of each exchange: method, path, status, body.
pub type Trace<'a> = &'a mut dyn FnMut(&str, &str, u16, &Value);

/// Sends `request` and checks the answer; returns its body as JSON.
fn send(api: &Api, request: Request<Bytes>, trace: Trace<'_>) -> Value {
    let method = request.method().to_string();
    let path = request.uri().to_string();
    let response = block_on(flowchat_api::handle_buffered(&api.ctx, request));
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a request got a 500: {:?}",
        response.body()
    );
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(request_id.is_some(), "no x-request-id on a {status}");
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.body();
    let value = answer(status, &content_type, request_id.as_deref(), body);
    trace(&method, &path, status.as_u16(), &value);
    value
}

fn answer(status: StatusCode, content_type: &str, request_id: Option<&str>, body: &Bytes) -> Value {
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(content_type, "application/problem+json", "a {status} error");
        let problem: Value = serde_json::from_slice(body).expect("problem+json is JSON");
        assert_eq!(problem["status"], status.as_u16(), "{problem}");
        assert_eq!(problem["request_id"].as_str(), request_id);
        for field in ["type", "title", "detail"] {
            assert!(
                problem[field].is_string(),
                "problem lacks {field}: {problem}"
            );
        }
        problem
    } else if content_type == "application/json" && !body.is_empty() {
        serde_json::from_slice(body).expect("a JSON answer is JSON")
    } else {
        Value::Null
    }
}

/// The `router` target.
pub fn run(data: &[u8]) {
    run_traced(data, &mut |_, _, _, _| {});
}

/// [`run`], reporting every exchange (`examples/show.rs`).
pub fn run_traced(data: &[u8], trace: Trace<'_>) {
    let api = fresh_api();
    let mut named = Named::default();
    let text = data;
    let mut start = 0;
    for _ in 0..MAX_REQUESTS {
        let rest = &text[start..];
        let end = rest
            .windows(SEPARATOR.len())
            .position(|w| w == SEPARATOR.as_bytes());
        let chunk = &rest[..end.unwrap_or(rest.len())];
        if let Some(request) = parse_request(&api, chunk, &named) {
            let body = send(&api, request, &mut *trace);
            named.learn(&body);
        }
        match end {
            Some(at) => start += at + SEPARATOR.len(),
            None => break,
        }
    }
}

/// The `upload` target.
pub fn run_upload(data: &[u8]) {
    run_upload_traced(data, &mut |_, _, _, _| {});
}

/// [`run_upload`], reporting the exchange (`examples/show.rs`).
pub fn run_upload_traced(data: &[u8], trace: Trace<'_>) {
    let api = fresh_api();
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/documents")
        .header("authorization", format!("Bearer {}", api.tokens[0].1))
        .extension(ClientIp(CLIENT_IP.to_owned()));
    if let Ok(value) =
        HeaderValue::from_bytes(content_type.strip_suffix(b"\r").unwrap_or(content_type))
    {
        request = request.header(http::header::CONTENT_TYPE, value);
    }
    let request = request
        .body(Bytes::copy_from_slice(body))
        .expect("a valid request");
    let answer = send(&api, request, trace);
    let refused = answer
        .get("status")
        .and_then(Value::as_u64)
        .is_some_and(|s| s >= 400);
    let documents =
        block_on(api.store.list_documents(Some(&api.session))).expect("the store lists documents");
    if refused {
        assert!(
            documents.is_empty(),
            "a refused upload left a document: {answer}"
        );
    } else {
        assert!(
            documents.len() <= 1,
            "one upload made {} documents",
            documents.len()
        );
    }
}
