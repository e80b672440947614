//! Rate limits: exact limits, sliding windows, all-or-nothing checks, and
//! a refused submission writes nothing, even under concurrency.

use std::sync::Arc;

use flowchat_domain::model::JobStatus;

use super::Harness;
use super::support::*;
use crate::{ConversationTarget, Store, SubmitOutcome};

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
