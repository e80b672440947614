//! Upload bytes, kept in parts in `upload_parts` until the drain ingests
//! them, and the submission of an upload (its pending catalog record and
//! ingest job). Parts expire by this machine's clock (see the module
//! documentation of `sqlite`).

use std::time::{SystemTime, UNIX_EPOCH};

use flowchat_domain::model::DocumentStatus;
use flowchat_domain::{DocumentId, Timestamp};
use rusqlite::{Connection, params};

use super::catalog::{get_document, record_session_end, usage, write_document};
use super::jobs::insert_job;
use super::{Inner, SqliteStore, immediate, rate_limits};
use crate::codec::check_upload_part;
use crate::{StoreError, UploadOutcome, UploadSubmission};

/// This machine's clock, for upload expiry only (see the module documentation).
fn clock_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Expired parts of any upload are deleted on the way.
pub(super) async fn put_part(
    store: &SqliteStore,
    id: &DocumentId,
    index: u32,
    bytes: &[u8],
    _now: Timestamp,
) -> Result<(), StoreError> {
    check_upload_part(index, bytes)?;
    let (id, bytes, ttl) = (id.clone(), bytes.to_vec(), store.upload_ttl_ms);
    store
        .run(move |conn, _| {
            let clock = clock_millis();
            let tx = immediate(conn)?;
            tx.prepare_cached("DELETE FROM upload_parts WHERE expires_at <= ?1")?
                .execute([clock])?;
            tx.prepare_cached(
                "INSERT INTO upload_parts (document_id, part, bytes, expires_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (document_id, part) DO UPDATE SET bytes = excluded.bytes,
               expires_at = excluded.expires_at",
            )?
            .execute(params![
                id.as_str(),
                index,
                bytes,
                clock.saturating_add(ttl)
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
}

pub(super) async fn get(
    store: &SqliteStore,
    id: &DocumentId,
    parts: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
            let rows: Vec<(i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT part, bytes FROM upload_parts
                 WHERE document_id = ?1 AND part >= 0 AND part < ?2 AND expires_at > ?3
                 ORDER BY part",
                )?
                .query_map(params![id.as_str(), parts, clock_millis()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            // The key is (id, part), so `parts` rows are exactly parts 0..parts.
            if rows.len() != usize::try_from(parts).unwrap_or(usize::MAX) {
                return Ok(None);
            }
            let mut joined = Vec::with_capacity(rows.iter().map(|(_, b)| b.len()).sum());
            for (_, bytes) in rows {
                joined.extend_from_slice(&bytes);
            }
            Ok(Some(joined))
        })
        .await
}

pub(super) async fn delete(
    store: &SqliteStore,
    id: &DocumentId,
    parts: u32,
) -> Result<(), StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
            conn.prepare_cached(
                "DELETE FROM upload_parts WHERE document_id = ?1 AND part >= 0 AND part < ?2",
            )?
            .execute(params![id.as_str(), parts])?;
            Ok(())
        })
        .await
}

/// One `BEGIN IMMEDIATE` transaction: the duplicate check → the session's
/// quota → rate checks (the same code as `submit_chat`) → count the hits →
/// the pending record and the session's end → the queued ingest job.
pub(super) async fn submit(
    store: &SqliteStore,
    upload: UploadSubmission,
) -> Result<UploadOutcome, StoreError> {
    store
        .run(move |conn, inner| submit_tx(conn, inner, upload))
        .await
}

fn submit_tx(
    conn: &mut Connection,
    inner: &Inner,
    upload: UploadSubmission,
) -> Result<UploadOutcome, StoreError> {
    let UploadSubmission {
        record,
        job,
        rate_checks,
        session,
    } = upload;
    let now = job.now;
    let owner = record.owner.as_key();
    // Every early return drops `tx`, which rolls back: nothing written or counted.
    let tx = immediate(conn)?;
    if let Some(existing) = get_document(&tx, &record.id)?
        && existing.status != DocumentStatus::Failed
    {
        return Ok(UploadOutcome::Existing(existing));
    }
    if let Some(terms) = &session
        && let Err(exceeded) =
            usage(&tx, owner, &record.id)?.admits(&terms.quota, record.size_bytes)
    {
        return Ok(UploadOutcome::QuotaExceeded(exceeded));
    }
    let evaluated = match rate_limits::evaluate(&tx, &rate_checks, now)? {
        Ok(evaluated) => evaluated,
        Err(refused) => return Ok(UploadOutcome::RateLimited(refused)),
    };
    rate_limits::count(&tx, inner, &evaluated, now)?;
    write_document(&tx, &record)?;
    if let Some(terms) = &session {
        record_session_end(&tx, owner, terms.expires_at)?;
    }
    let job = job.into_queued();
    insert_job(&tx, &job, now.as_millis())?;
    tx.commit()?;
    Ok(UploadOutcome::Accepted { job, record })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flowchat_domain::{DocumentId, Timestamp};
    use rusqlite::params;

    use super::*;
    use crate::Store;
    use crate::sqlite::test_store as store;

    /// Parts past their expiry are no upload, and the next stored part
    /// deletes them; the TTL runs from the write, by this machine's clock.
    #[tokio::test]
    async fn expired_upload_parts_are_ignored_and_swept() {
        let (_dir, store) = store();
        let store = store.with_upload_ttl(Duration::from_secs(60));
        let (old, fresh) = (
            DocumentId::for_content(b"old upload"),
            DocumentId::for_content(b"fresh upload"),
        );
        let before = clock_millis();
        for id in [&old, &fresh] {
            store
                .put_upload_part(id, 0, b"part", Timestamp::from_millis(0))
                .await
                .unwrap();
        }
        let expiry = |id: &DocumentId| -> Vec<i64> {
            store
                .inner
                .conn
                .lock()
                .unwrap()
                .prepare("SELECT expires_at FROM upload_parts WHERE document_id = ?1")
                .unwrap()
                .query_map([id.as_str()], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let at = expiry(&fresh)[0];
        assert!(
            at >= before + 60_000 && at <= clock_millis() + 60_000,
            "{at}"
        );

        store
            .inner
            .conn
            .lock()
            .unwrap()
            .execute(
                "UPDATE upload_parts SET expires_at = ?2 WHERE document_id = ?1",
                params![old.as_str(), clock_millis() - 1],
            )
            .unwrap();
        assert_eq!(store.get_upload(&old, 1).await.unwrap(), None);
        assert_eq!(
            store.get_upload(&fresh, 1).await.unwrap().as_deref(),
            Some(&b"part"[..])
        );
        assert_eq!(expiry(&old).len(), 1, "reading deletes nothing");
        store
            .put_upload_part(&fresh, 1, b"more", Timestamp::from_millis(0))
            .await
            .unwrap();
        assert!(expiry(&old).is_empty(), "swept by the next write");
        assert_eq!(expiry(&fresh).len(), 2);
    }
}
