//! What each kind of job does once claimed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowchat_domain::model::{ChatAnswer, DocumentOwner, Job, JobPayload, JobResult, Message};
use flowchat_domain::{ConversationId, SessionId, Timestamp};
use flowchat_knowledge::{
    ChunkSettings, KnowledgeIndex, Passage, PromptRole, PromptSettings, SearchQuery, build_prompt,
    extractive_answer, generative_answer, sync_shared_folder,
};
use flowchat_llm::{ChatMessage, ChatModel, ChatRequest, ChatRole, LlmError, StreamEvent};
use flowchat_native::now;
use flowchat_store::{ClaimedJob, Store, StoreError};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the knowledge index failed: {0}")]
    Knowledge(#[from] flowchat_knowledge::KnowledgeError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Llm(#[from] LlmError),
    /// Another drain took the job over (this one's lease had expired).
    #[error("the claim on this job was lost to another drain")]
    ClaimLost,
}

impl JobError {
    /// Failures another attempt cannot fix go straight to the dead letters.
    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Llm(e) if e.is_permanent())
    }
}

pub(crate) enum Outcome {
    Chat(ChatAnswer),
    Other(JobResult),
}

/// How answers are written: quoted passages, or a language model.
#[derive(Clone)]
pub enum Answerer {
    Extractive,
    Generative {
        model: Arc<dyn ChatModel>,
        prompt: PromptSettings,
    },
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answerer::Extractive => f.write_str("Extractive"),
            Answerer::Generative { model, .. } => f
                .debug_struct("Generative")
                .field("provider", &model.provider())
                .field("model", &model.model())
                .finish(),
        }
    }
}

pub(crate) struct JobEnv<'a> {
    pub store: &'a dyn Store,
    pub index: &'a dyn KnowledgeIndex,
    pub answerer: &'a Answerer,
    pub documents_path: &'a Path,
    pub chunking: &'a ChunkSettings,
    pub top_k: usize,
    pub partial_flush: Duration,
    pub lease: Duration,
}

/// Time spent waiting for the language model, reported for the job's log.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timing {
    pub llm: Duration,
}

pub(crate) async fn run(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    timing: &mut Timing,
) -> Result<Outcome, JobError> {
    match &claim.job.payload {
        JobPayload::Chat {
            session_id,
            conversation_id,
            question,
        } => answer(env, claim, session_id, conversation_id, question, timing)
            .await
            .map(Outcome::Chat),
        JobPayload::IngestSharedFolder => {
            ingest_shared_folder(env, now()).await.map(Outcome::Other)
        }
    }
}

async fn answer(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    asker: &SessionId,
    conversation: &ConversationId,
    question: &str,
    timing: &mut Timing,
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
    match env.answerer {
        Answerer::Extractive => Ok(extractive_answer(question, &passages)),
        Answerer::Generative { model, prompt } => {
            let history = earlier_messages(env.store, conversation, &claim.job).await?;
            generate(
                env,
                claim,
                model.as_ref(),
                prompt,
                question,
                &passages,
                &history,
                timing,
            )
            .await
        }
    }
}

/// The conversation's messages written before this job's question.
async fn earlier_messages(
    store: &dyn Store,
    conversation: &ConversationId,
    job: &Job,
) -> Result<Vec<Message>, JobError> {
    let Some(conversation) = store.get_conversation(conversation).await? else {
        return Ok(Vec::new());
    };
    Ok(conversation
        .messages
        .into_iter()
        .take_while(|m| m.job_id.as_ref() != Some(&job.id) && m.created_at <= job.created_at)
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn generate(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    model: &dyn ChatModel,
    settings: &PromptSettings,
    question: &str,
    passages: &[Passage],
    history: &[Message],
    timing: &mut Timing,
) -> Result<ChatAnswer, JobError> {
    let prompt = build_prompt(settings, question, passages, history);
    let request = ChatRequest {
        messages: prompt
            .messages
            .iter()
            .map(|m| ChatMessage {
                role: match m.role {
                    PromptRole::System => ChatRole::System,
                    PromptRole::User => ChatRole::User,
                    PromptRole::Assistant => ChatRole::Assistant,
                },
                content: m.content.clone(),
            })
            .collect(),
        temperature: None,
        max_tokens: None,
    };
    tracing::debug!(
        prompt_tokens = prompt.tokens,
        sources = prompt.sources.len(),
        "prompt built"
    );

    let streamed = Arc::new(Mutex::new(String::new()));
    let changed = Arc::new(Notify::new());
    let sink = streamed.clone();
    let notify = changed.clone();
    let mut on_event = move |event: StreamEvent<'_>| {
        let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            StreamEvent::Delta(delta) => text.push_str(delta),
            StreamEvent::Restart => text.clear(),
        }
        notify.notify_one();
    };
    let started = Instant::now();
    let call = model.chat_stream(&request, &mut on_event);
    let flusher = flush_progress(env, claim, &streamed, &changed);
    let result = tokio::select! {
        result = call => result.map_err(JobError::from),
        lost = flusher => Err(lost),
    };
    timing.llm = started.elapsed();
    let completion = result?;
    tracing::info!(
        operation_id = %completion.operation_id,
        llm_attempts = completion.attempts,
        prompt_tokens = completion.prompt_tokens,
        completion_tokens = completion.completion_tokens,
        "language model answered"
    );
    Ok(generative_answer(&completion.content, &prompt.sources))
}

/// Writes the streamed text to the job at most every `partial_flush`, and
/// extends the lease while the model works (also when it is slow to start).
/// Only returns when the claim is lost: the caller then abandons the call.
async fn flush_progress(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    streamed: &Mutex<String>,
    changed: &Notify,
) -> JobError {
    let mut written = String::new();
    let mut lease_extended = Instant::now();
    loop {
        // Wait for new text (or for the lease to need extending), then let
        // more text gather until the flush interval has passed.
        let renew_in = (env.lease / 3).saturating_sub(lease_extended.elapsed());
        let _ = tokio::time::timeout(renew_in, changed.notified()).await;
        tokio::time::sleep(env.partial_flush).await;
        let text = streamed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let renew = lease_extended.elapsed() >= env.lease / 3;
        if text == written && !renew {
            continue;
        }
        let now = now();
        let lease_until = now.plus_millis(env.lease.as_millis() as i64);
        match env
            .store
            .record_progress(claim, &text, lease_until, now)
            .await
        {
            Ok(true) => {
                written = text;
                lease_extended = Instant::now();
            }
            Ok(false) => return JobError::ClaimLost,
            // A missed progress write is not worth failing the answer for;
            // the lease still has time and the next tick tries again.
            Err(e) => tracing::warn!(error = %e, "could not record streamed progress"),
        }
    }
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
