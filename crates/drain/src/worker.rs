use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use flowchat_domain::config::DrainSettings;
use flowchat_knowledge::{ChunkSettings, KnowledgeIndex};
use flowchat_native::now;
use flowchat_store::{ClaimRequest, ClaimedJob, FailureOutcome, Store, StoreError};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::backoff::retry_delay_ms;
use crate::jobs::{self, JobEnv, Outcome};

/// Shortest and longest pause between polls of an idle queue.
const IDLE_POLL_MIN_MS: u64 = 25;
const IDLE_POLL_MAX_MS: u64 = 2_000;
/// How often a running drain reports that it is alive.
const HEARTBEAT_EVERY_MS: i64 = 5_000;

#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Names this drain in claims and heartbeats.
    pub worker_id: String,
    pub settings: DrainSettings,
    pub documents_path: PathBuf,
    pub chunking: ChunkSettings,
    pub top_k: usize,
    /// Jobs claimed and processed at once.
    pub concurrency: u32,
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub claimed: u32,
    pub succeeded: u32,
    pub retried: u32,
    pub dead_lettered: u32,
}

impl PassOutcome {
    fn add(&mut self, other: PassOutcome) {
        self.claimed += other.claimed;
        self.succeeded += other.succeeded;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
    }
}

pub struct Drain {
    store: Arc<dyn Store>,
    index: Arc<dyn KnowledgeIndex>,
    options: DrainOptions,
    wake: Arc<Notify>,
    last_heartbeat_ms: AtomicI64,
}

impl Drain {
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<dyn KnowledgeIndex>,
        options: DrainOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            index,
            options,
            wake: Arc::new(Notify::new()),
            last_heartbeat_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// Notify this to make an idle drain poll at once (the dev server does
    /// after queueing a job, so answers do not wait for the idle backoff).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn heartbeat_if_due(&self) {
        let now = now();
        let last = self.last_heartbeat_ms.load(Ordering::Relaxed);
        if now.as_millis().saturating_sub(last) < HEARTBEAT_EVERY_MS {
            return;
        }
        match self
            .store
            .record_heartbeat(&self.options.worker_id, now)
            .await
        {
            Ok(()) => self
                .last_heartbeat_ms
                .store(now.as_millis(), Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "could not record the drain heartbeat"),
        }
    }

    /// Claims up to `concurrency` jobs and processes them concurrently.
    pub async fn pass(self: &Arc<Self>) -> Result<PassOutcome, StoreError> {
        self.heartbeat_if_due().await;
        let claims = self
            .store
            .claim(&ClaimRequest {
                worker: self.options.worker_id.clone(),
                max_jobs: self.options.concurrency.max(1),
                lease_ms: self.options.settings.lease_secs as i64 * 1000,
                max_attempts: self.options.settings.max_attempts,
                now: now(),
            })
            .await?;
        let mut outcome = PassOutcome {
            claimed: claims.len() as u32,
            ..PassOutcome::default()
        };
        let mut tasks = tokio::task::JoinSet::new();
        for claim in claims {
            let drain = self.clone();
            tasks.spawn(async move { drain.process(claim).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(one) => outcome.add(one),
                Err(e) => {
                    tracing::error!(error = %e, "a job task panicked; its lease will expire and it will be retried")
                }
            }
        }
        Ok(outcome)
    }

    /// Processes jobs until the queue has nothing claimable or `budget` is spent.
    pub async fn run_until_idle(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<PassOutcome, StoreError> {
        let started = Instant::now();
        let mut total = PassOutcome::default();
        while started.elapsed() < budget {
            let pass = self.pass().await?;
            total.add(pass);
            if pass.claimed == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Runs until `shutdown` turns true: polls with adaptive backoff (at once
    /// while busy, up to 2 s when idle) and wakes early when notified.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut idle_ms = IDLE_POLL_MIN_MS;
        tracing::info!(worker = %self.options.worker_id, "drain started");
        while !*shutdown.borrow() {
            match self.pass().await {
                Ok(outcome) if outcome.claimed > 0 => {
                    idle_ms = IDLE_POLL_MIN_MS;
                    continue;
                }
                Ok(_) => idle_ms = (idle_ms * 2).min(IDLE_POLL_MAX_MS),
                Err(e) => {
                    tracing::warn!(error = %e, "drain pass failed; backing off");
                    idle_ms = IDLE_POLL_MAX_MS;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => idle_ms = IDLE_POLL_MIN_MS,
                _ = tokio::time::sleep(Duration::from_millis(idle_ms)) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(worker = %self.options.worker_id, "drain stopped");
    }

    async fn process(&self, claim: ClaimedJob) -> PassOutcome {
        let span = tracing::info_span!(
            "job",
            job_id = %claim.job.id,
            kind = claim.job.kind.as_str(),
            attempt = claim.job.attempts,
        );
        async move {
            let started = Instant::now();
            let env = JobEnv {
                store: self.store.as_ref(),
                index: self.index.as_ref(),
                documents_path: &self.options.documents_path,
                chunking: &self.options.chunking,
                top_k: self.options.top_k,
            };
            let result = jobs::run(&env, &claim.job.payload, now()).await;
            let mut outcome = PassOutcome {
                claimed: 0,
                ..PassOutcome::default()
            };
            let stored = match result {
                Ok(Outcome::Chat(answer)) => self
                    .store
                    .complete_chat(&claim, &answer, now())
                    .await
                    .map(|_| {
                        outcome.succeeded = 1;
                    }),
                Ok(Outcome::Other(result)) => self
                    .store
                    .complete_job(&claim, &result, now())
                    .await
                    .map(|_| {
                        outcome.succeeded = 1;
                    }),
                Err(error) => {
                    self.record_failure(&claim, &error.to_string(), &mut outcome)
                        .await
                }
            };
            match stored {
                Ok(()) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    succeeded = outcome.succeeded == 1,
                    "job processed"
                ),
                // The lease will expire and another pass will take the job again.
                Err(e) => tracing::error!(error = %e, "could not record the job's outcome"),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn record_failure(
        &self,
        claim: &ClaimedJob,
        error: &str,
        outcome: &mut PassOutcome,
    ) -> Result<(), StoreError> {
        let settings = &self.options.settings;
        let now = now();
        let retry_at = (claim.job.attempts < settings.max_attempts)
            .then(|| now.plus_millis(retry_delay_ms(settings, claim.job.attempts)));
        match self.store.fail_job(claim, error, retry_at, now).await? {
            FailureOutcome::RetryAt(at) => {
                outcome.retried = 1;
                tracing::warn!(error, retry_at = %at.to_rfc3339(), "job failed; will retry");
            }
            FailureOutcome::DeadLettered => {
                outcome.dead_lettered = 1;
                tracing::error!(error, "job failed its last attempt; dead-lettered");
            }
            FailureOutcome::StaleClaim => {
                tracing::warn!(
                    error,
                    "job failed but its claim was stale; another drain owns it"
                );
            }
        }
        Ok(())
    }
}
