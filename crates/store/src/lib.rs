//! Where FlowChat keeps its state: jobs and the queue, conversations and
//! messages, rate-limit windows, the document catalog and the drain heartbeat.
//!
//! [`Store`] is the one interface the API and the drain use. Back ends:
//! - `sqlite` (feature `sqlite`): one WAL-mode file, for local use and tests;
//! - `upstash` (feature `upstash`): Redis over the Upstash REST protocol,
//!   for serverless deployments; builds for wasm32.
//!
//! Every back end must pass the [`conformance`] suite (feature `conformance`).
//! The trait itself compiles for wasm32, where futures need not be `Send`.

pub use flowchat_domain::config::DocumentQuota;
use flowchat_domain::model::{
    ChatAnswer, Conversation, ConversationSummary, DocumentRecord, Job, JobPayload, JobResult,
};
use flowchat_domain::{
    ConversationId, DocumentId, FeedbackComment, FeedbackRating, FeedbackView, JobId, SessionId,
    Timestamp,
};
use serde::Serialize;

pub mod cleanup;
#[cfg(any(feature = "sqlite", feature = "upstash"))]
mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod rate;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "upstash")]
pub mod upstash;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time. The API
    /// answers 503 with Retry-After: the request may succeed later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (corruption, incompatible schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Anything else the back end reported.
    #[error("store error: {0}")]
    Backend(String),
}

/// A sliding-window limit: at most `limit` hits in any `window_ms`.
///
/// The window is approximated the way `@upstash/ratelimit` does it: the count
/// of the current fixed window plus the previous window's count weighted by
/// how much of it still overlaps the sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    pub limit: u32,
    pub window_ms: i64,
}

impl RateRule {
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            window_ms: 60_000,
        }
    }
}

/// One limit to check and, when every check passes, to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCheck {
    /// The counter's name, e.g. `chat:session:<id>` or `write:ip:<ip>`.
    pub key: String,
    pub rule: RateRule,
}

/// The outcome of a rate-limit check, enough for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Hits left in the window after this one (0 when refused).
    pub remaining: u32,
    /// When the current fixed window ends.
    pub reset_at: Timestamp,
    /// When refused: how long until a hit would be allowed (at least 1 s).
    pub retry_after_ms: i64,
}

/// Where a chat message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationTarget {
    /// Append to this conversation, which must belong to the submitting session.
    Existing(ConversationId),
    /// Start a conversation with this id and title. If a conversation with
    /// this id already exists it is treated as [`ConversationTarget::Existing`]
    /// (so a retried submission appends, and another session's id is not found).
    New { id: ConversationId, title: String },
}

/// Everything one chat submission writes, applied atomically.
#[derive(Debug, Clone)]
pub struct ChatSubmission {
    pub session: SessionId,
    pub conversation: ConversationTarget,
    pub message: String,
    pub job_id: JobId,
    /// Checked first; nothing is counted or written unless all pass.
    pub rate_checks: Vec<RateCheck>,
    pub now: Timestamp,
}

// `Accepted` is much larger than the other variants, but an outcome is
// returned once per submission and consumed at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SubmitOutcome {
    /// The message was appended and the job queued.
    Accepted {
        job: Job,
        conversation_id: ConversationId,
    },
    /// The first check that refused; nothing was written or counted.
    RateLimited(RateDecision),
    /// The conversation does not exist or belongs to another session;
    /// nothing was written (rate limits not counted either).
    ConversationNotFound,
}

/// What [`Store::record_feedback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Recorded, replacing the session's earlier feedback on the answer.
    Recorded,
    /// No answer with that job id in a conversation of the session (or it
    /// is someone else's): nothing was written.
    AnswerNotFound,
}

/// Upload bytes are kept in parts of at most this size: each part is one
/// request to Upstash, well under its request-size limit once base64-encoded.
pub const UPLOAD_PART_BYTES: usize = 256 * 1024;

/// How many parts an upload of `size_bytes` is stored in.
pub fn upload_parts(size_bytes: u64) -> u32 {
    size_bytes.div_ceil(UPLOAD_PART_BYTES as u64).max(1) as u32
}

/// Everything an accepted upload writes, applied atomically after its parts
/// were stored with [`Store::put_upload_part`].
#[derive(Debug, Clone)]
pub struct UploadSubmission {
    /// Status `pending`; its id is the content hash in its owner's scope.
    pub record: DocumentRecord,
    /// The ingest job (payload `IngestUpload`).
    pub job: NewJob,
    /// Checked first; nothing is counted or written unless all pass.
    pub rate_checks: Vec<RateCheck>,
    /// For a session's upload: its quota, checked in the same step, and
    /// when its session ends. `None` for shared documents.
    pub session: Option<SessionTerms>,
}

/// What a session's upload is held to, and what lets its documents be
/// cleaned up once the session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTerms {
    /// The session's documents (pending ones included) with this one added
    /// must stay within it; a failed record with the same id is replaced,
    /// not counted twice.
    pub quota: DocumentQuota,
    /// When the session's token expires. Recorded for the owner: after it,
    /// no request can add to or read its documents, and
    /// [`Store::expired_document_owners`] lists the owner for clean-up.
    pub expires_at: Timestamp,
}

