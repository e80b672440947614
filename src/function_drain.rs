//! A drain inside a Vercel function: the cron route's bounded pass
//! (`/api/cron/drain`) and the short pass the chat function runs after it
//! has answered 202 (`DRAIN_AFTER_RESPONSE`).
//!
//! A function has no persistent disk, so both need the remote knowledge
//! index (`VECTOR_STORE=chroma`) and the shared store (Upstash). The drain is
//! assembled on first use (`flowchat_drain::assemble`, as the
//! `flowchat-drain` binary does) and kept for the warm instance's later
//! invocations. It serves the function's own namespace only.
//!
//! A pass never outlives the function: claiming stops after its budget,
//! jobs already claimed are finished, and a hard stop at
//! [`FUNCTION_MAX_DURATION_SECS`] − [`HARD_STOP_MARGIN_SECS`] −
//! `DRAIN_SHUTDOWN_GRACE_SECONDS` starts the drain's shutdown: jobs still in
//! flight get the grace period, then are released for the next drain, all
//! before Vercel ends the invocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flowchat_config::{DrainConfig, FUNCTION_MAX_DURATION_SECS, HARD_STOP_MARGIN_SECS};
use flowchat_domain::Platform;
use flowchat_domain::config::{Config, StoreKind, VectorStore};
use flowchat_drain::{Drain, DrainIdentity, PassOutcome};
use flowchat_store::Store;
use tokio::sync::{OnceCell, oneshot, watch};

/// Jobs a function's drain processes at once.
const CRON_CONCURRENCY: u32 = 4;
const AFTER_RESPONSE_CONCURRENCY: u32 = 2;

/// Why a function cannot drain here (the cron route answers 409 with it).
pub fn unsuitable(app: &Config) -> Option<String> {
    if app.vector_store == VectorStore::Sqlite {
        return Some(
            "the embedded knowledge index (VECTOR_STORE unset or `sqlite`) lives on a disk, and a \
             Vercel function has no persistent disk: drain here only with a remote index \
             (VECTOR_STORE=chroma with CHROMA_URL), or run the drain on Render \
             (flowchat-drain, see docs/deployment.md)"
                .to_owned(),
        );
    }
    if app.store != StoreKind::Upstash {
        return Some(
            "the embedded store (FLOWCHAT_STORE=sqlite) is one file per process: a function's \
             drain needs the shared store, FLOWCHAT_STORE=upstash"
                .to_owned(),
        );
    }
    None
}

/// How long a pass claims and when it must stop at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassLimits {
    /// Claiming stops after this; claimed jobs are finished.
    pub budget: Duration,
    /// The drain's shutdown starts here (then the grace period, then
    /// release), so nothing runs past the function's `maxDuration`.
    pub hard_stop: Duration,
}

impl PassLimits {
    pub fn new(budget_secs: u64, grace_secs: u64) -> PassLimits {
        let hard_stop = FUNCTION_MAX_DURATION_SECS
            .saturating_sub(HARD_STOP_MARGIN_SECS)
            .saturating_sub(grace_secs)
            .max(budget_secs);
        PassLimits {
            budget: Duration::from_secs(budget_secs),
            hard_stop: Duration::from_secs(hard_stop),
        }
    }
}

/// A drain for the function's namespace, assembled on first use and kept
/// for the warm instance's later invocations.
pub struct FunctionDrain {
    config: DrainConfig,
    store: Option<Arc<dyn Store>>,
    platform: Arc<dyn Platform>,
    identity: (String, u32),
    drain: OnceCell<Arc<Drain>>,
}

impl FunctionDrain {
    /// The cron route's: its own store client, [`CRON_CONCURRENCY`] jobs at once.
    pub fn for_cron(config: &DrainConfig, platform: Arc<dyn Platform>) -> FunctionDrain {
        FunctionDrain::new(config, None, platform, "vercel-cron", CRON_CONCURRENCY)
    }

    /// The chat function's: over the store client it already has.
    pub fn after_response(
        config: &DrainConfig,
        store: Arc<dyn Store>,
        platform: Arc<dyn Platform>,
    ) -> FunctionDrain {
        FunctionDrain::new(
            config,
            Some(store),
            platform,
            "vercel-chat",
            AFTER_RESPONSE_CONCURRENCY,
        )
    }

