//! The conformance suite: what every [`Store`] back end must do, checked the
//! same way for each.
//!
//! A back end provides a [`Harness`] — how to make a fresh, empty store, and
//! how to open a second handle on the same data (another connection, another
//! client: what a second drain process would have) — and expands
//! [`conformance_tests!`](crate::conformance_tests) in an integration test:
//!
//! ```ignore
//! use flowchat_store::conformance::{Harness, async_trait};
//!
//! struct MyHarness { /* ... */ }
//!
//! #[async_trait]
//! impl Harness for MyHarness {
//!     type S = MyStore;
//!     async fn fresh(&self) -> MyStore { /* a new, empty namespace */ }
//!     async fn second_handle(&self, of: &MyStore) -> MyStore { /* same namespace */ }
//! }
//!
//! flowchat_store::conformance_tests!(MyHarness::new());
//! ```
//!
//! That expands to one `#[test]` per check, named after the check function
//! here; each builds the harness, runs the check on a two-thread tokio
//! runtime, and fails on any broken expectation. [`run_all`] runs every
//! check in sequence, for ad-hoc use.
//!
//! Checks never sleep: they pass synthetic `now` values. They may leave data
//! behind in the stores they make; a harness should give every `fresh` call
//! its own empty space.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use async_trait::async_trait;
use flowchat_domain::model::{
    AnswerMode, ChatAnswer, Citation, Conversation, ConversationSummary, DocumentOrigin,
    DocumentOwner, DocumentRecord, DocumentStatus, IngestFailure, IngestReport, Job, JobKind,
    JobPayload, JobResult, JobStatus, Message, Role,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};

use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, Completion, ConversationTarget, FailureOutcome,
    NewJob, QueueStats, RateCheck, RateDecision, RateRule, Store, SubmitOutcome, UPLOAD_PART_BYTES,
    UploadOutcome, UploadSubmission,
};

/// How a back end's test makes stores for the checks.
#[async_trait]
pub trait Harness: Send + Sync {
    type S: Store + 'static;

    /// A new store with no data in it, isolated from every other `fresh` one.
    async fn fresh(&self) -> Self::S;

    /// Another handle on the same data as `of`, as an independent process
    /// would open it (a new connection or client, not a clone sharing one).
    async fn second_handle(&self, of: &Self::S) -> Self::S;
}

/// The longest a single check may run before it counts as hung.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one check on a fresh two-thread tokio runtime, failing it after
/// [`CHECK_TIMEOUT`]. Used by [`conformance_tests!`](crate::conformance_tests).
pub fn block_on<F: Future<Output = ()>>(check: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance check");
    runtime.block_on(async {
        tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .expect("the conformance check did not finish in time");
    });
}

/// Expands to one `#[test]` per conformance check, each running on a new
/// harness made by evaluating the given expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_tests!(($harness);
            ping_answers,
            submit_creates_conversation_message_and_job,
            submit_appends_to_an_existing_conversation,
            submit_to_a_foreign_or_missing_conversation_is_not_found,
            rate_limit_admits_exactly_the_limit,
            rate_limit_window_slides,
            rate_limit_checks_are_all_or_nothing,
            rate_limited_submission_writes_nothing,
            concurrent_submissions_respect_the_limit,
            claim_hands_each_job_out_once,
            two_drains_racing_complete_every_job_once,
            concurrent_completions_store_one_answer,
            expired_lease_is_claimed_again,
            retry_is_not_claimable_before_due,
            last_attempt_dead_letters_and_replays,
            expired_lease_beyond_max_attempts_is_dead_lettered,
            release_requeues_without_counting_the_attempt,
            complete_chat_is_idempotent,
            complete_after_conversation_deleted_still_succeeds,
            complete_job_stores_a_result_once,
            conversations_are_isolated_by_owner,
            documents_are_visible_to_everyone_when_shared_else_to_their_owner,
            heartbeat_reports_the_latest,
            queue_stats_count_each_state,
            progress_is_visible_while_running,
            progress_from_a_stale_claim_changes_nothing,
            progress_extends_the_lease,
            partial_is_cleared_when_an_attempt_ends,
            progress_after_the_attempt_ended_is_refused,
            documents_keep_their_page_count_and_origin,
            get_document_reads_one_record,
            upload_parts_round_trip_any_bytes,
            upload_with_a_missing_part_is_none,
            submit_upload_accepts_once_then_reports_the_existing_record,
            submit_upload_retries_a_failed_document,
            rate_limited_upload_writes_nothing,
            concurrent_uploads_of_one_document_accept_one,
            accepted_upload_job_is_claimable_with_its_payload,
            delete_document_removes_the_record_and_queues_the_job,
            deleting_an_unknown_document_queues_nothing,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (($harness:expr); $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let harness = $harness;
                $crate::conformance::block_on($crate::conformance::$check(&harness));
            }
        )+
    };
}

/// Every check, one after another, each on its own fresh store(s).
pub async fn run_all<H: Harness>(h: &H) {
    ping_answers(h).await;
    submit_creates_conversation_message_and_job(h).await;
    submit_appends_to_an_existing_conversation(h).await;
    submit_to_a_foreign_or_missing_conversation_is_not_found(h).await;
    rate_limit_admits_exactly_the_limit(h).await;
    rate_limit_window_slides(h).await;
    rate_limit_checks_are_all_or_nothing(h).await;
    rate_limited_submission_writes_nothing(h).await;
    concurrent_submissions_respect_the_limit(h).await;
    claim_hands_each_job_out_once(h).await;
    two_drains_racing_complete_every_job_once(h).await;
    concurrent_completions_store_one_answer(h).await;
    expired_lease_is_claimed_again(h).await;
    retry_is_not_claimable_before_due(h).await;
    last_attempt_dead_letters_and_replays(h).await;
    expired_lease_beyond_max_attempts_is_dead_lettered(h).await;
    release_requeues_without_counting_the_attempt(h).await;
    complete_chat_is_idempotent(h).await;
    complete_after_conversation_deleted_still_succeeds(h).await;
    complete_job_stores_a_result_once(h).await;
    conversations_are_isolated_by_owner(h).await;
    documents_are_visible_to_everyone_when_shared_else_to_their_owner(h).await;
    heartbeat_reports_the_latest(h).await;
    queue_stats_count_each_state(h).await;
    progress_is_visible_while_running(h).await;
    progress_from_a_stale_claim_changes_nothing(h).await;
    progress_extends_the_lease(h).await;
    partial_is_cleared_when_an_attempt_ends(h).await;
    progress_after_the_attempt_ended_is_refused(h).await;
    documents_keep_their_page_count_and_origin(h).await;
    get_document_reads_one_record(h).await;
    upload_parts_round_trip_any_bytes(h).await;
    upload_with_a_missing_part_is_none(h).await;
    submit_upload_accepts_once_then_reports_the_existing_record(h).await;
    submit_upload_retries_a_failed_document(h).await;
    rate_limited_upload_writes_nothing(h).await;
    concurrent_uploads_of_one_document_accept_one(h).await;
    accepted_upload_job_is_claimable_with_its_payload(h).await;
    delete_document_removes_the_record_and_queues_the_job(h).await;
    deleting_an_unknown_document_queues_nothing(h).await;
}

// ---------------------------------------------------------------------------
// Helpers

/// A fixed origin for synthetic time; a multiple of 60 s (and of 10 s), so
/// rate-limit windows start exactly on it.
pub const T0: i64 = 1_800_000_000_000;

/// `T0 + ms`.
pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

/// 16 bytes unique within this process and, with high probability, across
/// processes (a random salt), for ids that never collide in a shared store.
fn unique_bytes() -> [u8; 16] {
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

fn session_id() -> SessionId {
    SessionId::from_random(unique_bytes())
}

fn conversation_id() -> ConversationId {
    ConversationId::from_random(unique_bytes())
}

fn job_id() -> JobId {
    JobId::from_random(unique_bytes())
}

fn unique_key(prefix: &str) -> String {
    format!("{prefix}:{}", JobId::from_random(unique_bytes()))
}

fn new_conversation(title: &str) -> ConversationTarget {
    ConversationTarget::New {
        id: conversation_id(),
        title: title.to_owned(),
    }
}

fn submission(
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
async fn submit<S: Store + ?Sized>(store: &S, sub: ChatSubmission) -> (Job, ConversationId) {
    match store.submit_chat(sub).await.expect("submit_chat") {
        SubmitOutcome::Accepted {
            job,
            conversation_id,
        } => (job, conversation_id),
        other => panic!("expected the submission to be accepted, got {other:?}"),
    }
}

async fn enqueue_ingest<S: Store + ?Sized>(store: &S, now: Timestamp) -> Job {
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

fn claim_request(max_jobs: u32, lease_ms: i64, max_attempts: u32, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        worker: "conformance".to_owned(),
        max_jobs,
        lease_ms,
        max_attempts,
        now,
    }
}

async fn claim<S: Store + ?Sized>(store: &S, max_jobs: u32, now: Timestamp) -> Vec<ClaimedJob> {
    store
        .claim(&claim_request(max_jobs, 30_000, 5, now))
        .await
        .expect("claim")
}

async fn claim_one<S: Store + ?Sized>(store: &S, now: Timestamp) -> ClaimedJob {
    let mut claimed = claim(store, 1, now).await;
    assert_eq!(claimed.len(), 1, "expected exactly one claimable job");
    claimed.remove(0)
}

fn answer(text: &str) -> ChatAnswer {
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
    }
}

async fn job<S: Store + ?Sized>(store: &S, id: &JobId) -> Job {
    store
        .get_job(id)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("job {id} should exist"))
}

