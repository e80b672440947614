//! Scheduled backups, taken by the worker drain (`--follow`) on its own
//! disk: a Render cron job cannot mount the worker's disk, so the worker
//! backs itself up.
//!
//! Every `BACKUP_EVERY_HOURS` the drain writes one archive made by
//! [`super::backup`] (written to a temporary file renamed at the end) named
//! `flowchat-<namespace>-<YYYYMMDDTHHMMSSZ>.tar` in `BACKUP_DIR`, then keeps
//! the newest `BACKUP_KEEP` of them. A backup waits until no job writes the
//! index ([`Drain::index_quiet`]) and keeps ingests waiting while it runs.
//!
//! When: the schedule follows the newest archive already in the folder. A
//! start with none (or one older than the interval) backs up at once, after
//! the start-up folder scan; otherwise the next backup is due one interval
//! after the newest. So a worker restarted more often than the interval
//! (deploys) still backs up on time, and restarts do not add archives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flowchat_domain::Timestamp;
use flowchat_domain::config::{Config, VectorStore};
use flowchat_drain::Drain;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Retry delay after a failed backup (or the interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(600);

pub struct Schedule {
    pub every: Duration,
    pub keep: usize,
    pub dir: PathBuf,
}

/// Starts the scheduled backups, if they are on and the index is the
/// embedded one. The task ends when `shutdown` turns true (a backup under
/// way is finished first).
pub fn start(
    drain: Arc<Drain>,
    config: Config,
    schedule: Schedule,
    shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if config.vector_store == VectorStore::Chroma {
        tracing::info!(
            "scheduled backups (BACKUP_EVERY_HOURS) are for the embedded sqlite index; with VECTOR_STORE=chroma none are taken: snapshot the Chroma server's disk instead"
        );
        return None;
    }
    tracing::info!(
        dir = %schedule.dir.display(),
        every_secs = schedule.every.as_secs(),
        keep = schedule.keep,
        "scheduled backups on"
    );
    Some(tokio::spawn(run(drain, config, schedule, shutdown)))
}

async fn run(
    drain: Arc<Drain>,
    config: Config,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
) {
    let prefix = format!("flowchat-{}-", config.namespace);
    let mut wait = until_due(&schedule, &prefix);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let quiet = drain.index_quiet().await;
        let outcome = {
            let (config, dir, prefix) = (config.clone(), schedule.dir.clone(), prefix.clone());
            tokio::task::spawn_blocking(move || back_up(&config, &dir, &prefix)).await
        };
        drop(quiet);
        wait = match outcome {
            Ok(Ok(())) => {
                prune(&schedule, &prefix);
                until_due(&schedule, &prefix)
            }
            Ok(Err(error)) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    dir = %schedule.dir.display(),
                    "scheduled backup failed; the drain keeps running and tries again later"
                );
                schedule.every.min(RETRY_AFTER_FAILURE)
            }
            Err(error) => {
                tracing::error!(%error, "scheduled backup task failed; the drain keeps running");
                schedule.every.min(RETRY_AFTER_FAILURE)
            }
        };
    }
}

fn back_up(config: &Config, dir: &Path, prefix: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("{prefix}{}.tar", stamp(flowchat_startup::now())));
    let manifest = super::backup(config, &out)?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        path = %out.display(),
        bytes,
        index_bytes = manifest.index.bytes,
        documents = manifest.documents.len(),
        "scheduled backup written"
    );
    Ok(())
}

/// How long until the next backup is due: one interval after the newest
/// archive (never longer than one interval, whatever the clock says).
fn until_due(schedule: &Schedule, prefix: &str) -> Duration {
    let Some(newest) = archives(&schedule.dir, prefix).pop() else {
        return Duration::ZERO;
    };
    let age_ms = flowchat_startup::now().millis_since(newest.0).max(0) as u128;
    schedule
        .every
        .saturating_sub(Duration::from_millis(age_ms.min(u64::MAX as u128) as u64))
}

/// Deletes all but the newest `keep` archives, and what an interrupted
/// backup of this schedule may have left behind.
fn prune(schedule: &Schedule, prefix: &str) {
    let archives = archives(&schedule.dir, prefix);
    let surplus = archives.len().saturating_sub(schedule.keep);
    for (_, path) in &archives[..surplus] {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "old backup pruned"),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "could not prune an old backup")
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(&schedule.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".partial"))
            .and_then(parse_stamp)
            .is_some();
        if leftover && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(path = %entry.path().display(), "unfinished backup removed");
        }
    }
}

