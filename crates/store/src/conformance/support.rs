//! What the checks share: synthetic time, unique ids, and short ways to
//! submit, claim and read back.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use flowchat_domain::model::{
    AnswerMode, ChatAnswer, Citation, Conversation, DocumentOrigin, DocumentOwner, DocumentRecord,
    DocumentStatus, Job, JobPayload, Message, Passage, Role,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};

use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, ConversationTarget, NewJob, RateCheck, RateDecision,
    RateRule, Store, SubmitOutcome, UPLOAD_PART_BYTES, UploadOutcome, UploadSubmission,
};

/// A fixed origin for synthetic time; a multiple of 60 s (and of 10 s), so
/// rate-limit windows start exactly on it.
pub const T0: i64 = 1_800_000_000_000;

/// `T0 + ms`.
pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

/// 16 bytes unique within this process and, with high probability, across
/// processes (a random salt), for ids that never collide in a shared store.
pub(super) fn unique_bytes() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&salt.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes
}

pub(super) fn session_id() -> SessionId {
    SessionId::from_random(unique_bytes())
}

pub(super) fn conversation_id() -> ConversationId {
    ConversationId::from_random(unique_bytes())
}

pub(super) fn job_id() -> JobId {
    JobId::from_random(unique_bytes())
}

pub(super) fn unique_key(prefix: &str) -> String {
    format!("{prefix}:{}", JobId::from_random(unique_bytes()))
}

pub(super) fn new_conversation(title: &str) -> ConversationTarget {
    ConversationTarget::New {
        id: conversation_id(),
        title: title.to_owned(),
    }
}

pub(super) fn submission(
    session: &SessionId,
    conversation: ConversationTarget,
    message: &str,
    now: Timestamp,
) -> ChatSubmission {
    ChatSubmission {
        session: session.clone(),
        conversation,
        message: message.to_owned(),
        job_id: job_id(),
        rate_checks: Vec::new(),
        now,
    }
}

/// Submits and insists it was accepted.
pub(super) async fn submit<S: Store + ?Sized>(
    store: &S,
    sub: ChatSubmission,
) -> (Job, ConversationId) {
    match store.submit_chat(sub).await.expect("submit_chat") {
        SubmitOutcome::Accepted {
            job,
            conversation_id,
        } => (job, conversation_id),
        other => panic!("expected the submission to be accepted, got {other:?}"),
    }
}

pub(super) async fn enqueue_ingest<S: Store + ?Sized>(store: &S, now: Timestamp) -> Job {
    store
        .enqueue(NewJob {
            id: job_id(),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now,
        })
        .await
        .expect("enqueue")
}

pub(super) fn claim_request(
    max_jobs: u32,
    lease_ms: i64,
    max_attempts: u32,
    now: Timestamp,
) -> ClaimRequest {
    ClaimRequest {
        worker: "conformance".to_owned(),
        max_jobs,
        lease_ms,
        max_attempts,
        now,
    }
}

pub(super) async fn claim<S: Store + ?Sized>(
    store: &S,
    max_jobs: u32,
    now: Timestamp,
) -> Vec<ClaimedJob> {
    store
        .claim(&claim_request(max_jobs, 30_000, 5, now))
        .await
        .expect("claim")
}

pub(super) async fn claim_one<S: Store + ?Sized>(store: &S, now: Timestamp) -> ClaimedJob {
    let mut claimed = claim(store, 1, now).await;
    assert_eq!(claimed.len(), 1, "expected exactly one claimable job");
    claimed.remove(0)
}

pub(super) fn answer(text: &str) -> ChatAnswer {
    ChatAnswer {
        answer: text.to_owned(),
        citations: vec![Citation {
            index: 1,
            document_id: DocumentId::for_content(b"handbook"),
            source: "handbook.pdf".to_owned(),
            chunk: 3,
            page: Some(7),
            heading: Some("Leave".to_owned()),
            score: 0.75,
            excerpt: "Employees get 30 days.".to_owned(),
        }],
        mode: AnswerMode::Generative,
        context: vec![Passage {
            document_id: DocumentId::for_content(b"handbook"),
            source: "handbook.pdf".to_owned(),
            chunk: 3,
            page: Some(7),
            heading: Some("Leave".to_owned()),
            text: "Leave\n\nEmployees get 30 days. Ask your manager first.".to_owned(),
            score: 0.75,
        }],
    }
}

