//! One HTTP suite, four runtimes: the same cases against the dev server, the
//! 13 Vercel function binaries behind a router that applies Vercel's
//! routing, the `flowchat-lambda` binary under the Lambda Runtime API
//! emulator, and the Cloudflare Worker under `wrangler dev`
//! (`scripts/edge-dev`).
//!
//! Every runtime runs over the same kind of store: Upstash, spoken to through
//! the real gateway over a throwaway redis-server. Per runtime (one test,
//! one process under nextest) the suite starts:
//!
//! - instance **A** (namespace A): generous limits, `CORS_ORIGINS`, an
//!   operator token; a drain answers (the dev server's own, else one
//!   assembled in this process with `flowchat_drain::assemble`, as the
//!   `flowchat-drain` binary does), and the shared documents folder is
//!   indexed through `POST /api/documents/ingest`;
//! - instance **B** (namespace B): no drain, 3 messages per session and 12
//!   writes per address a minute — for rate limits, for proving that event
//!   streams are streamed, and for namespace isolation.
//!
//! Then every case runs in turn (each in its own task, so one failure does
//! not hide the others), and the test fails listing each failed case. A
//! runtime that cannot start fails the test with the reason; none is ever
//! skipped.
//!
//! Run: `cargo nextest run -p flowchat --test http_suite` (the Lambda
//! runtime also needs the `flowchat-lambda` binary: `cargo build -p
//! flowchat-lambda`, or run the whole workspace's tests).

mod cases;
mod client;
mod lambda;
mod runtimes;
mod vercel_router;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cases::Ctx;
use client::Target;
use runtimes::{ADMIN, HarnessDrain, Role, Runtime, Stack, cannot_start};
use serde_json::json;

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Case = (&'static str, fn(Arc<Ctx>) -> CaseFuture);

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((
            stringify!($name),
            (|ctx: Arc<Ctx>| -> CaseFuture { Box::pin(async move { cases::$name(&ctx).await }) })
                as fn(Arc<Ctx>) -> CaseFuture,
        )),*]
    };
}

/// The cases, in order (`rate_limits` spends namespace B's allowance: last).
fn all_cases(runtime: Runtime) -> Vec<Case> {
    let mut list: Vec<Case> = cases![
        health,
        session,
        chat_long_poll,
        chat_sse,
        conversations,
        feedback,
        completions,
        documents,
        problems,
        too_large_sent,
        too_large_declared,
        cors,
        namespace_isolation,
        rate_limits,
    ];
    if runtime == Runtime::Vercel {
        list.extend::<Vec<Case>>(cases![static_files_first]);
    }
    list
}

const CASE_TIMEOUT: Duration = Duration::from_secs(120);

async fn run_suite(runtime: Runtime) {
    let started = Instant::now();
    let stack = Stack::start()
        .await
        .unwrap_or_else(|e| panic!("{runtime}: the shared store did not start: {e:#}"));
    let env_a = stack.env(Role::Primary);
    let env_b = stack.env(Role::Secondary);

    let drain = if runtime.needs_harness_drain() {
        Some(
            HarnessDrain::start(&env_a)
                .await
                .unwrap_or_else(|e| panic!("{runtime}: the drain did not start: {e:#}")),
        )
    } else {
        None
    };
    let (a, b) = if runtime == Runtime::Worker {
        // One at a time: the first builds the Worker, the second reuses it.
        let a = runtime.start(&stack, &env_a, Role::Primary).await;
        let b = match &a {
            Ok(_) => runtime.start(&stack, &env_b, Role::Secondary).await,
            Err(_) => Err(anyhow::anyhow!("not started: the primary instance failed")),
        };
        (a, b)
    } else {
        tokio::join!(
            runtime.start(&stack, &env_a, Role::Primary),
            runtime.start(&stack, &env_b, Role::Secondary),
        )
    };
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let mut reasons = Vec::new();
            for (role, result) in [(Role::Primary, a), (Role::Secondary, b)] {
                match result {
                    Ok(running) => running.stop().await,
                    Err(e) => reasons.push(format!("{:#}", cannot_start(runtime, role, e))),
                }
            }
            if let Some(drain) = drain {
                drain.stop().await;
            }
            panic!(
                "{runtime}: FAILED, the runtime did not start (not skipped):\n{}",
                reasons.join("\n")
            );
        }
    };
    let ctx = Arc::new(Ctx {
        runtime,
        a: Target::new(a.url.clone(), format!("{runtime} (namespace A)")),
        b: Target::new(b.url.clone(), format!("{runtime} (namespace B)")),
    });
    eprintln!(
        "{runtime}: started in {:.1} s (A at {}, B at {})",
        started.elapsed().as_secs_f64(),
        ctx.a.url,
        ctx.b.url
    );

    let mut failures = Vec::new();
    match tokio::time::timeout(Duration::from_secs(120), ingest_shared_folder(&ctx.a)).await {
        Ok(Ok(())) => {
            for (name, case) in all_cases(runtime) {
                let case_started = Instant::now();
                let outcome =
                    tokio::time::timeout(CASE_TIMEOUT, tokio::spawn(case(ctx.clone()))).await;
                let took = case_started.elapsed().as_secs_f64();
                match outcome {
                    Ok(Ok(())) => eprintln!("{runtime}: {name} ok ({took:.1} s)"),
                    Ok(Err(join)) => {
                        let message = panic_message(join);
                        eprintln!("{runtime}: {name} FAILED ({took:.1} s): {message}");
                        failures.push(format!("{name}: {message}"));
                    }
                    Err(_) => {
                        eprintln!("{runtime}: {name} FAILED: timed out after {CASE_TIMEOUT:?}");
                        failures.push(format!("{name}: timed out after {CASE_TIMEOUT:?}"));
                    }
                }
            }
        }
        Ok(Err(message)) => failures.push(format!("setup (ingest the shared folder): {message}")),
        Err(_) => failures.push("setup (ingest the shared folder): timed out".into()),
    }

    a.stop().await;
    b.stop().await;
    if let Some(drain) = drain {
        drain.stop().await;
    }
    eprintln!(
        "{runtime}: {} case(s) failed, {:.1} s in all",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    let logs = if runtime == Runtime::Worker {
        format!(
            "\n(scripts/edge-dev's output: {}/http-suite-edge-dev-{{a,b}}.log)",
            env!("CARGO_TARGET_TMPDIR")
        )
    } else {
        String::new()
    };
    assert!(
        failures.is_empty(),
        "{runtime}: {} case(s) failed:\n- {}{logs}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// The operator asks the drain to index the shared folder (the dev server
/// has already done so at start: then nothing changes).
async fn ingest_shared_folder(a: &Target) -> Result<(), String> {
    let task = {
        let a = a.clone();
        tokio::spawn(async move {
            let r = a
                .post("/api/documents/ingest", Some(ADMIN), json!({}))
                .await;
            assert_eq!(r.status, 202, "POST /api/documents/ingest: {}", r.body);
            let job = a.wait_job(ADMIN, r.body["job_id"].as_str().unwrap()).await;
            assert_eq!(job["status"], "succeeded", "{job}");
            let names = a.document_names(None).await;
            assert_eq!(names, ["expenses.txt", "policy.md"]);
        })
    };
    task.await.map_err(panic_message)
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => format!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server() {
    run_suite(Runtime::DevServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vercel_functions() {
    run_suite(Runtime::Vercel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda() {
    run_suite(Runtime::Lambda).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_worker() {
    run_suite(Runtime::Worker).await;
}
