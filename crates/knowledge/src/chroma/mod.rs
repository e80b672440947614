//! The knowledge index on a Chroma server (chromadb 1.x, HTTP API v2), for
//! deployments where an embedded SQLite file is not an option.
//!
//! # Layout
//!
//! One collection per FlowChat namespace, named `<CHROMA_COLLECTION>-<namespace>`
//! (so preview and production deployments never share one), created with the
//! cosine distance. One record per chunk:
//!
//! * id `<document_id>:<position>`;
//! * document: the chunk's text;
//! * embedding: the chunk's vector (always sent explicitly: no embedding
//!   function runs on the server);
//! * metadata: `document_id`, `name`, `owner` ([`DocumentOwner::as_key`]:
//!   `shared` or the session id), `size_bytes`, `position`, `page` and
//!   `heading` (left out when `None`: Chroma metadata cannot be null),
//!   `token_count` and `model` (the embedding model that made the vector).
//!
//! The collection's own metadata holds the index's current embedding model
//! ([`MODEL_KEY`]).
//!
//! # Vectors only
//!
//! Chroma finds records by vector, so this index needs an embeddings
//! provider: [`KnowledgeIndex::replace_document`] refuses a document without
//! embeddings, and [`KnowledgeIndex::search`] without a question vector
//! finds nothing (it logs a warning rather than failing the chat; the drain
//! always sends one with this back end).
//!
//! # Consistency
//!
//! Chroma has no transactions, so a replace is two steps: the document's old
//! records are deleted, then the new ones are upserted (in batches of
//! [`WRITE_BATCH`]). A search running meanwhile may find the document
//! missing, or only some of its new chunks, but never old and new chunks
//! together. (Upserting first and deleting the surplus afterwards would keep
//! the document visible but could show a mix.) If a write fails half-way the
//! call returns the error and the document may be partly indexed until the
//! caller retries the replace, which starts again by deleting everything.
//!
//! # Embedding models
//!
//! Every record carries the model that made its vector; searches only look
//! at records of the collection's current model, so vectors of two models
//! are never compared. Storing vectors of another model (by a replace or by
//! [`KnowledgeIndex::set_embeddings`]) makes that model current: documents
//! still holding vectors of the old model drop out of search results until
//! they are re-embedded, which the drain does through
//! [`KnowledgeIndex::documents_needing_embeddings`] (Chroma always holds a
//! vector per chunk, so that is every document of the old model).
//!
//! A collection's vector dimension is fixed by its first vectors. A model
//! making vectors of another dimension cannot share the collection: writes
//! fail with an error saying so, and the fix is a new collection name
//! (`CHROMA_COLLECTION`) and a re-ingest.
//!
//! The current model is read from the server at start-up and after every
//! write, and at most [`MODEL_CACHE_TTL`] old when a search uses it, so
//! several processes sharing a collection follow a model switch quickly.
//!
//! # Errors
//!
//! Every failure is a [`KnowledgeError::Index`] with a message for operators:
//! "cannot reach Chroma at <url>: …", "Chroma at <url> answered 500 … to POST
//! <path>: <Chroma's message>", or the `CHROMA_*` variable to fix. The drain
//! treats `Index` errors as worth retrying, which suits a server that is
//! briefly away. Answers the server sends are never trusted to be well formed:
//! unreadable records are skipped by searches and listings (with a warning)
//! and reported as errors where a document must be read whole.
//!
//! # Modules
//!
//! This one holds the connection and hands each [`KnowledgeIndex`] call to
//! the module of its concern: `settings` (where the server is), `client`
//! (requests and their errors), `collection` (the collection and its
//! embedding model), `records` (records and their metadata), `documents`
//! (a document's records written and read), `embeddings` (vectors of
//! another model) and `search`.

mod client;
mod collection;
mod documents;
mod embeddings;
mod records;
mod search;
mod settings;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

use self::client::chain;
use self::collection::CollectionInfo;
use self::settings::config_error;
pub use self::settings::{ChromaSettings, DEFAULT_TIMEOUT_MS};
use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{
    ChunkEmbeddings, IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery,
};