pub(super) async fn job<S: Store + ?Sized>(store: &S, id: &JobId) -> Job {
    store
        .get_job(id)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("job {id} should exist"))
}

pub(super) async fn progress<S: Store + ?Sized>(
    store: &S,
    claim: &ClaimedJob,
    partial: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> bool {
    store
        .record_progress(claim, partial, lease_until, now)
        .await
        .expect("record_progress")
}

pub(super) fn assistant_messages(conversation: &Conversation) -> Vec<&Message> {
    conversation
        .messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .collect()
}

pub(super) async fn hit<S: Store + ?Sized>(
    store: &S,
    checks: &[RateCheck],
    now: Timestamp,
) -> RateDecision {
    store
        .hit_rate_limits(checks, now)
        .await
        .expect("hit_rate_limits")
}

pub(super) fn check(key: &str, limit: u32, window_ms: i64) -> RateCheck {
    RateCheck {
        key: key.to_owned(),
        rule: RateRule { limit, window_ms },
    }
}

/// A pending catalog record of an upload, with a fresh id.
pub(super) fn document(name: &str, owner: DocumentOwner, now: Timestamp) -> DocumentRecord {
    DocumentRecord {
        id: DocumentId::for_upload(&owner, &unique_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: 3 * UPLOAD_PART_BYTES as u64 - 17,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Upload,
        error: None,
        updated_at: now,
    }
}

pub(super) fn ingest_upload(record: &DocumentRecord) -> JobPayload {
    JobPayload::IngestUpload {
        document_id: record.id.clone(),
        name: record.name.clone(),
        owner: record.owner.clone(),
    }
}

/// The submission of `record` as the API makes it: the job is owned by the
/// uploading session (none for a shared upload).
pub(super) fn upload(
    record: &DocumentRecord,
    checks: Vec<RateCheck>,
    now: Timestamp,
) -> UploadSubmission {
    let owner = match &record.owner {
        DocumentOwner::Shared => None,
        DocumentOwner::Session(session) => Some(session.clone()),
    };
    UploadSubmission {
        record: record.clone(),
        job: NewJob {
            id: job_id(),
            owner,
            payload: ingest_upload(record),
            now,
        },
        rate_checks: checks,
        session: None,
    }
}

/// Submits and insists it was accepted.
pub(super) async fn submit_upload<S: Store + ?Sized>(store: &S, sub: UploadSubmission) -> Job {
    match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::Accepted { job, .. } => job,
        other => panic!("expected the upload to be accepted, got {other:?}"),
    }
}

pub(super) fn delete_job(id: &DocumentId, now: Timestamp) -> NewJob {
    NewJob {
        id: job_id(),
        owner: None,
        payload: JobPayload::DeleteDocument {
            document_id: id.clone(),
        },
        now,
    }
}

/// `len` bytes from a small generator seeded with `seed`: every byte value,
/// NULs and sequences that are not UTF-8 all occur.
pub(super) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub(super) async fn put_part<S: Store + ?Sized>(
    store: &S,
    id: &DocumentId,
    index: u32,
    bytes: &[u8],
) {
    store
        .put_upload_part(id, index, bytes, at(0))
        .await
        .expect("put_upload_part");
}

pub(super) async fn get_upload<S: Store + ?Sized>(
    store: &S,
    id: &DocumentId,
    parts: u32,
) -> Option<Vec<u8>> {
    store.get_upload(id, parts).await.expect("get_upload")
}

pub(super) async fn get_document<S: Store + ?Sized>(
    store: &S,
    id: &DocumentId,
) -> Option<DocumentRecord> {
    store.get_document(id).await.expect("get_document")
}
