//! Calls `flowchat_api::handle` directly, with no socket: the real sqlite
//! store in a temporary directory and a platform whose clock only moves when
//! a handler sleeps, so waits and rate-limit windows are deterministic.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use flowchat_api::{AppContext, ClientIp, Platform};
use flowchat_domain::DocumentId;
use flowchat_domain::Timestamp;
use flowchat_domain::model::{AnswerMode, ChatAnswer, Citation, Job, JobResult, Passage};
use flowchat_store::{ClaimRequest, ClaimedJob, Store};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const ADMIN: &str = "admin-token-for-tests-0123456789";
/// The client address the harness puts on requests that name none.
pub const CLIENT_IP: &str = "203.0.113.7";
/// 2025-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_735_689_600_000);

/// A clock that stands still until something sleeps, and random bytes from
/// a counter: every run sees the same ids and times.
pub struct TestPlatform {
    now_ms: AtomicI64,
    counter: AtomicU64,
}

impl TestPlatform {
    pub fn advance_secs(&self, secs: i64) {
        self.now_ms.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Platform for TestPlatform {
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

    /// Moves the clock on and lets other tasks (a simulated drain) run.
    async fn sleep_ms(&self, ms: u64) {
        self.now_ms.fetch_add(ms as i64, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
}

pub struct TestApi {
    pub ctx: AppContext,
    pub platform: Arc<TestPlatform>,
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

pub struct Builder {
    vars: HashMap<String, String>,
}

/// An API with a session secret and an admin token; `var` adds or
/// overrides variables.
pub fn api() -> Builder {
    let mut vars = HashMap::new();
    vars.insert("SESSION_SECRET".to_owned(), SECRET.to_owned());
    vars.insert("ADMIN_TOKEN".to_owned(), ADMIN.to_owned());
    Builder { vars }
}

impl Builder {
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn without(mut self, k: &str) -> Self {
        self.vars.remove(k);
        self
    }

    pub fn build(self) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let config = flowchat_config::app_config(|k| self.vars.get(k).cloned()).unwrap();
        let secret = config.session_secret.clone().expect("SESSION_SECRET");
        let store: Arc<dyn Store> = Arc::new(
            flowchat_store::sqlite::SqliteStore::open(dir.path().join("store.sqlite3")).unwrap(),
        );
        let platform = Arc::new(TestPlatform {
            now_ms: AtomicI64::new(START.as_millis()),
            counter: AtomicU64::new(0),
        });
        let ctx = AppContext::new(config, store.clone(), platform.clone(), secret);
        TestApi {
            ctx,
            platform,
            store,
            _dir: dir,
        }
    }
}

/// A finished response, its body collected.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub bytes: Bytes,
    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status and returns its body.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(
                !self.body[field].is_null(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.header("x-request-id"),
            self.body["request_id"].as_str()
        );
        &self.body
    }

    /// Asserts a 400 naming `field` and `rule`.
    pub fn invalid(&self, field: &str, rule: &str) {
        let p = self.problem(400);
        assert_eq!(p["type"], "urn:flowchat:problem:validation", "{p}");
        assert_eq!(
            (p["field"].as_str(), p["rule"].as_str()),
            (Some(field), Some(rule)),
            "{p}"
        );
    }

    pub fn json(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        &self.body
    }
}

/// A request under construction.
pub struct Call<'a> {
    api: &'a TestApi,
    request: http::request::Builder,
    body: Bytes,
}

impl<'a> Call<'a> {
    pub fn token(mut self, token: &str) -> Self {
        self.request = self
            .request
            .header("authorization", format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = Bytes::from(body.to_string());
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.request = self.request.header("content-type", content_type);
        self.body = body.into();
        self
    }

    pub fn ip(mut self, ip: &str) -> Self {
        self.request = self.request.extension(ClientIp(ip.to_owned()));
        self
    }

    pub async fn send(self) -> Reply {
        let mut request = self.request.body(self.body).unwrap();
        if request.extensions().get::<ClientIp>().is_none() {
            request
                .extensions_mut()
                .insert(ClientIp(CLIENT_IP.to_owned()));
        }
        let (parts, body) = flowchat_api::handle(&self.api.ctx, request)
            .await
            .into_parts();
        let bytes = body.collect().await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            bytes,
            body,
        }
    }
}

impl TestApi {
    /// The test clock's time.
    pub fn now(&self) -> Timestamp {
        self.platform.now()
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            api: self,
            request: Request::builder().method(method).uri(path),
            body: Bytes::new(),
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Creates a session and returns (token, session_id).
    pub async fn session(&self, nickname: &str) -> (String, String) {
        let r = self
            .post("/api/session")
            .json(json!({ "nickname": nickname }))
            .ip(&format!("198.51.100.{}", nickname.len()))
            .send()
            .await;
        let body = r.json(201);
        (
            body["token"].as_str().unwrap().to_owned(),
            body["session_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Submits a chat message; returns (job_id, conversation_id).
    pub async fn submit(&self, token: &str, message: &str) -> (String, String) {
        let r = self
            .post("/api/chat")
            .token(token)
            .json(json!({ "message": message }))
            .send()
            .await;
        let body = r.json(202);
        (
            body["job_id"].as_str().unwrap().to_owned(),
            body["conversation_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Claims the next queued job, as a drain would.
    pub async fn claim(&self) -> Option<ClaimedJob> {
        let request = ClaimRequest {
            worker: "test-drain".to_owned(),
            max_jobs: 1,
            lease_ms: 60_000,
            max_attempts: 3,
            now: self.platform.now(),
        };
        self.store.claim(&request).await.unwrap().pop()
    }

    /// Claims the next job once one is queued: a drain running beside a
    /// handler that is still writing it. Yields rather than sleeps, so the
    /// handler's own (test-clock) waits cannot run out first.
    pub async fn claim_when_queued(&self) -> ClaimedJob {
        for _ in 0..100_000 {
            if let Some(claim) = self.claim().await {
                return claim;
            }
            tokio::task::yield_now().await;
        }
        panic!("no job was queued");
    }

    /// Claims the next job and answers it with `answer`, citing one passage.
    pub async fn answer_next(&self, answer: &str) -> Job {
        let claim = self.claim_when_queued().await;
        self.store
            .complete_chat(&claim, &chat_answer(answer), self.platform.now())
            .await
            .unwrap();
        self.store.get_job(&claim.job.id).await.unwrap().unwrap()
    }

    /// Claims the next job and fails it for good.
    pub async fn fail_next(&self, error: &str) {
        let claim = self.claim_when_queued().await;
        self.store
            .fail_job(&claim, error, None, self.platform.now())
            .await
            .unwrap();
    }

    /// Stores a finished result for the next (non-chat) job.
    pub async fn complete_next(&self, result: JobResult) {
        let claim = self.claim().await.expect("a queued job");
        self.store
            .complete_job(&claim, &result, self.platform.now())
            .await
            .unwrap();
    }
}

pub fn chat_answer(answer: &str) -> ChatAnswer {
    ChatAnswer {
        answer: answer.to_owned(),
        citations: vec![Citation {
            index: 1,
            document_id: DocumentId::parse("0123456789abcdef0123456789abcdef", "document_id")
                .unwrap(),
            source: "policy.md".to_owned(),
            chunk: 0,
            page: None,
            heading: Some("Equipment".to_owned()),
            score: 1.5,
            excerpt: "a laptop and a headset".to_owned(),
        }],
        mode: AnswerMode::Extractive,
        context: vec![Passage {
            document_id: DocumentId::parse("0123456789abcdef0123456789abcdef", "document_id")
                .unwrap(),
            source: "policy.md".to_owned(),
            chunk: 0,
            page: None,
            heading: Some("Equipment".to_owned()),
            text: "## Equipment\n\nEveryone gets a laptop and a headset.".to_owned(),
            score: 1.5,
        }],
    }
}

pub const BOUNDARY: &str = "----FlowChatHandlerTestBoundary";

/// A `multipart/form-data` body with one part per (field, filename, content).
pub fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

impl TestApi {
    /// Uploads one file to `POST /api/documents`.
    pub async fn upload(&self, token: &str, filename: &str, content: &[u8]) -> Reply {
        self.post("/api/documents")
            .token(token)
            .body(
                &multipart_type(),
                form(&[("file", Some(filename), content)]),
            )
            .send()
            .await
    }
}
