//! The queue once a job is claimed (claims are `claims`'): progress from
//! the lease holder, completion, failure with a retry or a dead letter,
//! release, the counts of each state, and the drains' heartbeats.

use flowchat_domain::model::{ChatAnswer, JobPayload, JobResult, JobStatus};
use flowchat_domain::{JobId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{SqliteStore, chat, dead_letters, immediate};
use crate::codec::{corrupt, parse_status, to_json, to_u32};
use crate::{ClaimedJob, Completion, FailureOutcome, Heartbeat, QueueStats, StoreError};

/// One `UPDATE` guarded by the lease (as `fail_job` and `release` are):
/// it changes the row only while the job is running under this claim.
/// The new `lease_until` is what claims compare with `now`.
pub(super) async fn record_progress(
    store: &SqliteStore,
    claim: &ClaimedJob,
    partial: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let (id, lease_id, partial) = (
        claim.job.id.clone(),
        claim.lease_id.clone(),
        partial.to_owned(),
    );
    store
        .run(move |conn, _| {
            let changed = conn
                .prepare_cached(
                    "UPDATE jobs SET partial = ?3, lease_until = ?4, updated_at = ?5
                 WHERE id = ?1 AND status = 'running' AND lease_id = ?2",
                )?
                .execute(params![
                    id.as_str(),
                    lease_id,
                    partial,
                    lease_until.as_millis(),
                    now.as_millis()
                ])?;
            Ok(changed > 0)
        })
        .await
}

/// Accepted from any claim of the job, even an expired one: the answer
/// exists, and a unique index keeps it to one assistant message. If the
/// conversation was deleted meanwhile the job still succeeds, without a
/// message. A job dead-lettered by a claim that completes after all
/// leaves the dead letters.
pub(super) async fn complete_chat(
    store: &SqliteStore,
    claim: &ClaimedJob,
    answer: &ChatAnswer,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let (claim, result) = (claim.clone(), JobResult::Chat(answer.clone()));
    store
        .run(move |conn, _| complete_tx(conn, claim, result, true, now))
        .await
}

/// Stores the result without appending any message.
pub(super) async fn complete_job(
    store: &SqliteStore,
    claim: &ClaimedJob,
    result: &JobResult,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let (claim, result) = (claim.clone(), result.clone());
    store
        .run(move |conn, _| complete_tx(conn, claim, result, false, now))
        .await
}

/// Stores a job's result once. With `append_answer`, a chat answer for a chat
/// job also becomes the assistant message of the payload's conversation, if
/// that conversation still exists.
fn complete_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    result: JobResult,
    append_answer: bool,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let now_ms = now.as_millis();
    let tx = immediate(conn)?;
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([claim.job.id.as_str()], |row| row.get(0))
        .optional()?;
    let Some(status) = status else {
        return Err(StoreError::Backend(format!(
            "job {} does not exist",
            claim.job.id
        )));
    };
    if parse_status(&status)? == JobStatus::Succeeded {
        return Ok(Completion::AlreadyDone);
    }
    tx.prepare_cached(
        "UPDATE jobs SET status = 'succeeded', result = ?2, error = NULL, lease_id = NULL,
         lease_until = NULL, partial = NULL, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![claim.job.id.as_str(), to_json(&result)?, now_ms])?;
    // A job a claim gave up on can still finish; it is no longer dead.
    tx.prepare_cached("DELETE FROM dead_letters WHERE job_id = ?1")?
        .execute([claim.job.id.as_str()])?;
    if let (
        true,
        JobResult::Chat(answer),
        JobPayload::Chat {
            conversation_id, ..
        },
    ) = (append_answer, &result, &claim.job.payload)
    {
        chat::append_answer(&tx, conversation_id, answer, &claim.job.id, now_ms)?;
    }
    tx.commit()?;
    Ok(Completion::Stored)
}

/// Only the current lease holder of a running job may fail it.
pub(super) async fn fail(
    store: &SqliteStore,
    claim: &ClaimedJob,
    error: &str,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<FailureOutcome, StoreError> {
    let (claim, error) = (claim.clone(), error.to_owned());
    store
        .run(move |conn, _| fail_tx(conn, claim, error, retry_at, now))
        .await
}

/// The current lease and state of a job, for the lease-holder checks.
struct LeaseState {
    status: String,
    lease_id: Option<String>,
    kind: String,
    attempts: i64,
}

fn lease_state(tx: &Transaction<'_>, id: &JobId) -> Result<Option<LeaseState>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT status, lease_id, kind, attempts FROM jobs WHERE id = ?1")?
        .query_row([id.as_str()], |row| {
            Ok(LeaseState {
                status: row.get(0)?,
                lease_id: row.get(1)?,
                kind: row.get(2)?,
                attempts: row.get(3)?,
            })
        })
        .optional()?)
}

