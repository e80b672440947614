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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use rusqlite::{Connection, OptionalExtension, params};

use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::fusion::{Duplicates, reciprocal_rank_fusion};
use crate::index::{
    ChunkEmbeddings, IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery,
};
use crate::query::query_terms;
use crate::vectors::{self, VectorQuery};

/// Bumped when the schema changes; older files are migrated on open.
/// 1: documents, chunks, FTS5. 2: chunk vectors (`documents.embedded`,
/// `meta`, `owner_tags`, and the `chunk_vectors` and `chunk_signs` tables
/// once vectors arrive).
const SCHEMA_VERSION: i64 = 2;

/// BM25 column weights: chunk text, then heading.
const TEXT_WEIGHT: f64 = 1.0;
const HEADING_WEIGHT: f64 = 1.5;

/// The most passages one search returns, whatever `top_k` asks.
const MAX_TOP_K: usize = 200;

/// BM25's ranking is first read this many times `top_k` deep (at least
/// [`MIN_FETCH`]): fusion needs some depth, and duplicates dropped from the
/// results need replacing. The vector ranking is read `top_k` deep (at least
/// [`MIN_VECTOR_FETCH`]): its cost grows with the depth (see `vectors.rs`),
/// and chunks below `top_k` by vector alone rarely make the fused top `top_k`.
/// A search that still comes up short while a list was cut off reads both
/// twice as deep, up to [`MAX_FETCH`].
const FETCH_FACTOR: usize = 2;
const MIN_FETCH: usize = 10;
const MIN_VECTOR_FETCH: usize = 5;
const MAX_FETCH: usize = 4 * MAX_TOP_K;

/// The most matching chunks one search scores. BM25 costs a few microseconds
/// per matching row, so this bounds search latency on a large index. Terms
/// are taken rarest first until their matches would exceed it; the common
/// terms left out carry little weight in BM25 anyway (low IDF).
const RANK_BUDGET: usize = 4_000;

/// The most matches scored when every term of a question is common.
const COMMON_SCAN_LIMIT: usize = 2_000;

/// Memory-mapped I/O and page cache: searches touch many pages of a large
/// index, and reading them through `read()` calls doubles the cost. Vectors
/// make the file large (100,000 chunks with 1,536-dimensional vectors take
/// about 900 MB), and vector search scans their sign bits wherever they lie
/// in it, so the map covers up to 1 GiB (address space, not memory).
const MMAP_BYTES: i64 = 1024 * 1024 * 1024;
const CACHE_KIB: i64 = 32 * 1024;

/// Chunk metadata (`chunks`, narrow, read for every match to filter by owner)
/// is kept apart from chunk text (`chunk_texts`, wide, read only for the
/// passages returned): filtering thousands of matches then stays in cache.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS documents (
    key         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    -- 1 when every chunk has a vector of the index's current model.
    embedded    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents(owner, name);

