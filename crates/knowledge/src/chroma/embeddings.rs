//! Embeddings: the collection's current model, the documents whose vectors
//! are of another one, and replacing a document's vectors in place.

use std::collections::HashSet;

use flowchat_domain::DocumentId;
use reqwest::Method;
use serde_json::{Value, json};

use super::records::{READ_PAGE, check_vectors};
use super::{ChromaIndex, WRITE_BATCH};
use crate::error::KnowledgeError;
use crate::index::ChunkEmbeddings;

pub(super) async fn model(index: &ChromaIndex) -> Result<Option<String>, KnowledgeError> {
    Ok(index.inner.collection_info().await?.model())
}

/// Every record holds a vector, so these are the documents whose records
/// carry another model than `model`.
pub(super) async fn documents_needing(
    index: &ChromaIndex,
    model: &str,
    limit: usize,
) -> Result<Vec<DocumentId>, KnowledgeError> {
    let filter = json!({"model": {"$ne": model}});
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut offset = 0;
    while ids.len() < limit {
        let page = index
            .inner
            .get_page(&filter, &["metadatas"], READ_PAGE, offset)
            .await?;
        offset += page.len();
        let done = page.len() < READ_PAGE;
        for row in page {
            let Some(id) = row
                .metadata
                .as_ref()
                .and_then(|m| m.get("document_id"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            if ids.len() < limit && seen.insert(id.to_owned()) {
                ids.push(DocumentId::from_trusted(id));
            }
        }
        if done {
            break;
        }
    }
    Ok(ids)
}

/// Updates the records' vectors and `model` in place. Unknown documents
/// (removed meanwhile) are left alone. A model with vectors of another
/// dimension than the collection's is refused (see the module docs).
pub(super) async fn set(
    index: &ChromaIndex,
    id: &DocumentId,
    embeddings: ChunkEmbeddings,
) -> Result<(), KnowledgeError> {
    let records = index.inner.document_records(id, &["metadatas"]).await?;
    if records.is_empty() {
        tracing::debug!(document = %id, "no Chroma records to set embeddings on");
        return Ok(());
    }
    let dims = check_vectors(id.as_str(), &embeddings, records.len())?;
    index.inner.use_model(&embeddings.model, dims).await?;
    for (records, vectors) in records
        .chunks(WRITE_BATCH)
        .zip(embeddings.vectors.chunks(WRITE_BATCH))
    {
        let ids: Vec<&str> = records.iter().map(|(row, _)| row.id.as_str()).collect();
        // Metadata given to an update is merged into the record's.
        let metadatas: Vec<Value> = records
            .iter()
            .map(|_| json!({"model": embeddings.model}))
            .collect();
        let _: Value = index
            .inner
            .call(
                Method::POST,
                &index.inner.records_path("update"),
                Some(json!({
                    "ids": ids,
                    "embeddings": vectors,
                    "metadatas": metadatas,
                })),
            )
            .await?;
    }
    Ok(())
}
