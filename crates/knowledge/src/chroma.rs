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

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{
    ChunkEmbeddings, IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery,
};
use crate::query::query_terms;

/// Collection metadata key holding the index's current embedding model.
pub const MODEL_KEY: &str = "flowchat_embedding_model";

/// Records per upsert or update request: 100 vectors of 1536 floats are
/// about 2 MB of JSON.
pub const WRITE_BATCH: usize = 100;

/// Records per page when reading metadata (`get` with `limit`/`offset`).
const READ_PAGE: usize = 500;

/// The most passages one search returns, whatever `top_k` asks (as SQLite).
const MAX_TOP_K: usize = 200;

/// How old the cached current model may be when a search uses it.
pub const MODEL_CACHE_TTL: Duration = Duration::from_secs(10);

/// Default request timeout (`CHROMA_TIMEOUT_MS`).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

const DEFAULT_TENANT: &str = "default_tenant";
const DEFAULT_DATABASE: &str = "default_database";
const DEFAULT_COLLECTION: &str = "flowchat";

/// The longest error body quoted in a message.
const MAX_QUOTED: usize = 300;

/// Where the Chroma server is and which collection FlowChat uses.
#[derive(Clone, PartialEq, Eq)]
pub struct ChromaSettings {
    /// `CHROMA_URL`, e.g. `http://localhost:8000` (no trailing `/`).
    pub url: String,
    /// `CHROMA_TENANT`, default `default_tenant`.
    pub tenant: String,
    /// `CHROMA_DATABASE`, default `default_database`; created when missing.
    pub database: String,
    /// `CHROMA_COLLECTION`, default `flowchat`: the collection's name before
    /// the namespace is appended (see [`ChromaSettings::collection_name`]).
    pub collection: String,
    /// FlowChat's namespace (`FLOWCHAT_NAMESPACE` or derived from the
    /// deployment), appended to the collection name.
    pub namespace: String,
    /// `CHROMA_TOKEN`, sent as the `x-chroma-token` header when set.
    pub token: Option<String>,
    /// `CHROMA_TIMEOUT_MS`, default 10 000: the limit for one HTTP request.
    pub timeout_ms: u64,
}