/// This schedule's archives in `dir`, oldest first.
fn archives(dir: &Path, prefix: &str) -> Vec<(Timestamp, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Timestamp, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let at = parse_stamp(name.strip_prefix(prefix)?.strip_suffix(".tar")?)?;
            Some((at, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// `2026-12-04T18:54:25Z` → `20261204T185425Z`: UTC, sortable as text.
fn stamp(at: Timestamp) -> String {
    let rfc = Timestamp::from_millis(at.as_secs() * 1000).to_rfc3339();
    let compact: String = rfc
        .chars()
        .take(19)
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{compact}Z")
}

fn parse_stamp(raw: &str) -> Option<Timestamp> {
    let b = raw.as_bytes();
    if b.len() != 16
        || b[8] != b'T'
        || b[15] != b'Z'
        || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
    {
        return None;
    }
    Timestamp::parse_rfc3339(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &raw[0..4],
        &raw[4..6],
        &raw[6..8],
        &raw[9..11],
        &raw[11..13],
        &raw[13..15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_sortable_and_read_back() {
        let at = Timestamp::parse_rfc3339("2026-12-04T18:54:25.789Z").unwrap();
        assert_eq!(stamp(at), "20261204T185425Z");
        assert_eq!(
            parse_stamp("20261204T185425Z"),
            Timestamp::parse_rfc3339("2026-12-04T18:54:25Z")
        );
        for bad in [
            "20261204T185425",
            "2026-12-04T18:54Z",
            "20261304T185425Z",
            "x",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_this_namespaces_archives_count_and_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "flowchat-dev-20261201T000000Z.tar",
            "flowchat-dev-20261203T000000Z.tar",
            "flowchat-dev-20261202T000000Z.tar",
            "flowchat-dev-20261203T010000Z.partial",
            "flowchat-dev-2-20261201T000000Z.tar",
            "flowchat-dev-notes.tar",
            "manual.tar",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let schedule = Schedule {
            every: Duration::from_secs(3600),
            keep: 2,
            dir: dir.path().to_owned(),
        };
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(archives(dir.path(), "flowchat-dev-").len(), 3);
        prune(&schedule, "flowchat-dev-");
        assert_eq!(
            names(dir.path()),
            [
                "flowchat-dev-2-20261201T000000Z.tar",
                "flowchat-dev-20261202T000000Z.tar",
                "flowchat-dev-20261203T000000Z.tar",
                "flowchat-dev-notes.tar",
                "manual.tar",
            ]
        );
        // The newest is days old: due at once.
        assert_eq!(until_due(&schedule, "flowchat-dev-"), Duration::ZERO);
        let fresh = dir.path().join(format!(
            "flowchat-dev-{}.tar",
            stamp(flowchat_startup::now())
        ));
        std::fs::write(fresh, b"x").unwrap();
        assert!(until_due(&schedule, "flowchat-dev-") > Duration::from_secs(3590));
        let empty = tempfile::tempdir().unwrap();
        let schedule = Schedule {
            dir: empty.path().join("missing"),
            ..schedule
        };
        assert_eq!(until_due(&schedule, "flowchat-dev-"), Duration::ZERO);
    }

    /// A backup never runs while an ingest writes the index: while the
    /// guard is held, a claimed ingest job waits; it goes on once released.
    #[tokio::test]
    async fn ingests_wait_while_the_index_is_held_for_a_backup() {
        use flowchat_domain::config::DrainSettings;
        use flowchat_domain::model::DocumentOwner;
        use flowchat_drain::{Answerer, DrainOptions};
        use flowchat_knowledge::{ChunkSettings, KnowledgeIndex, SqliteIndex};
        use flowchat_store::Store;
        use flowchat_store::sqlite::SqliteStore;

        use crate::ops::reindex::shared_folder_job;

        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("faq.md"), "# FAQ\n\nThe office opens at nine.\n").unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let index: Arc<dyn KnowledgeIndex> =
            Arc::new(SqliteIndex::open(dir.path().join("i.db")).unwrap());
        let drain = Drain::new(
            store.clone(),
            index.clone(),
            DrainOptions {
                worker_id: "test".into(),
                settings: DrainSettings {
                    max_attempts: 3,
                    lease_secs: 60,
                    retry_base_secs: 0,
                    retry_max_secs: 0,
                    partial_flush_ms: 250,
                    shutdown_grace_secs: 20,
                },
                documents_path: docs,
                chunking: ChunkSettings::default(),
                top_k: 5,
                answerer: Answerer::Extractive,
                embedder: None,
                concurrency: 1,
                platform: Arc::new(flowchat_startup::NativePlatform),
            },
        );
        store.enqueue(shared_folder_job()).await.unwrap();

        let quiet = drain.index_quiet().await;
        let pass = tokio::spawn({
            let drain = drain.clone();
            async move { drain.pass().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!pass.is_finished(), "the ingest waited for the backup");
        let indexed = index.documents(&DocumentOwner::Shared).await.unwrap();
        assert!(indexed.is_empty(), "nothing written while held");
        drop(quiet);
        let outcome = pass.await.unwrap().unwrap();
        assert_eq!((outcome.claimed, outcome.succeeded), (1, 1));
        assert_eq!(
            index.documents(&DocumentOwner::Shared).await.unwrap().len(),
            1
        );
        // With no ingest in flight, the guard is had at once.
        let quiet = tokio::time::timeout(Duration::from_secs(1), drain.index_quiet())
            .await
            .expect("no ingest holds the index");
        drop(quiet);

        // With Chroma, scheduled backups are not for this process: none start.
        let chroma = flowchat_config::app_config(|name| {
            [
                ("VECTOR_STORE", "chroma"),
                ("EMBEDDINGS_PROVIDER", "openai"),
            ]
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
        let backups = dir.path().join("backups");
        let schedule = Schedule {
            every: Duration::from_secs(1),
            keep: 1,
            dir: backups.clone(),
        };
        let (_stop, shutdown) = watch::channel(false);
        assert!(start(drain, chroma, schedule, shutdown).is_none());
        assert!(!backups.exists());
    }
}
