//! Progress: the answer streamed so far is visible while the attempt
//! runs, only from the lease holder, extends the lease, and is cleared when
//! the attempt ends.

use flowchat_domain::model::{IngestReport, JobResult, JobStatus};

use super::Harness;
use super::support::*;
use crate::{Completion, FailureOutcome, Store};

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
