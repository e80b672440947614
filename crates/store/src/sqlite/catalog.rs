//! The document catalog: one `documents` row per document, shared or a
//! session's, with its indexing status.

use flowchat_domain::model::{DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus};
use flowchat_domain::{DocumentId, SessionId, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::jobs::insert_job;
use super::{SqliteStore, immediate};
use crate::codec::{corrupt, to_u32};
use crate::{DocumentUsage, NewJob, StoreError};

/// The `documents` columns [`read_document`] expects, in order.
macro_rules! document_columns {
    () => {
        "id, name, owner, size_bytes, status, chunks, error, updated_at, pages, origin"
    };
}

fn read_document(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<DocumentRecord, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let owner: String = row.get(2)?;
    let size: i64 = row.get(3)?;
    let status: String = row.get(4)?;
    let chunks: i64 = row.get(5)?;
    let error: Option<String> = row.get(6)?;
    let updated_at: i64 = row.get(7)?;
    let pages: Option<i64> = row.get(8)?;
    let origin: String = row.get(9)?;
    Ok((|| {
        Ok(DocumentRecord {
            id: DocumentId::from_trusted(id),
            name,
            owner: DocumentOwner::from_key(&owner),
            size_bytes: u64::try_from(size).map_err(|_| corrupt("document size", size))?,
            status: DocumentStatus::parse(&status)
                .ok_or_else(|| corrupt("document status", format!("unknown status {status:?}")))?,
            chunks: to_u32("document chunks", chunks)?,
            pages: pages.map(|p| to_u32("document pages", p)).transpose()?,
            origin: DocumentOrigin::parse(&origin)
                .ok_or_else(|| corrupt("document origin", format!("unknown origin {origin:?}")))?,
            error,
            updated_at: Timestamp::from_millis(updated_at),
        })
    })())
}

pub(super) fn get_document(
    conn: &Connection,
    id: &DocumentId,
) -> Result<Option<DocumentRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents WHERE id = ?1"
    ))?
    .query_row([id.as_str()], read_document)
    .optional()?
    .transpose()
}

/// Inserts or replaces the catalog entry with this id.
pub(super) fn write_document(conn: &Connection, record: &DocumentRecord) -> Result<(), StoreError> {
    let size = i64::try_from(record.size_bytes).map_err(|_| {
        StoreError::Backend(format!("document size {} is too large", record.size_bytes))
    })?;
    conn.prepare_cached(
        "INSERT INTO documents (id, name, owner, size_bytes, status, chunks, error, updated_at,
           pages, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, owner = excluded.owner,
           size_bytes = excluded.size_bytes, status = excluded.status,
           chunks = excluded.chunks, error = excluded.error, updated_at = excluded.updated_at,
           pages = excluded.pages, origin = excluded.origin",
    )?
    .execute(params![
        record.id.as_str(),
        record.name,
        record.owner.as_key(),
        size,
        record.status.as_str(),
        record.chunks,
        record.error,
        record.updated_at.as_millis(),
        record.pages,
        record.origin.as_str(),
    ])?;
    Ok(())
}

pub(super) async fn upsert(store: &SqliteStore, record: &DocumentRecord) -> Result<(), StoreError> {
    let record = record.clone();
    store
        .run(move |conn, _| write_document(conn, &record))
        .await
}

pub(super) async fn remove(store: &SqliteStore, id: &DocumentId) -> Result<bool, StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
            let removed = conn
                .prepare_cached("DELETE FROM documents WHERE id = ?1")?
                .execute([id.as_str()])?;
            Ok(removed > 0)
        })
        .await
}

pub(super) async fn list(
    store: &SqliteStore,
    viewer: Option<&SessionId>,
) -> Result<Vec<DocumentRecord>, StoreError> {
    let viewer = viewer.map(|v| v.as_str().to_owned());
    store
        .run(move |conn, _| {
            let shared = DocumentOwner::Shared;
            // `shared` twice when there is no viewer: a session id is a UUID, never `shared`.
            let own = viewer.as_deref().unwrap_or(shared.as_key());
            let rows: Vec<Result<DocumentRecord, StoreError>> = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    document_columns!(),
                    " FROM documents WHERE owner = ?1 OR owner = ?2 ORDER BY name, id"
                ))?
                .query_map(params![shared.as_key(), own], read_document)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().collect()
        })
        .await
}

