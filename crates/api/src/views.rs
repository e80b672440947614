//! Every body the API answers with, as one typed definition each: the wire
//! format lives here and nowhere else, and `web/src/api/types.ts` mirrors
//! these structs under the same names.
//!
//! Views borrow from the records they show: building one copies nothing,
//! and serialising our own plain structs cannot fail.

use flowchat_domain::model::{
    Citation, ConversationSummary, DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus,
    IngestReport, Job, JobKind, JobResult, JobStatus, Message,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, Nickname, SessionId, Timestamp, model};
use flowchat_store::{Heartbeat, QueueStats};
use serde::Serialize;

/// `POST /api/session`.
#[derive(Serialize)]
pub(crate) struct Session<'a> {
    pub token: String,
    pub session_id: &'a SessionId,
    pub nickname: &'a Nickname,
    pub expires_at: Timestamp,
}

/// `POST /api/chat`: the job is queued; follow it by its id.
#[derive(Serialize)]
pub(crate) struct SubmittedChat<'a> {
    pub job_id: &'a JobId,
    pub conversation_id: &'a ConversationId,
    pub status: JobStatus,
}

/// Any job as `GET /api/chat/{id}` and the event stream's final events show
/// it. What it carries depends on how far it got: the answer and its
/// citations, an ingest report, or — while it runs — `answer: null`, no
/// citations yet and the partial text streamed so far.
#[derive(Serialize)]
pub(crate) struct ChatJob<'a> {
    pub job_id: &'a JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub attempts: u32,
    pub error: Option<&'a str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<&'a ConversationId>,
    /// Absent for a finished non-chat job; `null` until a chat job is answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<&'a [Citation]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<model::AnswerMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<&'a IngestReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<&'a str>,
}

impl<'a> From<&'a Job> for ChatJob<'a> {
    fn from(job: &'a Job) -> Self {
        let mut view = ChatJob {
            job_id: &job.id,
            kind: job.kind,
            status: job.status,
            attempts: job.attempts,
            error: job.error.as_deref(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            conversation_id: job.conversation_id(),
            answer: None,
            citations: None,
            mode: None,
            report: None,
            partial: None,
        };
        match &job.result {
            Some(JobResult::Chat(answer)) => {
                view.answer = Some(Some(&answer.answer));
                view.citations = Some(&answer.citations);
                view.mode = Some(answer.mode);
            }
            Some(JobResult::Ingest(report)) => view.report = Some(report),
            None => {
                view.answer = Some(None);
                view.citations = Some(&[]);
                view.partial = job.partial.as_deref();
            }
        }
        view
    }
}

/// `POST /api/chat/completions`: the original system's synchronous answer.
#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub conversation_id: &'a ConversationId,
    pub response: &'a str,
    pub context: Vec<CompletionSource<'a>>,
    /// The passages the answer cites, as `POST /api/chat` gives them.
    pub citations: &'a [Citation],
    pub created_at: Timestamp,
}

/// One passage retrieved for the answer, whole, as the original contract's
/// `context` returned it (`content`, `score`), with where it comes from.
#[derive(Serialize)]
pub(crate) struct CompletionSource<'a> {
    pub document_id: &'a DocumentId,
    pub source: &'a str,
    pub chunk: u32,
    pub page: Option<u32>,
    pub heading: Option<&'a str>,
    pub score: f64,
    pub content: &'a str,
}

impl<'a> CompletionSource<'a> {
    /// The answer's retrieved passages; for a result stored before they
    /// were kept (an older drain), its citations' excerpts.
    pub(crate) fn all(answer: &'a model::ChatAnswer) -> Vec<CompletionSource<'a>> {
        if answer.context.is_empty() {
            return answer.citations.iter().map(Self::from).collect();
        }
        answer
            .context
            .iter()
            .map(|p| CompletionSource {
                document_id: &p.document_id,
                source: &p.source,
                chunk: p.chunk,
                page: p.page,
                heading: p.heading.as_deref(),
                score: p.score,
                content: &p.text,
            })
            .collect()
    }
}

impl<'a> From<&'a Citation> for CompletionSource<'a> {
    fn from(c: &'a Citation) -> Self {
        CompletionSource {
            document_id: &c.document_id,
            source: &c.source,
            chunk: c.chunk,
            page: c.page,
            heading: c.heading.as_deref(),
            score: c.score,
            content: &c.excerpt,
        }
    }
}

/// The event stream's `status` event.
#[derive(Serialize)]
pub(crate) struct JobProgress<'a> {
    pub status: JobStatus,
    pub attempts: u32,
    pub error: Option<&'a str>,
}

/// The event stream's `partial` event: the whole answer text so far.
#[derive(Serialize)]
pub(crate) struct PartialText<'a> {
    pub text: &'a str,
}

/// An event stream's last word when it cannot go on (`gone`, `unavailable`).
#[derive(Serialize)]
pub(crate) struct StreamEnd {
    pub detail: &'static str,
}

/// `GET /api/conversations`.
#[derive(Serialize)]
pub(crate) struct ConversationList<'a> {
    pub conversations: &'a [ConversationSummary],
}

/// `GET /api/conversations/{id}`: the conversation without its owner.
#[derive(Serialize)]
pub(crate) struct Conversation<'a> {
    pub id: &'a ConversationId,
    pub title: &'a str,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub messages: Vec<ConversationMessage<'a>>,
}

/// A message of a conversation; an answer carries the feedback its reader
/// gave (the conversation's owner: no one else can), if any.
#[derive(Serialize)]
pub(crate) struct ConversationMessage<'a> {
    #[serde(flatten)]
    pub message: &'a Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<GivenFeedback<'a>>,
}

