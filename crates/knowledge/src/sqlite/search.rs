//! Search: BM25 over chunk text and heading, bounded by a plan of FTS5
//! queries; vector search beside it when the question has a vector; the
//! two rankings fused by reciprocal rank, repeated passages collapsed.

use std::collections::HashMap;
use std::sync::Arc;

use flowchat_domain::DocumentId;
use rusqlite::{Connection, OptionalExtension, params};

use super::vectors::VectorQuery;
use super::{Role, SqliteIndex};
use crate::error::KnowledgeError;
use crate::fusion::{Duplicates, reciprocal_rank_fusion};
use crate::index::{Passage, SearchQuery};
use crate::query::query_terms;

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
                    // bm25() is lower-is-better and negative for a match.
                    passage: read_passage(row, (-rank).max(f64::MIN_POSITIVE))?,
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
            read_passage(row, f64::MIN_POSITIVE)
        })
        .optional()?)
}

/// A passage from the first six columns of [`SEARCH_SQL`] and
/// [`PASSAGE_SQL`] (document id, name, position, page, heading, text).
fn read_passage(row: &rusqlite::Row<'_>, score: f64) -> rusqlite::Result<Passage> {
    Ok(Passage {
        document_id: DocumentId::from_trusted(row.get::<_, String>(0)?),
        source: row.get(1)?,
        chunk: row.get(2)?,
        page: row.get(3)?,
        heading: row.get(4)?,
        text: row.get(5)?,
        score,
    })
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

/// BM25 alone without `query.embedding` (scores: BM25); with one, BM25
/// and vector search, run at the same time on two connections, fused by
/// reciprocal rank (scores: the fused score), or vector search alone when
/// the text has no searchable terms. If collapsing duplicates leaves fewer
/// than `top_k` while a ranking was cut off, both are read twice as deep
/// (see [`FETCH_FACTOR`]).
pub(super) async fn search(
    index: &SqliteIndex,
    query: SearchQuery<'_>,
) -> Result<Vec<Passage>, KnowledgeError> {
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
            index.run(Role::Read, move |conn| {
                lexical(conn, &terms, &viewer, fetch)
            })
        };
        let vector_fetch = (fetch / FETCH_FACTOR).max(MIN_VECTOR_FETCH);
        let vectors = async {
            let Some(embedding) = embedding.clone() else {
                return Ok(None);
            };
            let viewer = Arc::clone(&viewer);
            index
                .run(Role::ReadVectors, move |conn| {
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

#[cfg(test)]
mod tests {
    use flowchat_domain::model::DocumentOwner;

    use super::*;
    use crate::chunking::Chunk;
    use crate::index::{IndexedDocument, KnowledgeIndex};

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
