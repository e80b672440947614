//! A document's records: replaced (deleted, then upserted in batches; see
//! "Consistency" in the module documentation of `chroma`), removed, listed
//! and read back as chunks.

use std::collections::BTreeMap;

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use reqwest::Method;
use serde_json::{Value, json};

use super::records::{ChunkMeta, check_vectors, record_id, record_metadata};
use super::{ChromaIndex, WRITE_BATCH};
use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{IndexedDocument, IndexedSummary};

/// Not atomic (see the module documentation): the old records are
/// deleted first, then the new ones upserted, so a concurrent search may
/// briefly miss the document but never sees old and new chunks mixed.
pub(super) async fn replace(
    index: &ChromaIndex,
    doc: IndexedDocument,
) -> Result<(), KnowledgeError> {
    let Some(embeddings) = &doc.embeddings else {
        return Err(KnowledgeError::Index(format!(
            "{} was not indexed: the Chroma index stores vectors only, so an embeddings \
             provider is required for the Chroma index",
            doc.name
        )));
    };
    let dims = check_vectors(&doc.name, embeddings, doc.chunks.len())?;
    if !doc.chunks.is_empty() {
        index.inner.use_model(&embeddings.model, dims).await?;
    }
    index
        .inner
        .delete_where(json!({"document_id": doc.id.as_str()}))
        .await?;
    for (chunks, vectors) in doc
        .chunks
        .chunks(WRITE_BATCH)
        .zip(embeddings.vectors.chunks(WRITE_BATCH))
    {
        let ids: Vec<String> = chunks
            .iter()
            .map(|c| record_id(&doc.id, c.position))
            .collect();
        let documents: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let metadatas: Vec<Value> = chunks
            .iter()
            .map(|c| record_metadata(&doc, c, &embeddings.model))
            .collect();
        let _: Value = index
            .inner
            .call(
                Method::POST,
                &index.inner.records_path("upsert"),
                Some(json!({
                    "ids": ids,
                    "embeddings": vectors,
                    "documents": documents,
                    "metadatas": metadatas,
                })),
            )
            .await?;
    }
    Ok(())
}

pub(super) async fn remove(index: &ChromaIndex, id: &DocumentId) -> Result<bool, KnowledgeError> {
    // A delete's answer does not say whether anything was deleted.
    let filter = json!({"document_id": id.as_str()});
    let existed = !index.inner.get_page(&filter, &[], 1, 0).await?.is_empty();
    if existed {
        index.inner.delete_where(filter).await?;
    }
    Ok(existed)
}

pub(super) async fn list(
    index: &ChromaIndex,
    owner: &DocumentOwner,
) -> Result<Vec<IndexedSummary>, KnowledgeError> {
    let rows = index
        .inner
        .get_all(&json!({"owner": owner.as_key()}), &["metadatas"])
        .await?;
    let mut by_id: BTreeMap<String, IndexedSummary> = BTreeMap::new();
    for row in &rows {
        let meta = match ChunkMeta::parse(row) {
            Ok(meta) => meta,
            Err(problem) => {
                tracing::warn!(%problem, "skipping an unreadable Chroma record");
                continue;
            }
        };
        by_id
            .entry(meta.document_id.clone())
            .or_insert_with(|| IndexedSummary {
                id: DocumentId::from_trusted(meta.document_id),
                name: meta.name,
                owner: DocumentOwner::from_key(&meta.owner),
                size_bytes: meta.size_bytes,
                chunks: 0,
            })
            .chunks += 1;
    }
    let mut documents: Vec<IndexedSummary> = by_id.into_values().collect();
    documents.sort_by(|a, b| (&a.name, a.id.as_str()).cmp(&(&b.name, b.id.as_str())));
    Ok(documents)
}

pub(super) async fn chunk_count(index: &ChromaIndex) -> Result<u64, KnowledgeError> {
    index
        .inner
        .call(Method::GET, &index.inner.records_path("count"), None)
        .await
}

pub(super) async fn chunks(
    index: &ChromaIndex,
    id: &DocumentId,
) -> Result<Vec<Chunk>, KnowledgeError> {
    let records = index
        .inner
        .document_records(id, &["documents", "metadatas"])
        .await?;
    records
        .into_iter()
        .map(|(row, meta)| {
            let text = row.document.ok_or_else(|| {
                index
                    .inner
                    .unreadable(&format!("record {} has no text", row.id))
            })?;
            Ok(Chunk {
                position: meta.position,
                text,
                heading: meta.heading,
                page: meta.page,
                token_count: meta.token_count,
            })
        })
        .collect()
}
