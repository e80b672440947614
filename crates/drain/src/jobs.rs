//! What each kind of job does once claimed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowchat_domain::Platform;
use flowchat_domain::model::{
    ChatAnswer, DocumentOrigin, DocumentOwner, DocumentStatus, IngestReport, Job, JobPayload,
    JobResult, Message,
};
use flowchat_domain::{ConversationId, DocumentId, SessionId, Timestamp};
use flowchat_knowledge::{
    ChunkEmbedder, ChunkSettings, FolderScan, IndexedDocument, KnowledgeError, KnowledgeIndex,
    Passage, PromptRole, PromptSettings, SearchQuery, build_prompt, chunk_document, embed_chunks,
    embed_missing, extractive_answer, generative_answer, load, sync_shared_folder_with,
};
use flowchat_llm::{ChatMessage, ChatModel, ChatRequest, ChatRole, LlmError, StreamEvent};
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
    #[error(
        "the uploaded file is no longer available (uploads are kept for UPLOAD_TTL_HOURS); upload it again"
    )]
    UploadExpired,
}

impl JobError {
    /// Failures another attempt cannot fix go straight to the dead letters:
    /// a refused model request, or a document that cannot be read.
    pub fn is_permanent(&self) -> bool {
        match self {
            JobError::Llm(e) => e.is_permanent(),
            JobError::Knowledge(e) => !matches!(
                e,
                KnowledgeError::Index(_)
                    | KnowledgeError::Io { .. }
                    | KnowledgeError::Embedding {
                        permanent: false,
                        ..
                    }
            ),
            JobError::UploadExpired => true,
            JobError::Store(_) | JobError::ClaimLost => false,
        }
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
        /// The longest one answer may take (`LLM_ANSWER_TIMEOUT_SECONDS`).
        /// The model client ends its call then; the drain stops extending
        /// the job's lease a moment later in any case.
        answer_timeout: Duration,
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
    pub clock: &'a dyn Platform,
    pub store: &'a dyn Store,
    pub index: &'a dyn KnowledgeIndex,
    pub answerer: &'a Answerer,
    pub embedder: Option<&'a dyn ChunkEmbedder>,
    /// No retry follows if this attempt fails.
    pub last_attempt: bool,
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
        JobPayload::IngestSharedFolder => ingest_shared_folder(env, env.clock.now())
            .await
            .map(|report| Outcome::Other(JobResult::Ingest(report))),
        JobPayload::IngestUpload {
            document_id,
            name,
            owner,
        } => ingest_upload(env, document_id, name, owner)
            .await
            .map(Outcome::Other),
        JobPayload::DeleteDocument { document_id } => {
            let removed = env.index.remove_document(document_id).await?;
            tracing::info!(%document_id, removed, "document removed from the index");
            Ok(Outcome::Other(JobResult::Ingest(IngestReport {
                removed: removed as u32,
                ..IngestReport::default()
            })))
        }
    }
}

/// Reads, chunks, embeds and indexes an upload, then marks its catalog
/// record indexed (or failed, with the reason, when no retry will follow).
/// The document is indexed whole or not at all.
async fn ingest_upload(
    env: &JobEnv<'_>,
    id: &DocumentId,
    name: &str,
    owner: &DocumentOwner,
) -> Result<JobResult, JobError> {
    let Some(mut record) = env.store.get_document(id).await? else {
        tracing::info!(%id, "the upload was deleted before it was indexed");
        return Ok(JobResult::Ingest(IngestReport::default()));
    };
    let parts = flowchat_store::upload_parts(record.size_bytes);
    match index_upload(env, id, name, owner, record.size_bytes, parts).await {
        Ok((chunks, pages)) => {
            if env.store.get_document(id).await?.is_none() {
                // Deleted while it was being indexed: take it out again.
                env.index.remove_document(id).await?;
                return Ok(JobResult::Ingest(IngestReport::default()));
            }
            record.status = DocumentStatus::Indexed;
            record.origin = DocumentOrigin::Upload;
            record.chunks = chunks;
            record.pages = pages;
            record.error = None;
            record.updated_at = env.clock.now();
            env.store.upsert_document(&record).await?;
            env.store.delete_upload(id, parts).await?;
            tracing::info!(%id, chunks, ?pages, "upload indexed");
            Ok(JobResult::Ingest(IngestReport {
                added: 1,
                ..IngestReport::default()
            }))
        }
        Err(error) => {
            if error.is_permanent() || env.last_attempt {
                record.status = DocumentStatus::Failed;
                record.origin = DocumentOrigin::Upload;
                record.chunks = 0;
                record.error = Some(error.user_message());
                record.updated_at = env.clock.now();
                env.store.upsert_document(&record).await?;
                env.store.delete_upload(id, parts).await?;
            }
            Err(error)
        }
    }
}