async fn progress<S: Store + ?Sized>(
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

fn assistant_messages(conversation: &Conversation) -> Vec<&Message> {
    conversation
        .messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .collect()
}

async fn hit<S: Store + ?Sized>(store: &S, checks: &[RateCheck], now: Timestamp) -> RateDecision {
    store
        .hit_rate_limits(checks, now)
        .await
        .expect("hit_rate_limits")
}

fn check(key: &str, limit: u32, window_ms: i64) -> RateCheck {
    RateCheck {
        key: key.to_owned(),
        rule: RateRule { limit, window_ms },
    }
}

/// A pending catalog record of an upload, with a fresh id.
fn document(name: &str, owner: DocumentOwner, now: Timestamp) -> DocumentRecord {
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

fn ingest_upload(record: &DocumentRecord) -> JobPayload {
    JobPayload::IngestUpload {
        document_id: record.id.clone(),
        name: record.name.clone(),
        owner: record.owner.clone(),
    }
}

/// The submission of `record` as the API makes it: the job is owned by the
/// uploading session (none for a shared upload).
fn upload(record: &DocumentRecord, checks: Vec<RateCheck>, now: Timestamp) -> UploadSubmission {
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
    }
}

/// Submits and insists it was accepted.
async fn submit_upload<S: Store + ?Sized>(store: &S, sub: UploadSubmission) -> Job {
    match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::Accepted { job, .. } => job,
        other => panic!("expected the upload to be accepted, got {other:?}"),
    }
}

fn delete_job(id: &DocumentId, now: Timestamp) -> NewJob {
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
fn noise(len: usize, seed: u64) -> Vec<u8> {
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

async fn put_part<S: Store + ?Sized>(store: &S, id: &DocumentId, index: u32, bytes: &[u8]) {
    store
        .put_upload_part(id, index, bytes, at(0))
        .await
        .expect("put_upload_part");
}

async fn get_upload<S: Store + ?Sized>(store: &S, id: &DocumentId, parts: u32) -> Option<Vec<u8>> {
    store.get_upload(id, parts).await.expect("get_upload")
}

async fn get_document<S: Store + ?Sized>(store: &S, id: &DocumentId) -> Option<DocumentRecord> {
    store.get_document(id).await.expect("get_document")
}

// ---------------------------------------------------------------------------
// Checks

pub async fn ping_answers<H: Harness>(h: &H) {
    let store = h.fresh().await;
    store.ping().await.expect("ping");
}

/// One submission creates the conversation, the user message and a queued
/// job, counts the rate limit, and the job is claimable at once.
pub async fn submit_creates_conversation_message_and_job<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let conversation = conversation_id();
    let id = job_id();
    let rate = check(&unique_key("chat:session"), 10, 60_000);
    let outcome = store
        .submit_chat(ChatSubmission {
            session: session.clone(),
            conversation: ConversationTarget::New {
                id: conversation.clone(),
                title: "What is FlowChat?".to_owned(),
            },
            message: "What is FlowChat?".to_owned(),
            job_id: id.clone(),
            rate_checks: vec![rate.clone()],
            now: at(1_000),
        })
        .await
        .expect("submit_chat");
    let SubmitOutcome::Accepted {
        job: submitted,
        conversation_id,
    } = outcome
    else {
        panic!("expected Accepted, got {outcome:?}");
    };
    assert_eq!(conversation_id, conversation);
    assert_eq!(submitted.id, id);
    assert_eq!(submitted.kind, JobKind::Chat);
    assert_eq!(submitted.status, JobStatus::Queued);
    assert_eq!(submitted.owner.as_ref(), Some(&session));
    assert_eq!(submitted.attempts, 0);
    assert_eq!(submitted.result, None);
    assert_eq!(submitted.error, None);
    assert_eq!(submitted.created_at, at(1_000));
    assert_eq!(
        submitted.payload,
        JobPayload::Chat {
            session_id: session.clone(),
            conversation_id: conversation.clone(),
            question: "What is FlowChat?".to_owned(),
        }
    );
    assert_eq!(
        job(&store, &id).await,
        submitted,
        "get_job returns what submit returned"
    );

    let stored = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("the conversation exists");
    assert_eq!(stored.owner, session);
    assert_eq!(stored.title, "What is FlowChat?");
    assert_eq!(stored.created_at, at(1_000));
    assert_eq!(stored.messages.len(), 1);
    let message = &stored.messages[0];
    assert_eq!(message.role, Role::User);
    assert_eq!(message.content, "What is FlowChat?");
    assert!(message.citations.is_empty());
    assert_eq!(message.job_id.as_ref(), Some(&id));
    assert_eq!(message.created_at, at(1_000));

    let listed = store
        .list_conversations(&session)
        .await
        .expect("list_conversations");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, conversation);
    assert_eq!(listed[0].message_count, 1);
    assert_eq!(listed[0].title, "What is FlowChat?");
    assert!(
        store
            .list_conversations(&session_id())
            .await
            .expect("list_conversations")
            .is_empty(),
        "another session sees no conversations"
    );

    // The submission counted one hit.
    let decision = hit(&store, std::slice::from_ref(&rate), at(1_000)).await;
    assert!(decision.allowed);
    assert_eq!(
        decision.remaining, 8,
        "one hit from the submission, one now"
    );

    let claimed = claim_one(&store, at(1_000)).await;
    assert_eq!(claimed.job.id, id);
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.payload, submitted.payload);
}

/// Appending keeps messages in order, bumps `updated_at`, and lists
/// conversations newest first; jobs are claimed oldest first.
pub async fn submit_appends_to_an_existing_conversation<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (first, conversation) = submit(
        &store,
        submission(&session, new_conversation("first"), "question one", at(0)),
    )
    .await;
    let (other_job, other) = submit(
        &store,
        submission(&session, new_conversation("second"), "elsewhere", at(500)),
    )
    .await;
    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&other, &conversation],
        "newest first"
    );

    let (second, again) = submit(
        &store,
        submission(
            &session,
            ConversationTarget::Existing(conversation.clone()),
            "question two",
            at(1_000),
        ),
    )
    .await;
    assert_eq!(again, conversation);
    let stored = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(
        stored
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        vec!["question one", "question two"]
    );
    assert_eq!(stored.messages[1].job_id.as_ref(), Some(&second.id));
    assert_eq!(stored.created_at, at(0));
    assert_eq!(stored.updated_at, at(1_000));
    assert_eq!(stored.title, "first", "appending keeps the title");

    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&conversation, &other],
        "the conversation just appended to comes first"
    );
    assert_eq!(listed[0].message_count, 2);
    assert_eq!(listed[0].updated_at, at(1_000));
    assert_eq!(listed[1].message_count, 1);

    let claimed = claim(&store, 10, at(2_000)).await;
    assert_eq!(
        claimed.iter().map(|c| &c.job.id).collect::<Vec<_>>(),
        vec![&first.id, &other_job.id, &second.id],
        "oldest first"
    );
}

/// A session cannot append to another session's conversation, nor to one
/// that does not exist, nor take over an existing id with `New`; nothing is
/// written and no rate limit is counted.
pub async fn submit_to_a_foreign_or_missing_conversation_is_not_found<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let (_, alices) = submit(
        &store,
        submission(&alice, new_conversation("mine"), "private question", at(0)),
    )
    .await;
    let key = unique_key("chat:session");
    let targets = [
        ConversationTarget::Existing(alices.clone()),
        ConversationTarget::Existing(conversation_id()),
        ConversationTarget::New {
            id: alices.clone(),
            title: "hijack".to_owned(),
        },
    ];
    for target in targets {
        let mut sub = submission(&bob, target.clone(), "let me in", at(100));
        sub.rate_checks = vec![check(&key, 2, 60_000)];
        let rejected_job = sub.job_id.clone();
        let outcome = store.submit_chat(sub).await.expect("submit_chat");
        assert!(
            matches!(outcome, SubmitOutcome::ConversationNotFound),
            "{target:?} should be not found, got {outcome:?}"
        );
        assert_eq!(
            store.get_job(&rejected_job).await.expect("get_job"),
            None,
            "no job for a refused submission"
        );
    }
    let stored = store
        .get_conversation(&alices)
        .await
        .expect("get_conversation")
        .expect("still there");
    assert_eq!(stored.owner, alice);
    assert_eq!(stored.title, "mine");
    assert_eq!(stored.messages.len(), 1, "nothing appended");
    assert!(
        store
            .list_conversations(&bob)
            .await
            .expect("list")
            .is_empty()
    );
    let stats = store.queue_stats(at(100)).await.expect("queue_stats");
    assert_eq!(stats.queued, 1, "only alice's job is queued");
    // None of the three refused submissions counted.
    let decision = hit(&store, &[check(&key, 2, 60_000)], at(100)).await;
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 1);
}

/// Exactly `limit` hits are admitted; refusals carry remaining 0, the window
/// end, and a retry time after which a hit really is allowed; refused hits
/// are not counted.
pub async fn rate_limit_admits_exactly_the_limit<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let key = unique_key("write:ip");
    let limit = [check(&key, 5, 60_000)];
    let now = at(10_000);
    for i in 0..5u32 {
        let d = hit(&store, &limit, now).await;
        assert!(d.allowed, "hit {i} should be allowed");
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, 4 - i);
        assert_eq!(d.reset_at, at(60_000), "reset_at is the window end");
    }
    let mut refusal = None;
    for _ in 0..10 {
        let d = hit(&store, &limit, now).await;
        assert!(!d.allowed, "over the limit");
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_at, at(60_000));
        assert!(d.retry_after_ms >= 1_000, "retry_after_ms is at least 1 s");
        refusal = Some(d);
    }
    let refusal = refusal.expect("ten refusals");
    // The current window alone holds the limit, so the wait reaches past its
    // end (the previous window still weighs fully there) but not a full
    // window further.
    assert!(
        refusal.retry_after_ms > 50_000 && refusal.retry_after_ms <= 110_000,
        "retry_after_ms {} should reach past the window end",
        refusal.retry_after_ms
    );
    let d = hit(&store, &limit, at(60_000)).await;
    assert!(
        !d.allowed,
        "at the window end the old hits still weigh fully"
    );
    assert_eq!(d.reset_at, at(120_000));
    let retry = now.plus_millis(refusal.retry_after_ms);
    let d = hit(&store, &limit, retry).await;
    assert!(d.allowed, "a hit after retry_after_ms is allowed");
    // Half way through the next window: 5 earlier hits weigh 2 (2.5 rounded
    // down), plus the one just made = 3. Had the 11 refusals counted, the
    // previous window would weigh 8 and this would be refused.
    let d = hit(&store, &limit, at(90_000)).await;
    assert!(d.allowed, "refused hits must not be counted");
    assert_eq!(d.remaining, 1);
}

