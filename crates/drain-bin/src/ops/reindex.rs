use std::time::Duration;

use flowchat_config::DrainConfig;
use flowchat_domain::JobId;
use flowchat_domain::model::{DocumentOrigin, DocumentOwner, JobPayload, JobResult};
use flowchat_store::NewJob;

use crate::error::CliError;
use crate::run::open_drain;

/// A job, due now, that scans the shared documents folder (what the API
/// queues for it).
pub(super) fn shared_folder_job() -> NewJob {
    NewJob {
        id: JobId::from_random(flowchat_startup::random_bytes()),
        owner: None,
        payload: JobPayload::IngestSharedFolder,
        now: flowchat_startup::now(),
    }
}

/// Drops the folder's documents from the index and scans the folder again,
/// through the same ingest job the API queues, so chunking, embeddings and
/// the catalog all follow the current configuration.
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
    let job = store
        .enqueue(shared_folder_job())
        .await
        .map_err(|e| other(e.into()))?;
    // Other queued jobs may be processed too: that is harmless, and the
    // ingest job is the oldest claimable one only if the queue was empty.
    let budget = Duration::from_secs(3600);
    drain
        .run_until_idle(budget)
        .await
        .map_err(|e| other(e.into()))?;
    let done = store
        .get_job(&job.id)
        .await
        .map_err(|e| other(e.into()))?
        .ok_or_else(|| other(anyhow::anyhow!("the re-scan job disappeared")))?;
    match (&done.status, &done.result) {
        (flowchat_domain::model::JobStatus::Succeeded, Some(JobResult::Ingest(report))) => {
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
        _ => Err(CliError::Other(anyhow::anyhow!(
            "the re-scan did not finish: status {}, error {}",
            done.status.as_str(),
            done.error.as_deref().unwrap_or("none")
        ))),
    }
}
