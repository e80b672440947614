//! Dead letters: jobs that ran out of attempts, kept for an operator to
//! read and replay. Dead-lettering an upload's ingest job also fails its
//! catalog record if that is still `pending`.

use flowchat_domain::model::{JobKind, JobPayload};
use flowchat_domain::{JobId, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, immediate};
use crate::codec::{parse_kind, to_u32};
use crate::{DeadLetter, StoreError, UPLOAD_GIVEN_UP};

/// Records (or replaces) the dead letter of a job that failed for good,
/// and fails the pending record of the upload it was ingesting.
pub(super) fn add(
    tx: &Transaction<'_>,
    job_id: &JobId,
    kind: &str,
    attempts: u32,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (job_id, kind, attempts, error, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind, attempts = excluded.attempts,
         error = excluded.error, failed_at = excluded.failed_at",
    )?
    .execute(params![job_id.as_str(), kind, attempts, error, now])?;
    if kind == JobKind::Ingest.as_str() {
        fail_pending_upload(tx, job_id, now)?;
    }
    Ok(())
}

/// A record the drain already failed keeps its own reason; an indexed one
/// (the job succeeded after all, or the bytes were uploaded again and
/// indexed) is left alone.
fn fail_pending_upload(tx: &Transaction<'_>, job_id: &JobId, now: i64) -> Result<(), StoreError> {
    let payload: Option<String> = tx
        .prepare_cached("SELECT payload FROM jobs WHERE id = ?1")?
        .query_row([job_id.as_str()], |row| row.get(0))
        .optional()?;
    // An unreadable payload names no document; the job itself is failed.
    let Some(Ok(JobPayload::IngestUpload { document_id, .. })) =
        payload.map(|raw| serde_json::from_str::<JobPayload>(&raw))
    else {
        return Ok(());
    };
    tx.prepare_cached(
        "UPDATE documents SET status = 'failed', error = ?2, chunks = 0, updated_at = ?3
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![document_id.as_str(), UPLOAD_GIVEN_UP, now])?;
    Ok(())
}

pub(super) async fn list(store: &SqliteStore, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
    store
        .run(move |conn, _| {
            let rows: Vec<(String, String, i64, String, i64)> = conn
                .prepare_cached(
                    "SELECT job_id, kind, attempts, error, failed_at FROM dead_letters
                 ORDER BY failed_at DESC, seq DESC LIMIT ?1",
                )?
                .query_map([limit], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(job_id, kind, attempts, error, failed_at)| {
                    Ok(DeadLetter {
                        job_id: JobId::from_trusted(job_id),
                        kind: parse_kind(&kind)?,
                        attempts: to_u32("dead letter attempts", attempts)?,
                        error,
                        failed_at: Timestamp::from_millis(failed_at),
                    })
                })
                .collect()
        })
        .await
}

/// The job goes back to `queued`, due now, with 0 attempts and no error.
pub(super) async fn replay(
    store: &SqliteStore,
    id: &JobId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
            let tx = immediate(conn)?;
            let removed = tx
                .prepare_cached("DELETE FROM dead_letters WHERE job_id = ?1")?
                .execute([id.as_str()])?;
            if removed == 0 {
                return Ok(false);
            }
            let requeued = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, result = NULL,
                 available_at = ?2, lease_id = NULL, lease_until = NULL, partial = NULL,
                 updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id.as_str(), now.as_millis()])?;
            // A dead letter whose job is gone is dropped, and reported as not replayed.
            tx.commit()?;
            Ok(requeued > 0)
        })
        .await
}