async fn index_upload(
    env: &JobEnv<'_>,
    id: &DocumentId,
    name: &str,
    owner: &DocumentOwner,
    size_bytes: u64,
    parts: u32,
) -> Result<(u32, Option<u32>), JobError> {
    let bytes = env
        .store
        .get_upload(id, parts)
        .await?
        .ok_or(JobError::UploadExpired)?;
    let (file, chunking) = (name.to_owned(), *env.chunking);
    // Parsing a PDF is CPU-bound; keep it off the async workers.
    let (chunks, pages) = tokio::task::spawn_blocking(move || {
        let loaded = load(&file, &bytes)?;
        let pages = (loaded.format == flowchat_domain::document_format::DocumentFormat::Pdf)
            .then_some(loaded.page_starts.len() as u32);
        Ok::<_, KnowledgeError>((chunk_document(&loaded, &chunking)?, pages))
    })
    .await
    .map_err(KnowledgeError::from)??;
    let embeddings = embed_chunks(env.embedder, &chunks).await?;
    let count = chunks.len() as u32;
    env.index
        .replace_document(IndexedDocument {
            id: id.clone(),
            name: name.to_owned(),
            owner: owner.clone(),
            size_bytes,
            chunks,
            embeddings,
        })
        .await?;
    Ok((count, pages))
}

