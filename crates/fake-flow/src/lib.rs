//! Test-only fake of the CI&T Flow API, with fault injection.
//!
//! **This crate is never used by the product.** It exists only as a
//! dev-dependency of other crates' tests: the LLM client tests and the
//! end-to-end tests of the drain process point FlowChat at a [`FakeFlow`]
//! (via [`FakeFlow::env`]) instead of the real `https://flow.ciandt.com`, so
//! that they can run offline, deterministically and fast, and so that they can
//! provoke the failures the real service produces only occasionally (expired
//! tokens, `429` with `Retry-After`, `5xx`, slow answers, streams that break
//! off or never end, requests that never get an answer).
//!
//! The fake speaks the subset of the Flow API documented in
//! `docs/flow-api.md` as faithfully as practical:
//!
//! * `POST /auth-engine-api/v1/api-key/token` — client-credentials exchange
//!   for a bearer token whose lifetime is enforced;
//! * `POST /ai-orchestration-api/v1/openai/chat/completions` — OpenAI-shaped
//!   chat completion, plain or streamed as Server-Sent Events (including the
//!   Azure-style prompt-filter chunk with empty `choices` that real Flow sends
//!   first);
//! * `POST /ai-orchestration-api/v1/openai/embeddings` — OpenAI-shaped
//!   embeddings, 1536 floats each, deterministic and meaningful (texts sharing
//!   words are closer), see [`embedding`];
//! * `GET /ai-orchestration-api/v1/health` and `GET /auth-engine-api/v1/health`.
//!
//! It is strict about the headers and body fields the documentation requires,
//! and it records every deviation in [`FakeFlow::header_problems`], so a test
//! can assert that the client under test sends well-formed requests.
//!
//! Chat answers are a pure function of the last user message (see
//! [`expected_answer`]): they quote the words of the `<source n="1" ...>`
//! block, which lets end-to-end tests check that retrieved context really
//! reached the model without running one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

mod answer;
mod embed;
mod server;

pub use answer::{NO_ANSWER, expected_answer};
pub use embed::{EMBEDDING_DIMS, embedding};

/// The only client id the fake's token endpoint accepts.
pub const CLIENT_ID: &str = "fake-client-id";
/// The only client secret the fake's token endpoint accepts.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The only tenant (`FlowTenant` header) the fake accepts.
pub const TENANT: &str = "fake-tenant";
/// The agent name [`FakeFlow::env`] configures (`FlowAgent` header). The fake
/// accepts any non-empty agent name.
pub const AGENT: &str = "flowchat-tests";

/// Default `expires_in` of issued tokens, in seconds (Flow tokens live about an hour).
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

/// The endpoint a request was addressed to; faults are queued per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `POST /auth-engine-api/v1/api-key/token`
    Token,
    /// `POST /ai-orchestration-api/v1/openai/chat/completions`
    Chat,
    /// `POST /ai-orchestration-api/v1/openai/embeddings`
    Embeddings,
}

/// A misbehaviour to inject into the answer to one request, so tests can
/// exercise the client's retry, timeout and error paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (JSON error body `{"error":{"message":..}}`),
    /// optionally with a `Retry-After: <secs>` header. A `401` looks exactly
    /// like the answer to an expired token. An invalid status code (outside
    /// 100..=999) is answered as `500`.
    Status {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// Wait this long, then answer normally (slow answer).
    Delay { ms: u64 },
    /// Streaming chat: send `after_chunks` content chunks, then end the body
    /// abruptly without `data: [DONE]` (the chunked body is aborted, so the
    /// client sees a body error after the data sent so far). Non-streaming
    /// requests (including token and embeddings): reply 200 with a truncated
    /// JSON body. Only successful answers are cut; a request that fails
    /// validation gets its normal error (the fault is still consumed).
    CutStream { after_chunks: usize },
    /// Never answer (hold the request open until the client gives up) — for
    /// client timeouts. Released with a `503` when the fake is stopped.
    Hang,
    /// Streaming chat: answer with a stream that never ends — one more word
    /// every `every_ms`, never `data: [DONE]` — so no read timeout ever
    /// fires (a model that rambles on). Ends when the client goes away or
    /// the fake is stopped. Other requests are answered normally.
    Endless { every_ms: u64 },
}