/// The previous window's hits fade out as the sliding window moves on.
pub async fn rate_limit_window_slides<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let key = unique_key("chat:session");
    let limit = [check(&key, 10, 10_000)];
    for _ in 0..10 {
        assert!(hit(&store, &limit, at(5_000)).await.allowed);
    }
    assert!(!hit(&store, &limit, at(5_000)).await.allowed);

    // Start of the next window: the previous 10 weigh fully.
    let d = hit(&store, &limit, at(10_000)).await;
    assert!(!d.allowed);
    assert_eq!(d.reset_at, at(20_000));
    assert!(d.retry_after_ms >= 1_000);

    // A quarter in: the previous 10 weigh 7 (7.5 rounded down).
    let d = hit(&store, &limit, at(12_500)).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 2, "7 weighted + 1 now");
    assert_eq!(hit(&store, &limit, at(12_500)).await.remaining, 1);
    let d = hit(&store, &limit, at(12_500)).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    let d = hit(&store, &limit, at(12_500)).await;
    assert!(!d.allowed, "7 weighted + 3 current = 10");
    assert!(d.retry_after_ms >= 1_000);
    let d = hit(&store, &limit, at(12_500).plus_millis(d.retry_after_ms)).await;
    assert!(d.allowed, "allowed once retry_after_ms has passed");

    // Half way: 5 weighted + 4 current.
    let d = hit(&store, &limit, at(15_000)).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);

    // The next window: the previous one (5 hits) weighs fully.
    let d = hit(&store, &limit, at(20_000)).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 4, "5 previous + 1 now");
    assert_eq!(d.reset_at, at(30_000));

    // Two windows on, with an empty window between: nothing weighs.
    let d = hit(&store, &limit, at(40_000)).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 9);
}

/// Several checks are counted together or not at all; the answer is the
/// tightest allowed decision, or the refusing one.
pub async fn rate_limit_checks_are_all_or_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let tight = check(&unique_key("chat:session"), 2, 60_000);
    let loose = check(&unique_key("chat:ip"), 5, 60_000);
    let both = [tight.clone(), loose.clone()];
    let now = at(1_000);

    let d = hit(&store, &both, now).await;
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining), (2, 1), "the tightest decision");
    let d = hit(&store, &both, now).await;
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining), (2, 0));
    let d = hit(&store, &both, now).await;
    assert!(!d.allowed);
    assert_eq!((d.limit, d.remaining), (2, 0), "the refusing decision");

    // The refused hit did not count on the check that would have allowed it.
    let d = hit(&store, std::slice::from_ref(&loose), now).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 2, "two counted before, one now");
    let d = hit(&store, &[loose.clone(), tight.clone()], now).await;
    assert!(!d.allowed);
    assert_eq!(d.limit, 2, "refused by the tight check, wherever it stands");
    let d = hit(&store, std::slice::from_ref(&loose), now).await;
    assert_eq!(d.remaining, 1, "still not counted");
}

/// A rate-limited submission writes nothing and returns the refusal.
pub async fn rate_limited_submission_writes_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let rule = check(&unique_key("chat:session"), 1, 60_000);
    let mut sub = submission(&session, new_conversation("one"), "first", at(0));
    sub.rate_checks = vec![rule.clone()];
    submit(&store, sub).await;
    let mut sub = submission(&session, new_conversation("two"), "second", at(10));
    sub.rate_checks = vec![rule.clone()];
    let refused_job = sub.job_id.clone();
    let ConversationTarget::New {
        id: refused_conversation,
        ..
    } = sub.conversation.clone()
    else {
        unreachable!("built as New");
    };
    match store.submit_chat(sub).await.expect("submit_chat") {
        SubmitOutcome::RateLimited(d) => {
            assert!(!d.allowed);
            assert_eq!(d.limit, 1);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.reset_at, at(60_000));
            assert!(d.retry_after_ms >= 1_000);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(store.get_job(&refused_job).await.expect("get_job"), None);
    assert_eq!(
        store
            .get_conversation(&refused_conversation)
            .await
            .expect("get_conversation"),
        None
    );
    assert_eq!(
        store
            .list_conversations(&session)
            .await
            .expect("list")
            .len(),
        1
    );
}

/// 50 submissions at once, through two handles, against a limit of 10:
/// exactly 10 are accepted and exist, the rest left no trace.
pub async fn concurrent_submissions_respect_the_limit<H: Harness>(h: &H) {
    let a = Arc::new(h.fresh().await);
    let b = Arc::new(h.second_handle(&a).await);
    let session = session_id();
    let rule = check(&unique_key("chat:session"), 10, 60_000);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let mut sub = submission(&session, new_conversation("burst"), "burst", at(1_000));
        sub.rate_checks = vec![rule.clone()];
        let id = sub.job_id.clone();
        tasks.push((
            id,
            tokio::spawn(async move { store.submit_chat(sub).await }),
        ));
    }
    let (mut accepted, mut limited) = (Vec::new(), Vec::new());
    for (id, task) in tasks {
        match task.await.expect("task").expect("submit_chat") {
            SubmitOutcome::Accepted { .. } => accepted.push(id),
            SubmitOutcome::RateLimited(d) => {
                assert!(!d.allowed);
                limited.push(id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted.len(), 10, "exactly the limit is accepted");
    assert_eq!(limited.len(), 40);
    for id in &accepted {
        assert_eq!(job(&*a, id).await.status, JobStatus::Queued);
    }
    for id in &limited {
        assert_eq!(b.get_job(id).await.expect("get_job"), None);
    }
    assert_eq!(
        a.list_conversations(&session).await.expect("list").len(),
        10
    );
    assert_eq!(b.queue_stats(at(1_000)).await.expect("stats").queued, 10);
}

/// Claims hand out jobs oldest first, each once, with a fresh lease.
pub async fn claim_hands_each_job_out_once<H: Harness>(h: &H) {
    let store = h.fresh().await;
    assert!(claim(&store, 5, at(0)).await.is_empty(), "an empty queue");
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = enqueue_ingest(&store, at(i)).await;
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.kind, JobKind::Ingest);
        assert_eq!(job.attempts, 0);
        assert_eq!(job.owner, None);
        assert_eq!(job.created_at, at(i));
        ids.push(job.id);
    }
    let now = at(100);
    let first = store
        .claim(&claim_request(2, 30_000, 5, now))
        .await
        .expect("claim");
    assert_eq!(
        first.iter().map(|c| &c.job.id).collect::<Vec<_>>(),
        vec![&ids[0], &ids[1]]
    );
    for c in &first {
        assert_eq!(c.job.status, JobStatus::Running);
        assert_eq!(c.job.attempts, 1);
        assert_eq!(c.lease_until, now.plus_millis(30_000));
        assert!(!c.lease_id.is_empty());
    }
    assert_ne!(first[0].lease_id, first[1].lease_id);
    let rest = claim(&store, 10, now).await;
    assert_eq!(
        rest.iter().map(|c| &c.job.id).collect::<Vec<_>>(),
        vec![&ids[2], &ids[3], &ids[4]]
    );
    assert!(claim(&store, 10, now).await.is_empty(), "everything is out");
    let stored = job(&store, &ids[0]).await;
    assert_eq!(stored.status, JobStatus::Running);
    assert_eq!(stored.attempts, 1);
    let leases: HashSet<_> = first.iter().chain(&rest).map(|c| &c.lease_id).collect();
    assert_eq!(leases.len(), 5, "every claim has its own lease id");
}

/// Two drains (two handles), four loops each, claiming and completing 200
/// chat jobs: every job is handed out and completed exactly once, and every
/// conversation gets exactly one answer.
pub async fn two_drains_racing_complete_every_job_once<H: Harness>(h: &H) {
    const JOBS: usize = 200;
    let a = Arc::new(h.fresh().await);
    let b = Arc::new(h.second_handle(&a).await);
    let session = session_id();
    let mut submitted = Vec::new();
    for i in 0..JOBS {
        let store = if i % 2 == 0 { &a } else { &b };
        submitted.push(
            submit(
                &**store,
                submission(&session, new_conversation("race"), &format!("q{i}"), at(0)),
            )
            .await,
        );
    }
    let claims: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let mut drains = Vec::new();
    for worker in 0..8 {
        let store = if worker % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let claims = Arc::clone(&claims);
        drains.push(tokio::spawn(async move {
            loop {
                let now = at(1_000);
                let batch = store
                    .claim(&ClaimRequest {
                        worker: format!("drain-{worker}"),
                        max_jobs: 3,
                        lease_ms: 600_000,
                        max_attempts: 5,
                        now,
                    })
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                for claimed in batch {
                    *claims
                        .lock()
                        .expect("claims map")
                        .entry(claimed.job.id.clone())
                        .or_default() += 1;
                    let reply = answer(&format!("answer to {}", claimed.job.id));
                    let done = store
                        .complete_chat(&claimed, &reply, now)
                        .await
                        .expect("complete_chat");
                    assert_eq!(done, Completion::Stored, "first completion stores");
                }
            }
        }));
    }
    for drain in drains {
        drain.await.expect("a drain loop panicked");
    }
    let claims = claims.lock().expect("claims map").clone();
    assert_eq!(claims.len(), JOBS, "every job was claimed");
    assert!(
        claims.values().all(|&n| n == 1),
        "a job was handed out twice: {:?}",
        claims.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    for (submitted_job, conversation) in &submitted {
        let stored = job(&*a, &submitted_job.id).await;
        assert_eq!(stored.status, JobStatus::Succeeded);
        assert_eq!(stored.attempts, 1);
        assert_eq!(
            stored.result,
            Some(JobResult::Chat(answer(&format!(
                "answer to {}",
                submitted_job.id
            ))))
        );
        let conversation = b
            .get_conversation(conversation)
            .await
            .expect("get_conversation")
            .expect("exists");
        assert_eq!(conversation.messages.len(), 2);
        let answers = assistant_messages(&conversation);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].job_id.as_ref(), Some(&submitted_job.id));
    }
    let stats = a.queue_stats(at(1_000)).await.expect("stats");
    assert_eq!((stats.queued, stats.running, stats.delayed), (0, 0, 0));
}

