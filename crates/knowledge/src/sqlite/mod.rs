//! The embedded knowledge index: documents, chunks and an FTS5 full-text
//! index in one SQLite file.
//!
//! One file keeps local use and tests free of servers; WAL lets searches read
//! while an ingest writes. SQLite calls block, so every call runs on Tokio's
//! blocking pool, with one connection for writes and two for reads (each behind
//! a mutex) so a long re-index does not stall searches, and a hybrid search
//! runs its word and vector rankings side by side.
//!
//! Search is BM25 over chunk text and heading (the heading weighs a little
//! more: a question naming a section should find it), filtered by owner in
//! SQL. User text never reaches FTS5's query language: it is reduced to plain
//! terms, each quoted, OR-ed. Scoring costs time per matching chunk, so a
//! search scores a bounded number of matches (see `plan`): that keeps it
//! fast at 100,000 chunks without changing results on a small index.
//!
//! Chunks may also have vectors (see `vectors.rs` for their table and how
//! they are searched). A search with a question vector then ranks the
//! viewer's chunks twice, by BM25 and by vector similarity, and fuses the two
//! lists by reciprocal rank ([`crate::fusion`]); without one, or while the
//! index has no vectors of the question's dimension, it is BM25 alone. Either
//! way repeated passages are collapsed to their best-ranked copy.
//!
//! # Schema versions
//!
//! `PRAGMA user_version` holds the schema version. Opening a file of an older
//! version migrates it in one transaction: version 1 (BM25 only) gains
//! `documents.embedded`, `meta` and `owner_tags`; its documents have no
//! vectors, so they are listed by `documents_needing_embeddings`.
//!
//! # Modules
//!
//! This one holds the connections and hands each [`KnowledgeIndex`] call
//! to the module of its concern: `schema` (tables, migrations, connection
//! settings), `documents` (documents and their chunks), `embeddings` (chunk
//! vectors and the index's embedding model; the vector tables themselves
//! are `vectors`) and `search` (BM25, vector search and their
//! fusion).

mod documents;
mod embeddings;
mod schema;
mod search;
mod vectors;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use rusqlite::Connection;

use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{
    ChunkEmbeddings, IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery,
};

/// A knowledge index in one SQLite file. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteIndex {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Vector search's reader, so it runs beside BM25 on the other.
    vector_reader: Mutex<Connection>,
    path: PathBuf,
}

#[derive(Clone, Copy)]
enum Role {
    Read,
    ReadVectors,
    Write,
}

impl std::fmt::Debug for SqliteIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteIndex")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteIndex {
    /// Opens (creating if needed, with its parent folders) the index file at
    /// `path`. Blocking: call it at start-up or inside `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KnowledgeError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| KnowledgeError::Io {
                name: parent.display().to_string(),
                source,
            })?;
        }
        let writer = schema::open_writer(&path)?;
        let reader = schema::connect(&path)?;
        let vector_reader = schema::connect(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                vector_reader: Mutex::new(vector_reader),
                path,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a connection in the blocking pool.
    async fn run<T, F>(&self, role: Role, f: F) -> Result<T, KnowledgeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, KnowledgeError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mutex = match role {
                Role::Read => &inner.reader,
                Role::ReadVectors => &inner.vector_reader,
                Role::Write => &inner.writer,
            };
            // A panic mid-call rolled its transaction back; the connection is usable.
            let mut conn = mutex.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

/// Each call is its concern module's; the documentation of what this index
/// does beyond the trait's is there.
#[async_trait::async_trait]
impl KnowledgeIndex for SqliteIndex {
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError> {
        documents::replace(self, doc).await
    }

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, KnowledgeError> {
        documents::remove(self, id).await
    }

    async fn documents(
        &self,
        owner: &DocumentOwner,
    ) -> Result<Vec<IndexedSummary>, KnowledgeError> {
        documents::list(self, owner).await
    }

    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError> {
        search::search(self, query).await
    }

    async fn chunk_count(&self) -> Result<u64, KnowledgeError> {
        documents::chunk_count(self).await
    }

    async fn embedding_model(&self) -> Result<Option<String>, KnowledgeError> {
        embeddings::model(self).await
    }

    async fn documents_needing_embeddings(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DocumentId>, KnowledgeError> {
        embeddings::documents_needing(self, model, limit).await
    }

    async fn chunks(&self, id: &DocumentId) -> Result<Vec<Chunk>, KnowledgeError> {
        documents::chunks(self, id).await
    }

    async fn set_embeddings(
        &self,
        id: &DocumentId,
        embeddings: ChunkEmbeddings,
    ) -> Result<(), KnowledgeError> {
        embeddings::set(self, id, embeddings).await
    }
}