CREATE TABLE IF NOT EXISTS chunks (
    id          INTEGER PRIMARY KEY,
    doc_key     INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    page        INTEGER,
    token_count INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_document ON chunks(doc_key, position);

CREATE TABLE IF NOT EXISTS chunk_texts (
    id      INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    text    TEXT NOT NULL,
    heading TEXT
);

-- External-content FTS5 table: the text is stored once, in `chunk_texts`.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading,
    content = 'chunk_texts', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunk_texts_fts_insert AFTER INSERT ON chunk_texts BEGIN
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunk_texts_fts_delete AFTER DELETE ON chunk_texts BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
    VALUES ('delete', old.id, old.text, old.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunk_texts_fts_update AFTER UPDATE ON chunk_texts BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
    VALUES ('delete', old.id, old.text, old.heading);
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
";

/// Version 2 additions that need `documents.embedded` (added to version 1
/// files by the migration, see [`SqliteIndex::open`]).
const SCHEMA_V2_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS documents_without_vectors ON documents(key) WHERE embedded = 0;
";

/// Matches (at most ?2) of one FTS5 expression: a term's document frequency,
/// capped, without scoring anything.
const COUNT_SQL: &str =
    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ?1 LIMIT ?2)";

/// The search. The inner query scores at most ?6 matches (-1: all of them)
/// with BM25; the middle one keeps the viewer's and shared chunks and the
/// best ?3; only those have their text read. `CROSS JOIN` fixes the join
/// order: the full-text query runs once, then each hit is looked up by key.
const SEARCH_SQL: &str = "
WITH top AS MATERIALIZED (
    SELECT hit.id, hit.rank
    FROM (
        SELECT rowid AS id, bm25(chunks_fts, ?4, ?5) AS rank
        FROM chunks_fts WHERE chunks_fts MATCH ?1 LIMIT ?6
    ) AS hit
    CROSS JOIN chunks c ON c.id = hit.id
    CROSS JOIN documents d ON d.key = c.doc_key
    WHERE d.owner IN ('shared', ?2)
    ORDER BY hit.rank
    LIMIT ?3
)
SELECT d.id, d.name, c.position, c.page, t.heading, t.text, top.rank, top.id
FROM top
CROSS JOIN chunks c ON c.id = top.id
CROSS JOIN chunk_texts t ON t.id = top.id
CROSS JOIN documents d ON d.key = c.doc_key
ORDER BY top.rank";

/// One chunk for a passage, if the viewer (?2) may see it.
const PASSAGE_SQL: &str = "
SELECT d.id, d.name, c.position, c.page, t.heading, t.text
FROM chunks c
CROSS JOIN chunk_texts t ON t.id = c.id
CROSS JOIN documents d ON d.key = c.doc_key
WHERE c.id = ?1 AND d.owner IN ('shared', ?2)";

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
        let mut writer = connect(&path)?;
        writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        let version: i64 = writer.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(KnowledgeError::Index(format!(
                "{} was written by a newer FlowChat (schema {version}, this build knows {SCHEMA_VERSION})",
                path.display()
            )));
        }
        migrate(&mut writer, version)?;
        let reader = connect(&path)?;
        let vector_reader = connect(&path)?;
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

