//! The embedded knowledge index: documents, chunks and an FTS5 full-text
//! index in one SQLite file.
//!
//! One file keeps local use and tests free of servers; WAL lets searches read
//! while an ingest writes. SQLite calls block, so every call runs on Tokio's
//! blocking pool, with one connection for writes and one for reads (each behind
//! a mutex) so a long re-index does not stall searches.
//!
//! Search is BM25 over chunk text and heading (the heading weighs a little
//! more: a question naming a section should find it), filtered by owner in
//! SQL. User text never reaches FTS5's query language: it is reduced to plain
//! terms, each quoted, OR-ed. Scoring costs time per matching chunk, so a
//! search scores a bounded number of matches (see `plan`): that keeps it
//! fast at 100,000 chunks without changing results on a small index.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::KnowledgeError;
use crate::index::{IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery};
use crate::query::query_terms;

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

/// BM25 column weights: chunk text, then heading.
const TEXT_WEIGHT: f64 = 1.0;
const HEADING_WEIGHT: f64 = 1.5;

/// The most passages one search returns, whatever `top_k` asks.
const MAX_TOP_K: usize = 200;

/// The most matching chunks one search scores. BM25 costs a few microseconds
/// per matching row, so this bounds search latency on a large index. Terms
/// are taken rarest first until their matches would exceed it; the common
/// terms left out carry little weight in BM25 anyway (low IDF).
const RANK_BUDGET: usize = 4_000;

/// The most matches scored when every term of a question is common.
const COMMON_SCAN_LIMIT: usize = 2_000;

/// Memory-mapped I/O and page cache: searches touch many pages of a large
/// index, and reading them through `read()` calls doubles the cost.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;
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
    chunk_count INTEGER NOT NULL
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
SELECT d.id, d.name, c.position, c.page, t.heading, t.text, top.rank
FROM top
CROSS JOIN chunks c ON c.id = top.id
CROSS JOIN chunk_texts t ON t.id = top.id
CROSS JOIN documents d ON d.key = c.doc_key
ORDER BY top.rank";

/// A knowledge index in one SQLite file. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteIndex {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    path: PathBuf,
}

#[derive(Clone, Copy)]
enum Role {
    Read,
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
        let writer = connect(&path)?;
        writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        let version: i64 = writer.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(KnowledgeError::Index(format!(
                "{} was written by a newer FlowChat (schema {version}, this build knows {SCHEMA_VERSION})",
                path.display()
            )));
        }
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let reader = connect(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
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
                Role::Write => &inner.writer,
            };
            // A panic mid-call rolled its transaction back; the connection is usable.
            let mut conn = mutex.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

fn connect(path: &Path) -> Result<Connection, KnowledgeError> {
    let conn = Connection::open(path)?;
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

/// Deletes a document's chunks (and their text, which updates the FTS index).
fn delete_chunks(tx: &rusqlite::Transaction<'_>, doc_key: i64) -> Result<(), KnowledgeError> {
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

#[async_trait::async_trait]
impl KnowledgeIndex for SqliteIndex {
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError> {
        self.run(Role::Write, move |conn| {
            let tx = conn.transaction()?;
            if let Some(key) = document_key(&tx, &doc.id)? {
                delete_chunks(&tx, key)?;
            }
            let key: i64 = tx.query_row(
                "INSERT INTO documents (id, name, owner, size_bytes, chunk_count)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, owner = excluded.owner,
                     size_bytes = excluded.size_bytes, chunk_count = excluded.chunk_count
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
                }
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

    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError> {
        let top_k = query.top_k.min(MAX_TOP_K);
        let terms = query_terms(query.text);
        if terms.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        // No session id equals "shared", so a missing viewer repeats it harmlessly.
        let viewer = query
            .viewer
            .map_or_else(|| "shared".to_owned(), |s| s.as_str().to_owned());
        self.run(Role::Read, move |conn| {
            let mut stmt = conn.prepare_cached(SEARCH_SQL)?;
            for plan in plan(conn, &terms)? {
                tracing::debug!(?terms, ?plan, "knowledge search");
                let scan_limit = plan.scan_limit.map_or(-1, |n| n as i64);
                let rows = stmt.query_map(
                    params![
                        plan.expression,
                        viewer,
                        top_k as i64,
                        TEXT_WEIGHT,
                        HEADING_WEIGHT,
                        scan_limit
                    ],
                    |row| {
                        let rank: f64 = row.get(6)?;
                        Ok(Passage {
                            document_id: DocumentId::from_trusted(row.get::<_, String>(0)?),
                            source: row.get(1)?,
                            chunk: row.get(2)?,
                            page: row.get(3)?,
                            heading: row.get(4)?,
                            text: row.get(5)?,
                            // bm25() is lower-is-better and negative for a match.
                            score: (-rank).max(f64::MIN_POSITIVE),
                        })
                    },
                )?;
                let passages = rows.collect::<Result<Vec<_>, _>>()?;
                if !passages.is_empty() {
                    return Ok(passages);
                }
            }
            Ok(Vec::new())
        })
        .await
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
