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
//!
//! The checks are grouped by concern, one module each (chat, rate limits,
//! queue, dead letters, feedback, progress, catalog, uploads, quotas, liveness), with what
//! they share in `support`.

mod catalog;
mod chat;
mod dead_letters;
mod feedback;
mod liveness;
mod progress;
mod queue;
mod quotas;
mod rate_limits;
mod support;
mod uploads;

use std::future::Future;
use std::time::Duration;

pub use async_trait::async_trait;

pub use self::catalog::*;
pub use self::chat::*;
pub use self::dead_letters::*;
pub use self::feedback::*;
pub use self::liveness::*;
pub use self::progress::*;
pub use self::queue::*;
pub use self::quotas::*;
pub use self::rate_limits::*;
pub use self::support::{T0, at};
pub use self::uploads::*;
use crate::Store;

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
            a_dead_lettered_upload_fails_its_pending_record,
            release_requeues_without_counting_the_attempt,
            complete_chat_is_idempotent,
            complete_after_conversation_deleted_still_succeeds,
            complete_job_stores_a_result_once,
            conversations_are_isolated_by_owner,
            feedback_is_recorded_replaced_and_listed,
            feedback_is_refused_for_answers_not_ones_own,
            feedback_goes_with_its_conversation,
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
            upload_quotas_count_what_a_session_holds,
            documents_of_ended_sessions_are_cleaned_up,
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
    a_dead_lettered_upload_fails_its_pending_record(h).await;
    release_requeues_without_counting_the_attempt(h).await;
    complete_chat_is_idempotent(h).await;
    complete_after_conversation_deleted_still_succeeds(h).await;
    complete_job_stores_a_result_once(h).await;
    conversations_are_isolated_by_owner(h).await;
    feedback_is_recorded_replaced_and_listed(h).await;
    feedback_is_refused_for_answers_not_ones_own(h).await;
    feedback_goes_with_its_conversation(h).await;
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
    upload_quotas_count_what_a_session_holds(h).await;
    documents_of_ended_sessions_are_cleaned_up(h).await;
}