/// The same claim completed four times at once through two handles stores
/// once and yields one assistant message.
pub async fn concurrent_completions_store_one_answer<H: Harness>(h: &H) {
    let a = Arc::new(h.fresh().await);
    let b = Arc::new(h.second_handle(&a).await);
    let session = session_id();
    let mut jobs = Vec::new();
    for i in 0..20 {
        jobs.push(
            submit(
                &*a,
                submission(&session, new_conversation("dup"), &format!("q{i}"), at(0)),
            )
            .await,
        );
    }
    let claimed = claim(&*a, 20, at(1)).await;
    assert_eq!(claimed.len(), 20);
    let mut tasks = Vec::new();
    for c in &claimed {
        for copy in 0..4 {
            let store = if copy % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let c = c.clone();
            tasks.push((
                c.job.id.clone(),
                tokio::spawn(async move {
                    store
                        .complete_chat(&c, &answer(&format!("copy {copy}")), at(2))
                        .await
                }),
            ));
        }
    }
    let mut stored: HashMap<JobId, u32> = HashMap::new();
    for (id, task) in tasks {
        if task.await.expect("task").expect("complete_chat") == Completion::Stored {
            *stored.entry(id).or_default() += 1;
        }
    }
    assert_eq!(stored.len(), 20);
    assert!(
        stored.values().all(|&n| n == 1),
        "exactly one Stored per job"
    );
    for (submitted, conversation) in &jobs {
        let conversation = a
            .get_conversation(conversation)
            .await
            .expect("get_conversation")
            .expect("exists");
        let answers = assistant_messages(&conversation);
        assert_eq!(answers.len(), 1, "one assistant message per job");
        let Some(JobResult::Chat(result)) = job(&*b, &submitted.id).await.result else {
            panic!("a chat result");
        };
        assert_eq!(
            answers[0].content, result.answer,
            "the message is the stored answer"
        );
    }
}

/// A drain claims and crashes: after the lease the job is claimed again
/// (attempt 2); the crashed claim can neither fail nor release it, and its
/// late completion changes nothing.
pub async fn expired_lease_is_claimed_again<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(&session, new_conversation("crash"), "question", at(0)),
    )
    .await;
    let crashed = store
        .claim(&claim_request(1, 30_000, 5, at(1_000)))
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    assert_eq!(crashed.job.attempts, 1);
    assert_eq!(crashed.lease_until, at(31_000));
    assert!(
        claim(&store, 1, at(30_999)).await.is_empty(),
        "not claimable while the lease holds"
    );
    let stats = store.queue_stats(at(30_999)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (0, 1));
    let stats = store.queue_stats(at(31_001)).await.expect("stats");
    assert_eq!(
        (stats.queued, stats.running),
        (1, 0),
        "an expired lease counts as queued"
    );

    let retried = store
        .claim(&claim_request(1, 30_000, 5, at(31_001)))
        .await
        .expect("claim")
        .pop()
        .expect("claimable again after the lease");
    assert_eq!(retried.job.id, submitted.id);
    assert_eq!(retried.job.attempts, 2);
    assert_eq!(retried.job.status, JobStatus::Running);
    assert_ne!(retried.lease_id, crashed.lease_id);

    assert_eq!(
        store
            .fail_job(&crashed, "late failure", Some(at(40_000)), at(32_000))
            .await
            .expect("fail_job"),
        FailureOutcome::StaleClaim
    );
    assert!(!store.release(&crashed, at(32_000)).await.expect("release"));
    let stored = job(&store, &submitted.id).await;
    assert_eq!(
        stored.status,
        JobStatus::Running,
        "the stale claim changed nothing"
    );
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.error, None);

    assert_eq!(
        store
            .complete_chat(&retried, &answer("second drain"), at(33_000))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    assert_eq!(
        store
            .complete_chat(&crashed, &answer("first drain woke up"), at(34_000))
            .await
            .expect("complete_chat"),
        Completion::AlreadyDone
    );
    let stored = job(&store, &submitted.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(JobResult::Chat(answer("second drain"))));
    let conversation = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    let answers = assistant_messages(&conversation);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].content, "second drain");
    assert_eq!(
        store
            .fail_job(&retried, "too late", None, at(35_000))
            .await
            .expect("fail_job"),
        FailureOutcome::StaleClaim,
        "a finished job cannot be failed"
    );
}

/// A failed attempt with a retry time is queued but not claimable before it.
pub async fn retry_is_not_claimable_before_due<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let first = claim_one(&store, at(1)).await;
    assert_eq!(
        store
            .fail_job(&first, "flow answered 503", Some(at(60_000)), at(2))
            .await
            .expect("fail_job"),
        FailureOutcome::RetryAt(at(60_000))
    );
    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.status, JobStatus::Queued);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.error.as_deref(), Some("flow answered 503"));
    let stats = store.queue_stats(at(3)).await.expect("stats");
    assert_eq!(
        stats,
        QueueStats {
            queued: 0,
            delayed: 1,
            running: 0,
            dead_letters: 0
        }
    );
    assert!(
        claim(&store, 5, at(59_999)).await.is_empty(),
        "not before it is due"
    );
    let second = claim_one(&store, at(60_000)).await;
    assert_eq!(second.job.id, queued.id);
    assert_eq!(second.job.attempts, 2);
    assert_eq!(
        second.job.error.as_deref(),
        Some("flow answered 503"),
        "the last error is kept while the job is retried"
    );
    assert_eq!(
        store
            .fail_job(&first, "again", Some(at(70_000)), at(60_001))
            .await
            .expect("fail_job"),
        FailureOutcome::StaleClaim,
        "the first claim no longer holds the job"
    );
}

/// The last attempt's failure dead-letters the job (newest first in the
/// list); a replay queues it again with fresh attempts.
pub async fn last_attempt_dead_letters_and_replays<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let one = enqueue_ingest(&store, at(0)).await;
    let two = enqueue_ingest(&store, at(1)).await;
    let claimed = claim(&store, 2, at(5)).await;
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        store
            .fail_job(&claimed[0], "unreadable pdf", None, at(10))
            .await
            .expect("fail_job"),
        FailureOutcome::DeadLettered
    );
    assert_eq!(
        store
            .fail_job(&claimed[1], "timed out", None, at(20))
            .await
            .expect("fail_job"),
        FailureOutcome::DeadLettered
    );
    assert_eq!(
        store
            .fail_job(&claimed[0], "again", None, at(21))
            .await
            .expect("fail_job"),
        FailureOutcome::StaleClaim
    );
    let failed = job(&store, &one.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("unreadable pdf"));
    assert_eq!(failed.attempts, 1);

    let letters = store.dead_letters(10).await.expect("dead_letters");
    assert_eq!(
        letters.iter().map(|l| &l.job_id).collect::<Vec<_>>(),
        vec![&two.id, &one.id],
        "newest first"
    );
    assert_eq!(letters[1].kind, JobKind::Ingest);
    assert_eq!(letters[1].attempts, 1);
    assert_eq!(letters[1].error, "unreadable pdf");
    assert_eq!(letters[1].failed_at, at(10));
    assert_eq!(store.dead_letters(1).await.expect("dead_letters").len(), 1);
    assert_eq!(
        store.queue_stats(at(30)).await.expect("stats").dead_letters,
        2
    );
    assert!(
        claim(&store, 5, at(30)).await.is_empty(),
        "failed jobs are not claimable"
    );

    assert!(
        store
            .replay_dead_letter(&one.id, at(100))
            .await
            .expect("replay")
    );
    let replayed = job(&store, &one.id).await;
    assert_eq!(replayed.status, JobStatus::Queued);
    assert_eq!(replayed.attempts, 0);
    assert_eq!(
        store
            .dead_letters(10)
            .await
            .expect("dead_letters")
            .iter()
            .map(|l| &l.job_id)
            .collect::<Vec<_>>(),
        vec![&two.id]
    );
    assert!(
        !store
            .replay_dead_letter(&one.id, at(101))
            .await
            .expect("replay")
    );
    assert!(
        !store
            .replay_dead_letter(&job_id(), at(101))
            .await
            .expect("replay")
    );
    let again = claim_one(&store, at(100)).await;
    assert_eq!(again.job.id, one.id);
    assert_eq!(again.job.attempts, 1, "attempts start over");
    assert_eq!(
        store
            .complete_job(&again, &JobResult::Ingest(IngestReport::default()), at(110))
            .await
            .expect("complete_job"),
        Completion::Stored
    );
}

