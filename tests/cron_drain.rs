//! Draining inside Vercel functions, in the cron deployment shape: the
//! function binaries (each on its own `VERCEL_DEV_PORT`, as Vercel's Rust
//! runtime runs them) behind `flowchat-vercel-router`, the Upstash store
//! (the real gateway over a throwaway redis-server), a real Chroma server
//! for the remote index, and the fake Flow server for the models.
//!
//! - `GET /api/cron/drain` refuses a missing or wrong `CRON_SECRET` (401, or
//!   503 while none is set), answers 409 with the embedded index, and with
//!   Chroma runs a pass that answers a queued chat job (after indexing the
//!   shared folder it finds in the function);
//! - `POST /api/chat` with the remote index answers 202 at once and then
//!   drains its own job (`DRAIN_AFTER_RESPONSE`), with no other drain;
//! - `latency_from_202_to_first_text` (ignored; a benchmark): p50/p95 from
//!   `POST /api/chat` to the first text on the job's event stream. Run it in
//!   a release build: `cargo nextest run --release -p flowchat --test
//!   cron_drain --run-ignored only` (see docs/benchmarks.md).
//!
//! The Chroma server is `$CHROMA_BIN`, else `chroma` on the PATH, else
//! `.venv-chroma/bin/chroma` (`scripts/test` installs it), started by
//! `flowchat_knowledge::testing::ChromaServer`; without one the tests that
//! need it fail, never skip.

#[path = "http_suite/client.rs"]
#[allow(dead_code)]
mod client;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::Target;
use flowchat_fake_flow::{FakeFlow, Fault, Target as FlowTarget};
use flowchat_gateway::testing::TestGateway;
use flowchat_knowledge::testing::ChromaServer;
use flowchat_vercel_router::VercelRouter;
use serde_json::Value;

const SECRET: &str = "cron-drain-test-secret-0123456789abcdef";
const CRON_SECRET: &str = "cron-secret-for-the-tests-0123456789";
const POLICY: &str = "# Remote work policy\n\n## Equipment\n\nThe company provides a laptop, a monitor and a headset for home offices. \
Employees may claim a one-time allowance of 150 euros for a desk chair.\n";

type Env = BTreeMap<String, String>;

/// The store, the model and the shared folder of one test.
struct Stack {
    gateway: TestGateway,
    flow: FakeFlow,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        let gateway = TestGateway::start()
            .await
            .expect("the Upstash gateway over redis-server");
        let flow = FakeFlow::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("documents")).unwrap();
        std::fs::write(dir.path().join("documents/policy.md"), POLICY).unwrap();
        Stack { gateway, flow, dir }
    }

    /// A deployment's variables: its own namespace, the embedded index.
    fn env(&self, namespace: &str) -> Env {
        let mut env: Env = [
            ("FLOWCHAT_STORE", "upstash".to_owned()),
            ("UPSTASH_REDIS_REST_URL", self.gateway.url()),
            ("UPSTASH_REDIS_REST_TOKEN", self.gateway.token().to_owned()),
            ("FLOWCHAT_NAMESPACE", namespace.to_owned()),
            ("SESSION_SECRET", SECRET.to_owned()),
            ("RATE_LIMIT_CHAT_PER_MINUTE", "1000".to_owned()),
            ("RATE_LIMIT_IP_PER_MINUTE", "1000".to_owned()),
            ("EMBEDDINGS_PROVIDER", "flow".to_owned()),
            ("LLM_RETRY_BASE_MS", "10".to_owned()),
            (
                "DOCUMENTS_PATH",
                self.dir.path().join("documents").display().to_string(),
            ),
            (
                "FLOWCHAT_DATA_DIR",
                self.dir.path().join("data").display().to_string(),
            ),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in self.flow.env() {
            env.insert(k.to_owned(), v);
        }
        env
    }
}

