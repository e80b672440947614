//! What each kind of job does once claimed.

use std::path::Path;

use flowchat_domain::model::{ChatAnswer, DocumentOwner, JobPayload, JobResult};
use flowchat_domain::{SessionId, Timestamp};
use flowchat_knowledge::{
    ChunkSettings, KnowledgeIndex, SearchQuery, extractive_answer, sync_shared_folder,
};
use flowchat_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the knowledge index failed: {0}")]
    Knowledge(#[from] flowchat_knowledge::KnowledgeError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

pub(crate) enum Outcome {
    Chat(ChatAnswer),
    Other(JobResult),
}

pub(crate) struct JobEnv<'a> {
    pub store: &'a dyn Store,
    pub index: &'a dyn KnowledgeIndex,
    pub documents_path: &'a Path,
    pub chunking: &'a ChunkSettings,
    pub top_k: usize,
}

pub(crate) async fn run(
    env: &JobEnv<'_>,
    payload: &JobPayload,
    now: Timestamp,
) -> Result<Outcome, JobError> {
    match payload {
        JobPayload::Chat {
            session_id,
            question,
            ..
        } => answer(env, session_id, question).await.map(Outcome::Chat),
        JobPayload::IngestSharedFolder => ingest_shared_folder(env, now).await.map(Outcome::Other),
    }
}

async fn answer(
    env: &JobEnv<'_>,
    asker: &SessionId,
    question: &str,
) -> Result<ChatAnswer, JobError> {
    let passages = env
        .index
        .search(SearchQuery {
            text: question,
            viewer: Some(asker),
            top_k: env.top_k,
        })
        .await?;
    tracing::debug!(passages = passages.len(), "retrieved passages");
    Ok(extractive_answer(question, &passages))
}

/// Brings the index and the catalog in step with the shared folder.
async fn ingest_shared_folder(env: &JobEnv<'_>, now: Timestamp) -> Result<JobResult, JobError> {
    let sync = sync_shared_folder(env.index, env.documents_path, env.chunking, now).await?;
    for record in &sync.upserts {
        debug_assert_eq!(record.owner, DocumentOwner::Shared);
        env.store.upsert_document(record).await?;
    }
    for id in &sync.removals {
        env.store.remove_document(id).await?;
    }
    // Shared records whose file is gone without ever having been indexed
    // (a file that failed to load, then was deleted) are stale too.
    for record in env.store.list_documents(None).await? {
        if record.owner == DocumentOwner::Shared && !sync.present.contains(&record.id) {
            env.store.remove_document(&record.id).await?;
        }
    }
    Ok(JobResult::Ingest(sync.report))
}
