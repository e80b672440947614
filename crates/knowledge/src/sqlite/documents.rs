//! Documents and their chunks: replacing a document (its chunks, their
//! text in the full-text index, and its vectors when given), removing one,
//! and reading them back.

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use rusqlite::{Connection, OptionalExtension, params};

use super::embeddings::store_vectors;
use super::vectors;
use super::{Role, SqliteIndex};
use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{IndexedDocument, IndexedSummary};

/// A document's chunk ids, in order.
pub(super) fn chunk_ids(conn: &Connection, doc_key: i64) -> Result<Vec<i64>, KnowledgeError> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM chunks WHERE doc_key = ?1 ORDER BY position")?;
    let rows = stmt.query_map([doc_key], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes a document's chunks (their vectors, and their text, which updates
/// the FTS index).
fn delete_chunks(tx: &rusqlite::Transaction<'_>, doc_key: i64) -> Result<(), KnowledgeError> {
    vectors::delete(tx, &chunk_ids(tx, doc_key)?)?;
    tx.execute(
        "DELETE FROM chunk_texts WHERE id IN (SELECT id FROM chunks WHERE doc_key = ?1)",
        [doc_key],
    )?;
    tx.execute("DELETE FROM chunks WHERE doc_key = ?1", [doc_key])?;
    Ok(())
}

fn document_key(conn: &Connection, id: &DocumentId) -> Result<Option<i64>, KnowledgeError> {
    Ok(conn
        .query_row(
            "SELECT key FROM documents WHERE id = ?1",
            [id.as_str()],
            |row| row.get(0),
        )
        .optional()?)
}

/// With embeddings, the vectors are checked first (one per chunk, one
/// dimension, finite, not zero: otherwise an error and nothing changes)
/// and stored in the same transaction as the chunks. Vectors of another
/// model than the index's make it the index's model (see
/// [`KnowledgeIndex::set_embeddings`]). Without embeddings the document
/// has no vectors and is listed by `documents_needing_embeddings`.
pub(super) async fn replace(
    index: &SqliteIndex,
    doc: IndexedDocument,
) -> Result<(), KnowledgeError> {
    let checked = doc
        .embeddings
        .as_ref()
        .map(|e| vectors::checked(&doc.name, e, doc.chunks.len()).map(|v| (&e.model, v)))
        .transpose()?
        .map(|(model, (vectors, dims))| (model.clone(), vectors, dims));
    index
        .run(Role::Write, move |conn| {
            let tx = conn.transaction()?;
            if let Some(key) = document_key(&tx, &doc.id)? {
                delete_chunks(&tx, key)?;
            }
            let key: i64 = tx.query_row(
                "INSERT INTO documents (id, name, owner, size_bytes, chunk_count, embedded)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, owner = excluded.owner,
                 size_bytes = excluded.size_bytes, chunk_count = excluded.chunk_count,
                 embedded = 0
             RETURNING key",
                params![
                    doc.id.as_str(),
                    doc.name,
                    doc.owner.as_key(),
                    doc.size_bytes as i64,
                    doc.chunks.len() as i64
                ],
                |row| row.get(0),
            )?;
            let mut ids = Vec::with_capacity(doc.chunks.len());
            {
                let mut chunk = tx.prepare_cached(
                    "INSERT INTO chunks (doc_key, position, page, token_count)
                 VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut text = tx.prepare_cached(
                    "INSERT INTO chunk_texts (id, text, heading) VALUES (?1, ?2, ?3)",
                )?;
                for c in &doc.chunks {
                    let id = chunk.insert(params![key, c.position, c.page, c.token_count])?;
                    text.execute(params![id, c.text, c.heading])?;
                    ids.push(id);
                }
            }
            if let Some((model, vectors, dims)) = checked {
                store_vectors(&tx, key, doc.owner.as_key(), &ids, &model, &vectors, dims)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
}

pub(super) async fn remove(index: &SqliteIndex, id: &DocumentId) -> Result<bool, KnowledgeError> {
    let id = id.clone();
    index
        .run(Role::Write, move |conn| {
            let tx = conn.transaction()?;
            let Some(key) = document_key(&tx, &id)? else {
                return Ok(false);
            };
            delete_chunks(&tx, key)?;
            tx.execute("DELETE FROM documents WHERE key = ?1", [key])?;
            tx.commit()?;
            Ok(true)
        })
        .await
}

pub(super) async fn list(
    index: &SqliteIndex,
    owner: &DocumentOwner,
) -> Result<Vec<IndexedSummary>, KnowledgeError> {
    let owner_key = owner.as_key().to_owned();
    index
        .run(Role::Read, move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, owner, size_bytes, chunk_count FROM documents
             WHERE owner = ?1 ORDER BY name, id",
            )?;
            let rows = stmt.query_map([owner_key], |row| {
                Ok(IndexedSummary {
                    id: DocumentId::from_trusted(row.get::<_, String>(0)?),
                    name: row.get(1)?,
                    owner: DocumentOwner::from_key(&row.get::<_, String>(2)?),
                    size_bytes: row.get::<_, i64>(3)?.max(0) as u64,
                    chunks: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

pub(super) async fn chunk_count(index: &SqliteIndex) -> Result<u64, KnowledgeError> {
    index
        .run(Role::Read, |conn| {
            let count: i64 = conn.query_row(
                "SELECT COALESCE(SUM(chunk_count), 0) FROM documents",
                [],
                |row| row.get(0),
            )?;
            Ok(count.max(0) as u64)
        })
        .await
}

pub(super) async fn chunks(
    index: &SqliteIndex,
    id: &DocumentId,
) -> Result<Vec<Chunk>, KnowledgeError> {
    let id = id.clone();
    index
        .run(Role::Read, move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.position, t.text, t.heading, c.page, c.token_count
             FROM documents d
             CROSS JOIN chunks c ON c.doc_key = d.key
             CROSS JOIN chunk_texts t ON t.id = c.id
             WHERE d.id = ?1
             ORDER BY c.position",
            )?;
            let rows = stmt.query_map([id.as_str()], |row| {
                Ok(Chunk {
                    position: row.get(0)?,
                    text: row.get(1)?,
                    heading: row.get(2)?,
                    page: row.get(3)?,
                    token_count: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}
