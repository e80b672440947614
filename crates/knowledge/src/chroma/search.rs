//! Search: the question's vector against the records of the current model
//! that the viewer may see, repeated texts collapsed.

use std::collections::HashSet;

use flowchat_domain::DocumentId;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::ChromaIndex;
use super::records::{ChunkMeta, Metadata, Row};
use crate::error::KnowledgeError;
use crate::index::{Passage, SearchQuery};
use crate::query::query_terms;

/// The most passages one search returns, whatever `top_k` asks (as SQLite).
const MAX_TOP_K: usize = 200;

/// The answer to `/query`: one list per query embedding (we send one).
#[derive(Debug, Default, Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    ids: Vec<Vec<String>>,
    #[serde(default)]
    documents: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    metadatas: Option<Vec<Vec<Option<Metadata>>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f64>>>>,
}

/// Needs `query.embedding`: without one it finds nothing and logs a
/// warning (Chroma has no word search). Records of another model than the
/// current one are never searched.
pub(super) async fn search(
    index: &ChromaIndex,
    query: SearchQuery<'_>,
) -> Result<Vec<Passage>, KnowledgeError> {
    let top_k = query.top_k.min(MAX_TOP_K);
    if top_k == 0 || query_terms(query.text).is_empty() {
        return Ok(Vec::new());
    }
    let Some(embedding) = query.embedding else {
        tracing::warn!(
            "the Chroma knowledge index was searched without a question vector: it finds \
             nothing without one (configure an embeddings provider)"
        );
        return Ok(Vec::new());
    };
    let Some(model) = index.inner.current_model().await? else {
        // Nothing was ever embedded: the collection is empty.
        return Ok(Vec::new());
    };
    let owners: Vec<&str> = match query.viewer {
        Some(viewer) => vec!["shared", viewer.as_str()],
        None => vec!["shared"],
    };
    // Over-fetch a little: identical chunk texts (the same file in two
    // places, boilerplate) collapse into one passage.
    let n_results = (top_k + top_k / 2).max(top_k + 4);
    let answer: QueryAnswer = index
        .inner
        .call(
            Method::POST,
            &index.inner.records_path("query"),
            Some(json!({
                "query_embeddings": [embedding],
                "n_results": n_results,
                "where": {"$and": [{"owner": {"$in": owners}}, {"model": model}]},
                "include": ["documents", "metadatas", "distances"],
            })),
        )
        .await?;

    let ids = answer.ids.into_iter().next().unwrap_or_default();
    let mut documents = answer
        .documents
        .and_then(|d| d.into_iter().next())
        .unwrap_or_default()
        .into_iter();
    let mut metadatas = answer
        .metadatas
        .and_then(|m| m.into_iter().next())
        .unwrap_or_default()
        .into_iter();
    let mut distances = answer
        .distances
        .and_then(|d| d.into_iter().next())
        .unwrap_or_default()
        .into_iter();
    let mut seen = HashSet::new();
    let mut passages = Vec::with_capacity(top_k);
    for id in ids {
        let row = Row {
            id,
            document: documents.next().flatten(),
            metadata: metadatas.next().flatten(),
        };
        let distance = distances.next().flatten();
        let (meta, text, distance) = match (ChunkMeta::parse(&row), row.document, distance) {
            (Ok(meta), Some(text), Some(distance)) => (meta, text, distance),
            (Err(problem), ..) => {
                tracing::warn!(%problem, "skipping an unreadable Chroma record");
                continue;
            }
            _ => {
                tracing::warn!(id = %row.id, "skipping a Chroma record without text or distance");
                continue;
            }
        };
        if !seen.insert(text.trim().to_owned()) {
            continue;
        }
        passages.push(Passage {
            document_id: DocumentId::from_trusted(meta.document_id),
            source: meta.name,
            chunk: meta.position,
            page: meta.page,
            heading: meta.heading,
            text,
            // Cosine distance is 1 - cosine similarity.
            score: (1.0 - distance).max(f64::MIN_POSITIVE),
        });
    }
    passages.sort_by(|a, b| b.score.total_cmp(&a.score));
    passages.truncate(top_k);
    Ok(passages)
}
