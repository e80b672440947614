//! The periodic clean-up of the documents of sessions that ended
//! (`flowchat_store::cleanup`), for the processes that keep a drain running:
//! the worker binary (`--follow`) and the dev server. Removing the catalog
//! entries queues one `delete` job per document; the drain then takes their
//! chunks out of the index like after a user's deletion.

use std::sync::Arc;
use std::time::Duration;

use flowchat_domain::{JobId, Platform};
use flowchat_store::Store;
use flowchat_store::cleanup::{CleanupReport, remove_expired_sessions_documents};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a running drain cleans up. Sessions last 30 days: an hour more
/// or less before their documents go does not matter, and a store request
/// an hour does not cost.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(60 * 60);

/// Sessions one automatic run handles: a backlog (the first run after an
/// upgrade) is worked off over several runs rather than in one long one.
pub const SESSIONS_PER_RUN: u32 = 500;

/// One clean-up of at most `max_sessions` sessions.
pub async fn clean_up_ended_sessions(
    store: &dyn Store,
    platform: &dyn Platform,
    max_sessions: u32,
) -> Result<CleanupReport, flowchat_store::StoreError> {
    remove_expired_sessions_documents(store, platform.now(), max_sessions, || {
        JobId::from_random(platform.random_bytes())
    })
    .await
}

/// One automatic run, logged; a store failure is only logged (the next run
/// retries, draining goes on).
pub async fn clean_up_logged(store: &dyn Store, platform: &dyn Platform, namespace: &str) {
    match clean_up_ended_sessions(store, platform, SESSIONS_PER_RUN).await {
        Ok(report) if report == CleanupReport::default() => {}
        Ok(report) => tracing::info!(
            namespace,
            sessions = report.sessions,
            documents = report.documents,
            bytes = report.bytes,
            "documents of ended sessions removed; their index chunks are queued for deletion"
        ),
        Err(error) => tracing::warn!(
            namespace,
            %error,
            "could not clean up the documents of ended sessions; the next run retries"
        ),
    }
}

/// A run at once, then every [`CLEANUP_EVERY`] until `shutdown` turns true.
pub fn spawn_cleanup(
    store: Arc<dyn Store>,
    platform: Arc<dyn Platform>,
    namespace: String,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            clean_up_logged(store.as_ref(), platform.as_ref(), &namespace).await;
            tokio::select! {
                _ = tokio::time::sleep(CLEANUP_EVERY) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}
