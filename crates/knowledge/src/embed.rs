//! Turning chunks into vectors, behind a small trait so this crate does not
//! depend on the language-model clients: the drain adapts its embeddings
//! provider to [`ChunkEmbedder`].

use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::ChunkEmbeddings;

#[async_trait::async_trait]
pub trait ChunkEmbedder: Send + Sync {
    /// The model's name, recorded with the vectors it makes.
    fn model(&self) -> &str;

    /// One vector per text, in order (the implementation batches and retries).
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError>;
}

/// Vectors for `chunks` when an embedder is configured; `None` otherwise.
pub async fn embed_chunks(
    embedder: Option<&dyn ChunkEmbedder>,
    chunks: &[Chunk],
) -> Result<Option<ChunkEmbeddings>, KnowledgeError> {
    let Some(embedder) = embedder else {
        return Ok(None);
    };
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    let vectors = embedder.embed(&texts).await?;
    if vectors.len() != chunks.len() {
        return Err(KnowledgeError::Embedding {
            message: format!(
                "the provider returned {} vectors for {} chunks",
                vectors.len(),
                chunks.len()
            ),
            permanent: false,
        });
    }
    Ok(Some(ChunkEmbeddings {
        model: embedder.model().to_owned(),
        vectors,
    }))
}

/// Embeds every document whose chunks lack vectors from the embedder's model
/// (indexed before an embeddings provider was set, or by another model).
/// Returns how many documents were embedded.
pub async fn embed_missing(
    index: &dyn crate::KnowledgeIndex,
    embedder: &dyn ChunkEmbedder,
) -> Result<usize, KnowledgeError> {
    let mut done = 0;
    loop {
        let pending = index
            .documents_needing_embeddings(embedder.model(), 16)
            .await?;
        if pending.is_empty() {
            return Ok(done);
        }
        let before = done;
        for id in pending {
            let chunks = index.chunks(&id).await?;
            if chunks.is_empty() {
                continue;
            }
            if let Some(embeddings) = embed_chunks(Some(embedder), &chunks).await? {
                index.set_embeddings(&id, embeddings).await?;
                done += 1;
            }
        }
        if done == before {
            // Nothing could be embedded (documents without chunks): stop
            // rather than asking for the same ones forever.
            return Ok(done);
        }
    }
}