fn with(mut env: Env, vars: &[(&str, &str)]) -> Env {
    for (k, v) in vars {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

fn namespace(name: &str) -> String {
    let id: String = flowchat_startup::random_bytes()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{name}{id}")
}

// ------------------------------------------------------------- functions

const SESSION: (&str, &str) = ("/api/session", env!("CARGO_BIN_EXE_session"));
const CHAT: (&str, &str) = ("/api/chat", env!("CARGO_BIN_EXE_chat"));
const CHAT_ID: (&str, &str) = ("/api/chat/[id]", env!("CARGO_BIN_EXE_chat_id"));
const CHAT_EVENTS: (&str, &str) = (
    "/api/chat/[id]/events",
    env!("CARGO_BIN_EXE_chat_id_events"),
);
const CRON: (&str, &str) = ("/api/cron/drain", env!("CARGO_BIN_EXE_cron_drain"));

/// Function binaries, each on its own `VERCEL_DEV_PORT`, behind Vercel's
/// routing; killed when dropped.
struct Deployment {
    router: Option<VercelRouter>,
    children: Vec<Child>,
    target: Target,
    _web: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Deployment {
    async fn start(env: &Env, functions: &[(&'static str, &'static str)]) -> Deployment {
        let mut children = Vec::new();
        let mut routes = Vec::new();
        for (route, binary) in functions {
            let port = free_port();
            let child = Command::new(binary)
                .env_clear()
                .envs(env)
                .env("VERCEL_DEV_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
            children.push(child);
            routes.push((*route, port));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, (route, port)) in routes.iter().enumerate() {
            while tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .is_err()
            {
                if let Ok(Some(status)) = children[i].try_wait() {
                    panic!("the function for {route} exited before listening: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "the function for {route} did not listen"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let web = tempfile::tempdir().unwrap();
        let router = flowchat_vercel_router::start(web.path().to_owned(), routes)
            .await
            .expect("the Vercel router");
        let target = Target::new(router.url(), "Vercel functions".into());
        Deployment {
            router: Some(router),
            children,
            target,
            _web: web,
        }
    }

    async fn stop(mut self) {
        if let Some(router) = self.router.take() {
            router.stop().await;
        }
    }

    async fn cron(&self, bearer: Option<&str>) -> client::Reply {
        let mut req = self.target.client.get(self.target.at("/api/cron/drain"));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.target.raw(req).await
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn assert_problem(reply: &client::Reply, status: u16, mentions: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{}",
        reply.body
    );
    assert_eq!(reply.body["status"], status, "{}", reply.body);
    assert!(
        reply.body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:flowchat:problem:")),
        "{}",
        reply.body
    );
    assert!(reply.body["request_id"].is_string(), "{}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(mentions), "{detail}");
}

// ---------------------------------------------------------------- Chroma

/// The settings that put a deployment's index on `chroma`.
fn on_chroma(chroma: &ChromaServer, env: Env) -> Env {
    with(
        env,
        &[("VECTOR_STORE", "chroma"), ("CHROMA_URL", &chroma.url())],
    )
}

// ----------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_route_refuses_a_missing_or_wrong_secret_and_the_embedded_index() {
    let stack = Stack::start().await;
    let mut env = stack.env(&namespace("cronauth"));
    // As the functions are deployed for a Render drain: no model secrets.
    env.remove("FLOW_CLIENT_SECRET");

    let unset = Deployment::start(&env, &[CRON]).await;
    let reply = unset.cron(Some(CRON_SECRET)).await;
    assert_problem(&reply, 503, "CRON_SECRET is not set");
    unset.stop().await;

    let deployed = Deployment::start(&with(env, &[("CRON_SECRET", CRON_SECRET)]), &[CRON]).await;
    assert_problem(&deployed.cron(None).await, 401, "CRON_SECRET");
    let wrong = format!("{CRON_SECRET}x");
    for bad in ["", "nope", &CRON_SECRET[..CRON_SECRET.len() - 1], &wrong] {
        let reply = deployed.cron(Some(bad)).await;
        assert_problem(&reply, 401, "Bearer <CRON_SECRET>");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let basic = deployed
        .target
        .raw(
            deployed
                .target
                .client
                .get(deployed.target.at("/api/cron/drain"))
                .header("authorization", format!("Basic {CRON_SECRET}")),
        )
        .await;
    assert_problem(&basic, 401, "CRON_SECRET");
    let post = deployed
        .target
        .raw(
            deployed
                .target
                .client
                .post(deployed.target.at("/api/cron/drain"))
                .bearer_auth(CRON_SECRET),
        )
        .await;
    assert_problem(&post, 405, "GET");

    // The right secret, but the embedded index: nothing to drain with here.
    let reply = deployed.cron(Some(CRON_SECRET)).await;
    assert_problem(&reply, 409, "VECTOR_STORE=chroma");
    assert_eq!(
        reply.body["type"],
        "urn:flowchat:problem:remote-index-required"
    );
    assert!(reply.body["detail"].as_str().unwrap().contains("Render"));
    deployed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_route_answers_a_queued_chat_job_over_chroma() {
    let stack = Stack::start().await;
    let chroma = ChromaServer::start().await;
    let env = on_chroma(
        &chroma,
        with(
            stack.env(&namespace("cron")),
            &[
                ("CRON_SECRET", CRON_SECRET),
                ("DRAIN_AFTER_RESPONSE", "off"),
            ],
        ),
    );
    let deployment = Deployment::start(&env, &[SESSION, CHAT, CHAT_ID, CRON]).await;
    let site = &deployment.target;

    let (token, _) = site.session("cron-user").await;
    let accepted = site
        .submit(&token, "How much is the desk chair allowance?", None)
        .await;
    let job_id = accepted["job_id"].as_str().unwrap();
    // No drain runs: the job waits for the cron.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = site.get(&format!("/api/chat/{job_id}"), Some(&token)).await;
    assert_eq!(waiting.body["status"], "queued", "{}", waiting.body);

    let reply = deployment.cron(Some(CRON_SECRET)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body["claimed"], 1, "{}", reply.body);
    assert_eq!(reply.body["succeeded"], 1, "{}", reply.body);
    assert_eq!(reply.body["retried"], 0, "{}", reply.body);
    assert_eq!(reply.body["dead_lettered"], 0, "{}", reply.body);
    assert_eq!(reply.body["namespace"], env["FLOWCHAT_NAMESPACE"]);

    let job = site.wait_job(&token, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The model quoted the passage the pass's folder scan put in Chroma.
    let answer = job["answer"].as_str().unwrap();
    assert!(answer.starts_with("According to [1]"), "{job}");
    assert!(job["citations"].to_string().contains("policy.md"), "{job}");

    // A second tick finds nothing to do.
    let idle = deployment.cron(Some(CRON_SECRET)).await;
    assert_eq!(idle.status, 200, "{}", idle.body);
    assert_eq!(idle.body["claimed"], 0, "{}", idle.body);

    // The question's vector cannot be made: Chroma finds nothing without
    // one, so the job is retried, never answered without a source (it used
    // to succeed with an answer citing nothing).
    let unavailable = Fault::Status {
        status: 503,
        retry_after_secs: None,
    };
    stack
        .flow
        .set_random_faults(FlowTarget::Embeddings, &[(1.0, unavailable)], 1);
    let accepted = site
        .submit(&token, "How much is the desk chair allowance?", None)
        .await;
    let job_id = accepted["job_id"].as_str().unwrap();
    let reply = deployment.cron(Some(CRON_SECRET)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["succeeded"], 0, "{}", reply.body);
    assert_eq!(reply.body["retried"], 1, "{}", reply.body);
    stack.flow.set_random_faults(FlowTarget::Embeddings, &[], 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = deployment.cron(Some(CRON_SECRET)).await;
        if reply.body["succeeded"] == 1 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let job = site.wait_job(&token, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["citations"].to_string().contains("policy.md"), "{job}");
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_function_answers_after_its_202_with_no_other_drain() {
    let stack = Stack::start().await;
    let chroma = ChromaServer::start().await;
    // DRAIN_AFTER_RESPONSE is on by default with the remote index.
    let env = on_chroma(&chroma, stack.env(&namespace("after")));
    let deployment = Deployment::start(&env, &[SESSION, CHAT, CHAT_ID, CHAT_EVENTS]).await;
    let site = &deployment.target;
    let (token, _) = site.session("eager-user").await;

    // A slow answer (40 words, 50 ms apart): the 202 must not wait for it.
    stack.flow.set_stream_chunk_delay_ms(50);
    let started = Instant::now();
    let accepted = site
        .submit(&token, "Tell me about equipment [[fake:long]]", None)
        .await;
    let answered_202 = started.elapsed();
    assert!(
        answered_202 < Duration::from_millis(1500),
        "the 202 took {answered_202:?}: it waited for the drain"
    );
    let job_id = accepted["job_id"].as_str().unwrap();
    let events = site
        .events_until(
            &token,
            job_id,
            &["event: answer", "event: failed"],
            Duration::from_secs(20),
        )
        .await;
    assert!(events.contains("event: partial"), "{events}");
    assert!(events.contains("event: answer"), "{events}");
    let job = site.wait_job(&token, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["answer"].as_str().unwrap().ends_with("word40"), "{job}");
    deployment.stop().await;
}

/// p50/p95 from sending `POST /api/chat` to the first text (`partial` or
/// `answer` event) on the job's event stream, with an instant fake model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in a release build (docs/benchmarks.md)"]
async fn latency_from_202_to_first_text() {
    let submissions: usize = std::env::var("CRON_BENCH_SUBMISSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let stack = Stack::start().await;
    let chroma = ChromaServer::start().await;
    let env = on_chroma(&chroma, stack.env(&namespace("bench")));
    let deployment = Deployment::start(&env, &[SESSION, CHAT, CHAT_ID, CHAT_EVENTS, CRON]).await;
    let site = &deployment.target;
    let (token, _) = site.session("bench-user").await;
    // The first submission of a fresh instance (its drain assembled at
    // start-up, the Flow token not fetched yet), reported apart.
    let started = Instant::now();
    let first = site
        .submit(&token, "What equipment is provided?", None)
        .await;
    let first_id = first["job_id"].as_str().unwrap();
    site.events_until(
        &token,
        first_id,
        &["event: partial", "event: answer"],
        Duration::from_secs(30),
    )
    .await;
    let cold = started.elapsed();
    site.wait_job(&token, first_id).await;

    let mut to_202 = Vec::new();
    let mut to_text = Vec::new();
    for i in 0..submissions {
        let started = Instant::now();
        let accepted = site
            .submit(&token, &format!("What equipment is provided? ({i})"), None)
            .await;
        to_202.push(started.elapsed());
        let job_id = accepted["job_id"].as_str().unwrap();
        site.events_until(
            &token,
            job_id,
            &["event: partial", "event: answer"],
            Duration::from_secs(30),
        )
        .await;
        to_text.push(started.elapsed());
        site.wait_job(&token, job_id).await;
    }
    let (p50_202, p95_202) = percentiles(&mut to_202);
    let (p50, p95) = percentiles(&mut to_text);
    eprintln!(
        "{submissions} submissions: POST /api/chat -> 202: p50 {p50_202:.0?}, p95 {p95_202:.0?}; \
         -> first text: p50 {p50:.0?}, p95 {p95:.0?} (a fresh instance's first: {cold:.0?})"
    );
    let report: Value = serde_json::json!({
        "submissions": submissions,
        "fresh_instance_first_text_ms": cold.as_millis() as u64,
        "to_202_ms": {"p50": p50_202.as_millis() as u64, "p95": p95_202.as_millis() as u64},
        "to_first_text_ms": {"p50": p50.as_millis() as u64, "p95": p95.as_millis() as u64},
    });
    println!("{report}");
    deployment.stop().await;
}

/// Nearest-rank p50 and p95.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let rank = |p: f64| {
        let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    (rank(0.50), rank(0.95))
}