/// `{"rating": "up" | "down", "comment": …}` (the comment only when given).
#[derive(Serialize)]
pub(crate) struct GivenFeedback<'a> {
    pub rating: flowchat_domain::FeedbackRating,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
}

impl<'a> From<&'a model::Conversation> for Conversation<'a> {
    fn from(c: &'a model::Conversation) -> Self {
        let feedback_of = |message: &Message| {
            if message.role != model::Role::Assistant {
                return None;
            }
            let job = message.job_id.as_ref()?;
            c.feedback
                .iter()
                .find(|f| &f.job_id == job && f.session == c.owner)
                .map(|f| GivenFeedback {
                    rating: f.rating,
                    comment: f.comment.as_ref().map(|c| c.as_str()),
                })
        };
        Conversation {
            id: &c.id,
            title: &c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
            messages: c
                .messages
                .iter()
                .map(|message| ConversationMessage {
                    message,
                    feedback: feedback_of(message),
                })
                .collect(),
        }
    }
}

/// One document of the catalog, without its owner's session id: `scope`
/// says whether everyone sees it or only its session.
#[derive(Serialize)]
pub(crate) struct DocumentView<'a> {
    pub id: &'a DocumentId,
    pub name: &'a str,
    pub scope: &'static str,
    pub status: DocumentStatus,
    pub chunks: u32,
    pub pages: Option<u32>,
    pub origin: DocumentOrigin,
    pub size_bytes: u64,
    pub error: Option<&'a str>,
    pub updated_at: Timestamp,
}

impl<'a> From<&'a DocumentRecord> for DocumentView<'a> {
    fn from(doc: &'a DocumentRecord) -> Self {
        DocumentView {
            id: &doc.id,
            name: &doc.name,
            scope: match doc.owner {
                DocumentOwner::Shared => "shared",
                DocumentOwner::Session(_) => "private",
            },
            status: doc.status,
            chunks: doc.chunks,
            pages: doc.pages,
            origin: doc.origin,
            size_bytes: doc.size_bytes,
            error: doc.error.as_deref(),
            updated_at: doc.updated_at,
        }
    }
}

/// `GET /api/documents`.
#[derive(Serialize)]
pub(crate) struct DocumentList<'a> {
    pub documents: Vec<DocumentView<'a>>,
}

/// `POST /api/documents`: `job_id` is `null` when the same bytes were
/// already there and nothing was queued.
#[derive(Serialize)]
pub(crate) struct UploadResult<'a> {
    pub document_id: &'a DocumentId,
    pub job_id: Option<&'a JobId>,
    pub status: DocumentStatus,
    pub document: DocumentView<'a>,
}

impl<'a> UploadResult<'a> {
    pub fn new(doc: &'a DocumentRecord, job_id: Option<&'a JobId>) -> Self {
        UploadResult {
            document_id: &doc.id,
            job_id,
            status: doc.status,
            document: DocumentView::from(doc),
        }
    }
}

/// `DELETE /api/documents/{id}`: the record is gone; a job cleans the index.
#[derive(Serialize)]
pub(crate) struct DeletedDocument<'a> {
    pub document_id: &'a DocumentId,
    pub job_id: &'a JobId,
    pub status: &'static str,
}

/// `POST /api/documents/ingest`: a queued operator job.
#[derive(Serialize)]
pub(crate) struct QueuedJob<'a> {
    pub job_id: &'a JobId,
    pub status: JobStatus,
}

/// `GET /api/health/ping`.
#[derive(Serialize)]
pub(crate) struct Liveness {
    pub status: &'static str,
}

/// `GET /api/health/ready`.
#[derive(Serialize)]
pub(crate) struct Readiness<'a> {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    pub namespace: &'a str,
    pub checks: ReadinessChecks<'a>,
}

#[derive(Serialize)]
pub(crate) struct ReadinessChecks<'a> {
    pub store: StoreCheck<'a>,
    pub queue: QueueCheck,
    pub drain: DrainCheck,
    pub llm: LlmCheck<'a>,
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum StoreCheck<'a> {
    Ok {
        backend: &'a str,
        latency_ms: i64,
    },
    Error {
        backend: &'a str,
        latency_ms: i64,
        error: String,
    },
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum QueueCheck {
    Ok(QueueStats),
    Error { error: String },
    Skipped { detail: &'static str },
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum DrainCheck {
    Ok(DrainSeen),
    Stale(DrainSeen),
    Missing { detail: &'static str },
    Error { error: String },
    Skipped { detail: &'static str },
}

/// The last heartbeat of a drain.
#[derive(Serialize)]
pub(crate) struct DrainSeen {
    pub worker: String,
    pub last_seen: Timestamp,
    pub age_seconds: i64,
}

impl DrainSeen {
    pub fn new(heartbeat: Heartbeat, now: Timestamp) -> Self {
        DrainSeen {
            worker: heartbeat.worker,
            last_seen: heartbeat.at,
            age_seconds: now.millis_since(heartbeat.at) / 1000,
        }
    }
}

/// How answers are written; always `ok` here, as the drain checks the
/// credentials itself.
#[derive(Serialize)]
pub(crate) struct LlmCheck<'a> {
    pub status: &'static str,
    /// `extractive` or `generative`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    pub detail: &'static str,
}

/// An RFC 9457 problem, as every error is answered (`error.rs` fills it).
#[derive(Serialize)]
pub(crate) struct Problem<'a> {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<usize>,
}