/// Whether `claim` still holds its job: running, under this very lease.
fn holds(state: &Option<LeaseState>, claim: &ClaimedJob) -> bool {
    matches!(state, Some(s) if s.status == JobStatus::Running.as_str()
        && s.lease_id.as_deref() == Some(claim.lease_id.as_str()))
}

fn fail_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    error: String,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<FailureOutcome, StoreError> {
    let now_ms = now.as_millis();
    let tx = immediate(conn)?;
    let state = lease_state(&tx, &claim.job.id)?;
    if !holds(&state, &claim) {
        return Ok(FailureOutcome::StaleClaim);
    }
    let Some(current) = state else {
        return Ok(FailureOutcome::StaleClaim);
    };
    let outcome =
        match retry_at {
            Some(at) => {
                tx.prepare_cached(
                "UPDATE jobs SET status = 'queued', available_at = ?2, error = ?3, lease_id = NULL,
                 lease_until = NULL, partial = NULL, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![claim.job.id.as_str(), at.as_millis(), error, now_ms])?;
                FailureOutcome::RetryAt(at)
            }
            None => {
                tx.prepare_cached(
                "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
                 partial = NULL, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![claim.job.id.as_str(), error, now_ms])?;
                let attempts = to_u32("job attempts", current.attempts)?;
                dead_letters::add(&tx, &claim.job.id, &current.kind, attempts, &error, now_ms)?;
                FailureOutcome::DeadLettered
            }
        };
    tx.commit()?;
    Ok(outcome)
}

pub(super) async fn release(
    store: &SqliteStore,
    claim: &ClaimedJob,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let claim = claim.clone();
    store.run(move |conn, _| release_tx(conn, claim, now)).await
}

fn release_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    let state = lease_state(&tx, &claim.job.id)?;
    if !holds(&state, &claim) {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE jobs SET status = 'queued', available_at = ?2, attempts = MAX(attempts - 1, 0),
         lease_id = NULL, lease_until = NULL, partial = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![claim.job.id.as_str(), now.as_millis()])?;
    tx.commit()?;
    Ok(true)
}

/// Running jobs whose lease expired count as `queued` (they are claimable).
pub(super) async fn stats(store: &SqliteStore, now: Timestamp) -> Result<QueueStats, StoreError> {
    store
        .run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let (queued, delayed, running): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT
                   COALESCE(SUM((status = 'queued' AND available_at <= ?1)
                                OR (status = 'running' AND lease_until < ?1)), 0),
                   COALESCE(SUM(status = 'queued' AND available_at > ?1), 0),
                   COALESCE(SUM(status = 'running' AND lease_until >= ?1), 0)
                 FROM jobs WHERE status IN ('queued', 'running')",
                )?
                .query_row([now.as_millis()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            let dead: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM dead_letters")?
                .query_row([], |row| row.get(0))?;
            let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("queue count", n));
            Ok(QueueStats {
                queued: count(queued)?,
                delayed: count(delayed)?,
                running: count(running)?,
                dead_letters: count(dead)?,
            })
        })
        .await
}

pub(super) async fn record_heartbeat(
    store: &SqliteStore,
    worker: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let worker = worker.to_owned();
    store
        .run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO heartbeats (worker, at) VALUES (?1, ?2)
             ON CONFLICT (worker) DO UPDATE SET at = excluded.at",
            )?
            .execute(params![worker, now.as_millis()])?;
            Ok(())
        })
        .await
}

pub(super) async fn last_heartbeat(store: &SqliteStore) -> Result<Option<Heartbeat>, StoreError> {
    store
        .run(|conn, _| {
            let row: Option<(String, i64)> = conn
                .prepare_cached("SELECT worker, at FROM heartbeats ORDER BY at DESC LIMIT 1")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            Ok(row.map(|(worker, at)| Heartbeat {
                worker,
                at: Timestamp::from_millis(at),
            }))
        })
        .await
}
