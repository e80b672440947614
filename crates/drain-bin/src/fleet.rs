//! One drain process for several namespaces: production, every preview
//! branch, dev. Without `FLOWCHAT_NAMESPACE` (or with `*`) the namespaces
//! are the ones the Upstash registry names (every script that queues a job
//! adds its namespace, in the same round trip); with a comma-separated list,
//! exactly those.
//!
//! Each namespace gets a drain of its own — its store keys, its index file
//! or Chroma collection — over one set of language-model clients, prepared
//! like a single drain (the shared folder indexed first), and runs as its
//! own task, so a long job in one namespace never holds up another. A
//! namespace found idle is dropped from the registry (one script checks and
//! drops it), and its task stops until a new job brings it back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowchat_config::{DrainConfig, DrainNamespaces};
use flowchat_drain::{Drain, DrainIdentity, LanguageModels, PassOutcome};
use flowchat_store::upstash::UpstashStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::CliError;

/// How often a following drain reads the registry for new namespaces and
/// drops idle ones.
const REFRESH: Duration = Duration::from_secs(5);

pub struct Fleet {
    config: DrainConfig,
    models: LanguageModels,
    /// The store of `config.app.namespace`; reads the registry and opens
    /// the other namespaces' stores over its client.
    store: UpstashStore,
    worker_id: String,
    concurrency: u32,
    /// Namespaces opened and prepared by this process, kept when they go
    /// idle: a namespace that comes back is not prepared again.
    drains: BTreeMap<String, (UpstashStore, Arc<Drain>)>,
}

impl Fleet {
    pub fn new(config: DrainConfig, worker_id: String, concurrency: u32) -> Result<Self, CliError> {
        let models = LanguageModels::new(&config)?;
        let store = flowchat_startup::upstash_store(&config.app, config.upstash.clone())?;
        Ok(Fleet {
            config,
            models,
            store,
            worker_id,
            concurrency,
            drains: BTreeMap::new(),
        })
    }

    /// The namespaces to serve now.
    async fn namespaces(&self) -> Result<Vec<String>, flowchat_store::StoreError> {
        match &self.config.namespaces {
            DrainNamespaces::Only(names) => Ok(names.clone()),
            DrainNamespaces::All => Ok(self
                .store
                .namespaces_with_work()
                .await?
                .into_iter()
                // Only what the scripts could have written; anything else
                // in the set is not a FlowChat namespace.
                .filter(|name| flowchat_config::is_namespace(name))
                .collect()),
        }
    }

    /// The drain of `namespace`, opened and prepared on first use.
    async fn drain(&mut self, namespace: &str) -> Result<(UpstashStore, Arc<Drain>), CliError> {
        if let Some(opened) = self.drains.get(namespace) {
            return Ok(opened.clone());
        }
        let config = self.config.for_namespace(namespace);
        let store = self.store.in_namespace(namespace);
        flowchat_startup::ensure_data_dir(&config.app)?;
        let identity = DrainIdentity {
            worker_id: self.worker_id.clone(),
            concurrency: self.concurrency,
        };
        let drain = flowchat_drain::assemble_with(
            &config,
            &self.models,
            Arc::new(store.clone()),
            Arc::new(flowchat_startup::NativePlatform),
            identity,
        )
        .await?;
        drain
            .prepare()
            .instrument(tracing::info_span!("prepare", namespace))
            .await;
        crate::ops::cleanup::sweep_logged(&store, namespace).await;
        self.drains
            .insert(namespace.to_owned(), (store.clone(), drain.clone()));
        Ok((store, drain))
    }

    /// Opens every namespace to serve now; one that cannot be opened (its
    /// Chroma collection unreachable, say) is logged and left for the next
    /// run, the others are served.
    async fn open_all(&mut self) -> Vec<(String, UpstashStore, Arc<Drain>)> {
        let names = match self.namespaces().await {
            Ok(names) => names,
            Err(error) => {
                tracing::error!(%error, "cannot read the namespaces with work");
                return Vec::new();
            }
        };
        let mut opened = Vec::new();
        for name in names {
            match self.drain(&name).await {
                Ok((store, drain)) => opened.push((name, store, drain)),
                Err(CliError::Config(error) | CliError::Other(error)) => {
                    tracing::error!(namespace = %name, error = %format!("{error:#}"), "cannot open the namespace's drain; skipping it this time")
                }
            }
        }
        opened
    }

    /// The cron job: every namespace with work drained at once, until each
    /// is idle or `budget` is spent; idle namespaces leave the registry.
    pub async fn once(
        mut self,
        budget: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<PassOutcome, flowchat_store::StoreError> {
        let started = Instant::now();
        let opened = self.open_all().await;
        tracing::info!(
            namespaces = ?opened.iter().map(|(name, _, _)| name.as_str()).collect::<Vec<_>>(),
            "draining every namespace with work"
        );
        let budget = budget.saturating_sub(started.elapsed());
        let mut runs = tokio::task::JoinSet::new();
        for (name, store, drain) in opened {
            let shutdown = shutdown.clone();
            runs.spawn(async move {
                let outcome = drain.run_until_idle_or_shutdown(budget, shutdown).await;
                (name, store, outcome)
            });
        }
        let mut total = PassOutcome::default();
        let mut failure = None;
        while let Some(done) = runs.join_next().await {
            let Ok((name, store, outcome)) = done else {
                tracing::error!("a namespace's drain panicked");
                continue;
            };
            match outcome {
                Ok(outcome) => {
                    outcome.log(&name, "namespace drained");
                    total.add(outcome);
                    forget_if_idle(&name, &store).await;
                }
                Err(error) => {
                    tracing::error!(namespace = %name, %error, "the store failed");
                    failure = Some(error);
                }
            }
        }
        match failure {
            Some(error) if total.claimed == 0 => Err(error),
            _ => Ok(total),
        }
    }

    /// The worker: each namespace's drain runs as its own task; every
    /// [`REFRESH`] new namespaces are started and idle ones (dropped from
    /// the registry) stopped, until `shutdown`.
    pub async fn follow(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let all = self.config.namespaces == DrainNamespaces::All;
        tracing::info!(worker = %self.worker_id, namespaces = ?self.config.namespaces, "drain started");
        while !*shutdown.borrow() {
            running.retain(|_, task| !task.handle.is_finished());
            for (name, store, drain) in self.open_all().await {
                if running.contains_key(&name) {
                    continue;
                }
                tracing::info!(namespace = %name, "serving the namespace");
                let (stop, stopped) = watch::channel(false);
                let handle = tokio::spawn(drain.run(stopped));
                running.insert(
                    name,
                    Running {
                        store,
                        stop,
                        handle,
                    },
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = shutdown.changed() => break,
            }
            if all {
                for (name, task) in &running {
                    if forget_if_idle(name, &task.store).await {
                        tracing::info!(namespace = %name, "the namespace is idle; its drain stops until new work comes");
                        task.stop.send_replace(true);
                    }
                }
            }
        }
        for task in running.values() {
            task.stop.send_replace(true);
        }
        for (_, task) in running {
            let _ = task.handle.await;
        }
        tracing::info!(worker = %self.worker_id, "drain stopped");
    }
}

struct Running {
    store: UpstashStore,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Drops an idle namespace from the registry; answers whether it did.
async fn forget_if_idle(name: &str, store: &UpstashStore) -> bool {
    match store.forget_namespace_if_idle().await {
        Ok(dropped) => dropped,
        Err(error) => {
            tracing::warn!(namespace = %name, %error, "cannot check whether the namespace is idle");
            false
        }
    }
}
