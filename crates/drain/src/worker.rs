use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use flowchat_domain::Platform;
use flowchat_domain::config::DrainSettings;
use flowchat_domain::model::{IngestReport, JobPayload};
use flowchat_knowledge::{ChunkEmbedder, ChunkSettings, KnowledgeIndex};
use flowchat_store::{ClaimRequest, ClaimedJob, FailureOutcome, Store, StoreError};
use tokio::sync::{Notify, RwLock, RwLockWriteGuard, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backoff::retry_delay_ms;
use crate::jobs::{self, Answerer, JobEnv, JobError, Outcome, Timing};

/// Shortest and longest pause between polls of an idle queue.
const IDLE_POLL_MIN_MS: u64 = 25;
const IDLE_POLL_MAX_MS: u64 = 2_000;
/// How often a running drain reports that it is alive.
const HEARTBEAT_EVERY_MS: i64 = 5_000;

#[derive(Clone)]
pub struct DrainOptions {
    /// Names this drain in claims and heartbeats.
    pub worker_id: String,
    pub settings: DrainSettings,
    pub documents_path: PathBuf,
    pub chunking: ChunkSettings,
    pub top_k: usize,
    /// Quoted passages, or a language model.
    pub answerer: Answerer,
    /// Vectors for chunks and questions; `None` retrieves by words only.
    pub embedder: Option<Arc<dyn ChunkEmbedder>>,
    /// Jobs claimed and processed at once.
    pub concurrency: u32,
    /// The clock (and RNG) of the process: the system's natively, a fixed
    /// one in tests.
    pub platform: Arc<dyn Platform>,
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassOutcome {
    pub claimed: u32,
    pub succeeded: u32,
    pub retried: u32,
    pub dead_lettered: u32,
    /// Given back unfinished at shutdown, for another drain to take.
    pub released: u32,
}

impl PassOutcome {
    /// One log line with the counts, under `message`.
    pub fn log(&self, namespace: &str, message: &str) {
        tracing::info!(
            namespace,
            claimed = self.claimed,
            succeeded = self.succeeded,
            retried = self.retried,
            dead_lettered = self.dead_lettered,
            released = self.released,
            "{message}"
        );
    }

    pub fn add(&mut self, other: PassOutcome) {
        self.claimed += other.claimed;
        self.succeeded += other.succeeded;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.released += other.released;
    }
}

pub struct Drain {
    store: Arc<dyn Store>,
    index: Arc<dyn KnowledgeIndex>,
    options: DrainOptions,
    wake: Arc<Notify>,
    /// Turns true when the shutdown grace period is over: jobs still in
    /// flight stop and release their claims.
    abort: watch::Sender<bool>,
    last_heartbeat_ms: AtomicI64,
    /// Held shared while a job (ingest, delete) or the folder scan writes
    /// the index; held alone by [`Drain::index_quiet`].
    index_writers: RwLock<()>,
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
            abort: watch::channel(false).0,
            last_heartbeat_ms: AtomicI64::new(i64::MIN),
            index_writers: RwLock::new(()),
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

    pub fn index(&self) -> &Arc<dyn KnowledgeIndex> {
        &self.index
    }

    pub fn embedder(&self) -> Option<&Arc<dyn ChunkEmbedder>> {
        self.options.embedder.as_ref()
    }

    fn now(&self) -> flowchat_domain::Timestamp {
        self.options.platform.now()
    }

    fn job_env(&self, last_attempt: bool) -> JobEnv<'_> {
        JobEnv {
            clock: self.options.platform.as_ref(),
            store: self.store.as_ref(),
            index: self.index.as_ref(),
            answerer: &self.options.answerer,
            embedder: self.options.embedder.as_deref(),
            last_attempt,
            documents_path: &self.options.documents_path,
            chunking: &self.options.chunking,
            top_k: self.options.top_k,
            partial_flush: Duration::from_millis(self.options.settings.partial_flush_ms as u64),
            lease: Duration::from_secs(self.options.settings.lease_secs as u64),
        }
    }

    /// Brings the index and the document catalog in step with the shared
    /// folder, as the ingest job does. The drain binary does it at every
    /// start, so a first deploy answers from the folder without an admin
    /// call; unchanged files are recognised by their content hash and cost
    /// one read each.
    pub async fn index_shared_folder(&self) -> Result<IngestReport, JobError> {
        let _writing = self.index_writers.read().await;
        jobs::ingest_shared_folder(&self.job_env(true), self.now()).await
    }

    /// What every drain does when it starts, before answering: the shared
    /// folder indexed, so a first deploy answers from it with no admin call
    /// (by content hash: an unchanged folder costs a read per file), then
    /// embeddings for documents that lack the configured model's (vectors are
    /// never mixed, so until then vector search would miss them). A folder
    /// that does not exist here (a Vercel function ships none) is left out:
    /// scanning it would drop every folder document from the index. Failures
    /// are logged; the drain answers from the index as it is.
    pub async fn prepare(&self) {
        let folder = &self.options.documents_path;
        if !folder.is_dir() {
            tracing::info!(folder = %folder.display(), "no shared documents folder here; not scanning it");
        } else {
            match self.index_shared_folder().await {
                Ok(report) => tracing::info!(
                    folder = %folder.display(),
                    added = report.added,
                    updated = report.updated,
                    unchanged = report.unchanged,
                    removed = report.removed,
                    failed = report.failed.len(),
                    "shared documents folder indexed"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    folder = %folder.display(),
                    "the shared documents folder could not be indexed; answering from the index as it is"
                ),
            }
        }
        let Some(embedder) = self.embedder() else {
            return;
        };
        match flowchat_knowledge::embed_missing(self.index.as_ref(), embedder.as_ref()).await {
            Ok(0) => {}
            Ok(documents) => tracing::info!(
                documents,
                model = embedder.model(),
                "documents embedded with the configured model"
            ),
            Err(error) => tracing::warn!(
                %error,
                "not every document could be embedded yet; the next start or folder scan retries"
            ),
        }
    }

    /// Waits until no job of this drain writes the index (ingest, delete,
    /// the folder scan) and keeps new ones from starting until the guard is
    /// dropped: they wait, claimed, and go on afterwards. The drain binary's
    /// scheduled backups run under it. Chat jobs only read and never wait.
    pub async fn index_quiet(&self) -> RwLockWriteGuard<'_, ()> {
        self.index_writers.write().await
    }

    async fn heartbeat_if_due(&self) {
        let now = self.now();
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

    async fn claim(&self, max_jobs: u32) -> Result<Vec<ClaimedJob>, StoreError> {
        self.heartbeat_if_due().await;
        self.store
            .claim(&ClaimRequest {
                worker: self.options.worker_id.clone(),
                max_jobs,
                lease_ms: self.options.settings.lease_secs as i64 * 1000,
                max_attempts: self.options.settings.max_attempts,
                now: self.now(),
            })
            .await
    }

    /// Claims up to `concurrency` jobs and processes them concurrently,
    /// returning when all of them are done. [`Drain::run`] and
    /// [`Drain::run_until_idle`] do not use it: there each slot claims its
    /// next job as soon as it is free.
    pub async fn pass(self: &Arc<Self>) -> Result<PassOutcome, StoreError> {
        let claims = self.claim(self.options.concurrency.max(1)).await?;
        let mut outcome = PassOutcome {
            claimed: claims.len() as u32,
            ..PassOutcome::default()
        };
        let mut tasks = JoinSet::new();
        for claim in claims {
            let drain = self.clone();
            tasks.spawn(async move { drain.process(claim).await });
        }
        while let Some(done) = tasks.join_next().await {
            reap(done, &mut outcome);
        }
        Ok(outcome)
    }

    /// Processes jobs until the queue has nothing claimable or `budget` is
    /// spent (the cron job's `--once`). A budget ends claiming, not work:
    /// jobs already claimed are finished.
    pub async fn run_until_idle(
        self: &Arc<Self>,
        budget: Duration,
    ) -> Result<PassOutcome, StoreError> {
        let (_never, shutdown) = watch::channel(false);
        self.run_until_idle_or_shutdown(budget, shutdown).await
    }

    /// [`Drain::run_until_idle`] that also stops on `shutdown` (see
    /// [`Drain::run`] for what stopping does to jobs in flight).
    ///
    /// Each of the `concurrency` slots claims its next job as soon as it is
    /// free, so a slow job holds one slot, not the drain. It stops claiming
    /// once a claim finds nothing and no job is in flight (a job in flight
    /// may still fail and be due again at once), or the budget is spent; a
    /// store error ends it too, after the jobs in flight are done.
    pub async fn run_until_idle_or_shutdown(
        self: &Arc<Self>,
        budget: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<PassOutcome, StoreError> {
        self.drive(Some(budget), &mut shutdown).await
    }

    /// Runs until `shutdown` turns true: each slot claims its next job as
    /// soon as it is free; with nothing to claim it polls with adaptive
    /// backoff (at once while busy, up to 2 s when idle) and wakes early when
    /// notified.
    ///
    /// On shutdown it claims nothing more; jobs in flight get the grace
    /// period (`DRAIN_SHUTDOWN_GRACE_SECONDS`) to finish, then are stopped
    /// and released unprocessed so another drain takes them at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Run again after an earlier run's shutdown (a namespace that went
        // idle and came back): jobs from now on are not aborted.
        self.abort.send_replace(false);
        tracing::info!(worker = %self.options.worker_id, "drain started");
        // Follow mode reports store errors and backs off; it never fails.
        let _ = self.drive(None, &mut shutdown).await;
        tracing::info!(worker = %self.options.worker_id, "drain stopped");
    }

    /// The claim loop of [`Drain::run`] (`budget` is `None`: follow the
    /// queue until shutdown) and [`Drain::run_until_idle_or_shutdown`].
    ///
    /// One loop claims for all slots: whenever a slot is free it claims up
    /// to the number of free slots and spawns each job, so no job waits for
    /// another to finish, and an idle drain makes one poll per backoff step
    /// whatever its concurrency.
    async fn drive(
        self: &Arc<Self>,
        budget: Option<Duration>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<PassOutcome, StoreError> {
        let started = Instant::now();
        let slots = self.options.concurrency.max(1) as usize;
        let follow = budget.is_none();
        let mut tasks: JoinSet<PassOutcome> = JoinSet::new();
        let mut total = PassOutcome::default();
        let mut idle_ms = IDLE_POLL_MIN_MS;
        let mut failure = None;
        loop {
            while let Some(done) = tasks.try_join_next() {
                reap(done, &mut total);
            }
            if *shutdown.borrow() || budget.is_some_and(|b| started.elapsed() >= b) {
                break;
            }
            if tasks.len() >= slots {
                // Every slot busy: claim again when one is free.
                tokio::select! {
                    Some(done) = tasks.join_next() => reap(done, &mut total),
                    _ = wait_for_true(shutdown) => {}
                }
                continue;
            }
            match self.claim((slots - tasks.len()) as u32).await {
                Ok(claims) if !claims.is_empty() => {
                    idle_ms = IDLE_POLL_MIN_MS;
                    total.claimed += claims.len() as u32;
                    for claim in claims {
                        let drain = self.clone();
                        tasks.spawn(async move { drain.process(claim).await });
                    }
                    continue;
                }
                Ok(_) if follow => idle_ms = (idle_ms * 2).min(IDLE_POLL_MAX_MS),
                Ok(_) => {
                    if tasks.is_empty() {
                        break;
                    }
                    // Nothing claimable now; look again when a job in
                    // flight ends (it may be due again at once).
                    tokio::select! {
                        Some(done) = tasks.join_next() => reap(done, &mut total),
                        _ = wait_for_true(shutdown) => {}
                    }
                    continue;
                }
                Err(e) if follow => {
                    tracing::warn!(error = %e, "drain claim failed; backing off");
                    idle_ms = IDLE_POLL_MAX_MS;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => idle_ms = IDLE_POLL_MIN_MS,
                _ = tokio::time::sleep(Duration::from_millis(idle_ms)) => {}
                // A slot came free: reap it (the loop then claims again).
                Some(done) = tasks.join_next() => reap(done, &mut total),
                _ = shutdown.changed() => {}
            }
        }
        self.finish_in_flight(&mut tasks, &mut total, shutdown)
            .await;
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Claiming is over: waits for the jobs in flight. If `shutdown` fires
    /// (or has fired), they get the grace period, then are aborted (and
    /// release their claims).
    async fn finish_in_flight(
        &self,
        tasks: &mut JoinSet<PassOutcome>,
        total: &mut PassOutcome,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => reap(done, total),
                    None => return,
                },
                _ = wait_for_true(shutdown) => break,
            }
        }
        let grace = Duration::from_secs(self.options.settings.shutdown_grace_secs as u64);
        tracing::info!(
            grace_secs = grace.as_secs(),
            in_flight = tasks.len(),
            "shutting down: claiming nothing more; jobs in flight may finish"
        );
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => reap(done, total),
                    None => return,
                },
                _ = &mut deadline => break,
            }
        }
        tracing::warn!("grace period over: releasing the jobs still in flight");
        self.abort.send_replace(true);
        while let Some(done) = tasks.join_next().await {
            reap(done, total);
        }
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
            // From submission to this claim (for a retry, includes its delay).
            let waited_ms = self.now().millis_since(claim.job.created_at);
            let env = self.job_env(claim.job.attempts >= self.options.settings.max_attempts);
            let mut timing = Timing::default();
            let mut abort = self.abort.subscribe();
            let writes_index = !matches!(claim.job.payload, JobPayload::Chat { .. });
            let result = tokio::select! {
                result = async {
                    let _writing = match writes_index {
                        true => Some(self.index_writers.read().await),
                        false => None,
                    };
                    jobs::run(&env, &claim, &mut timing).await
                } => result,
                // Chat jobs extend their lease as they stream; the others
                // (ingest, delete) stream nothing, so their lease is kept
                // here, also while they wait for `index_quiet`.
                lost = jobs::keep_lease(&env, &claim), if writes_index => Err(lost),
                _ = wait_for_true(&mut abort) => {
                    return self.release(&claim).await;
                }
            };
            let mut outcome = PassOutcome::default();
            let stored = match result {
                Ok(Outcome::Chat(answer)) => self
                    .store
                    .complete_chat(&claim, &answer, self.now())
                    .await
                    .map(|_| {
                        outcome.succeeded = 1;
                    }),
                Ok(Outcome::Other(result)) => self
                    .store
                    .complete_job(&claim, &result, self.now())
                    .await
                    .map(|_| {
                        outcome.succeeded = 1;
                    }),
                Err(JobError::ClaimLost) => {
                    tracing::warn!("another drain took this job over; dropping this attempt");
                    Ok(())
                }
                Err(error) => self.record_failure(&claim, &error, &mut outcome).await,
            };
            let elapsed = started.elapsed();
            let ms = |d: Duration| (d.as_secs_f64() * 100_000.0).round() / 100.0;
            match stored {
                Ok(()) => tracing::info!(
                    waited_ms,
                    elapsed_ms = ms(elapsed),
                    llm_ms = ms(timing.llm),
                    // The drain's own cost: retrieval, prompt, store writes.
                    overhead_ms = ms(elapsed.saturating_sub(timing.llm)),
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

    /// Gives an unfinished job back (shutdown) without counting the attempt.
    async fn release(&self, claim: &ClaimedJob) -> PassOutcome {
        match self.store.release(claim, self.now()).await {
            Ok(true) => {
                tracing::info!("job released for another drain");
                PassOutcome {
                    released: 1,
                    ..PassOutcome::default()
                }
            }
            Ok(false) => PassOutcome::default(),
            Err(e) => {
                // The lease expires and another drain reclaims it anyway.
                tracing::error!(error = %e, "could not release the job; its lease will expire");
                PassOutcome::default()
            }
        }
    }

    async fn record_failure(
        &self,
        claim: &ClaimedJob,
        error: &JobError,
        outcome: &mut PassOutcome,
    ) -> Result<(), StoreError> {
        let settings = &self.options.settings;
        let now = self.now();
        let retry_at = (claim.job.attempts < settings.max_attempts && !error.is_permanent())
            .then(|| now.plus_millis(retry_delay_ms(settings, claim.job.attempts)));
        // The record (what users and the dead letters read) gets the safe
        // sentence; the log line, in the job's span, keeps the error itself.
        let shown = error.user_message();
        let error = &error.to_string();
        match self.store.fail_job(claim, &shown, retry_at, now).await? {
            FailureOutcome::RetryAt(at) => {
                outcome.retried = 1;
                tracing::warn!(error, shown, retry_at = %at.to_rfc3339(), "job failed; will retry");
            }
            FailureOutcome::DeadLettered => {
                outcome.dead_lettered = 1;
                tracing::error!(error, shown, "job failed its last attempt; dead-lettered");
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

/// Adds a finished job's outcome to `total`.
fn reap(done: Result<PassOutcome, tokio::task::JoinError>, total: &mut PassOutcome) {
    match done {
        Ok(one) => total.add(one),
        Err(e) => {
            tracing::error!(error = %e, "a job task panicked; its lease will expire and it will be retried")
        }
    }
}

async fn wait_for_true(flag: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: it can never turn true.
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}