/// One request the fake received, as recorded for test assertions.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `None` for paths that are not one of the three LLM/auth endpoints
    /// (health checks and unknown paths).
    pub target: Option<Target>,
    pub method: String,
    pub path: String,
    /// Header names lower-cased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// `Null` if the body was not JSON.
    pub body: serde_json::Value,
    /// What the fake answered; `0` while no answer has been sent (a
    /// [`Fault::Hang`] request, or one whose client went away first).
    pub status: u16,
}

/// State shared between the [`FakeFlow`] handle and the server task.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) problems: Vec<String>,
    pub(crate) faults: HashMap<Target, VecDeque<Fault>>,
    /// Currently valid tokens and when they were issued.
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) token_lifetime_secs: u64,
    pub(crate) chunk_delay_ms: u64,
    pub(crate) issued_tokens: u64,
    pub(crate) chat_completions: u64,
    /// Drawn from when a target's FIFO queue is empty.
    pub(crate) random_faults: HashMap<Target, RandomFaults>,
    /// Off: requests are counted but not kept (long chaos runs).
    pub(crate) record_requests: bool,
    pub(crate) received: HashMap<Target, u64>,
}

/// Faults injected at random, with a deterministic generator.
pub(crate) struct RandomFaults {
    /// (cumulative probability in millionths, fault, times injected).
    table: Vec<(u64, Fault, u64)>,
    state: u64,
}

impl RandomFaults {
    /// The fault for the next request, if the draw picks one.
    pub(crate) fn draw(&mut self) -> Option<Fault> {
        // splitmix64: tiny, and good enough to spread faults evenly.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let roll = (z ^ (z >> 31)) % 1_000_000;
        let entry = self.table.iter_mut().find(|(upto, _, _)| roll < *upto)?;
        entry.2 += 1;
        Some(entry.1.clone())
    }
}

impl Shared {
    fn new() -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                requests: Vec::new(),
                problems: Vec::new(),
                faults: HashMap::new(),
                tokens: HashMap::new(),
                token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
                chunk_delay_ms: 0,
                issued_tokens: 0,
                chat_completions: 0,
                random_faults: HashMap::new(),
                record_requests: true,
                received: HashMap::new(),
            }),
        }
    }

    /// Locks the state; a poisoned lock is still usable (a panicking test
    /// thread must not make every later request panic too).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake Flow server on `127.0.0.1:<random port>`.
///
/// All configuration methods take `&self`, so one `FakeFlow` (or an
/// `Arc<FakeFlow>`) can be shared by a test and the tasks it spawns. The
/// server stops when the handle is dropped or [`FakeFlow::stop`] is called.
pub struct FakeFlow {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FakeFlow {
    /// Binds 127.0.0.1:0 and serves on a tokio task of the current runtime.
    ///
    /// # Panics
    /// If no local port can be bound (a broken test environment).
    pub async fn start() -> FakeFlow {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("fake-flow: cannot bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("fake-flow: bound listener has no local address");
        let shared = Arc::new(Shared::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let router = server::router(server::App {
            shared: Arc::clone(&shared),
            shutdown: shutdown_rx.clone(),
        });
        let mut signal = shutdown_rx;
        let task = tokio::spawn(async move {
            // Streamed chunks leave at once, as from a real server, instead
            // of waiting out Nagle's algorithm against a delayed ACK.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Also returns when the sender is dropped.
                    let _ = signal.wait_for(|stop| *stop).await;
                })
                .await;
        });
        FakeFlow {
            addr,
            shared,
            shutdown,
            task: Some(task),
        }
    }

    /// e.g. "http://127.0.0.1:41234" (no trailing slash); use as FLOW_BASE_URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Variables that point FlowChat at this fake: LLM_PROVIDER=flow,
    /// FLOW_BASE_URL, FLOW_CLIENT_ID, FLOW_CLIENT_SECRET, FLOW_TENANT, FLOW_AGENT.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LLM_PROVIDER", "flow".to_owned()),
            ("FLOW_BASE_URL", self.base_url()),
            ("FLOW_CLIENT_ID", CLIENT_ID.to_owned()),
            ("FLOW_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("FLOW_TENANT", TENANT.to_owned()),
            ("FLOW_AGENT", AGENT.to_owned()),
        ]
    }

