//! Clean-up of the private documents of sessions that are over (see
//! `flowchat_store::cleanup` and `flowchat_drain::cleanup`):
//! `flowchat-drain cleanup` on demand, at the start of every `--once` run,
//! when a drain serving several namespaces first serves one, and hourly in a
//! `--follow` worker. The index chunks go through the `delete` jobs the
//! clean-up queues, which any drain then processes like a user's deletion.

use std::sync::Arc;

use flowchat_domain::Platform;
use flowchat_store::cleanup::CleanupReport;
use flowchat_store::{Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

fn platform() -> Arc<dyn Platform> {
    Arc::new(flowchat_startup::NativePlatform)
}

/// The command: every ended session at once.
pub async fn sweep_all(store: &dyn Store) -> Result<CleanupReport, StoreError> {
    flowchat_drain::cleanup::clean_up_ended_sessions(store, platform().as_ref(), u32::MAX).await
}

/// One automatic run, logged (a failure too: draining goes on).
pub async fn sweep_logged(store: &dyn Store, namespace: &str) {
    flowchat_drain::cleanup::clean_up_logged(store, platform().as_ref(), namespace).await
}

/// The worker's schedule (see `flowchat_drain::cleanup::spawn_cleanup`).
pub fn start(
    store: Arc<dyn Store>,
    namespace: String,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    flowchat_drain::cleanup::spawn_cleanup(store, platform(), namespace, shutdown)
}