    fn new(
        config: &DrainConfig,
        store: Option<Arc<dyn Store>>,
        platform: Arc<dyn Platform>,
        role: &str,
        concurrency: u32,
    ) -> FunctionDrain {
        // Only the namespace this deployment writes (production, or this
        // preview branch), even where the settings would serve several.
        let config = config.for_namespace(&config.app.namespace);
        flowchat_knowledge::extract::configure(config.extract.clone());
        let region = flowchat_startup::env_var("VERCEL_REGION").unwrap_or_else(|| "local".into());
        let worker_id = format!("{role}-{region}-{}", std::process::id());
        FunctionDrain {
            config,
            store,
            platform,
            identity: (worker_id, concurrency),
            drain: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// The drain, assembled if this is the first use (a failure is retried
    /// by the next use).
    pub async fn get(&self) -> Result<Arc<Drain>, String> {
        self.drain
            .get_or_try_init(|| async {
                let store = match &self.store {
                    Some(store) => store.clone(),
                    None => {
                        flowchat_startup::open_store(&self.config.app, self.config.upstash.clone())
                            .await
                            .map_err(|e| e.to_string())?
                    }
                };
                let drain = flowchat_drain::assemble(
                    &self.config,
                    store,
                    self.platform.clone(),
                    DrainIdentity {
                        worker_id: self.identity.0.clone(),
                        concurrency: self.identity.1,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(drain)
            })
            .await
            .cloned()
    }

    /// One bounded pass over the namespace's queue (see the module's doc).
    pub async fn pass(&self, limits: PassLimits) -> Result<PassOutcome, String> {
        let drain = self.get().await?;
        let (stop, stopped) = watch::channel(false);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(limits.hard_stop).await;
            let _ = stop.send(true);
        });
        let outcome = drain
            .run_until_idle_or_shutdown(limits.budget, stopped)
            .await
            .map_err(|e| e.to_string());
        timer.abort();
        outcome
    }
}

/// A response body that reports when the server is done with it: dropped
/// after its last frame was written (or when the client went away). The
/// chat function starts its drain pass only then, so the 202 leaves first.
pub struct SignalWhenSent<B> {
    inner: B,
    sent: Option<oneshot::Sender<()>>,
}

impl<B> SignalWhenSent<B> {
    pub fn new(inner: B) -> (SignalWhenSent<B>, oneshot::Receiver<()>) {
        let (sent, receiver) = oneshot::channel();
        (
            SignalWhenSent {
                inner,
                sent: Some(sent),
            },
            receiver,
        )
    }
}

impl<B> Drop for SignalWhenSent<B> {
    fn drop(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl<B> hyper::body::Body for SignalWhenSent<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_stops_claiming_first_and_stops_before_the_function_ends() {
        let cron = PassLimits::new(30, 20);
        assert_eq!(cron.budget, Duration::from_secs(30));
        assert_eq!(cron.hard_stop, Duration::from_secs(35));
        // The grace period after the hard stop still ends before maxDuration.
        assert!(
            cron.hard_stop.as_secs() + 20 + HARD_STOP_MARGIN_SECS <= FUNCTION_MAX_DURATION_SECS
        );
        let long_grace = PassLimits::new(30, 3600);
        assert_eq!(long_grace.hard_stop, Duration::from_secs(30));
    }

    #[test]
    fn the_vercel_json_max_duration_is_the_one_the_passes_plan_for() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vercel.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for function in ["api/cron/drain.rs", "api/chat.rs"] {
            assert_eq!(
                json["functions"][function]["maxDuration"], FUNCTION_MAX_DURATION_SECS,
                "{function}"
            );
        }
        let crons = json["crons"].as_array().expect("crons");
        assert!(
            crons
                .iter()
                .any(|c| c["path"] == "/api/cron/drain" && c["schedule"] == "* * * * *"),
            "{crons:?}"
        );
    }

    #[tokio::test]
    async fn the_signal_fires_when_the_body_is_dropped() {
        let (body, sent) = SignalWhenSent::new(http_body_util::Full::new(Bytes::from("{}")));
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(2));
        drop(body);
        sent.await.unwrap();
    }
}