    /// `expires_in` of newly issued tokens, and enforced: a token older than
    /// this gets 401 on chat/embeddings (the check uses the current setting,
    /// so shortening it also expires older tokens). Default 3600.
    pub fn set_token_lifetime_secs(&self, secs: u64) {
        self.shared.lock().token_lifetime_secs = secs;
    }

    /// Every token issued so far becomes invalid (the next LLM call with one
    /// gets 401), as when Flow revokes tokens.
    pub fn expire_all_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Delay between streamed chunks (default 0) — lets tests see partial text.
    /// Read when a streaming request arrives.
    pub fn set_stream_chunk_delay_ms(&self, ms: u64) {
        self.shared.lock().chunk_delay_ms = ms;
    }

    /// Queue a fault for the next request to `target` (FIFO per target; each
    /// fault is consumed by exactly one request; when the queue is empty
    /// requests are answered normally).
    pub fn push_fault(&self, target: Target, fault: Fault) {
        self.shared
            .lock()
            .faults
            .entry(target)
            .or_default()
            .push_back(fault);
    }

    /// Injects faults at random into requests to `target` whose FIFO queue
    /// ([`FakeFlow::push_fault`]) is empty: each `(probability, fault)` is
    /// picked with its probability (0.0..=1.0; together at most 1), the rest
    /// are answered normally. The same `seed` gives the same sequence.
    /// An empty list turns random faults off.
    pub fn set_random_faults(&self, target: Target, faults: &[(f64, Fault)], seed: u64) {
        let mut inner = self.shared.lock();
        if faults.is_empty() {
            inner.random_faults.remove(&target);
            return;
        }
        let mut upto = 0u64;
        let table = faults
            .iter()
            .map(|(p, fault)| {
                upto += (p.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
                (upto.min(1_000_000), fault.clone(), 0)
            })
            .collect();
        inner
            .random_faults
            .insert(target, RandomFaults { table, state: seed });
    }

    /// How often each random fault of `target` was injected so far, in the
    /// order given to [`FakeFlow::set_random_faults`].
    pub fn random_faults_injected(&self, target: Target) -> Vec<(Fault, u64)> {
        self.shared
            .lock()
            .random_faults
            .get(&target)
            .map(|r| r.table.iter().map(|(_, f, n)| (f.clone(), *n)).collect())
            .unwrap_or_default()
    }

    /// Off: requests are still counted ([`FakeFlow::count`]) and checked
    /// ([`FakeFlow::header_problems`]) but not kept, so a long run does not
    /// hold every prompt in memory. On by default.
    pub fn set_record_requests(&self, on: bool) {
        self.shared.lock().record_requests = on;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests received for target (any status).
    pub fn count(&self, target: Target) -> usize {
        self.shared
            .lock()
            .received
            .get(&target)
            .copied()
            .unwrap_or(0) as usize
    }

    /// Human-readable list of every received request that lacked a documented
    /// header or body field; empty when all were well-formed.
    ///
    /// One line per problem, e.g.
    /// `POST /ai-orchestration-api/v1/openai/chat/completions: missing FlowAgent header`.
    /// Reported: missing/non-Bearer `Authorization`, missing `FlowTenant` or
    /// `FlowAgent` on LLM calls; missing or mismatching
    /// `x-ms-model-mesh-model-name` on embeddings; missing `FlowTenant` or
    /// `Content-Type: application/json` on the token call; missing or
    /// ill-typed body fields (everything answered `400`); an embeddings body
    /// without `user`; unknown paths and wrong methods. Not reported: wrong
    /// credentials, a wrong tenant value, expired or revoked tokens.
    pub fn header_problems(&self) -> Vec<String> {
        self.shared.lock().problems.clone()
    }

    /// Stops serving (also on Drop): stops accepting connections, releases
    /// [`Fault::Hang`] requests, lets in-flight answers finish for up to two
    /// seconds and then aborts the server task.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for FakeFlow {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for FakeFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFlow")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}
