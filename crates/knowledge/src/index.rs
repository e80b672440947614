//! The knowledge index interface: what the drain needs from any back end
//! (the embedded SQLite index, or a Chroma server).
//!
//! Documents are keyed by [`DocumentId`] (their content hash) alone, matching
//! the document catalog: one id is one document with one owner. Every call is
//! async and `Send` because the drain calls it from Tokio tasks; back ends
//! that block (SQLite) move the work to the blocking pool.

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};

use crate::chunking::Chunk;
use crate::error::KnowledgeError;

/// A document with its chunks, ready to be (re)indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedDocument {
    pub id: DocumentId,
    /// Shown as the citation source (folder-relative path or upload name).
    pub name: String,
    pub owner: DocumentOwner,
    pub size_bytes: u64,
    pub chunks: Vec<Chunk>,
    /// One vector per chunk, in order; `None` when no embeddings provider is
    /// configured (the document is then found by its words only).
    pub embeddings: Option<ChunkEmbeddings>,
}

/// Vectors made by one embedding model. An index holds vectors of a single
/// model at a time: vectors of two models are not comparable.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEmbeddings {
    /// The model's name as the provider knows it, e.g. `text-embedding-3-small`.
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
}

/// A document as the index holds it, without its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSummary {
    pub id: DocumentId,
    pub name: String,
    pub owner: DocumentOwner,
    pub size_bytes: u64,
    pub chunks: u32,
}

/// A retrieval request.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    /// The user's words, as typed: back ends extract terms themselves and
    /// never pass this to a query language.
    pub text: &'a str,
    /// Whose private documents may be searched besides the shared ones;
    /// `None` searches the shared documents only.
    pub viewer: Option<&'a SessionId>,
    /// The most passages to return.
    pub top_k: usize,
    /// The question's vector, made by the index's current embedding model;
    /// `None` searches by words only.
    pub embedding: Option<&'a [f32]>,
}

/// One retrieved chunk (defined with the answers that keep it).
pub use flowchat_domain::model::Passage;

#[async_trait::async_trait]
pub trait KnowledgeIndex: Send + Sync {
    /// Stores `doc`, replacing every chunk previously stored under its id (and
    /// its name, owner and size) in one atomic step: a search sees the old
    /// version or the new one, never a mix. The id is the key, so indexing an
    /// id that exists under another owner moves it to the new owner; callers
    /// ingesting a private upload whose id is already shared should skip it.
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError>;

    /// Removes a document and its chunks; `false` if it was not indexed.
    async fn remove_document(&self, id: &DocumentId) -> Result<bool, KnowledgeError>;

    /// The documents of one owner, by name.
    async fn documents(&self, owner: &DocumentOwner)
    -> Result<Vec<IndexedSummary>, KnowledgeError>;

    /// The best passages for `query.text` among the shared documents and the
    /// viewer's own, best first. Empty when the text has no searchable terms.
    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError>;

    /// Whether [`search`](Self::search) finds passages by their words when
    /// the query has no vector. An index that can only search by vector
    /// (Chroma) finds nothing without one, so a question whose embedding
    /// failed must be retried there rather than answered without sources.
    fn searches_by_words(&self) -> bool {
        true
    }

    /// Chunks across all documents (for readiness and metrics).
    async fn chunk_count(&self) -> Result<u64, KnowledgeError>;

    /// The model that made the index's vectors; `None` before any.
    async fn embedding_model(&self) -> Result<Option<String>, KnowledgeError>;

    /// Up to `limit` documents without vectors from `model` (never embedded,
    /// or embedded by another model): what the drain re-embeds after the
    /// configured model changes.
    async fn documents_needing_embeddings(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DocumentId>, KnowledgeError>;

    /// A document's chunks in order (to embed them again); empty if unknown.
    async fn chunks(&self, id: &DocumentId) -> Result<Vec<Chunk>, KnowledgeError>;

    /// Replaces a document's vectors (one per chunk, in order). Storing
    /// vectors of a model other than the index's current one first drops
    /// every vector of the old model, so vectors are never mixed.
    async fn set_embeddings(
        &self,
        id: &DocumentId,
        embeddings: ChunkEmbeddings,
    ) -> Result<(), KnowledgeError>;
}
