//! The tables of the index file, the migration of older files, and the
//! settings every connection runs with (see "Schema versions" in the
//! module documentation of `sqlite`).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::vectors;
use crate::error::KnowledgeError;

/// Bumped when the schema changes; older files are migrated on open.
/// 1: documents, chunks, FTS5. 2: chunk vectors (`documents.embedded`,
/// `meta`, `owner_tags`, and the `chunk_vectors` and `chunk_signs` tables
/// once vectors arrive).
const SCHEMA_VERSION: i64 = 2;

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
/// files by the migration, see [`migrate`]).
const SCHEMA_V2_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS documents_without_vectors ON documents(key) WHERE embedded = 0;
";

/// Opens the connection that writes: WAL mode, and the schema created or
/// brought up to date. A file of a newer schema is refused.
pub(super) fn open_writer(path: &Path) -> Result<Connection, KnowledgeError> {
    let mut writer = connect(path)?;
    writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    let version: i64 = writer.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(KnowledgeError::Index(format!(
            "{} was written by a newer FlowChat (schema {version}, this build knows {SCHEMA_VERSION})",
            path.display()
        )));
    }
    migrate(&mut writer, version)?;
    Ok(writer)
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

pub(super) fn connect(path: &Path) -> Result<Connection, KnowledgeError> {
    let conn = Connection::open(path)?;
    vectors::register(&conn)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}
