//! Chunk vectors in the SQLite index, with the sqlite-vec extension.
//!
//! # Layout
//!
//! Two `vec0` virtual tables, one row per chunk that has a vector, keyed by
//! the chunk's id (`chunks.id`):
//!
//! * `chunk_vectors`: the vector, normalised, as `embedding float[D]
//!   distance_metric=cosine`;
//! * `chunk_signs`: its signs (1 where a component is positive) as `signs
//!   bit[B]`, `B` being `D` rounded up to a multiple of 64; see "Search".
//!
//! Both have `owner`, an integer metadata column: the tag of the document's
//! owner (`owner_tags` maps owner keys to tags). Nearest-neighbour queries
//! filter on it inside sqlite-vec (`owner IN (shared, viewer)`), so another
//! session's private chunks are never candidates, and a query for `k`
//! neighbours gets `k` allowed ones whenever that many exist.
//!
//! sqlite-vec stores a table's vectors in blobs of `chunk_size` vectors.
//! Reading one vector (to re-rank it) walks the blob's overflow pages up to
//! it, so `chunk_vectors` uses small blobs (64 vectors, 384 KiB at 1,536
//! dimensions); `chunk_signs`, which is only ever scanned, keeps the default
//! 1,024.
//!
//! The dimension `D` is part of the tables' definition, so they are made
//! when the first vectors arrive, and the model and dimension are recorded in
//! `meta`. Vectors of another model replace the tables (and clear every
//! document's `embedded` flag): vectors of two models are never compared.
//!
//! # Search
//!
//! sqlite-vec searches by brute force, and the bundled build has no SIMD
//! distance code (it would need compiler flags we do not control): a cosine
//! distance costs about 3 ns per dimension on the 2-core reference machine
//! (10,000 vectors of 256 dimensions: 7 ms), so 100,000 vectors of 1,536
//! dimensions would take about half a second. Sign bits are 32 times smaller
//! and their Hamming distance much cheaper. So:
//!
//! * while `vectors × dimensions` is at most [`EXACT_SCAN_BUDGET`] (about
//!   1,300 vectors of 1,536 dimensions, 7,800 of 256), the float vectors are
//!   searched directly: exact cosine results;
//! * past that, the sign bits are searched (Hamming distance) for
//!   [`RESCORE_FACTOR`] times as many candidates as wanted (at least
//!   [`MIN_COARSE_CANDIDATES`]), and those are re-ranked by their exact
//!   cosine similarity ("binary quantization with rescoring", which keeps
//!   most of the ranking quality of modern embedding models). At 100,000
//!   vectors this takes about 20 ms with 1,536 dimensions and 6 ms with 256
//!   (`examples/search_bench.rs`); the cost grows with the number of vectors,
//!   their dimension and the candidates asked for.
//!
//! Deleted vectors leave holes in sqlite-vec's blobs until a whole blob is
//! empty (it is then dropped); new vectors fill only the newest blob. An
//! index re-embedded from scratch (a model switch) starts over compact.

use std::ffi::{c_char, c_int};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::KnowledgeError;
use crate::index::ChunkEmbeddings;

/// Vectors × dimensions up to which searches scan the float vectors (exact).
pub(crate) const EXACT_SCAN_BUDGET: usize = 2_000_000;
/// Coarse (sign-bit) candidates per wanted neighbour, re-ranked exactly.
/// sqlite-vec's top-k selection makes `k` passes over every vector's
/// distance, so at 100,000 vectors each candidate costs about 0.3 ms:
/// oversampling is kept modest.
pub(crate) const RESCORE_FACTOR: usize = 2;
/// The fewest coarse candidates a search re-ranks.
pub(crate) const MIN_COARSE_CANDIDATES: usize = 16;
/// sqlite-vec's limits: dimensions of a vector column, and `k`.
const MAX_DIMENSIONS: usize = 8192;
const MAX_K: usize = 4096;

/// Vectors per blob of `chunk_vectors` (see "Layout").
const VECTOR_BLOB_VECTORS: usize = 64;

const META_MODEL: &str = "embedding_model";
const META_DIMS: &str = "embedding_dims";

/// Schema additions of version 2 (besides `documents.embedded`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;

-- Small integers for owners: the vector table filters on them.
CREATE TABLE IF NOT EXISTS owner_tags (
    tag   INTEGER PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE
);
";

