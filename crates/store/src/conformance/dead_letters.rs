//! Dead letters: a job out of attempts (by failure or by expired leases)
//! is dead-lettered, listed and replayed.

use flowchat_domain::model::{
    DocumentOwner, DocumentRecord, DocumentStatus, IngestReport, JobKind, JobResult, JobStatus,
};

use super::Harness;
use super::support::*;
use crate::{Completion, FailureOutcome, QueueStats, Store, UPLOAD_GIVEN_UP, UploadOutcome};

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

/// An upload whose ingest job is dead-lettered — by the claim that finds
/// its drain died once too often, or by the last failed attempt — does not
/// stay `pending` (issue 14, M2): its record is failed with
/// [`UPLOAD_GIVEN_UP`] in the same step, and the same bytes can be
/// uploaded again. A record the drain already failed or indexed, and a
/// retried job's record, are left alone.
pub async fn a_dead_lettered_upload_fails_its_pending_record<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let given_up = |record: &DocumentRecord, now| DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some(UPLOAD_GIVEN_UP.to_owned()),
        updated_at: at(now),
        ..record.clone()
    };

    // The drain dies on it every time: the claim gives up.
    let crashing = document("bomb.pdf", DocumentOwner::Session(session_id()), at(0));
    let job_one = submit_upload(&store, upload(&crashing, Vec::new(), at(0))).await;
    let request = |now| claim_request(1, 1_000, 1, at(now));
    assert_eq!(store.claim(&request(1)).await.expect("claim").len(), 1);
    assert!(
        store
            .claim(&request(5_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(job(&store, &job_one.id).await.status, JobStatus::Failed);
    assert_eq!(
        get_document(&store, &crashing.id).await,
        Some(given_up(&crashing, 5_000))
    );
    // The same bytes again: accepted, pending, with a new job.
    let again = DocumentRecord {
        updated_at: at(6_000),
        ..crashing.clone()
    };
    let job_two = submit_upload(&store, upload(&again, Vec::new(), at(6_000))).await;
    assert_ne!(job_two.id, job_one.id);
    assert_eq!(
        get_document(&store, &crashing.id).await,
        Some(again.clone())
    );

    // Its last attempt fails and the drain could not fail the record.
    let claimed = claim_one(&store, at(7_000)).await;
    assert_eq!(claimed.job.id, job_two.id);
    assert_eq!(
        store
            .fail_job(
                &claimed,
                "The knowledge index is unavailable.",
                None,
                at(8_000)
            )
            .await
            .expect("fail_job"),
        FailureOutcome::DeadLettered
    );
    assert_eq!(
        get_document(&store, &crashing.id).await,
        Some(given_up(&again, 8_000))
    );

    // A retry leaves the record pending; a record the drain failed with its
    // own reason keeps it; an indexed one stays indexed.
    let shared = document("notes.md", DocumentOwner::Shared, at(10_000));
    let kept = document("kept.md", DocumentOwner::Shared, at(10_000));
    for record in [&shared, &kept] {
        submit_upload(&store, upload(record, Vec::new(), at(10_000))).await;
    }
    let claimed = claim(&store, 2, at(10_001)).await;
    assert_eq!(claimed.len(), 2);
    for one in &claimed {
        assert!(matches!(
            store
                .fail_job(one, "try again", Some(at(10_002)), at(10_001))
                .await
                .expect("fail_job"),
            FailureOutcome::RetryAt(_)
        ));
    }
    assert_eq!(get_document(&store, &shared.id).await, Some(shared.clone()));
    let drain_failed = DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some("The document could not be read: notes.md contains no text".to_owned()),
        updated_at: at(10_003),
        ..shared.clone()
    };
    store
        .upsert_document(&drain_failed)
        .await
        .expect("upsert_document");
    let indexed = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 4,
        updated_at: at(10_003),
        ..kept.clone()
    };
    store
        .upsert_document(&indexed)
        .await
        .expect("upsert_document");
    for one in claim(&store, 2, at(10_004)).await {
        assert_eq!(
            store
                .fail_job(&one, "gave up", None, at(10_005))
                .await
                .expect("fail_job"),
            FailureOutcome::DeadLettered
        );
    }
    assert_eq!(get_document(&store, &shared.id).await, Some(drain_failed));
    assert_eq!(get_document(&store, &kept.id).await, Some(indexed.clone()));
    assert!(matches!(
        store
            .submit_upload(upload(&kept, Vec::new(), at(10_006)))
            .await
            .expect("submit_upload"),
        UploadOutcome::Existing(found) if found == indexed
    ));
    assert_eq!(store.dead_letters(10).await.expect("dead_letters").len(), 4);
}