/// What a session holds in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocumentUsage {
    pub documents: u32,
    pub bytes: u64,
}

impl DocumentUsage {
    /// The usage of `records` except `replacing` (the id an upload would
    /// overwrite: a failed record uploaded again).
    pub fn of<'a>(
        records: impl IntoIterator<Item = &'a DocumentRecord>,
        replacing: &DocumentId,
    ) -> Self {
        records
            .into_iter()
            .filter(|r| &r.id != replacing)
            .fold(DocumentUsage::default(), |u, r| DocumentUsage {
                documents: u.documents.saturating_add(1),
                bytes: u.bytes.saturating_add(r.size_bytes),
            })
    }

    /// Whether one more document of `size_bytes` fits `quota`: the document
    /// count is judged first.
    pub fn admits(&self, quota: &DocumentQuota, size_bytes: u64) -> Result<(), QuotaExceeded> {
        if self.documents >= quota.max_documents {
            return Err(QuotaExceeded::Documents {
                limit: quota.max_documents,
            });
        }
        if self.bytes.saturating_add(size_bytes) > quota.max_bytes {
            return Err(QuotaExceeded::Bytes {
                limit: quota.max_bytes,
                held: self.bytes,
            });
        }
        Ok(())
    }
}

/// Which per-session limit an upload would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// The session already holds `limit` documents.
    Documents { limit: u32 },
    /// The session holds `held` bytes; the upload would take it past `limit`.
    Bytes { limit: u64, held: u64 },
}

// As with `SubmitOutcome`: returned once per upload and consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum UploadOutcome {
    /// The record (pending) and the ingest job were written.
    Accepted { job: Job, record: DocumentRecord },
    /// A document with this id is already in the catalog (pending or
    /// indexed): nothing was written or counted. A `failed` record does not
    /// count: uploading it again retries it.
    Existing(DocumentRecord),
    /// The first check that refused; nothing was written or counted.
    RateLimited(RateDecision),
    /// The session's quota would be broken; nothing was written or counted.
    QuotaExceeded(QuotaExceeded),
}

/// A queued job to create outside a chat submission (ingest and admin work).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub owner: Option<SessionId>,
    pub payload: JobPayload,
    pub now: Timestamp,
}

impl NewJob {
    /// The job as it is queued: due at once, no attempts yet.
    #[cfg(any(feature = "sqlite", feature = "upstash"))]
    pub(crate) fn into_queued(self) -> Job {
        Job::queued(self.id, self.owner, self.payload, self.now)
    }
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Who claims (for diagnostics and heartbeats).
    pub worker: String,
    pub max_jobs: u32,
    pub lease_ms: i64,
    /// A job whose lease expired after this many claims is dead-lettered
    /// instead of being handed out again (its drain kept crashing).
    pub max_attempts: u32,
    pub now: Timestamp,
}

/// A job held by one drain until `lease_until`.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: Job,
    /// Identifies this claim; stale claims cannot fail or release the job.
    pub lease_id: String,
    pub lease_until: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The result was stored now.
    Stored,
    /// The job had already succeeded (processed twice after a crash); nothing changed.
    AlreadyDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Back in the queue, not claimable before this time.
    RetryAt(Timestamp),
    /// Out of attempts: status `failed`, and a dead letter was recorded.
    DeadLettered,
    /// The claim was stale (the job was reclaimed or finished); nothing changed.
    StaleClaim,
}