/// Registers sqlite-vec's functions and its `vec0` module on `conn`.
pub(crate) fn register(conn: &Connection) -> Result<(), KnowledgeError> {
    type Init = unsafe extern "C" fn(
        *mut rusqlite::ffi::sqlite3,
        *mut *mut c_char,
        *const rusqlite::ffi::sqlite3_api_routines,
    ) -> c_int;
    // SAFETY: the crate declares `sqlite3_vec_init` without its parameters;
    // the C function is the standard extension entry point with the signature
    // of `Init`. The crate compiles it with SQLITE_CORE, so it calls the
    // SQLite linked into this program (rusqlite's bundled one) directly and
    // never reads the API routines pointer; `pzErrMsg` is only written on
    // failure, and may be null. `conn.handle()` is a live connection.
    let rc = unsafe {
        let init: Init =
            std::mem::transmute::<*const (), Init>(sqlite_vec::sqlite3_vec_init as *const ());
        init(conn.handle(), std::ptr::null_mut(), std::ptr::null())
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(KnowledgeError::Index(format!(
            "could not load the sqlite-vec extension (SQLite code {rc})"
        )));
    }
    Ok(())
}

/// Checks `embeddings` can be stored for `chunks` chunks: a named model, one
/// vector per chunk, all of one dimension (1 to 8,192), finite and not zero.
/// Returns them normalised to unit length, and the dimension (0 if none).
pub(crate) fn checked(
    what: &str,
    embeddings: &ChunkEmbeddings,
    chunks: usize,
) -> Result<(Vec<Vec<f32>>, usize), KnowledgeError> {
    let invalid = |why: String| KnowledgeError::Index(format!("{what}: {why}"));
    if embeddings.model.trim().is_empty() {
        return Err(invalid("the embedding model has no name".into()));
    }
    if embeddings.vectors.len() != chunks {
        return Err(invalid(format!(
            "{} vectors for {chunks} chunks",
            embeddings.vectors.len()
        )));
    }
    let dims = embeddings.vectors.first().map_or(0, Vec::len);
    if chunks > 0 && !(1..=MAX_DIMENSIONS).contains(&dims) {
        return Err(invalid(format!(
            "vectors of {dims} dimensions (1 to {MAX_DIMENSIONS} are supported)"
        )));
    }
    let mut out = Vec::with_capacity(chunks);
    for (i, v) in embeddings.vectors.iter().enumerate() {
        if v.len() != dims {
            return Err(invalid(format!(
                "vector {i} has {} dimensions, the first has {dims}",
                v.len()
            )));
        }
        out.push(
            normalised(v).ok_or_else(|| invalid(format!("vector {i} is zero or not finite")))?,
        );
    }
    Ok((out, dims))
}

/// `v` scaled to unit length; `None` if it is zero or holds a non-finite value.
pub(crate) fn normalised(v: &[f32]) -> Option<Vec<f32>> {
    if !v.iter().all(|x| x.is_finite()) {
        return None;
    }
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    Some(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// A float vector as sqlite-vec reads it: little-endian `f32`s.
fn float_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Bits of a `signs` vector for `dims` dimensions: a whole number of 64-bit
/// words (sqlite-vec then counts differing bits a word at a time).
fn coarse_bits(dims: usize) -> usize {
    dims.div_ceil(64) * 64
}

/// The signs of `v` as a bit vector of [`coarse_bits`] bits (padding zero).
/// `vec_quantize_binary` would do the same in SQL, but only for dimensions
/// divisible by 8.
fn sign_bits(v: &[f32]) -> Vec<u8> {
    let mut bits = vec![0u8; coarse_bits(v.len()) / 8];
    for (i, &x) in v.iter().enumerate() {
        if x > 0.0 {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    bits
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// The index's embedding model and vector dimension, if it has vectors.
pub(crate) fn current(conn: &Connection) -> Result<Option<(String, usize)>, KnowledgeError> {
    let model: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_MODEL],
            |row| row.get(0),
        )
        .optional()?;
    let dims: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_DIMS],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match (model, dims) {
        (Some(m), Some(d)) if d > 0 => Some((m, d as usize)),
        _ => None,
    })
}

/// Makes `model` with `dims`-dimensional vectors the index's model. Another
/// model's vectors are all dropped first, with the table (its dimension may
/// differ) and every document's `embedded` flag. The same model with another
/// dimension is refused: that is a misconfiguration, not a switch.
pub(crate) fn use_model(conn: &Connection, model: &str, dims: usize) -> Result<(), KnowledgeError> {
    match current(conn)? {
        Some((m, d)) if m == model && d == dims => return Ok(()),
        Some((m, d)) if m == model => {
            return Err(KnowledgeError::Index(format!(
                "the index holds {d}-dimensional vectors of {m}, but these vectors of the same \
                 model have {dims} dimensions"
            )));
        }
        Some((m, _)) => {
            tracing::warn!(
                from = %m,
                to = %model,
                "the knowledge index switches embedding model: every vector of the old model \
                 is dropped, and documents are found by their words until embedded again"
            );
        }
        None => {}
    }
    conn.execute_batch(
        "DROP TABLE IF EXISTS chunk_vectors;
         DROP TABLE IF EXISTS chunk_signs;
         UPDATE documents SET embedded = 0 WHERE embedded <> 0;",
    )?;
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE chunk_vectors USING vec0(
            chunk_id INTEGER PRIMARY KEY,
            owner INTEGER,
            embedding float[{dims}] distance_metric=cosine,
            chunk_size={VECTOR_BLOB_VECTORS}
        );
        CREATE VIRTUAL TABLE chunk_signs USING vec0(
            chunk_id INTEGER PRIMARY KEY,
            owner INTEGER,
            signs bit[{}]
        );",
        coarse_bits(dims)
    ))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2), (?3, ?4)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![META_MODEL, model, META_DIMS, dims as i64],
    )?;
    Ok(())
}

