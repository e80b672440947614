//! Dead letters: a job out of attempts (by failure or by expired leases)
//! is dead-lettered, listed and replayed.

use flowchat_domain::model::{IngestReport, JobKind, JobResult, JobStatus};

use super::Harness;
use super::support::*;
use crate::{Completion, FailureOutcome, QueueStats, Store};

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