async fn answer(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    asker: &SessionId,
    conversation: &ConversationId,
    question: &str,
    timing: &mut Timing,
) -> Result<ChatAnswer, JobError> {
    let embedding = match env.embedder {
        Some(embedder) => match embedder.embed(&[question.to_owned()]).await {
            Ok(mut vectors) => vectors.pop(),
            // A vector-only index (Chroma) finds nothing without the
            // question's vector: retry rather than answer with no source.
            Err(error) if !env.index.searches_by_words() => return Err(error.into()),
            Err(error) => {
                // Words alone still find most answers; better than failing.
                tracing::warn!(%error, "could not embed the question; searching by words only");
                None
            }
        },
        None => None,
    };
    let passages = env
        .index
        .search(SearchQuery {
            text: question,
            viewer: Some(asker),
            top_k: env.top_k,
            embedding: embedding.as_deref(),
        })
        .await?;
    tracing::debug!(passages = passages.len(), "retrieved passages");
    match env.answerer {
        Answerer::Extractive => Ok(extractive_answer(question, &passages)),
        Answerer::Generative {
            model,
            prompt,
            answer_timeout,
        } => {
            let history = earlier_messages(env.store, conversation, &claim.job).await?;
            let call = ModelCall {
                model: model.as_ref(),
                settings: prompt,
                deadline: Instant::now() + *answer_timeout + DEADLINE_GRACE,
            };
            generate(env, claim, call, question, &passages, &history, timing).await
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

/// How long past the model client's own answer deadline the drain waits
/// before it gives up on the call itself: the client normally ends it first,
/// with its own error and log line.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// The model a chat job asks, how, and by when.
struct ModelCall<'a> {
    model: &'a dyn ChatModel,
    settings: &'a PromptSettings,
    /// After this the lease is no longer extended and the call is dropped.
    deadline: Instant,
}

async fn generate(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    call: ModelCall<'_>,
    question: &str,
    passages: &[Passage],
    history: &[Message],
    timing: &mut Timing,
) -> Result<ChatAnswer, JobError> {
    let ModelCall {
        model,
        settings,
        deadline,
    } = call;
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
    let flusher = flush_progress(env, claim, &streamed, &changed, deadline);
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
/// extends the lease while the model works (also when it is slow to start),
/// but never once `deadline` has passed: a model that streams forever must
/// not hold its job forever. Only returns when the claim is lost or the
/// deadline passed: the caller then abandons the call.
async fn flush_progress(
    env: &JobEnv<'_>,
    claim: &ClaimedJob,
    streamed: &Mutex<String>,
    changed: &Notify,
    deadline: Instant,
) -> JobError {
    let mut written = String::new();
    let mut lease_extended = Instant::now();
    let overdue = || {
        JobError::Llm(LlmError::Timeout(
            "the answer ran past its deadline; the drain stopped waiting".to_owned(),
        ))
    };
    loop {
        // Wait for new text (or for the lease to need extending, or the
        // deadline), then let more text gather until the flush interval
        // has passed.
        let renew_in = (env.lease / 3)
            .saturating_sub(lease_extended.elapsed())
            .min(deadline.saturating_duration_since(Instant::now()));
        let _ = tokio::time::timeout(renew_in, changed.notified()).await;
        tokio::time::sleep(
            env.partial_flush
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        if Instant::now() >= deadline {
            return overdue();
        }
        let text = streamed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let renew = lease_extended.elapsed() >= env.lease / 3;
        if text == written && !renew {
            continue;
        }
        let now = env.clock.now();
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

/// Extends the lease of a job that streams no progress (ingest, delete)
/// every third of the lease while it runs, so a slow one is not taken over
/// and run a second time by another drain. Only returns when the claim is
/// lost: the caller then abandons the job.
pub(crate) async fn keep_lease(env: &JobEnv<'_>, claim: &ClaimedJob) -> JobError {
    loop {
        tokio::time::sleep(env.lease / 3).await;
        let now = env.clock.now();
        let lease_until = now.plus_millis(env.lease.as_millis() as i64);
        // No text: the job's `partial` stays empty; only the lease moves.
        match env.store.record_progress(claim, "", lease_until, now).await {
            Ok(true) => tracing::debug!("lease extended"),
            Ok(false) => return JobError::ClaimLost,
            // The lease still has two thirds to run; the next tick retries.
            Err(e) => tracing::warn!(error = %e, "could not extend the job's lease"),
        }
    }
}

/// Brings the index and the catalog in step with the shared folder.
pub(crate) async fn ingest_shared_folder(
    env: &JobEnv<'_>,
    now: Timestamp,
) -> Result<IngestReport, JobError> {
    let uploads: std::collections::HashSet<DocumentId> = env
        .store
        .list_documents(None)
        .await?
        .into_iter()
        .filter(|d| d.owner == DocumentOwner::Shared && d.origin == DocumentOrigin::Upload)
        .map(|d| d.id)
        .collect();
    let scan = FolderScan {
        uploads: Some(&uploads),
        embedder: env.embedder,
    };
    let sync =
        sync_shared_folder_with(env.index, env.documents_path, env.chunking, now, scan).await?;
    for record in &sync.upserts {
        debug_assert_eq!(record.owner, DocumentOwner::Shared);
        env.store.upsert_document(record).await?;
    }
    for id in &sync.removals {
        env.store.remove_document(id).await?;
    }
    // Folder records whose file is gone without ever having been indexed
    // (a file that failed to load, then was deleted) are stale too.
    for record in env.store.list_documents(None).await? {
        if record.owner == DocumentOwner::Shared
            && record.origin == DocumentOrigin::Folder
            && !sync.present.contains(&record.id)
        {
            env.store.remove_document(&record.id).await?;
        }
    }
    if let Some(embedder) = env.embedder {
        let embedded = embed_missing(env.index, embedder).await?;
        if embedded > 0 {
            tracing::info!(
                documents = embedded,
                model = embedder.model(),
                "documents embedded"
            );
        }
    }
    Ok(sync.report)
}
