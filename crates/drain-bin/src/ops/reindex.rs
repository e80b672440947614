use flowchat_config::DrainConfig;
use flowchat_domain::model::{DocumentOrigin, DocumentOwner};

use crate::error::CliError;
use crate::run::open_drain;

/// A job, due now, that scans the shared documents folder (what the API
/// queues for it); the scheduled backups' tests queue one.
#[cfg(test)]
pub(super) fn shared_folder_job() -> flowchat_store::NewJob {
    flowchat_store::NewJob {
        id: flowchat_domain::JobId::from_random(flowchat_startup::random_bytes()),
        owner: None,
        payload: flowchat_domain::model::JobPayload::IngestSharedFolder,
        now: flowchat_startup::now(),
    }
}

/// Drops the folder's documents from the index and scans the folder again,
/// as the ingest job does, so chunking, embeddings and the catalog all
/// follow the current configuration.
///
/// The scan runs here, not as a queued job for a drain pass: a pass would
/// also take whatever else is queued, and this drain has no chat model, so
/// it would answer waiting questions by quoting passages instead of leaving
/// them to the drain that has one (issue 14). Nothing else in the queue is
/// touched.
pub async fn reindex(config: &DrainConfig) -> Result<(), CliError> {
    let other = |e: anyhow::Error| CliError::Other(e);
    // Answers are not written here, only documents indexed: the chat model
    // is not needed, the embeddings model is.
    let config = DrainConfig {
        chat: None,
        ..config.clone()
    };
    let drain = open_drain(&config, "reindex".to_owned(), 1).await?;
    let (store, index) = (drain.store().clone(), drain.index().clone());
    let uploads: std::collections::HashSet<_> = store
        .list_documents(None)
        .await
        .map_err(|e| other(e.into()))?
        .into_iter()
        .filter(|d| d.origin == DocumentOrigin::Upload)
        .map(|d| d.id)
        .collect();
    let mut dropped = 0;
    for doc in index
        .documents(&DocumentOwner::Shared)
        .await
        .map_err(|e| other(e.into()))?
    {
        if !uploads.contains(&doc.id) {
            index
                .remove_document(&doc.id)
                .await
                .map_err(|e| other(e.into()))?;
            dropped += 1;
        }
    }
    let report = drain
        .index_shared_folder()
        .await
        .map_err(|e| other(anyhow::anyhow!("the re-scan failed: {e}")))?;
    println!(
        "reindexed: dropped {dropped} document(s), indexed {} (failed: {})",
        report.added + report.updated + report.unchanged,
        report.failed.len()
    );
    for failure in &report.failed {
        println!("  {}: {}", failure.source, failure.error);
    }
    Ok(())
}