pub(super) async fn owned(
    store: &SqliteStore,
    owner: &SessionId,
) -> Result<Vec<DocumentRecord>, StoreError> {
    let owner = owner.as_str().to_owned();
    store
        .run(move |conn, _| {
            let rows: Vec<Result<DocumentRecord, StoreError>> = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    document_columns!(),
                    " FROM documents WHERE owner = ?1"
                ))?
                .query_map([owner], read_document)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().collect()
        })
        .await
}

/// What `owner` holds except `replacing`, for the quota check of
/// `submit_upload` (inside its transaction).
pub(super) fn usage(
    conn: &Connection,
    owner: &str,
    replacing: &DocumentId,
) -> Result<DocumentUsage, StoreError> {
    let (documents, bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM documents
             WHERE owner = ?1 AND id != ?2",
        )?
        .query_row(params![owner, replacing.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(DocumentUsage {
        documents: to_u32("documents held", documents)?,
        bytes: u64::try_from(bytes).map_err(|_| corrupt("bytes held", bytes))?,
    })
}

/// Records when `owner`'s session ends; a later end never moves back.
pub(super) fn record_session_end(
    conn: &Connection,
    owner: &str,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO document_owners (owner, expires_at) VALUES (?1, ?2)
         ON CONFLICT (owner) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
    )?
    .execute(params![owner, expires_at.as_millis()])?;
    Ok(())
}

pub(super) async fn expired_owners(
    store: &SqliteStore,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<SessionId>, StoreError> {
    store
        .run(move |conn, _| {
            let owners: Vec<String> = conn
                .prepare_cached(
                    "SELECT owner FROM document_owners WHERE expires_at < ?1
                     ORDER BY expires_at, owner LIMIT ?2",
                )?
                .query_map(params![before.as_millis(), limit], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(owners.into_iter().map(SessionId::from_trusted).collect())
        })
        .await
}

pub(super) async fn forget_owner(
    store: &SqliteStore,
    owner: &SessionId,
) -> Result<bool, StoreError> {
    let owner = owner.as_str().to_owned();
    store
        .run(move |conn, _| {
            let forgotten = conn
                .prepare_cached(
                    "DELETE FROM document_owners WHERE owner = ?1
                     AND NOT EXISTS (SELECT 1 FROM documents WHERE owner = ?1)",
                )?
                .execute([owner])?;
            Ok(forgotten > 0)
        })
        .await
}

pub(super) async fn get(
    store: &SqliteStore,
    id: &DocumentId,
) -> Result<Option<DocumentRecord>, StoreError> {
    let id = id.clone();
    store.run(move |conn, _| get_document(conn, &id)).await
}

/// Removes the record and queues `job`, in one transaction.
pub(super) async fn delete(
    store: &SqliteStore,
    id: &DocumentId,
    job: NewJob,
) -> Result<bool, StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
            let tx = immediate(conn)?;
            let removed = tx
                .prepare_cached("DELETE FROM documents WHERE id = ?1")?
                .execute([id.as_str()])?;
            if removed == 0 {
                return Ok(false);
            }
            let now = job.now.as_millis();
            let job = job.into_queued();
            insert_job(&tx, &job, now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::{DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus};
    use flowchat_domain::{DocumentId, Timestamp};

    use crate::sqlite::test_store as store;
    use crate::{Store, StoreError};

    /// A page count that does not fit a u32, or an unknown origin, is
    /// corrupt, not a panic, a wrapped number or a guess.
    #[tokio::test]
    async fn an_impossible_page_count_or_origin_is_corrupt() {
        let (_dir, store) = store();
        let id = DocumentId::for_content(b"pages");
        store
            .upsert_document(&DocumentRecord {
                id: id.clone(),
                name: "x.pdf".to_owned(),
                owner: DocumentOwner::Shared,
                size_bytes: 1,
                status: DocumentStatus::Indexed,
                chunks: 1,
                pages: Some(1),
                origin: DocumentOrigin::Upload,
                error: None,
                updated_at: Timestamp::from_millis(1),
            })
            .await
            .unwrap();
        for bad in ["pages = -3", "pages = 1, origin = 'mail'"] {
            store
                .inner
                .conn
                .lock()
                .unwrap()
                .execute(&format!("UPDATE documents SET {bad}"), [])
                .unwrap();
            assert!(
                matches!(store.get_document(&id).await, Err(StoreError::Corrupt(_))),
                "{bad}"
            );
            assert!(
                matches!(
                    store.list_documents(None).await,
                    Err(StoreError::Corrupt(_))
                ),
                "{bad}"
            );
        }
    }
}
