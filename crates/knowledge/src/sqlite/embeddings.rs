//! Chunk vectors and the index's embedding model: storing a document's
//! vectors (the tables and their search are `super::vectors`), and which
//! documents still need vectors of the current model.

use flowchat_domain::DocumentId;
use rusqlite::OptionalExtension;

use super::documents::chunk_ids;
use super::vectors;
use super::{Role, SqliteIndex};
use crate::error::KnowledgeError;
use crate::index::ChunkEmbeddings;

pub(super) async fn model(index: &SqliteIndex) -> Result<Option<String>, KnowledgeError> {
    index
        .run(Role::Read, |conn| {
            Ok(vectors::current(conn)?.map(|(m, _)| m))
        })
        .await
}

/// Documents with chunks but without vectors of `model`, oldest first;
/// every document with chunks while the index's model is another one.
pub(super) async fn documents_needing(
    index: &SqliteIndex,
    model: &str,
    limit: usize,
) -> Result<Vec<DocumentId>, KnowledgeError> {
    let model = model.to_owned();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    index
        .run(Role::Read, move |conn| {
            let current = vectors::current(conn)?.map(|(m, _)| m);
            let sql = if current.as_deref() == Some(model.as_str()) {
                "SELECT id FROM documents WHERE embedded = 0 AND chunk_count > 0
             ORDER BY key LIMIT ?1"
            } else {
                "SELECT id FROM documents WHERE chunk_count > 0 ORDER BY key LIMIT ?1"
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map([limit], |row| {
                Ok(DocumentId::from_trusted(row.get::<_, String>(0)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// An unknown document (removed meanwhile) is left alone. Vectors that
/// do not fit (count, dimension, values) are an error and change nothing.
pub(super) async fn set(
    index: &SqliteIndex,
    id: &DocumentId,
    embeddings: ChunkEmbeddings,
) -> Result<(), KnowledgeError> {
    let id = id.clone();
    index
        .run(Role::Write, move |conn| {
            let tx = conn.transaction()?;
            let Some((key, owner)) = tx
                .query_row(
                    "SELECT key, owner FROM documents WHERE id = ?1",
                    [id.as_str()],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
                )
                .optional()?
            else {
                tracing::debug!(document = %id, "no document to set embeddings on");
                return Ok(());
            };
            let ids = chunk_ids(&tx, key)?;
            let (vectors, dims) = vectors::checked(id.as_str(), &embeddings, ids.len())?;
            vectors::delete(&tx, &ids)?;
            store_vectors(&tx, key, &owner, &ids, &embeddings.model, &vectors, dims)?;
            tx.commit()?;
            Ok(())
        })
        .await
}

/// Stores a document's checked vectors (one per chunk id, in order), making
/// `model` the index's model first, and marks the document embedded.
pub(super) fn store_vectors(
    tx: &rusqlite::Transaction<'_>,
    doc_key: i64,
    owner: &str,
    chunk_ids: &[i64],
    model: &str,
    vectors: &[Vec<f32>],
    dims: usize,
) -> Result<(), KnowledgeError> {
    if !chunk_ids.is_empty() {
        vectors::use_model(tx, model, dims)?;
        let tag = vectors::owner_tag(tx, owner)?;
        vectors::insert(tx, chunk_ids, tag, vectors)?;
    }
    // A document without chunks has all of its (no) vectors, of any model.
    tx.execute(
        "UPDATE documents SET embedded = 1 WHERE key = ?1",
        [doc_key],
    )?;
    Ok(())
}