/// A job whose drain keeps dying is dead-lettered by the claim that finds
/// its lease expired for the `max_attempts`-th time; a drain that was only
/// slow may still complete it.
pub async fn expired_lease_beyond_max_attempts_is_dead_lettered<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(&session, new_conversation("doomed"), "question", at(0)),
    )
    .await;
    let request = |now| claim_request(1, 10_000, 2, now);
    let first = store.claim(&request(at(1))).await.expect("claim");
    assert_eq!(first.len(), 1);
    let second = store.claim(&request(at(20_000))).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].job.attempts, 2);
    assert!(
        store
            .claim(&request(at(40_000)))
            .await
            .expect("claim")
            .is_empty(),
        "out of attempts: not handed out again"
    );
    let failed = job(&store, &submitted.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed.error.as_deref().is_some_and(|e| !e.is_empty()),
        "with a readable error"
    );
    let letters = store.dead_letters(10).await.expect("dead_letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].job_id, submitted.id);
    assert_eq!(letters[0].kind, JobKind::Chat);
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(letters[0].failed_at, at(40_000));
    let stats = store.queue_stats(at(40_000)).await.expect("stats");
    assert_eq!(
        stats,
        QueueStats {
            queued: 0,
            delayed: 0,
            running: 0,
            dead_letters: 1
        }
    );
    // The second drain was slow, not dead: its answer is still accepted.
    assert_eq!(
        store
            .complete_chat(&second[0], &answer("late but right"), at(41_000))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    assert_eq!(
        job(&store, &submitted.id).await.status,
        JobStatus::Succeeded
    );
    assert!(
        store
            .dead_letters(10)
            .await
            .expect("dead_letters")
            .is_empty(),
        "a job that succeeded is no longer a dead letter"
    );
    let conversation = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(assistant_messages(&conversation).len(), 1);
}

/// Releasing puts the job back at once without counting the attempt; only
/// the current lease holder can release.
pub async fn release_requeues_without_counting_the_attempt<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let first = claim_one(&store, at(1)).await;
    assert!(store.release(&first, at(5)).await.expect("release"));
    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.status, JobStatus::Queued);
    assert_eq!(stored.attempts, 0);
    assert!(
        !store.release(&first, at(6)).await.expect("release"),
        "released already"
    );
    let second = claim_one(&store, at(5)).await;
    assert_eq!(second.job.attempts, 1, "the released attempt did not count");
    assert_ne!(second.lease_id, first.lease_id);
    assert_eq!(
        store
            .fail_job(&first, "stale", None, at(7))
            .await
            .expect("fail_job"),
        FailureOutcome::StaleClaim
    );
    assert!(store.release(&second, at(8)).await.expect("release"));
}

/// Completing a chat job stores the answer and appends one assistant
/// message; completing it again changes nothing.
pub async fn complete_chat_is_idempotent<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(
            &session,
            new_conversation("leave"),
            "How much leave?",
            at(0),
        ),
    )
    .await;
    let claimed = claim_one(&store, at(10)).await;
    let reply = answer("30 days [1].");
    assert_eq!(
        store
            .complete_chat(&claimed, &reply, at(100))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    for other in [reply.clone(), answer("something else")] {
        assert_eq!(
            store
                .complete_chat(&claimed, &other, at(200))
                .await
                .expect("complete_chat"),
            Completion::AlreadyDone
        );
    }
    let stored = job(&store, &submitted.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(JobResult::Chat(reply.clone())));
    assert_eq!(stored.error, None);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.updated_at, at(100));

    let conversation_now = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(conversation_now.messages.len(), 2);
    let message = &conversation_now.messages[1];
    assert_eq!(message.role, Role::Assistant);
    assert_eq!(message.content, reply.answer);
    assert_eq!(message.citations, reply.citations);
    assert_eq!(message.job_id.as_ref(), Some(&submitted.id));
    assert_eq!(message.created_at, at(100));
    assert_eq!(conversation_now.updated_at, at(100));
    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(listed[0].message_count, 2);
    assert!(
        claim(&store, 5, at(1_000_000)).await.is_empty(),
        "done jobs are not claimable"
    );
}

/// A conversation deleted while its answer was being written: the job
/// still succeeds (the answer is readable from it), no message appears.
pub async fn complete_after_conversation_deleted_still_succeeds<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(&session, new_conversation("gone"), "question", at(0)),
    )
    .await;
    let claimed = claim_one(&store, at(1)).await;
    assert!(
        store
            .delete_conversation(&conversation, &session)
            .await
            .expect("delete_conversation")
    );
    assert_eq!(
        store
            .complete_chat(&claimed, &answer("nobody reads this"), at(2))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    let stored = job(&store, &submitted.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(
        stored.result,
        Some(JobResult::Chat(answer("nobody reads this")))
    );
    assert_eq!(
        store
            .get_conversation(&conversation)
            .await
            .expect("get_conversation"),
        None,
        "the answer does not resurrect the conversation"
    );
}

/// Non-chat results are stored once.
pub async fn complete_job_stores_a_result_once<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let claimed = claim_one(&store, at(1)).await;
    let report = JobResult::Ingest(IngestReport {
        added: 2,
        updated: 1,
        unchanged: 4,
        removed: 0,
        failed: vec![IngestFailure {
            source: "broken.pdf".to_owned(),
            error: "no text layer".to_owned(),
        }],
    });
    assert_eq!(
        store
            .complete_job(&claimed, &report, at(50))
            .await
            .expect("complete_job"),
        Completion::Stored
    );
    assert_eq!(
        store
            .complete_job(
                &claimed,
                &JobResult::Ingest(IngestReport::default()),
                at(60)
            )
            .await
            .expect("complete_job"),
        Completion::AlreadyDone
    );
    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(report));
    assert_eq!(stored.updated_at, at(50));
}

/// Conversations are listed, read and deleted per owner; deleting removes
/// the messages but not the jobs.
pub async fn conversations_are_isolated_by_owner<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let (a1_job, a1) = submit(
        &store,
        submission(&alice, new_conversation("a1"), "alice one", at(0)),
    )
    .await;
    let (_, a2) = submit(
        &store,
        submission(&alice, new_conversation("a2"), "alice two", at(10)),
    )
    .await;
    let (_, b1) = submit(
        &store,
        submission(&bob, new_conversation("b1"), "bob one", at(20)),
    )
    .await;
    let ids = |list: Vec<ConversationSummary>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_conversations(&alice).await.expect("list")),
        vec![a2.clone(), a1.clone()]
    );
    assert_eq!(
        ids(store.list_conversations(&bob).await.expect("list")),
        vec![b1.clone()]
    );

    assert!(
        !store.delete_conversation(&a1, &bob).await.expect("delete"),
        "bob cannot delete alice's conversation"
    );
    let kept = store
        .get_conversation(&a1)
        .await
        .expect("get_conversation")
        .expect("still there");
    assert_eq!(kept.owner, alice);
    assert_eq!(kept.messages.len(), 1);

    assert!(
        store
            .delete_conversation(&a1, &alice)
            .await
            .expect("delete")
    );
    assert_eq!(
        store.get_conversation(&a1).await.expect("get_conversation"),
        None
    );
    assert!(
        !store
            .delete_conversation(&a1, &alice)
            .await
            .expect("delete"),
        "already gone"
    );
    assert_eq!(
        ids(store.list_conversations(&alice).await.expect("list")),
        vec![a2.clone()]
    );
    assert_eq!(
        ids(store.list_conversations(&bob).await.expect("list")),
        vec![b1]
    );
    let orphan = job(&store, &a1_job.id).await;
    assert_eq!(
        orphan.conversation_id(),
        Some(&a1),
        "the job stays readable"
    );

    let outcome = store
        .submit_chat(submission(
            &alice,
            ConversationTarget::Existing(a1.clone()),
            "anyone there?",
            at(30),
        ))
        .await
        .expect("submit_chat");
    assert!(
        matches!(outcome, SubmitOutcome::ConversationNotFound),
        "a deleted conversation is not found, got {outcome:?}"
    );
}

/// The catalog shows shared documents to everyone and a session's uploads
/// only to that session, ordered by name.
pub async fn documents_are_visible_to_everyone_when_shared_else_to_their_owner<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let record = |name: &str, owner: DocumentOwner| DocumentRecord {
        id: DocumentId::for_content(format!("{name} {}", owner.as_key()).as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: 1_234,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Folder,
        error: None,
        updated_at: at(0),
    };
    let zeta = record("zeta.md", DocumentOwner::Shared);
    let alpha = record("alpha.pdf", DocumentOwner::Shared);
    let mine = record("mine.txt", DocumentOwner::Session(alice.clone()));
    let theirs = record("theirs.txt", DocumentOwner::Session(bob.clone()));
    for doc in [&zeta, &alpha, &mine, &theirs] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    let names = |docs: Vec<DocumentRecord>| docs.into_iter().map(|d| d.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_documents(None).await.expect("list")),
        vec!["alpha.pdf", "zeta.md"]
    );
    assert_eq!(
        names(store.list_documents(Some(&alice)).await.expect("list")),
        vec!["alpha.pdf", "mine.txt", "zeta.md"]
    );
    assert_eq!(
        names(store.list_documents(Some(&bob)).await.expect("list")),
        vec!["alpha.pdf", "theirs.txt", "zeta.md"]
    );

    let indexed = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 12,
        size_bytes: u64::from(u32::MAX) + 5,
        error: Some("2 pages without text".to_owned()),
        updated_at: at(50),
        ..mine.clone()
    };
    store
        .upsert_document(&indexed)
        .await
        .expect("upsert_document");
    let alices = store.list_documents(Some(&alice)).await.expect("list");
    assert_eq!(alices.len(), 3, "an upsert replaces, never duplicates");
    assert_eq!(alices[1], indexed);
    assert_eq!(alices[0], alpha);

    assert!(store.remove_document(&mine.id).await.expect("remove"));
    assert!(
        !store.remove_document(&mine.id).await.expect("remove"),
        "already removed"
    );
    assert_eq!(
        names(store.list_documents(Some(&alice)).await.expect("list")),
        vec!["alpha.pdf", "zeta.md"]
    );
}

/// The readiness check sees the most recent heartbeat of any drain.
pub async fn heartbeat_reports_the_latest<H: Harness>(h: &H) {
    let store = h.fresh().await;
    assert_eq!(store.last_heartbeat().await.expect("last_heartbeat"), None);
    store
        .record_heartbeat("drain-1", at(100))
        .await
        .expect("heartbeat");
    store
        .record_heartbeat("drain-2", at(200))
        .await
        .expect("heartbeat");
    store
        .record_heartbeat("drain-1", at(150))
        .await
        .expect("heartbeat");
    let latest = store
        .last_heartbeat()
        .await
        .expect("last_heartbeat")
        .expect("some");
    assert_eq!((latest.worker.as_str(), latest.at), ("drain-2", at(200)));
    store
        .record_heartbeat("drain-1", at(300))
        .await
        .expect("heartbeat");
    let latest = store
        .last_heartbeat()
        .await
        .expect("last_heartbeat")
        .expect("some");
    assert_eq!((latest.worker.as_str(), latest.at), ("drain-1", at(300)));
}