impl std::fmt::Debug for ChromaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaSettings")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl ChromaSettings {
    /// Settings for the server at `url` with every default.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        ChromaSettings {
            url: url.into().trim_end_matches('/').to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            namespace: namespace.into(),
            token: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// Reads `CHROMA_URL`, `CHROMA_TENANT`, `CHROMA_DATABASE`,
    /// `CHROMA_COLLECTION`, `CHROMA_TOKEN` and `CHROMA_TIMEOUT_MS` through
    /// `lookup` (usually `std::env::var(..).ok()`); empty values count as
    /// unset. `Ok(None)` when `CHROMA_URL` is unset: Chroma is not used. An
    /// error names the variable whose value cannot work.
    pub fn from_lookup(
        namespace: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ChromaSettings>, KnowledgeError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = get("CHROMA_URL") else {
            return Ok(None);
        };
        let mut settings = ChromaSettings::new(url, namespace);
        if let Some(tenant) = get("CHROMA_TENANT") {
            settings.tenant = tenant;
        }
        if let Some(database) = get("CHROMA_DATABASE") {
            settings.database = database;
        }
        if let Some(collection) = get("CHROMA_COLLECTION") {
            settings.collection = collection;
        }
        settings.token = get("CHROMA_TOKEN");
        if let Some(raw) = get("CHROMA_TIMEOUT_MS") {
            settings.timeout_ms = raw
                .parse::<u64>()
                .ok()
                .filter(|ms| (1..=600_000).contains(ms))
                .ok_or_else(|| {
                    config_error(
                        "CHROMA_TIMEOUT_MS",
                        &format!("must be a number of milliseconds from 1 to 600000, not {raw:?}"),
                    )
                })?;
        }
        settings.validate()?;
        Ok(Some(settings))
    }

    /// The collection's name on the server: `<collection>-<namespace>`.
    /// Chroma names must end with a letter or digit, so trailing `-` and `_`
    /// of the namespace (a derived branch name can end with one) are dropped.
    pub fn collection_name(&self) -> String {
        let namespace = self
            .namespace
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if namespace.is_empty() {
            self.collection.clone()
        } else {
            format!("{}-{namespace}", self.collection)
        }
    }

    /// Checks every value can work, with an error naming the variable.
    pub fn validate(&self) -> Result<(), KnowledgeError> {
        if !is_http_url(&self.url) {
            return Err(config_error(
                "CHROMA_URL",
                &format!("must be an http:// or https:// URL, not {:?}", self.url),
            ));
        }
        if !is_path_safe(&self.tenant) {
            return Err(config_error(
                "CHROMA_TENANT",
                "may contain only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if !is_path_safe(&self.database) || self.database.len() < 3 {
            return Err(config_error(
                "CHROMA_DATABASE",
                "needs at least 3 characters, only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if !is_path_safe(&self.namespace) {
            return Err(KnowledgeError::Index(format!(
                "the namespace {:?} cannot be part of a Chroma collection name \
                 (only ASCII letters, digits, '.', '_' and '-')",
                self.namespace
            )));
        }
        let name = self.collection_name();
        if !is_collection_name(&name) {
            return Err(config_error(
                "CHROMA_COLLECTION",
                &format!(
                    "gives the collection name {name:?}, but Chroma needs 3 to 512 ASCII letters, \
                     digits, '.', '_' or '-', starting and ending with a letter or digit"
                ),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(config_error("CHROMA_TIMEOUT_MS", "must be at least 1"));
        }
        Ok(())
    }
}

fn config_error(variable: &str, problem: &str) -> KnowledgeError {
    KnowledgeError::Index(format!("{variable} {problem}"))
}

/// `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Safe as a URL path segment as it is (no escaping needed).
fn is_path_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Chroma's rule: 3 to 512 characters of `[a-zA-Z0-9._-]`, starting and
/// ending with a letter or digit.
fn is_collection_name(name: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (3..=512).contains(&name.len())
        && is_path_safe(name)
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
}

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

/// A collection as the server describes it (only what we read).
#[derive(Debug, Deserialize)]
struct CollectionInfo {
    id: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    dimension: Option<i64>,
    #[serde(default)]
    configuration_json: Option<Value>,
}

impl CollectionInfo {
    fn model(&self) -> Option<String> {
        self.metadata
            .as_ref()?
            .get(MODEL_KEY)?
            .as_str()
            .map(str::to_owned)
    }

    /// The distance the collection was created with, when the server says.
    fn space(&self) -> Option<&str> {
        let config = self.configuration_json.as_ref()?;
        ["hnsw", "spann"]
            .iter()
            .find_map(|index| config.get(index)?.get("space")?.as_str())
    }
}

/// A record's metadata as Chroma sends it.
type Metadata = Map<String, Value>;

/// The answer to `/get`: parallel arrays, present as `include` asked.
#[derive(Debug, Default, Deserialize)]
struct GetAnswer {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    metadatas: Option<Vec<Option<Metadata>>>,
}

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

/// One record as read back.
#[derive(Debug)]
struct Row {
    id: String,
    document: Option<String>,
    metadata: Option<Metadata>,
}

impl GetAnswer {
    fn into_rows(self) -> Vec<Row> {
        let mut documents = self.documents.unwrap_or_default().into_iter();
        let mut metadatas = self.metadatas.unwrap_or_default().into_iter();
        self.ids
            .into_iter()
            .map(|id| Row {
                id,
                document: documents.next().flatten(),
                metadata: metadatas.next().flatten(),
            })
            .collect()
    }
}

/// A record's metadata, read back.
#[derive(Debug)]
struct ChunkMeta {
    document_id: String,
    name: String,
    owner: String,
    size_bytes: u64,
    position: u32,
    page: Option<u32>,
    heading: Option<String>,
    token_count: u32,
}

impl ChunkMeta {
    fn parse(row: &Row) -> Result<Self, String> {
        let meta = row
            .metadata
            .as_ref()
            .ok_or_else(|| format!("record {} has no metadata", row.id))?;
        let string = |key: &str| -> Result<String, String> {
            meta.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("record {} has no text {key:?} in its metadata", row.id))
        };
        let number = |key: &str| -> Result<u64, String> {
            meta.get(key).and_then(Value::as_u64).ok_or_else(|| {
                format!(
                    "record {} has no whole number {key:?} in its metadata",
                    row.id
                )
            })
        };
        let small = |key: &str| -> Result<u32, String> {
            u32::try_from(number(key)?)
                .map_err(|_| format!("record {} has an out-of-range {key:?}", row.id))
        };
        Ok(ChunkMeta {
            document_id: string("document_id")?,
            name: string("name")?,
            owner: string("owner")?,
            size_bytes: number("size_bytes")?,
            position: small("position")?,
            page: match meta.get("page") {
                None | Some(Value::Null) => None,
                Some(_) => Some(small("page")?),
            },
            heading: meta
                .get("heading")
                .and_then(Value::as_str)
                .map(str::to_owned),
            token_count: small("token_count")?,
        })
    }
}

fn record_id(id: &DocumentId, position: u32) -> String {
    format!("{}:{position}", id.as_str())
}

fn record_metadata(doc: &IndexedDocument, chunk: &Chunk, model: &str) -> Value {
    let mut meta = Map::new();
    meta.insert("document_id".into(), json!(doc.id.as_str()));
    meta.insert("name".into(), json!(doc.name));
    meta.insert("owner".into(), json!(doc.owner.as_key()));
    // Chroma integers are signed 64-bit.
    meta.insert(
        "size_bytes".into(),
        json!(i64::try_from(doc.size_bytes).unwrap_or(i64::MAX)),
    );
    meta.insert("position".into(), json!(chunk.position));
    if let Some(page) = chunk.page {
        meta.insert("page".into(), json!(page));
    }
    if let Some(heading) = &chunk.heading {
        meta.insert("heading".into(), json!(heading));
    }
    meta.insert("token_count".into(), json!(chunk.token_count));
    meta.insert("model".into(), json!(model));
    Value::Object(meta)
}

/// Checks the vectors can be stored: one per chunk, all of one non-zero
/// dimension, finite. Returns the dimension (0 when there are none).
fn check_vectors(
    what: &str,
    embeddings: &ChunkEmbeddings,
    chunks: usize,
) -> Result<usize, KnowledgeError> {
    if embeddings.model.is_empty() {
        return Err(KnowledgeError::Index(format!(
            "{what}: the embedding model has no name"
        )));
    }
    if embeddings.vectors.len() != chunks {
        return Err(KnowledgeError::Index(format!(
            "{what}: {} vectors for {chunks} chunks",
            embeddings.vectors.len()
        )));
    }
    let dims = embeddings.vectors.first().map_or(0, Vec::len);
    if chunks > 0 && dims == 0 {
        return Err(KnowledgeError::Index(format!("{what}: empty vectors")));
    }
    for (i, v) in embeddings.vectors.iter().enumerate() {
        if v.len() != dims {
            return Err(KnowledgeError::Index(format!(
                "{what}: vector {i} has {} dimensions, the first has {dims}",
                v.len()
            )));
        }
        if !v.iter().all(|x| x.is_finite()) {
            return Err(KnowledgeError::Index(format!(
                "{what}: vector {i} holds a value that is not a finite number"
            )));
        }
    }
    Ok(dims)
}

/// An error and its causes, one line ("error sending request: connection
/// refused").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The readable part of an error answer: Chroma's `message` (or the body),
/// cut to [`MAX_QUOTED`] characters.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let text = match serde_json::from_str::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            message: Some(message),
            ..
        }) => message,
        Ok(ErrorAnswer {
            error: Some(error), ..
        }) => error,
        _ => body.trim().to_owned(),
    };
    if text.chars().count() > MAX_QUOTED {
        let cut: String = text.chars().take(MAX_QUOTED).collect();
        format!("{cut}…")
    } else if text.is_empty() {
        "no details".to_owned()
    } else {
        text
    }
}

