//! The queue: each job handed out once, leases that expire and are
//! claimed again, retries, releases, completion of non-chat jobs and the
//! counts of each state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use flowchat_domain::JobId;
use flowchat_domain::model::{IngestFailure, IngestReport, JobKind, JobResult, JobStatus};

use super::Harness;
use super::support::*;
use crate::{ClaimRequest, Completion, FailureOutcome, QueueStats, Store};

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