/// Whether the vector tables exist (vectors were ever stored).
pub(crate) fn table_exists(conn: &Connection) -> Result<bool, KnowledgeError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'chunk_vectors'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The tag of `owner` (an owner key), made if new.
pub(crate) fn owner_tag(conn: &Connection, owner: &str) -> Result<i64, KnowledgeError> {
    conn.execute(
        "INSERT INTO owner_tags (owner) VALUES (?1) ON CONFLICT(owner) DO NOTHING",
        [owner],
    )?;
    Ok(conn.query_row(
        "SELECT tag FROM owner_tags WHERE owner = ?1",
        [owner],
        |row| row.get(0),
    )?)
}

/// Deletes the vectors of these chunks (those that have one).
pub(crate) fn delete(conn: &Connection, chunk_ids: &[i64]) -> Result<(), KnowledgeError> {
    if chunk_ids.is_empty() || !table_exists(conn)? {
        return Ok(());
    }
    let mut vectors = conn.prepare_cached("DELETE FROM chunk_vectors WHERE chunk_id = ?1")?;
    let mut signs = conn.prepare_cached("DELETE FROM chunk_signs WHERE chunk_id = ?1")?;
    for id in chunk_ids {
        vectors.execute([id])?;
        signs.execute([id])?;
    }
    Ok(())
}

/// Stores normalised `vectors` for `chunk_ids` (same order), tagged `owner`.
/// The tables must exist with their dimension ([`use_model`]).
pub(crate) fn insert(
    conn: &Connection,
    chunk_ids: &[i64],
    owner: i64,
    vectors: &[Vec<f32>],
) -> Result<(), KnowledgeError> {
    let mut floats = conn.prepare_cached(
        "INSERT INTO chunk_vectors (chunk_id, owner, embedding) VALUES (?1, ?2, ?3)",
    )?;
    let mut signs = conn.prepare_cached(
        "INSERT INTO chunk_signs (chunk_id, owner, signs) VALUES (?1, ?2, vec_bit(?3))",
    )?;
    for (id, v) in chunk_ids.iter().zip(vectors) {
        floats.execute(params![id, owner, float_blob(v)])?;
        signs.execute(params![id, owner, sign_bits(v)])?;
    }
    Ok(())
}

/// A vector query, checked against the index.
pub(crate) struct VectorQuery {
    /// The question's vector, normalised.
    vector: Vec<f32>,
    /// Owner tags the viewer may see (-1: none).
    owners: [i64; 2],
    /// Vectors stored (all owners), which picks exact or coarse search.
    stored: usize,
}