impl ChromaIndex {
    /// Connects to the server: checks it answers, creates the database when
    /// missing, gets or creates the collection (cosine distance) and
    /// remembers its id.
    pub async fn connect(settings: ChromaSettings) -> Result<Self, KnowledgeError> {
        let mut settings = settings;
        settings.url = settings.url.trim_end_matches('/').to_owned();
        settings.validate()?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &settings.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                config_error(
                    "CHROMA_TOKEN",
                    "holds characters an HTTP header cannot carry",
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

impl Inner {
    fn database_path(&self) -> String {
        let s = &self.settings;
        format!("/api/v2/tenants/{}/databases/{}", s.tenant, s.database)
    }

    fn collections_path(&self) -> String {
        format!("{}/collections", self.database_path())
    }

    fn records_path(&self, operation: &str) -> String {
        format!(
            "{}/{}/{operation}",
            self.collections_path(),
            self.collection_id
        )
    }

    /// Sends one request; only transport failures are errors here.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, String), KnowledgeError> {
        let url = &self.settings.url;
        let mut request = self.client.request(method.clone(), format!("{url}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                KnowledgeError::Index(format!(
                    "Chroma at {url} did not answer {method} {path} within {} ms",
                    self.settings.timeout_ms
                ))
            } else {
                KnowledgeError::Index(format!("cannot reach Chroma at {url}: {}", chain(&e)))
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            KnowledgeError::Index(format!(
                "Chroma at {url}: reading the answer to {method} {path} failed: {}",
                chain(&e)
            ))
        })?;
        Ok((status, text))
    }

