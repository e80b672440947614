//! Claims: the oldest claimable jobs, each handed to exactly one caller
//! under a fresh lease, in one `BEGIN IMMEDIATE` transaction; a job whose
//! lease expired once too often is dead-lettered instead, and one that
//! cannot be read is failed.

use flowchat_domain::Timestamp;
use flowchat_domain::model::JobStatus;
use rusqlite::{Connection, Transaction, params};

use super::jobs::{RawJob, job_columns};
use super::{SqliteStore, dead_letters, immediate};
use crate::{ClaimRequest, ClaimedJob, StoreError};

/// The `WHERE` clause of claimable jobs at `?1` (now): due, or abandoned by
/// an expired lease. The status filter repeats the `jobs_pending` index's, so
/// the planner scans only waiting and running jobs.
macro_rules! claimable {
    () => {
        "status IN ('queued', 'running')
         AND ((status = 'queued' AND available_at <= ?1) OR (status = 'running' AND lease_until < ?1))"
    };
}

/// A fresh, unguessable claim identifier.
fn new_lease_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Backend(format!("no randomness for a lease id: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A running job whose lease expired after `max_attempts` claims is
/// failed and dead-lettered here instead of being handed out again.
pub(super) async fn claim(
    store: &SqliteStore,
    request: &ClaimRequest,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let request = request.clone();
    store.run(move |conn, _| claim_tx(conn, request)).await
}

fn claim_tx(conn: &mut Connection, request: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
    let now = request.now.as_millis();
    // A lease shorter than 1 ms would leave the job claimable by the same scan.
    let lease_until = now.saturating_add(request.lease_ms.max(1));
    let wanted = usize::try_from(request.max_jobs).unwrap_or(usize::MAX);
    let mut claimed = Vec::new();
    if wanted == 0 {
        return Ok(claimed);
    }
    // Idle drains poll often: look without the write lock first, so an empty
    // queue never holds up submissions. A job arriving right after this look
    // is simply found by the next poll.
    let any = conn
        .prepare_cached(concat!(
            "SELECT 1 FROM jobs WHERE ",
            claimable!(),
            " LIMIT 1"
        ))?
        .exists([now])?;
    if !any {
        return Ok(claimed);
    }
    let tx = immediate(conn)?;
    // Each round's rows all leave the claimable set (handed out with a lease
    // in the future, or failed), so the loop ends.
    while claimed.len() < wanted {
        let limit = i64::try_from(wanted - claimed.len()).unwrap_or(i64::MAX);
        let rows: Vec<(i64, RawJob)> = {
            let mut select = tx.prepare_cached(concat!(
                "SELECT seq, ",
                job_columns!(),
                " FROM jobs WHERE ",
                claimable!(),
                " ORDER BY seq LIMIT ?2"
            ))?;
            select
                .query_map(params![now, limit], |row| {
                    Ok((row.get(0)?, RawJob::read(row, 1)?))
                })?
                .collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            break;
        }
        for (seq, raw) in rows {
            if let Some(job) = claim_row(&tx, seq, raw, &request, lease_until)? {
                claimed.push(job);
            }
        }
    }
    tx.commit()?;
    Ok(claimed)
}

/// Handles one claimable row: hands it out (`Some`), or dead-letters it when
/// its lease expired once too often, or fails it when it cannot be read.
fn claim_row(
    tx: &Transaction<'_>,
    seq: i64,
    raw: RawJob,
    request: &ClaimRequest,
    lease_until: i64,
) -> Result<Option<ClaimedJob>, StoreError> {
    let now = request.now.as_millis();
    let mut job = match raw.into_job() {
        Ok(job) => job,
        Err(error) => {
            // An unreadable job must not block the queue forever.
            tx.prepare_cached(
                "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
                 partial = NULL, updated_at = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, format!("the stored job cannot be read: {error}"), now])?;
            return Ok(None);
        }
    };
    if job.status == JobStatus::Running && job.attempts >= request.max_attempts {
        // Read by users too (`take.lua` writes the same words).
        let error = format!(
            "The job stopped responding on every attempt ({}) and was given up; try again later.",
            job.attempts
        );
        tx.prepare_cached(
            "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
             partial = NULL, updated_at = ?3 WHERE seq = ?1",
        )?
        .execute(params![seq, error, now])?;
        dead_letters::add(tx, &job.id, job.kind.as_str(), job.attempts, &error, now)?;
        return Ok(None);
    }
    let lease_id = new_lease_id()?;
    job.status = JobStatus::Running;
    job.attempts = job.attempts.saturating_add(1);
    job.updated_at = request.now;
    // A new attempt starts from nothing, whatever an abandoned one streamed.
    job.partial = None;
    tx.prepare_cached(
        "UPDATE jobs SET status = 'running', attempts = ?2, lease_id = ?3, lease_until = ?4,
         worker = ?5, partial = NULL, updated_at = ?6 WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        job.attempts,
        lease_id,
        lease_until,
        request.worker,
        now
    ])?;
    Ok(Some(ClaimedJob {
        job,
        lease_id,
        lease_until: Timestamp::from_millis(lease_until),
    }))
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::JobPayload;
    use flowchat_domain::{JobId, Timestamp};
    use rusqlite::params;

    use super::*;
    use crate::sqlite::test_store as store;
    use crate::{NewJob, Store};

    #[tokio::test]
    async fn bad_stored_data_is_corrupt_not_a_panic() {
        let (_dir, store) = store();
        let id = JobId::from_random([1; 16]);
        store
            .enqueue(NewJob {
                id: id.clone(),
                owner: None,
                payload: JobPayload::IngestSharedFolder,
                now: Timestamp::from_millis(1),
            })
            .await
            .unwrap();
        store
            .inner
            .conn
            .lock()
            .unwrap()
            .execute("UPDATE jobs SET payload = '{nope'", [])
            .unwrap();
        assert!(matches!(
            store.get_job(&id).await,
            Err(StoreError::Corrupt(_))
        ));
        // A claim fails the unreadable job instead of blocking the queue.
        let claimed = store
            .claim(&ClaimRequest {
                worker: "w".into(),
                max_jobs: 1,
                lease_ms: 1000,
                max_attempts: 3,
                now: Timestamp::from_millis(3),
            })
            .await
            .unwrap();
        assert!(claimed.is_empty());
        let status: String = store
            .inner
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT status FROM jobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "failed");
    }

    #[test]
    fn claims_use_the_pending_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        let conn = store.inner.conn.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare(concat!(
                "EXPLAIN QUERY PLAN SELECT seq, ",
                job_columns!(),
                " FROM jobs WHERE ",
                claimable!(),
                " ORDER BY seq LIMIT ?2"
            ))
            .unwrap()
            .query_map(params![0, 1], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("jobs_pending")),
            "plan: {plan:?}"
        );
    }
}