/// Collection metadata key holding the index's current embedding model.
pub const MODEL_KEY: &str = "flowchat_embedding_model";

/// Records per upsert or update request: 100 vectors of 1536 floats are
/// about 2 MB of JSON.
pub const WRITE_BATCH: usize = 100;

/// How old the cached current model may be when a search uses it.
pub const MODEL_CACHE_TTL: Duration = Duration::from_secs(10);

/// A knowledge index in one Chroma collection. Cheap to clone.
#[derive(Clone)]
pub struct ChromaIndex {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    settings: ChromaSettings,
    collection_name: String,
    collection_id: String,
    /// The current embedding model and when it was read.
    model: Mutex<(Option<String>, Instant)>,
}

impl std::fmt::Debug for ChromaIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaIndex")
            .field("url", &self.inner.settings.url)
            .field("collection", &self.inner.collection_name)
            .field("collection_id", &self.inner.collection_id)
            .finish()
    }
}

impl ChromaIndex {
    /// Connects to the server: checks it answers, creates the database when
    /// missing, gets or creates the collection (cosine distance) and
    /// remembers its id.
    pub async fn connect(settings: ChromaSettings) -> Result<Self, KnowledgeError> {
        let mut settings = settings;
        settings.url = settings.url.trim_end_matches('/').to_owned();
        settings
            .validate()
            .map_err(|e| KnowledgeError::Index(e.to_string()))?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &settings.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                KnowledgeError::Index(
                    config_error(
                        "CHROMA_TOKEN",
                        "holds characters an HTTP header cannot carry",
                    )
                    .to_string(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert("x-chroma-token", value);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .default_headers(headers)
            .build()
            .map_err(|e| {
                KnowledgeError::Index(format!("cannot set up an HTTP client: {}", chain(&e)))
            })?;
        let collection_name = settings.collection_name();
        let mut inner = Inner {
            client,
            settings,
            collection_name,
            collection_id: String::new(),
            model: Mutex::new((None, Instant::now())),
        };

        // Is anyone there, speaking API v2?
        let (status, body) = inner.send(Method::GET, "/api/v2/heartbeat", None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(KnowledgeError::Index(format!(
                "{} does not serve Chroma's HTTP API v2 (/api/v2/heartbeat not found): \
                 FlowChat needs chromadb 1.x",
                inner.settings.url
            )));
        }
        inner.check("GET", "/api/v2/heartbeat", status, &body)?;

        inner.ensure_database().await?;
        let info: CollectionInfo = inner
            .call(
                Method::POST,
                &inner.collections_path(),
                Some(json!({
                    "name": inner.collection_name,
                    "configuration": {"hnsw": {"space": "cosine"}},
                    "get_or_create": true,
                })),
            )
            .await?;
        if let Some(space) = info.space().filter(|s| *s != "cosine") {
            return Err(KnowledgeError::Index(format!(
                "the Chroma collection {} uses the {space} distance, FlowChat needs cosine: \
                 delete the collection or set CHROMA_COLLECTION to another name",
                inner.collection_name
            )));
        }
        let model = info.model();
        tracing::info!(
            url = %inner.settings.url,
            collection = %inner.collection_name,
            id = %info.id,
            model = ?model,
            "connected to the Chroma knowledge index"
        );
        inner.collection_id = info.id;
        inner.model = Mutex::new((model, Instant::now()));
        Ok(ChromaIndex {
            inner: Arc::new(inner),
        })
    }

    /// The collection's name on the server.
    pub fn collection_name(&self) -> &str {
        &self.inner.collection_name
    }

    /// The collection's id (a UUID) on the server.
    pub fn collection_id(&self) -> &str {
        &self.inner.collection_id
    }
}

/// Each call is its concern module's; the documentation of what this index
/// does beyond the trait's is there.
#[async_trait::async_trait]
impl KnowledgeIndex for ChromaIndex {
    fn searches_by_words(&self) -> bool {
        false
    }

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