/// Queue statistics count due, delayed, running (lease alive) and dead jobs.
pub async fn queue_stats_count_each_state<H: Harness>(h: &H) {
    let store = h.fresh().await;
    assert_eq!(
        store.queue_stats(at(0)).await.expect("stats"),
        QueueStats::default()
    );
    for i in 0..5 {
        enqueue_ingest(&store, at(i)).await;
    }
    let claimed = store
        .claim(&claim_request(3, 10_000, 5, at(10)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    assert_eq!(
        store
            .fail_job(&claimed[0], "busy", Some(at(100_000)), at(11))
            .await
            .expect("fail_job"),
        FailureOutcome::RetryAt(at(100_000))
    );
    assert_eq!(
        store
            .fail_job(&claimed[1], "broken", None, at(12))
            .await
            .expect("fail_job"),
        FailureOutcome::DeadLettered
    );
    let stats = |queued, delayed, running| QueueStats {
        queued,
        delayed,
        running,
        dead_letters: 1,
    };
    assert_eq!(
        store.queue_stats(at(20)).await.expect("stats"),
        stats(2, 1, 1)
    );
    // The running job's lease (until +10 010) has expired: claimable again.
    assert_eq!(
        store.queue_stats(at(20_000)).await.expect("stats"),
        stats(3, 1, 0)
    );
    // The retry is due.
    assert_eq!(
        store.queue_stats(at(100_000)).await.expect("stats"),
        stats(4, 0, 0)
    );
}

/// The text streamed so far is readable from the job while it runs, each
/// report replacing the last, and the final answer replaces it.
pub async fn progress_is_visible_while_running<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, _) = submit(
        &store,
        submission(
            &session,
            new_conversation("stream"),
            "How much leave?",
            at(0),
        ),
    )
    .await;
    let claimed = claim_one(&store, at(10)).await;
    assert_eq!(claimed.job.partial, None);
    assert_eq!(job(&store, &submitted.id).await.partial, None);

    assert!(progress(&store, &claimed, "Thirty", at(60_000), at(100)).await);
    let running = job(&store, &submitted.id).await;
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.partial.as_deref(), Some("Thirty"));
    assert_eq!(running.updated_at, at(100));
    assert_eq!(running.attempts, 1);
    assert_eq!(running.result, None);

    // Another handle (the API, in another process) sees it too.
    let reader = h.second_handle(&store).await;
    assert!(progress(&store, &claimed, "Thirty days [1]", at(60_000), at(200)).await);
    let running = job(&reader, &submitted.id).await;
    assert_eq!(running.partial.as_deref(), Some("Thirty days [1]"));
    assert_eq!(running.updated_at, at(200));

    // Text that is not plain ASCII, and the empty text, round-trip as given.
    let fancy = "30 Tage — «Urlaub» 🌴\nzweite Zeile";
    assert!(progress(&store, &claimed, fancy, at(60_000), at(300)).await);
    assert_eq!(
        job(&store, &submitted.id).await.partial.as_deref(),
        Some(fancy)
    );
    assert!(progress(&store, &claimed, "", at(60_000), at(400)).await);
    assert_eq!(
        job(&store, &submitted.id).await.partial.as_deref(),
        Some("")
    );

    let reply = answer("30 days [1].");
    assert_eq!(
        store
            .complete_chat(&claimed, &reply, at(500))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    let done = job(&store, &submitted.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(JobResult::Chat(reply)));
    assert_eq!(done.partial, None, "the result holds the final text");
}

/// A drain whose lease expired and was taken over learns it from
/// `record_progress` (false), and its report changes nothing: not the text,
/// not `updated_at`, not the new holder's lease.
pub async fn progress_from_a_stale_claim_changes_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let other = h.second_handle(&store).await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let slow = store
        .claim(&claim_request(1, 10_000, 5, at(1)))
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    assert_eq!(slow.lease_until, at(10_001));
    assert!(progress(&store, &slow, "first attempt", slow.lease_until, at(5)).await);

    let taken = other
        .claim(&claim_request(1, 10_000, 5, at(10_002)))
        .await
        .expect("claim")
        .pop()
        .expect("claimable once the lease expired");
    assert_eq!(taken.job.id, queued.id);
    assert_eq!(taken.job.attempts, 2);
    assert_eq!(taken.lease_until, at(20_002));

    assert!(
        !progress(
            &store,
            &slow,
            "first attempt, later",
            at(100_000),
            at(10_003)
        )
        .await,
        "a stale claim is told to stop"
    );
    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.status, JobStatus::Running);
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.partial, None, "the stale text was not stored");
    assert_eq!(stored.updated_at, at(10_002));

    // The stale report did not extend the new holder's lease either.
    let stats = store.queue_stats(at(20_003)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (1, 0));
    let third = claim_one(&store, at(20_003)).await;
    assert_eq!(third.job.id, queued.id);
    assert_eq!(third.job.attempts, 3);
    assert!(
        !progress(&other, &taken, "second attempt", at(100_000), at(20_004)).await,
        "the second claim is stale now too"
    );
    assert!(
        progress(
            &other,
            &third,
            "third attempt",
            third.lease_until,
            at(20_005)
        )
        .await
    );
    assert_eq!(
        job(&store, &queued.id).await.partial.as_deref(),
        Some("third attempt")
    );
}

/// A lease extended by `record_progress` holds until the new time: no claim
/// takes the job before it, and one after it does (a fresh attempt with no
/// partial text), after which the old claim is stale.
pub async fn progress_extends_the_lease<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let other = h.second_handle(&store).await;
    let session = session_id();
    let (submitted, _) = submit(
        &store,
        submission(&session, new_conversation("long"), "A long question", at(0)),
    )
    .await;
    let first = store
        .claim(&claim_request(1, 10_000, 5, at(0)))
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    assert_eq!(first.lease_until, at(10_000));
    assert!(progress(&store, &first, "Part one", at(50_000), at(5_000)).await);

    for now in [10_001, 30_000, 50_000] {
        assert!(
            other
                .claim(&claim_request(1, 10_000, 5, at(now)))
                .await
                .expect("claim")
                .is_empty(),
            "the extended lease holds at {now}"
        );
        let stats = other.queue_stats(at(now)).await.expect("stats");
        assert_eq!((stats.queued, stats.running), (0, 1), "running at {now}");
    }
    let still = job(&store, &submitted.id).await;
    assert_eq!(still.attempts, 1, "no claim took it");
    assert_eq!(still.partial.as_deref(), Some("Part one"));

    // Extending again, from the lease holder, still works after those claims.
    assert!(progress(&store, &first, "Part one, two", at(60_000), at(50_000)).await);
    assert!(
        other
            .claim(&claim_request(1, 10_000, 5, at(59_999)))
            .await
            .expect("claim")
            .is_empty()
    );

    let stats = other.queue_stats(at(60_001)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (1, 0));
    let second = other
        .claim(&claim_request(1, 10_000, 5, at(60_001)))
        .await
        .expect("claim")
        .pop()
        .expect("claimable after the extended lease");
    assert_eq!(second.job.id, submitted.id);
    assert_eq!(second.job.attempts, 2);
    assert_eq!(
        second.job.partial, None,
        "a new attempt starts from nothing"
    );
    assert_eq!(job(&store, &submitted.id).await.partial, None);
    assert!(
        !progress(&store, &first, "Part three", at(200_000), at(60_002)).await,
        "the first claim is stale"
    );
    assert_eq!(job(&store, &submitted.id).await.partial, None);
}

/// Every end of an attempt clears the partial text: completion (chat and
/// other jobs), failure with a retry, failure for good, release, and a claim
/// that dead-letters an abandoned job.
pub async fn partial_is_cleared_when_an_attempt_ends<H: Harness>(h: &H) {
    // complete_chat
    let store = h.fresh().await;
    let session = session_id();
    let (chat, _) = submit(
        &store,
        submission(&session, new_conversation("done"), "question", at(0)),
    )
    .await;
    let claimed = claim_one(&store, at(1)).await;
    assert!(progress(&store, &claimed, "partly", at(30_000), at(2)).await);
    store
        .complete_chat(&claimed, &answer("all of it"), at(3))
        .await
        .expect("complete_chat");
    assert_eq!(job(&store, &chat.id).await.partial, None, "complete_chat");

    // fail_job with a retry, then the retry's own progress, then complete_job.
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let first = claim_one(&store, at(1)).await;
    assert!(progress(&store, &first, "attempt 1", at(30_000), at(2)).await);
    assert_eq!(
        store
            .fail_job(&first, "flow answered 503", Some(at(100)), at(3))
            .await
            .expect("fail_job"),
        FailureOutcome::RetryAt(at(100))
    );
    let retrying = job(&store, &queued.id).await;
    assert_eq!(retrying.status, JobStatus::Queued);
    assert_eq!(retrying.partial, None, "fail_job (retry)");
    let second = claim_one(&store, at(100)).await;
    assert_eq!(second.job.partial, None);
    assert!(progress(&store, &second, "attempt 2", at(30_000), at(101)).await);
    store
        .complete_job(
            &second,
            &JobResult::Ingest(IngestReport::default()),
            at(102),
        )
        .await
        .expect("complete_job");
    assert_eq!(job(&store, &queued.id).await.partial, None, "complete_job");

    // fail_job for good
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let claimed = claim_one(&store, at(1)).await;
    assert!(progress(&store, &claimed, "doomed", at(30_000), at(2)).await);
    assert_eq!(
        store
            .fail_job(&claimed, "unreadable pdf", None, at(3))
            .await
            .expect("fail_job"),
        FailureOutcome::DeadLettered
    );
    let failed = job(&store, &queued.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.partial, None, "fail_job (dead letter)");

    // release
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let claimed = claim_one(&store, at(1)).await;
    assert!(progress(&store, &claimed, "interrupted", at(30_000), at(2)).await);
    assert!(store.release(&claimed, at(3)).await.expect("release"));
    let released = job(&store, &queued.id).await;
    assert_eq!(released.status, JobStatus::Queued);
    assert_eq!(released.partial, None, "release");
    let again = claim_one(&store, at(4)).await;
    assert_eq!(again.job.partial, None);

    // A claim that finds the lease expired once too often dead-letters the job.
    let store = h.fresh().await;
    let queued = enqueue_ingest(&store, at(0)).await;
    let claimed = store
        .claim(&claim_request(1, 1_000, 1, at(1)))
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    assert!(
        progress(
            &store,
            &claimed,
            "then the drain died",
            claimed.lease_until,
            at(2)
        )
        .await
    );
    assert!(
        store
            .claim(&claim_request(1, 1_000, 1, at(5_000)))
            .await
            .expect("claim")
            .is_empty()
    );
    let dead = job(&store, &queued.id).await;
    assert_eq!(dead.status, JobStatus::Failed);
    assert_eq!(dead.partial, None, "dead-lettered by a claim");
}