    /// An error for an unsuccessful status.
    fn check(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        body: &str,
    ) -> Result<(), KnowledgeError> {
        if status.is_success() {
            return Ok(());
        }
        let url = &self.settings.url;
        let detail = error_message(body);
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                " (check CHROMA_TOKEN and the tenant and database it may use)"
            }
            _ => "",
        };
        Err(KnowledgeError::Index(format!(
            "Chroma at {url} answered {status} to {method} {path}: {detail}{hint}"
        )))
    }

    /// Sends one request and reads a successful JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, KnowledgeError> {
        let (status, text) = self.send(method.clone(), path, body).await?;
        self.check(method.as_str(), path, status, &text)?;
        serde_json::from_str(&text).map_err(|e| {
            KnowledgeError::Index(format!(
                "Chroma at {} sent an answer to {method} {path} that FlowChat cannot read: {e}",
                self.settings.url
            ))
        })
    }

    async fn ensure_database(&self) -> Result<(), KnowledgeError> {
        let path = self.database_path();
        let (status, body) = self.send(Method::GET, &path, None).await?;
        if status != StatusCode::NOT_FOUND {
            return self.check("GET", &path, status, &body);
        }
        let create = format!("/api/v2/tenants/{}/databases", self.settings.tenant);
        let (status, body) = self
            .send(
                Method::POST,
                &create,
                Some(json!({"name": self.settings.database})),
            )
            .await?;
        // 409: someone else created it meanwhile.
        if status == StatusCode::CONFLICT {
            return Ok(());
        }
        self.check("POST", &create, status, &body)?;
        tracing::info!(database = %self.settings.database, "created the Chroma database");
        Ok(())
    }

    /// The collection as the server has it now (by name), checked to be the
    /// one connected to.
    async fn collection_info(&self) -> Result<CollectionInfo, KnowledgeError> {
        let path = format!("{}/{}", self.collections_path(), self.collection_name);
        let info: CollectionInfo = self.call(Method::GET, &path, None).await?;
        if info.id != self.collection_id {
            return Err(KnowledgeError::Index(format!(
                "the Chroma collection {} was deleted and created again since FlowChat \
                 connected: restart FlowChat",
                self.collection_name
            )));
        }
        self.cache_model(info.model());
        Ok(info)
    }

    fn cache_model(&self, model: Option<String>) {
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = (model, Instant::now());
    }

    /// The current model, from the cache when fresh enough.
    async fn current_model(&self) -> Result<Option<String>, KnowledgeError> {
        {
            let cached = self.model.lock().unwrap_or_else(PoisonError::into_inner);
            if cached.1.elapsed() < MODEL_CACHE_TTL {
                return Ok(cached.0.clone());
            }
        }
        Ok(self.collection_info().await?.model())
    }

    /// Makes `model` (making `dims`-dimensional vectors) the current model,
    /// after checking the collection can hold its vectors.
    async fn use_model(&self, model: &str, dims: usize) -> Result<(), KnowledgeError> {
        let info = self.collection_info().await?;
        if let Some(existing) = info.dimension
            && usize::try_from(existing).ok() != Some(dims)
        {
            return Err(KnowledgeError::Index(format!(
                "the Chroma collection {} holds {existing}-dimensional vectors but the \
                 embedding model {model} makes {dims}-dimensional ones; a collection's \
                 dimension is fixed by its first vectors, so set CHROMA_COLLECTION to a new \
                 name for this model and ingest the documents again",
                self.collection_name
            )));
        }
        let current = info.model();
        if current.as_deref() == Some(model) {
            return Ok(());
        }
        if let Some(old) = &current {
            tracing::warn!(
                from = %old,
                to = %model,
                collection = %self.collection_name,
                "the Chroma index switches embedding model: documents embedded by the old model \
                 are not searched until they are embedded again"
            );
        }
        // Updating collection metadata replaces all of it: keep the rest.
        let mut metadata = info.metadata.unwrap_or_default();
        metadata.insert(MODEL_KEY.into(), json!(model));
        let path = format!("{}/{}", self.collections_path(), self.collection_id);
        let _: Value = self
            .call(Method::PUT, &path, Some(json!({"new_metadata": metadata})))
            .await?;
        self.cache_model(Some(model.to_owned()));
        Ok(())
    }

    /// One page of records matching `filter`.
    async fn get_page(
        &self,
        filter: &Value,
        include: &[&str],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Row>, KnowledgeError> {
        let answer: GetAnswer = self
            .call(
                Method::POST,
                &self.records_path("get"),
                Some(json!({
                    "where": filter,
                    "include": include,
                    "limit": limit,
                    "offset": offset,
                })),
            )
            .await?;
        Ok(answer.into_rows())
    }

    /// Every record matching `filter`, page by page.
    async fn get_all(&self, filter: &Value, include: &[&str]) -> Result<Vec<Row>, KnowledgeError> {
        let mut rows = Vec::new();
        loop {
            let page = self
                .get_page(filter, include, READ_PAGE, rows.len())
                .await?;
            let done = page.len() < READ_PAGE;
            rows.extend(page);
            if done {
                return Ok(rows);
            }
        }
    }

    async fn delete_where(&self, filter: Value) -> Result<(), KnowledgeError> {
        let _: Value = self
            .call(
                Method::POST,
                &self.records_path("delete"),
                Some(json!({"where": filter})),
            )
            .await?;
        Ok(())
    }

    /// The parsed records of one document, by position.
    async fn document_records(
        &self,
        id: &DocumentId,
        include: &[&str],
    ) -> Result<Vec<(Row, ChunkMeta)>, KnowledgeError> {
        let rows = self
            .get_all(&json!({"document_id": id.as_str()}), include)
            .await?;
        let mut records = rows
            .into_iter()
            .map(|row| match ChunkMeta::parse(&row) {
                Ok(meta) => Ok((row, meta)),
                Err(problem) => Err(self.unreadable(&problem)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|(_, meta)| meta.position);
        Ok(records)
    }

    fn unreadable(&self, problem: &str) -> KnowledgeError {
        KnowledgeError::Index(format!(
            "the Chroma collection {} holds a record FlowChat cannot read: {problem}",
            self.collection_name
        ))
    }
}

#[async_trait::async_trait]
impl KnowledgeIndex for ChromaIndex {
    /// Not atomic (see the module documentation): the old records are
    /// deleted first, then the new ones upserted, so a concurrent search may
    /// briefly miss the document but never sees old and new chunks mixed.
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError> {
        let Some(embeddings) = &doc.embeddings else {
            return Err(KnowledgeError::Index(format!(
                "{} was not indexed: the Chroma index stores vectors only, so an embeddings \
                 provider is required for the Chroma index",
                doc.name
            )));
        };
        let dims = check_vectors(&doc.name, embeddings, doc.chunks.len())?;
        if !doc.chunks.is_empty() {
            self.inner.use_model(&embeddings.model, dims).await?;
        }
        self.inner
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
            let _: Value = self
                .inner
                .call(
                    Method::POST,
                    &self.inner.records_path("upsert"),
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

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, KnowledgeError> {
        // A delete's answer does not say whether anything was deleted.
        let filter = json!({"document_id": id.as_str()});
        let existed = !self.inner.get_page(&filter, &[], 1, 0).await?.is_empty();
        if existed {
            self.inner.delete_where(filter).await?;
        }
        Ok(existed)
    }

    async fn documents(
        &self,
        owner: &DocumentOwner,
    ) -> Result<Vec<IndexedSummary>, KnowledgeError> {
        let rows = self
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

    /// Needs `query.embedding`: without one it finds nothing and logs a
    /// warning (Chroma has no word search). Records of another model than the
    /// current one are never searched.
    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError> {
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
        let Some(model) = self.inner.current_model().await? else {
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
        let answer: QueryAnswer = self
            .inner
            .call(
                Method::POST,
                &self.inner.records_path("query"),
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

    async fn chunk_count(&self) -> Result<u64, KnowledgeError> {
        self.inner
            .call(Method::GET, &self.inner.records_path("count"), None)
            .await
    }

    async fn embedding_model(&self) -> Result<Option<String>, KnowledgeError> {
        Ok(self.inner.collection_info().await?.model())
    }

    /// Every record holds a vector, so these are the documents whose records
    /// carry another model than `model`.
    async fn documents_needing_embeddings(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DocumentId>, KnowledgeError> {
        let filter = json!({"model": {"$ne": model}});
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut offset = 0;
        while ids.len() < limit {
            let page = self
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

    async fn chunks(&self, id: &DocumentId) -> Result<Vec<Chunk>, KnowledgeError> {
        let records = self
            .inner
            .document_records(id, &["documents", "metadatas"])
            .await?;
        records
            .into_iter()
            .map(|(row, meta)| {
                let text = row.document.ok_or_else(|| {
                    self.inner
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

    /// Updates the records' vectors and `model` in place. Unknown documents
    /// (removed meanwhile) are left alone. A model with vectors of another
    /// dimension than the collection's is refused (see the module docs).
    async fn set_embeddings(
        &self,
        id: &DocumentId,
        embeddings: ChunkEmbeddings,
    ) -> Result<(), KnowledgeError> {
        let records = self.inner.document_records(id, &["metadatas"]).await?;
        if records.is_empty() {
            tracing::debug!(document = %id, "no Chroma records to set embeddings on");
            return Ok(());
        }
        let dims = check_vectors(id.as_str(), &embeddings, records.len())?;
        self.inner.use_model(&embeddings.model, dims).await?;
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
            let _: Value = self
                .inner
                .call(
                    Method::POST,
                    &self.inner.records_path("update"),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn settings_are_optional_and_default() {
        assert_eq!(
            ChromaSettings::from_lookup("dev", lookup(&[])).unwrap(),
            None
        );
        assert_eq!(
            ChromaSettings::from_lookup("dev", lookup(&[("CHROMA_URL", "  ")])).unwrap(),
            None
        );
        let s = ChromaSettings::from_lookup("dev", lookup(&[("CHROMA_URL", "http://h:8000/")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.url, "http://h:8000");
        assert_eq!(s.tenant, "default_tenant");
        assert_eq!(s.database, "default_database");
        assert_eq!(s.collection_name(), "flowchat-dev");
        assert_eq!(s.token, None);
        assert_eq!(s.timeout_ms, DEFAULT_TIMEOUT_MS);

        let s = ChromaSettings::from_lookup(
            "preview-feat-x-",
            lookup(&[
                ("CHROMA_URL", "https://chroma.example.com"),
                ("CHROMA_TENANT", "t1"),
                ("CHROMA_DATABASE", "docs"),
                ("CHROMA_COLLECTION", "kb"),
                ("CHROMA_TOKEN", "secret"),
                ("CHROMA_TIMEOUT_MS", "2500"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.collection_name(), "kb-preview-feat-x");
        assert_eq!(s.token.as_deref(), Some("secret"));
        assert_eq!(s.timeout_ms, 2500);
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let err = |vars: &[(&str, &str)]| {
            let message = ChromaSettings::from_lookup("dev", lookup(vars))
                .unwrap_err()
                .to_string();
            message
                .strip_prefix("knowledge index error: ")
                .unwrap_or(&message)
                .to_owned()
        };
        assert!(err(&[("CHROMA_URL", "localhost:8000")]).starts_with("CHROMA_URL "));
        let url = ("CHROMA_URL", "http://localhost:8000");
        assert!(err(&[url, ("CHROMA_TIMEOUT_MS", "soon")]).starts_with("CHROMA_TIMEOUT_MS "));
        assert!(err(&[url, ("CHROMA_TIMEOUT_MS", "0")]).starts_with("CHROMA_TIMEOUT_MS "));
        assert!(err(&[url, ("CHROMA_DATABASE", "db")]).starts_with("CHROMA_DATABASE "));
        assert!(err(&[url, ("CHROMA_TENANT", "a/b")]).starts_with("CHROMA_TENANT "));
        assert!(err(&[url, ("CHROMA_COLLECTION", "-kb")]).starts_with("CHROMA_COLLECTION "));
    }

    #[test]
    fn error_answers_are_quoted_briefly() {
        assert_eq!(
            error_message(r#"{"error":"NotFoundError","message":"Collection [x] does not exist"}"#),
            "Collection [x] does not exist"
        );
        assert_eq!(error_message(""), "no details");
        assert_eq!(
            error_message(&"x".repeat(1000)).chars().count(),
            MAX_QUOTED + 1
        );
    }

    #[test]
    fn records_without_page_or_heading_leave_them_out() {
        let doc = IndexedDocument {
            id: DocumentId::from_trusted("d1"),
            name: "a.md".into(),
            owner: DocumentOwner::Shared,
            size_bytes: 10,
            chunks: Vec::new(),
            embeddings: None,
        };
        let chunk = Chunk {
            position: 2,
            text: "t".into(),
            heading: None,
            page: None,
            token_count: 1,
        };
        let meta = record_metadata(&doc, &chunk, "m");
        assert!(meta.get("page").is_none() && meta.get("heading").is_none());
        let row = Row {
            id: record_id(&doc.id, 2),
            document: Some("t".into()),
            metadata: meta.as_object().cloned(),
        };
        let parsed = ChunkMeta::parse(&row).unwrap();
        assert_eq!(
            (parsed.position, parsed.page, parsed.heading),
            (2, None, None)
        );
        assert_eq!(row.id, "d1:2");
    }
}