impl VectorQuery {
    /// Prepares a search for `vector` on behalf of `viewer` (an owner key,
    /// `shared` for none). `None` when the index has no vectors to compare
    /// it with: none stored, another dimension (logged), or none the viewer
    /// may see.
    pub(crate) fn new(
        conn: &Connection,
        vector: &[f32],
        viewer: &str,
    ) -> Result<Option<Self>, KnowledgeError> {
        let Some((model, dims)) = current(conn)? else {
            return Ok(None);
        };
        if dims != vector.len() {
            tracing::warn!(
                %model,
                index_dimensions = dims,
                query_dimensions = vector.len(),
                "the question's vector does not fit the index's vectors; searching by words only"
            );
            return Ok(None);
        }
        let Some(vector) = normalised(vector) else {
            return Ok(None);
        };
        let tag = |owner: &str| -> Result<i64, KnowledgeError> {
            Ok(conn
                .query_row(
                    "SELECT tag FROM owner_tags WHERE owner = ?1",
                    [owner],
                    |row| row.get(0),
                )
                .optional()?
                .unwrap_or(-1))
        };
        let owners = [tag("shared")?, tag(viewer)?];
        if owners == [-1, -1] {
            return Ok(None);
        }
        let stored: i64 = conn.query_row(
            "SELECT COALESCE(SUM(chunk_count), 0) FROM documents WHERE embedded = 1",
            [],
            |row| row.get(0),
        )?;
        Ok(Some(Self {
            vector,
            owners,
            stored: stored.max(0) as usize,
        }))
    }

    /// The `want` chunks nearest the question among the viewer's allowed
    /// ones, nearest first, with their cosine similarity.
    pub(crate) fn nearest(
        &self,
        conn: &Connection,
        want: usize,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let want = want.clamp(1, MAX_K);
        if self.stored.saturating_mul(self.vector.len()) <= EXACT_SCAN_BUDGET {
            let mut stmt = conn.prepare_cached(
                "SELECT chunk_id, distance FROM chunk_vectors
                 WHERE embedding MATCH ?1 AND k = ?2 AND owner IN (?3, ?4)",
            )?;
            let rows = stmt.query_map(
                params![
                    float_blob(&self.vector),
                    want as i64,
                    self.owners[0],
                    self.owners[1]
                ],
                |row| Ok((row.get::<_, i64>(0)?, 1.0 - row.get::<_, f64>(1)?)),
            )?;
            let mut hits = rows.collect::<Result<Vec<_>, _>>()?;
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            return Ok(hits);
        }

        let candidates = (want * RESCORE_FACTOR).clamp(MIN_COARSE_CANDIDATES, MAX_K);
        let ids: Vec<i64> = {
            let mut stmt = conn.prepare_cached(
                "SELECT chunk_id FROM chunk_signs
                 WHERE signs MATCH vec_bit(?1) AND k = ?2 AND owner IN (?3, ?4)",
            )?;
            let rows = stmt.query_map(
                params![
                    sign_bits(&self.vector),
                    candidates as i64,
                    self.owners[0],
                    self.owners[1]
                ],
                |row| row.get(0),
            )?;
            rows.collect::<Result<_, _>>()?
        };
        let mut stmt =
            conn.prepare_cached("SELECT embedding FROM chunk_vectors WHERE chunk_id = ?1")?;
        let mut hits = Vec::with_capacity(ids.len());
        for id in ids {
            let blob: Option<Vec<u8>> = stmt.query_row([id], |row| row.get(0)).optional()?;
            if let Some(blob) = blob {
                hits.push((id, dot(&floats(&blob), &self.vector)));
            }
        }
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(want);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_checked_and_normalised() {
        let e = |vectors: Vec<Vec<f32>>| ChunkEmbeddings {
            model: "m".into(),
            vectors,
        };
        let (v, dims) = checked("d", &e(vec![vec![3.0, 4.0]]), 1).unwrap();
        assert_eq!(dims, 2);
        assert!((v[0][0] - 0.6).abs() < 1e-6 && (v[0][1] - 0.8).abs() < 1e-6);
        assert!(checked("d", &e(vec![vec![1.0]]), 2).is_err());
        assert!(checked("d", &e(vec![vec![1.0], vec![1.0, 2.0]]), 2).is_err());
        assert!(checked("d", &e(vec![vec![0.0, 0.0]]), 1).is_err());
        assert!(checked("d", &e(vec![vec![f32::NAN, 1.0]]), 1).is_err());
        assert!(checked("d", &e(vec![vec![]]), 1).is_err());
        assert_eq!(checked("d", &e(vec![]), 0).unwrap().1, 0);
        let unnamed = ChunkEmbeddings {
            model: " ".into(),
            vectors: vec![vec![1.0]],
        };
        assert!(checked("d", &unnamed, 1).is_err());
    }

    #[test]
    fn sign_bits_pad_to_whole_words() {
        let bits = sign_bits(&[1.0, -1.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(bits.len(), 8);
        assert_eq!(bits[0], 0b1111_1001);
        assert_eq!(bits[1], 0b1);
        assert!(bits[2..].iter().all(|&b| b == 0));
        assert_eq!(floats(&float_blob(&[1.5, -2.0])), [1.5, -2.0]);
    }
}