/// Creates the schema, or brings a file of schema `version` up to date, in
/// one transaction.
fn migrate(conn: &mut Connection, version: i64) -> Result<(), KnowledgeError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    if version < 2 {
        let has_embedded: bool = tx.query_row(
            "SELECT count(*) FROM pragma_table_info('documents') WHERE name = 'embedded'",
            [],
            |row| row.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_embedded {
            tx.execute_batch(
                "ALTER TABLE documents ADD COLUMN embedded INTEGER NOT NULL DEFAULT 0",
            )?;
        }
    }
    tx.execute_batch(vectors::SCHEMA)?;
    tx.execute_batch(SCHEMA_V2_INDEXES)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn connect(path: &Path) -> Result<Connection, KnowledgeError> {
    let conn = Connection::open(path)?;
    vectors::register(&conn)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

/// `term` as an FTS5 string: whatever it holds is a word to find, never
/// query syntax.
fn quoted(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

fn joined(terms: &[&str], operator: &str) -> String {
    terms
        .iter()
        .map(|t| quoted(t))
        .collect::<Vec<_>>()
        .join(operator)
}

/// One FTS5 query to run.
#[derive(Debug, PartialEq)]
struct Plan {
    /// Quoted terms joined by OR (or AND).
    expression: String,
    /// Score only the first this-many matches (in index order), or all.
    scan_limit: Option<usize>,
}

/// Chooses the FTS5 queries for `terms`, to run in order until one finds
/// something, so that a search scores a bounded number of chunks:
///
/// 1. Terms that match nothing are dropped; none left, no search.
/// 2. Rarest first, terms are OR-ed while their matches fit [`RANK_BUDGET`].
///    On an index of a few thousand chunks that is every term.
/// 3. If even the rarest term is too common (every word of the question is
///    in a large share of the index), the chunks holding the two rarest terms
///    are scored, then, if none is visible, those holding the rarest one;
///    either way only the first [`COMMON_SCAN_LIMIT`] matches. BM25 also has
///    to read each term's full match list to weigh it, which is why no more
///    common terms are added. Such a question has no sharp answer; this keeps
///    it from costing a scan of the whole index.
fn plan(conn: &Connection, terms: &[String]) -> Result<Vec<Plan>, KnowledgeError> {
    let mut count = conn.prepare_cached(COUNT_SQL)?;
    let cap = RANK_BUDGET as i64 + 1;
    let mut frequencies: Vec<(usize, &str)> = Vec::with_capacity(terms.len());
    for term in terms {
        let n: i64 = count.query_row(params![quoted(term), cap], |row| row.get(0))?;
        if n > 0 {
            frequencies.push((n as usize, term.as_str()));
        }
    }
    frequencies.sort_by_key(|&(n, _)| n);

    let mut total = 0;
    let selective: Vec<&str> = frequencies
        .iter()
        .take_while(|&&(n, _)| {
            total += n;
            total <= RANK_BUDGET
        })
        .map(|&(_, t)| t)
        .collect();
    if !selective.is_empty() {
        return Ok(vec![Plan {
            expression: joined(&selective, " OR "),
            scan_limit: None,
        }]);
    }

    let rarest: Vec<&str> = frequencies.iter().take(2).map(|&(_, t)| t).collect();
    let mut plans = Vec::new();
    if rarest.len() == 2 {
        plans.push(Plan {
            expression: joined(&rarest, " AND "),
            scan_limit: Some(COMMON_SCAN_LIMIT),
        });
    }
    if let Some(first) = rarest.first() {
        plans.push(Plan {
            expression: quoted(first),
            scan_limit: Some(COMMON_SCAN_LIMIT),
        });
    }
    Ok(plans)
}

/// A document's chunk ids, in order.
fn chunk_ids(conn: &Connection, doc_key: i64) -> Result<Vec<i64>, KnowledgeError> {
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

/// One chunk found by a ranking.
struct Hit {
    chunk_id: i64,
    passage: Passage,
}

/// The BM25 ranking: up to `limit` of the viewer's chunks matching `terms`,
/// best first, with their passages (score: BM25, higher is better).
fn lexical(
    conn: &Connection,
    terms: &[String],
    viewer: &str,
    limit: usize,
) -> Result<Vec<Hit>, KnowledgeError> {
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(SEARCH_SQL)?;
    for plan in plan(conn, terms)? {
        tracing::debug!(?terms, ?plan, "knowledge search");
        let scan_limit = plan.scan_limit.map_or(-1, |n| n as i64);
        let rows = stmt.query_map(
            params![
                plan.expression,
                viewer,
                limit as i64,
                TEXT_WEIGHT,
                HEADING_WEIGHT,
                scan_limit
            ],
            |row| {
                let rank: f64 = row.get(6)?;
                Ok(Hit {
                    chunk_id: row.get(7)?,
                    passage: Passage {
                        document_id: DocumentId::from_trusted(row.get::<_, String>(0)?),
                        source: row.get(1)?,
                        chunk: row.get(2)?,
                        page: row.get(3)?,
                        heading: row.get(4)?,
                        text: row.get(5)?,
                        // bm25() is lower-is-better and negative for a match.
                        score: (-rank).max(f64::MIN_POSITIVE),
                    },
                })
            },
        )?;
        let hits = rows.collect::<Result<Vec<_>, _>>()?;
        if !hits.is_empty() {
            return Ok(hits);
        }
    }
    Ok(Vec::new())
}

/// The passage of chunk `id` if `viewer` may see it.
fn passage(conn: &Connection, id: i64, viewer: &str) -> Result<Option<Passage>, KnowledgeError> {
    let mut stmt = conn.prepare_cached(PASSAGE_SQL)?;
    Ok(stmt
        .query_row(params![id, viewer], |row| {
            Ok(Passage {
                document_id: DocumentId::from_trusted(row.get::<_, String>(0)?),
                source: row.get(1)?,
                chunk: row.get(2)?,
                page: row.get(3)?,
                heading: row.get(4)?,
                text: row.get(5)?,
                score: f64::MIN_POSITIVE,
            })
        })
        .optional()?)
}

/// The vector ranking: up to `limit` of the viewer's chunks nearest
/// `embedding`, nearest first, with their passages (read here, with the
/// owner checked again: the vector tables already filtered on it). `None`
/// when the index has no vectors to compare the question's with. One read
/// transaction, so a model switch committed meanwhile (which replaces the
/// vector tables) is seen entirely or not at all.
fn semantic(
    conn: &mut Connection,
    embedding: &[f32],
    viewer: &str,
    limit: usize,
) -> Result<Option<Vec<Hit>>, KnowledgeError> {
    let tx = conn.transaction()?;
    let Some(query) = VectorQuery::new(&tx, embedding, viewer)? else {
        return Ok(None);
    };
    let mut hits = Vec::new();
    for (chunk_id, _similarity) in query.nearest(&tx, limit)? {
        if let Some(passage) = passage(&tx, chunk_id, viewer)? {
            hits.push(Hit { chunk_id, passage });
        }
    }
    tx.commit()?;
    Ok(Some(hits))
}

/// The results from one or two rankings: fused by reciprocal rank when there
/// are vector hits to fuse (scores: the fused score), else BM25's (scores:
/// BM25), the best `top_k` after collapsing duplicates.
fn merge(words: Vec<Hit>, vectors: Option<Vec<Hit>>, top_k: usize) -> Vec<Passage> {
    let ranked: Vec<(f64, Passage)> = match vectors {
        None => words
            .into_iter()
            .map(|h| (h.passage.score, h.passage))
            .collect(),
        Some(vectors) => {
            let word_ids: Vec<i64> = words.iter().map(|h| h.chunk_id).collect();
            let vector_ids: Vec<i64> = vectors.iter().map(|h| h.chunk_id).collect();
            let mut read: HashMap<i64, Passage> = words
                .into_iter()
                .chain(vectors)
                .map(|h| (h.chunk_id, h.passage))
                .collect();
            reciprocal_rank_fusion(&[&word_ids[..], &vector_ids[..]])
                .into_iter()
                .filter_map(|(id, score)| read.remove(&id).map(|p| (score, p)))
                .collect()
        }
    };
    let mut out = Vec::with_capacity(top_k);
    let mut duplicates = Duplicates::default();
    for (score, mut p) in ranked {
        if out.len() == top_k {
            break;
        }
        if duplicates.admit(&p.document_id, p.chunk, &p.text) {
            p.score = score.max(f64::MIN_POSITIVE);
            out.push(p);
        }
    }
    out
}

#[async_trait::async_trait]
impl KnowledgeIndex for SqliteIndex {
    /// With embeddings, the vectors are checked first (one per chunk, one
    /// dimension, finite, not zero: otherwise an error and nothing changes)
    /// and stored in the same transaction as the chunks. Vectors of another
    /// model than the index's make it the index's model (see
    /// [`KnowledgeIndex::set_embeddings`]). Without embeddings the document
    /// has no vectors and is listed by `documents_needing_embeddings`.
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError> {
        let checked = doc
            .embeddings
            .as_ref()
            .map(|e| vectors::checked(&doc.name, e, doc.chunks.len()).map(|v| (&e.model, v)))
            .transpose()?
            .map(|(model, (vectors, dims))| (model.clone(), vectors, dims));
        self.run(Role::Write, move |conn| {
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

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, KnowledgeError> {
        let id = id.clone();
        self.run(Role::Write, move |conn| {
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

    async fn documents(
        &self,
        owner: &DocumentOwner,
    ) -> Result<Vec<IndexedSummary>, KnowledgeError> {
        let owner_key = owner.as_key().to_owned();
        self.run(Role::Read, move |conn| {
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

    /// BM25 alone without `query.embedding` (scores: BM25); with one, BM25
    /// and vector search, run at the same time on two connections, fused by
    /// reciprocal rank (scores: the fused score), or vector search alone when
    /// the text has no searchable terms. If collapsing duplicates leaves fewer
    /// than `top_k` while a ranking was cut off, both are read twice as deep
    /// (see [`FETCH_FACTOR`]).
    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError> {
        let top_k = query.top_k.min(MAX_TOP_K);
        let terms = Arc::new(query_terms(query.text));
        if top_k == 0 || (terms.is_empty() && query.embedding.is_none()) {
            return Ok(Vec::new());
        }
        let embedding: Option<Arc<[f32]>> = query.embedding.map(Arc::from);
        // No session id equals "shared", so a missing viewer repeats it harmlessly.
        let viewer: Arc<str> = Arc::from(query.viewer.map_or("shared", |s| s.as_str()));
        let mut fetch = (top_k * FETCH_FACTOR).clamp(MIN_FETCH, MAX_FETCH);
        loop {
            let words = {
                let (terms, viewer) = (Arc::clone(&terms), Arc::clone(&viewer));
                self.run(Role::Read, move |conn| {
                    lexical(conn, &terms, &viewer, fetch)
                })
            };
            let vector_fetch = (fetch / FETCH_FACTOR).max(MIN_VECTOR_FETCH);
            let vectors = async {
                let Some(embedding) = embedding.clone() else {
                    return Ok(None);
                };
                let viewer = Arc::clone(&viewer);
                self.run(Role::ReadVectors, move |conn| {
                    semantic(conn, &embedding, &viewer, vector_fetch)
                })
                .await
            };
            let (words, vectors) = tokio::try_join!(words, vectors)?;
            let truncated =
                words.len() >= fetch || vectors.as_ref().is_some_and(|v| v.len() >= vector_fetch);
            let found = merge(words, vectors, top_k);
            if found.len() >= top_k || !truncated || fetch >= MAX_FETCH {
                return Ok(found);
            }
            fetch = (fetch * 2).min(MAX_FETCH);
        }
    }

    async fn chunk_count(&self) -> Result<u64, KnowledgeError> {
        self.run(Role::Read, |conn| {
            let count: i64 = conn.query_row(
                "SELECT COALESCE(SUM(chunk_count), 0) FROM documents",
                [],
                |row| row.get(0),
            )?;
            Ok(count.max(0) as u64)
        })
        .await
    }

    async fn embedding_model(&self) -> Result<Option<String>, KnowledgeError> {
        self.run(Role::Read, |conn| {
            Ok(vectors::current(conn)?.map(|(m, _)| m))
        })
        .await
    }

    /// Documents with chunks but without vectors of `model`, oldest first;
    /// every document with chunks while the index's model is another one.
    async fn documents_needing_embeddings(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DocumentId>, KnowledgeError> {
        let model = model.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(Role::Read, move |conn| {
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

    async fn chunks(&self, id: &DocumentId) -> Result<Vec<Chunk>, KnowledgeError> {
        let id = id.clone();
        self.run(Role::Read, move |conn| {
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

    /// An unknown document (removed meanwhile) is left alone. Vectors that
    /// do not fit (count, dimension, values) are an error and change nothing.
    async fn set_embeddings(
        &self,
        id: &DocumentId,
        embeddings: ChunkEmbeddings,
    ) -> Result<(), KnowledgeError> {
        let id = id.clone();
        self.run(Role::Write, move |conn| {
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
}

/// Stores a document's checked vectors (one per chunk id, in order), making
/// `model` the index's model first, and marks the document embedded.
fn store_vectors(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::Chunk;

    fn chunk(position: u32, text: String) -> Chunk {
        Chunk {
            position,
            text,
            heading: None,
            page: None,
            token_count: 1,
        }
    }

    /// Past the budget, common terms are left out or bounded, and searches
    /// still find what the rare terms point at.
    #[tokio::test]
    async fn large_indexes_score_a_bounded_number_of_matches() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open(dir.path().join("i.sqlite")).unwrap();
        let n = RANK_BUDGET as u32 + 100;
        let chunks = (0..n)
            .map(|i| {
                let extra = if i % 1500 == 7 { " needle" } else { "" };
                let also = if i % 100 != 0 { " alpha" } else { "" };
                chunk(i, format!("common words everywhere{also}{extra} n{i}"))
            })
            .collect();
        index
            .replace_document(IndexedDocument {
                id: DocumentId::for_content(b"big"),
                name: "big.txt".into(),
                owner: DocumentOwner::Shared,
                size_bytes: 1,
                chunks,
                embeddings: None,
            })
            .await
            .unwrap();

        {
            let conn = index.inner.reader.lock().unwrap();
            let terms = |q: &str| query_terms(q);
            assert_eq!(
                plan(&conn, &terms("needle common")).unwrap(),
                [Plan {
                    expression: "\"needle\"".into(),
                    scan_limit: None
                }]
            );
            assert_eq!(
                plan(&conn, &terms("common alpha")).unwrap(),
                [
                    Plan {
                        expression: "\"common\" AND \"alpha\"".into(),
                        scan_limit: Some(COMMON_SCAN_LIMIT)
                    },
                    Plan {
                        expression: "\"common\"".into(),
                        scan_limit: Some(COMMON_SCAN_LIMIT)
                    }
                ]
            );
            assert!(plan(&conn, &terms("absent zebra")).unwrap().is_empty());
        }

        let search = |text: &'static str| {
            index.search(SearchQuery {
                text,
                viewer: None,
                top_k: 5,
                embedding: None,
            })
        };
        let hits = search("needle common").await.unwrap();
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|p| p.text.contains("needle")));
        assert_eq!(search("common alpha").await.unwrap().len(), 5);
        assert_eq!(search("common zzzz").await.unwrap().len(), 5);
        assert!(search("zzzz").await.unwrap().is_empty());
    }
}