/// The reason an upload's catalog record gives when its ingest job is
/// dead-lettered while the record is still `pending` (its drain kept dying
/// on it, or could not record the failure itself). Dead-lettering does this
/// in the same step, so no upload stays `pending` forever, and a `failed`
/// record lets the same bytes be uploaded again.
pub const UPLOAD_GIVEN_UP: &str = "The document could not be indexed: processing it failed on every attempt. Upload it again to retry, or try a smaller or simpler file.";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub job_id: JobId,
    pub kind: flowchat_domain::model::JobKind,
    pub attempts: u32,
    pub error: String,
    pub failed_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    /// Waiting and claimable now.
    pub queued: u64,
    /// Waiting for a retry time in the future.
    pub delayed: u64,
    /// Claimed by a drain (lease not yet expired).
    pub running: u64,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    pub worker: String,
    pub at: Timestamp,
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Store: Send + Sync {
    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Checks `checks` and, only if all pass, counts one hit on each.
    /// Returns the most restrictive decision (the refusing one, if any).
    /// The arithmetic and the choice of decision are in [`rate`].
    async fn hit_rate_limits(
        &self,
        checks: &[RateCheck],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError>;

    /// Rate limits, ownership check, message append, job creation and enqueue,
    /// all or nothing, in one round trip.
    async fn submit_chat(&self, submission: ChatSubmission) -> Result<SubmitOutcome, StoreError>;

    async fn enqueue(&self, job: NewJob) -> Result<Job, StoreError>;

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError>;

    /// Newest first.
    async fn list_conversations(
        &self,
        owner: &SessionId,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError>;

    /// Deletes the conversation and its messages if `owner` owns it.
    async fn delete_conversation(
        &self,
        id: &ConversationId,
        owner: &SessionId,
    ) -> Result<bool, StoreError>;

    /// Hands out up to `max_jobs` claimable jobs (queued and due, or running
    /// with an expired lease), oldest first, each to exactly one caller;
    /// increments their attempts and marks them `running`. A job taken over
    /// from an expired lease loses its `partial`: the new attempt starts
    /// from nothing.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Records the answer text streamed so far for a running job and extends
    /// its lease to `lease_until` (a long LLM call must not lose its claim),
    /// if `claim` still holds the job. Returns false for a stale claim (the
    /// job was reclaimed, finished or released): the caller should stop work.
    async fn record_progress(
        &self,
        claim: &ClaimedJob,
        partial: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Stores a chat answer and appends the assistant message, once: a second
    /// completion of the same job changes nothing.
    async fn complete_chat(
        &self,
        claim: &ClaimedJob,
        answer: &ChatAnswer,
        now: Timestamp,
    ) -> Result<Completion, StoreError>;

    /// Stores the result of a non-chat job, once.
    async fn complete_job(
        &self,
        claim: &ClaimedJob,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<Completion, StoreError>;

    /// Records a failed attempt: requeue at `retry_at`, or with `None`,
    /// fail the job for good and dead-letter it.
    async fn fail_job(
        &self,
        claim: &ClaimedJob,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError>;

    /// Gives a claimed job back unprocessed (shutdown), claimable at once,
    /// without counting the attempt. Returns false for a stale claim.
    async fn release(&self, claim: &ClaimedJob, now: Timestamp) -> Result<bool, StoreError>;

    /// Most recent first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;

    /// Puts a dead-lettered job back in the queue with fresh attempts.
    async fn replay_dead_letter(&self, id: &JobId, now: Timestamp) -> Result<bool, StoreError>;

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError>;

    async fn record_heartbeat(&self, worker: &str, now: Timestamp) -> Result<(), StoreError>;

    /// The most recent heartbeat of any drain.
    async fn last_heartbeat(&self) -> Result<Option<Heartbeat>, StoreError>;

    /// Inserts or replaces the catalog entry with this id.
    async fn upsert_document(&self, record: &DocumentRecord) -> Result<(), StoreError>;

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, StoreError>;

    /// Shared documents plus, when `viewer` is given, that session's own; by name.
    async fn list_documents(
        &self,
        viewer: Option<&SessionId>,
    ) -> Result<Vec<DocumentRecord>, StoreError>;

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError>;

    /// Stores part `index` (0-based) of an upload's bytes, at most
    /// [`UPLOAD_PART_BYTES`]; expires after the upload TTL. Rewriting a part
    /// is harmless (same id, same bytes).
    async fn put_upload_part(
        &self,
        id: &DocumentId,
        index: u32,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The upload's bytes, its `parts` joined in order; `None` when any part
    /// is missing (expired, or never stored).
    async fn get_upload(&self, id: &DocumentId, parts: u32) -> Result<Option<Vec<u8>>, StoreError>;

    async fn delete_upload(&self, id: &DocumentId, parts: u32) -> Result<(), StoreError>;

    /// Rate limits, the duplicate check, the session's quota, the pending
    /// catalog record (and the session's end, for clean-up) and the ingest
    /// job with its enqueue, all or nothing, in one round trip.
    async fn submit_upload(&self, upload: UploadSubmission) -> Result<UploadOutcome, StoreError>;

    /// `owner`'s private documents, any status, in no particular order.
    async fn owned_documents(&self, owner: &SessionId) -> Result<Vec<DocumentRecord>, StoreError>;

    /// Up to `limit` owners of private documents whose session ended before
    /// `before` (as [`SessionTerms::expires_at`] recorded it), earliest first.
    async fn expired_document_owners(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Forgets `owner`'s session record once it owns no document; `false`
    /// (nothing changed) while it still owns one.
    async fn forget_document_owner(&self, owner: &SessionId) -> Result<bool, StoreError>;

    /// Removes the catalog record and queues `job` (which removes the chunks
    /// from the index), atomically; `false` (nothing queued) when there is
    /// no such record.
    async fn delete_document(&self, id: &DocumentId, job: NewJob) -> Result<bool, StoreError>;

    /// Records `session`'s feedback on the answer of chat job `job_id`,
    /// replacing its earlier one. Only for an assistant message in a
    /// conversation `session` owns; otherwise nothing is written and the
    /// outcome does not tell whether the answer exists.
    async fn record_feedback(
        &self,
        session: &SessionId,
        job_id: &JobId,
        rating: FeedbackRating,
        comment: Option<&FeedbackComment>,
        now: Timestamp,
    ) -> Result<FeedbackOutcome, StoreError>;

    /// For operators: up to `limit` feedback records, newest first, each
    /// with its question, answer and citations. Feedback on a deleted or
    /// expired conversation is not listed.
    async fn list_feedback(&self, limit: u32) -> Result<Vec<FeedbackView>, StoreError>;
}