/// Progress for a job whose attempt is over — completed, failed, released —
/// is refused and changes nothing.
pub async fn progress_after_the_attempt_ended_is_refused<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (chat, _) = submit(
        &store,
        submission(&session, new_conversation("over"), "question", at(0)),
    )
    .await;
    let claimed = claim_one(&store, at(1)).await;
    store
        .complete_chat(&claimed, &answer("final"), at(2))
        .await
        .expect("complete_chat");
    let before = job(&store, &chat.id).await;
    assert!(
        !progress(&store, &claimed, "after the end", at(100_000), at(3)).await,
        "a finished job takes no progress"
    );
    let after = job(&store, &chat.id).await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(after.partial, None);
    assert!(
        claim(&store, 1, at(1_000_000)).await.is_empty(),
        "still done, not claimable"
    );

    // Failed for good.
    let queued = enqueue_ingest(&store, at(10)).await;
    let claimed = claim_one(&store, at(11)).await;
    store
        .fail_job(&claimed, "broken", None, at(12))
        .await
        .expect("fail_job");
    let before = job(&store, &queued.id).await;
    assert!(!progress(&store, &claimed, "after failing", at(100_000), at(13)).await);
    assert_eq!(job(&store, &queued.id).await, before);

    // Released: the claim is stale, the job stays queued and claimable.
    let queued = enqueue_ingest(&store, at(20)).await;
    let claimed = claim_one(&store, at(21)).await;
    assert!(store.release(&claimed, at(22)).await.expect("release"));
    let before = job(&store, &queued.id).await;
    assert!(!progress(&store, &claimed, "after releasing", at(100_000), at(23)).await);
    assert_eq!(job(&store, &queued.id).await, before);
    let again = claim_one(&store, at(24)).await;
    assert_eq!(again.job.id, queued.id);
}

/// A PDF's page count and a document's origin are stored and read back with
/// its record and replaced by an upsert like any other field; formats
/// without pages have none.
pub async fn documents_keep_their_page_count_and_origin<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let pdf = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 40,
        pages: Some(12),
        origin: DocumentOrigin::Folder,
        ..document("handbook.pdf", DocumentOwner::Shared, at(0))
    };
    let notes = document("notes.md", DocumentOwner::Shared, at(0));
    for doc in [&pdf, &notes] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    assert_eq!(
        store.list_documents(None).await.expect("list"),
        vec![pdf.clone(), notes.clone()]
    );
    assert_eq!(get_document(&store, &pdf.id).await, Some(pdf.clone()));
    let notes_read = get_document(&store, &notes.id).await.expect("notes");
    assert_eq!(
        (notes_read.pages, notes_read.origin),
        (None, DocumentOrigin::Upload)
    );

    for (pages, origin) in [
        (Some(u32::MAX), DocumentOrigin::Folder),
        (Some(0), DocumentOrigin::Upload),
        (None, DocumentOrigin::Upload),
        (Some(1), DocumentOrigin::Folder),
    ] {
        let changed = DocumentRecord {
            pages,
            origin,
            updated_at: at(10),
            ..pdf.clone()
        };
        store
            .upsert_document(&changed)
            .await
            .expect("upsert_document");
        assert_eq!(get_document(&store, &pdf.id).await, Some(changed.clone()));
        let reader = h.second_handle(&store).await;
        assert_eq!(
            reader.list_documents(None).await.expect("list")[0],
            changed,
            "pages {pages:?}"
        );
    }
}

/// `get_document` finds one record by id, whoever owns it (the caller
/// checks ownership), and nothing for an unknown or removed id.
pub async fn get_document_reads_one_record<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    assert_eq!(
        get_document(&store, &DocumentId::for_content(&unique_bytes())).await,
        None
    );
    let shared = document("policy.pdf", DocumentOwner::Shared, at(0));
    let private = DocumentRecord {
        status: DocumentStatus::Failed,
        size_bytes: u64::from(u32::MAX) + 7,
        error: Some("no text in «scan.pdf» — OCR it first".to_owned()),
        pages: Some(3),
        updated_at: at(-5),
        ..document("scan.pdf", DocumentOwner::Session(alice.clone()), at(0))
    };
    for doc in [&shared, &private] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    assert_eq!(get_document(&store, &shared.id).await, Some(shared.clone()));
    let reader = h.second_handle(&store).await;
    assert_eq!(
        get_document(&reader, &private.id).await,
        Some(private.clone())
    );
    assert!(store.remove_document(&private.id).await.expect("remove"));
    assert_eq!(get_document(&store, &private.id).await, None);
    assert_eq!(get_document(&store, &shared.id).await, Some(shared));
}

/// Upload parts hold any bytes — every byte value, NULs, invalid UTF-8, a
/// full part, an empty one — and are joined in index order whatever order
/// they were stored in. Rewriting a part is harmless; uploads are separate;
/// deleting one removes its parts only; a part above the limit is refused.
pub async fn upload_parts_round_trip_any_bytes<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let reader = h.second_handle(&store).await;

    let every_byte: Vec<u8> = (0..=255u8).collect();
    let small = DocumentId::for_content(&unique_bytes());
    put_part(&store, &small, 0, &every_byte).await;
    assert_eq!(
        get_upload(&reader, &small, 1).await,
        Some(every_byte.clone())
    );

    let big = DocumentId::for_content(&unique_bytes());
    let parts = [
        noise(UPLOAD_PART_BYTES, 1),
        [0xFF, 0xFE, 0x00, 0xC0, 0x80, 0xED, 0xA0, 0x80].repeat(UPLOAD_PART_BYTES / 8),
        noise(1_000, 3),
    ];
    for part in &parts[..2] {
        assert_eq!(part.len(), UPLOAD_PART_BYTES);
        assert!(std::str::from_utf8(part).is_err());
        assert!(part.contains(&0));
    }
    assert!((0..=255u8).all(|b| parts[0].contains(&b)));
    for index in [2u32, 0, 1] {
        put_part(&store, &big, index, &parts[index as usize]).await;
    }
    let whole = parts.concat();
    assert_eq!(get_upload(&store, &big, 3).await, Some(whole.clone()));
    assert_eq!(get_upload(&reader, &big, 3).await, Some(whole.clone()));
    assert_eq!(
        get_upload(&store, &big, 2).await,
        Some(parts[..2].concat()),
        "the first parts, joined"
    );

    // Rewriting a part (a retried request) changes nothing.
    put_part(&reader, &big, 1, &parts[1]).await;
    assert_eq!(get_upload(&store, &big, 3).await, Some(whole.clone()));

    let empty = DocumentId::for_content(&unique_bytes());
    put_part(&store, &empty, 0, &[]).await;
    assert_eq!(get_upload(&store, &empty, 1).await, Some(Vec::new()));

    store.delete_upload(&big, 3).await.expect("delete_upload");
    assert_eq!(get_upload(&store, &big, 3).await, None);
    assert_eq!(get_upload(&store, &big, 1).await, None);
    assert_eq!(get_upload(&store, &small, 1).await, Some(every_byte));
    store
        .delete_upload(&big, 3)
        .await
        .expect("deleting again is no error");

    let oversized = DocumentId::for_content(&unique_bytes());
    assert!(
        store
            .put_upload_part(&oversized, 0, &noise(UPLOAD_PART_BYTES + 1, 4), at(0))
            .await
            .is_err(),
        "a part above UPLOAD_PART_BYTES is refused"
    );
    assert_eq!(get_upload(&store, &oversized, 1).await, None);
}

/// One missing part — never stored, or beyond those stored — and there is
/// no upload; storing it completes the upload.
pub async fn upload_with_a_missing_part_is_none<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let id = DocumentId::for_content(&unique_bytes());
    assert_eq!(get_upload(&store, &id, 1).await, None, "never stored");
    put_part(&store, &id, 0, b"first ").await;
    put_part(&store, &id, 2, b"third").await;
    assert_eq!(get_upload(&store, &id, 3).await, None, "part 1 is missing");
    put_part(&store, &id, 1, b"second ").await;
    assert_eq!(
        get_upload(&store, &id, 3).await.as_deref(),
        Some(&b"first second third"[..])
    );
    assert_eq!(
        get_upload(&store, &id, 4).await,
        None,
        "part 3 was never stored"
    );
    // Another id's parts do not fill the gap.
    let other = DocumentId::for_content(&unique_bytes());
    put_part(&store, &other, 1, b"second ").await;
    assert_eq!(get_upload(&store, &other, 2).await, None);
}

