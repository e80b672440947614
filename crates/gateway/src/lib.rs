//! # flowchat-gateway — the Upstash Redis REST protocol over a real redis-server
//!
//! **A development and test tool, not for production.** It lets FlowChat's Upstash
//! back end run locally, and in tests, exactly as it talks to Upstash: same routes,
//! same JSON answers, same status codes, same refusals (blocking commands).
//!
//! - `POST /` with `["SET","k","v","EX",100]` → `200 {"result": ...}`, or
//!   `400 {"error": "ERR ..."}` when Redis answers with an error.
//! - `POST /pipeline` with `[[...],[...]]` → `200 [{"result"} | {"error"}, ...]` (not atomic).
//! - `POST /multi-exec` with `[[...],...]` → atomic; `200 [...]`, or a single
//!   `400 {"error": "EXECABORT ..."}` when Redis discards the transaction.
//! - `Authorization: Bearer <token>` is required (`401 {"error":"Unauthorized"}`).
//! - `Upstash-Encoding: base64` → every string in the answer is base64 except `OK`.
//! - Scripts flagged `#!lua flags=allow-key-locking` (Upstash-only) run on stock
//!   Redis: the gateway strips the flag and maps digests, so `EVAL`, `EVALSHA`,
//!   `SCRIPT LOAD` and `SCRIPT EXISTS` answer as Upstash does. It emulates the
//!   flag; it does not enforce that scripts touch only `KEYS` (see `scripts.rs`).
//! - Blocking commands → `400 {"error":"ERR blocking commands are not supported over REST"}`.
//! - Bodies over the limit (10 MB by default) → `413 {"error":"ERR max request size exceeded..."}`.
//! - Redis unreachable, or still loading its data after a restart (`LOADING`) →
//!   `503 {"error": ...}` within about a second; the gateway reconnects by itself
//!   once Redis is back.
//! - `GET /__gateway/stats`, `POST /__gateway/stats/reset` (token required): the
//!   number of protocol requests and of Redis commands since start, so tests can
//!   assert round trips. `GET /__gateway/health` (no token): `200` when Redis answers.
//!
//! In-process (tests):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowchat_gateway::{GatewayOptions, start};
//! let gateway = start(GatewayOptions::new("redis://127.0.0.1:6379", "secret").with_free_port()).await?;
//! println!("{}", gateway.url());
//! gateway.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! With the `testing` feature, [`testing::RedisServer`] starts a throwaway
//! redis-server and [`testing::TestGateway`] starts both.

mod backend;
mod options;
mod policy;
mod protocol;
mod reply;
mod scripts;
mod server;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use options::{DEFAULT_MAX_REQUEST_BYTES, GatewayOptions};
pub use policy::BLOCKING_ERROR;
pub use stats::{Stats, StatsSnapshot};

/// A gateway serving in this process. Dropping it stops it (in the background);
/// [`RunningGateway::shutdown`] stops it and waits.
pub struct RunningGateway {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    stats: Arc<Stats>,
}

impl RunningGateway {
    /// `http://ADDR`, the value for `UPSTASH_REDIS_REST_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters behind `/__gateway/stats`.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Zeroes the counters; returns the counts they had.
    pub fn reset_stats(&self) -> StatsSnapshot {
        self.stats.reset()
    }

    /// Stops accepting requests, lets the ones in flight finish (up to 5 s), and returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(joined) => joined.context("the gateway task failed")??,
                Err(_) => tracing::warn!("the gateway did not stop within 5 s"),
            }
        }
        Ok(())
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
    }
}

/// Binds the listener and serves in a background task. Redis is connected lazily,
/// so the gateway starts even when Redis is not up yet (requests then get 503).
pub async fn start(options: GatewayOptions) -> anyhow::Result<RunningGateway> {
    options.validate()?;
    let backend = backend::Backend::new(
        &options.redis_url,
        options.connect_timeout,
        options.command_timeout,
    )?;
    let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let shared = Arc::new(server::Shared {
        backend,
        stats: stats.clone(),
        scripts: scripts::ScriptTranslator::default(),
        token: options.token.clone(),
        max_request_bytes: options.max_request_bytes,
    });

    // Open the shared connection early so the first request does not pay for it.
    let warm = shared.clone();
    tokio::spawn(async move {
        if let Err(err) = warm.backend.ping().await {
            tracing::warn!(error = %err, "redis is not reachable yet; requests will get 503 until it is");
        }
    });

    let (signal, stop) = oneshot::channel::<()>();
    let app = server::router(shared);
    let task = tokio::spawn(async move {
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
    });
    tracing::info!(%addr, "flowchat-gateway serving the Upstash REST protocol");
    Ok(RunningGateway {
        addr,
        shutdown: Some(signal),
        task: Some(task),
        stats,
    })
}