/// An upload is accepted once: its pending record (private to its session)
/// and queued ingest job are written and its rate limits counted. The same
/// document again, pending or indexed, is `Existing` with nothing written
/// or counted.
pub async fn submit_upload_accepts_once_then_reports_the_existing_record<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let rule = check(&unique_key("write:session"), 5, 60_000);
    let record = document("contract.pdf", DocumentOwner::Session(alice.clone()), at(0));
    let sub = upload(&record, vec![rule.clone()], at(0));
    let job_new = sub.job.clone();
    let (job, accepted) = match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::Accepted { job, record } => (job, record),
        other => panic!("expected the upload to be accepted, got {other:?}"),
    };
    assert_eq!(accepted, record);
    assert_eq!(job.id, job_new.id);
    assert_eq!(job.kind, JobKind::Ingest);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.owner, Some(alice.clone()));
    assert_eq!(job.payload, ingest_upload(&record));
    assert_eq!(job.attempts, 0);
    assert_eq!((job.created_at, job.updated_at), (at(0), at(0)));
    assert_eq!(
        store.get_job(&job.id).await.expect("get_job"),
        Some(job.clone())
    );
    assert_eq!(get_document(&store, &record.id).await, Some(record.clone()));
    let queued = |n| QueueStats {
        queued: n,
        ..QueueStats::default()
    };
    assert_eq!(store.queue_stats(at(1)).await.expect("stats"), queued(1));

    // The record keeps its owner's scope, as any catalog entry.
    let listed = |docs: Vec<DocumentRecord>| docs.iter().any(|d| d.id == record.id);
    assert!(listed(
        store.list_documents(Some(&alice)).await.expect("list")
    ));
    assert!(!listed(
        store.list_documents(Some(&bob)).await.expect("list")
    ));
    assert!(!listed(store.list_documents(None).await.expect("list")));

    // Again while pending, then once indexed: nothing written or counted.
    let indexed = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 9,
        pages: Some(4),
        updated_at: at(20),
        ..record.clone()
    };
    for (existing, now) in [(&record, 10), (&record, 11), (&indexed, 30)] {
        if existing.status == DocumentStatus::Indexed {
            store
                .upsert_document(existing)
                .await
                .expect("upsert_document");
        }
        let again = upload(
            &DocumentRecord {
                name: "renamed.pdf".to_owned(),
                updated_at: at(now),
                ..record.clone()
            },
            vec![rule.clone()],
            at(now),
        );
        let again_job = again.job.id.clone();
        match store.submit_upload(again).await.expect("submit_upload") {
            UploadOutcome::Existing(found) => assert_eq!(&found, existing),
            other => panic!("expected Existing, got {other:?}"),
        }
        assert_eq!(store.get_job(&again_job).await.expect("get_job"), None);
        assert_eq!(
            get_document(&store, &record.id).await.as_ref(),
            Some(existing)
        );
        assert_eq!(store.queue_stats(at(now)).await.expect("stats"), queued(1));
    }
    let d = hit(&store, std::slice::from_ref(&rule), at(40)).await;
    assert_eq!(
        d.remaining, 3,
        "counted once by the accepted upload, now once more"
    );
}

/// A document whose ingestion failed is not `Existing`: uploading it again
/// replaces the failed record with a pending one and queues a new job.
pub async fn submit_upload_retries_a_failed_document<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let rule = check(&unique_key("write:ip"), 5, 60_000);
    let record = document("scan.pdf", DocumentOwner::Shared, at(0));
    let first = submit_upload(&store, upload(&record, vec![rule.clone()], at(0))).await;
    assert_eq!(first.owner, None, "a shared upload's job has no owner");
    let failed = DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some("no text layer".to_owned()),
        pages: Some(2),
        updated_at: at(5),
        ..record.clone()
    };
    store
        .upsert_document(&failed)
        .await
        .expect("upsert_document");

    let retry = DocumentRecord {
        updated_at: at(10),
        ..record.clone()
    };
    let second = submit_upload(&store, upload(&retry, vec![rule.clone()], at(10))).await;
    assert_ne!(second.id, first.id);
    assert_eq!(get_document(&store, &record.id).await, Some(retry.clone()));
    assert_eq!(
        store.list_documents(None).await.expect("list"),
        vec![retry.clone()],
        "replaced, not duplicated"
    );
    assert_eq!(store.queue_stats(at(11)).await.expect("stats").queued, 2);
    assert_eq!(
        hit(&store, std::slice::from_ref(&rule), at(12))
            .await
            .remaining,
        2,
        "both accepted uploads counted"
    );
    // Pending again: a third upload is `Existing`.
    assert!(matches!(
        store
            .submit_upload(upload(&retry, vec![rule], at(13)))
            .await
            .expect("submit_upload"),
        UploadOutcome::Existing(found) if found == retry
    ));
}

/// A refused upload writes nothing — no record, no job, no queue entry, no
/// hit on the checks that allowed it — and leaves a failed record as it was.
pub async fn rate_limited_upload_writes_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let loose = check(&unique_key("write:ip"), 5, 60_000);
    let tight = check(&unique_key("write:session"), 1, 60_000);
    assert!(
        hit(&store, std::slice::from_ref(&tight), at(0))
            .await
            .allowed
    );

    let record = document("big.pdf", DocumentOwner::Session(session.clone()), at(1));
    let sub = upload(&record, vec![loose.clone(), tight.clone()], at(1));
    let refused_job = sub.job.id.clone();
    match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::RateLimited(d) => {
            assert!(!d.allowed);
            assert_eq!(d.limit, 1);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.reset_at, at(60_000));
            assert!(d.retry_after_ms >= 1_000);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(get_document(&store, &record.id).await, None);
    assert_eq!(store.get_job(&refused_job).await.expect("get_job"), None);
    assert_eq!(
        store.queue_stats(at(2)).await.expect("stats"),
        QueueStats::default()
    );
    assert!(
        store
            .list_documents(Some(&session))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        hit(&store, std::slice::from_ref(&loose), at(3))
            .await
            .remaining,
        4,
        "the allowing check was not counted"
    );

    let failed = DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some("timeout".to_owned()),
        ..record.clone()
    };
    store
        .upsert_document(&failed)
        .await
        .expect("upsert_document");
    assert!(matches!(
        store
            .submit_upload(upload(&record, vec![tight], at(4)))
            .await
            .expect("submit_upload"),
        UploadOutcome::RateLimited(_)
    ));
    assert_eq!(get_document(&store, &record.id).await, Some(failed));
    assert_eq!(store.queue_stats(at(5)).await.expect("stats").queued, 0);
}

/// The same document uploaded many times at once, through two handles:
/// exactly one upload is accepted and one job queued; the others see it.
pub async fn concurrent_uploads_of_one_document_accept_one<H: Harness>(h: &H) {
    let a = Arc::new(h.fresh().await);
    let b = Arc::new(h.second_handle(&a).await);
    let record = document("same.pdf", DocumentOwner::Shared, at(0));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let sub = upload(&record, Vec::new(), at(i));
        tasks.push(tokio::spawn(async move {
            store.submit_upload(sub).await.expect("submit_upload")
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("the task finished") {
            UploadOutcome::Accepted { .. } => accepted += 1,
            UploadOutcome::Existing(found) => assert_eq!(found, record),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(a.queue_stats(at(100)).await.expect("stats").queued, 1);
}

/// The drain claims an accepted upload's job like any other, with the
/// payload that names the document, and completes it.
pub async fn accepted_upload_job_is_claimable_with_its_payload<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let record = document(
        "report.docx",
        DocumentOwner::Session(session.clone()),
        at(0),
    );
    let submitted = submit_upload(&store, upload(&record, Vec::new(), at(0))).await;
    let drain = h.second_handle(&store).await;
    let claimed = claim_one(&drain, at(1)).await;
    assert_eq!(claimed.job.id, submitted.id);
    assert_eq!(claimed.job.kind, JobKind::Ingest);
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.owner, Some(session.clone()));
    assert_eq!(
        claimed.job.payload,
        JobPayload::IngestUpload {
            document_id: record.id.clone(),
            name: "report.docx".to_owned(),
            owner: DocumentOwner::Session(session),
        }
    );
    let report = JobResult::Ingest(IngestReport {
        added: 1,
        ..IngestReport::default()
    });
    assert_eq!(
        drain
            .complete_job(&claimed, &report, at(2))
            .await
            .expect("complete_job"),
        Completion::Stored
    );
    assert_eq!(job(&store, &submitted.id).await.result, Some(report));
}

/// Deleting a document removes its record (from every listing) and queues
/// the job that removes its chunks, claimable with its payload; deleting it
/// again queues nothing, and uploading it again is a new upload.
pub async fn delete_document_removes_the_record_and_queues_the_job<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let record = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 7,
        pages: Some(2),
        ..document("old.pdf", DocumentOwner::Session(alice.clone()), at(0))
    };
    store
        .upsert_document(&record)
        .await
        .expect("upsert_document");
    let delete = delete_job(&record.id, at(1));
    assert!(
        store
            .delete_document(&record.id, delete.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(get_document(&store, &record.id).await, None);
    assert!(
        store
            .list_documents(Some(&alice))
            .await
            .expect("list")
            .is_empty()
    );
    let queued = job(&store, &delete.id).await;
    assert_eq!(queued.kind, JobKind::Delete);
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.created_at, at(1));
    assert_eq!(store.queue_stats(at(2)).await.expect("stats").queued, 1);

    let claimed = claim_one(&store, at(3)).await;
    assert_eq!(claimed.job.id, delete.id);
    assert_eq!(claimed.job.kind, JobKind::Delete);
    assert_eq!(
        claimed.job.payload,
        JobPayload::DeleteDocument {
            document_id: record.id.clone()
        }
    );

    let again = delete_job(&record.id, at(4));
    assert!(
        !store
            .delete_document(&record.id, again.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(store.get_job(&again.id).await.expect("get_job"), None);
    let stats = store.queue_stats(at(5)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (0, 1));

    let pending = DocumentRecord {
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        updated_at: at(6),
        ..record.clone()
    };
    submit_upload(&store, upload(&pending, Vec::new(), at(6))).await;
    assert_eq!(get_document(&store, &record.id).await, Some(pending));
}

/// Deleting a document that is not in the catalog is `false` and queues nothing.
pub async fn deleting_an_unknown_document_queues_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let id = DocumentId::for_content(&unique_bytes());
    let delete = delete_job(&id, at(0));
    assert!(
        !store
            .delete_document(&id, delete.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(store.get_job(&delete.id).await.expect("get_job"), None);
    assert_eq!(
        store.queue_stats(at(1)).await.expect("stats"),
        QueueStats::default()
    );
}
