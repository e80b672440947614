//! The tables of the store file and how a file of an older schema is
//! brought up to date: each version's step runs once, in one transaction
//! with the version bump, so a file is never half migrated.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The schema version this build creates and understands.
const SCHEMA_VERSION: i64 = 6;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_V1: &str = r#"
CREATE TABLE conversations (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX conversations_by_owner ON conversations (owner, updated_at);

-- A new rowid is one more than the largest: ids follow insertion order.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    citations       TEXT NOT NULL,
    job_id          TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
-- A chat job yields at most one answer, however often it is completed.
CREATE UNIQUE INDEX messages_one_answer_per_job ON messages (job_id) WHERE role = 'assistant';

-- `seq`, a rowid, follows arrival order: claims go oldest first by it.
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    owner        TEXT,
    payload      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    lease_id     TEXT,
    lease_until  INTEGER,
    worker       TEXT
);
-- Only waiting and running jobs, in arrival order: what a claim scans.
CREATE INDEX jobs_pending ON jobs (seq) WHERE status IN ('queued', 'running');

CREATE TABLE dead_letters (
    seq       INTEGER PRIMARY KEY,
    job_id    TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    error     TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_newest ON dead_letters (failed_at, seq);

CREATE TABLE rate_windows (
    key          TEXT NOT NULL,
    window_ms    INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (key, window_ms, window_start)
) WITHOUT ROWID;

CREATE TABLE heartbeats (
    worker TEXT PRIMARY KEY NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX heartbeats_latest ON heartbeats (at);

CREATE TABLE documents (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status     TEXT NOT NULL,
    chunks     INTEGER NOT NULL,
    error      TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX documents_by_owner ON documents (owner, name);
"#;

/// v1 → v2: the answer text streamed so far by a running attempt
/// (`record_progress`); NULL whenever no attempt is in progress.
const MIGRATION_V2: &str = r#"
ALTER TABLE jobs ADD COLUMN partial TEXT;
"#;

/// v2 → v3: a PDF's page count in the catalog (NULL for formats without
/// pages, and for documents catalogued before); where a document came from
/// (every earlier one from the shared folder: there were no uploads); and
/// the bytes of uploads waiting for the drain, kept in parts as on Upstash.
const MIGRATION_V3: &str = r#"
ALTER TABLE documents ADD COLUMN pages INTEGER;
ALTER TABLE documents ADD COLUMN origin TEXT NOT NULL DEFAULT 'folder';
-- A rowid table: WITHOUT ROWID suits small rows, not parts of 256 KiB.
CREATE TABLE upload_parts (
    document_id TEXT NOT NULL,
    part        INTEGER NOT NULL,
    bytes       BLOB NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (document_id, part)
);
CREATE INDEX upload_parts_by_expiry ON upload_parts (expires_at);
"#;

/// v3 → v4: when the session owning private documents ends, so clean-up
/// can find the documents of sessions that are over. Owners catalogued
/// before get a bound, not the exact end: a session's documents were
/// uploaded while it was valid, and a session lasts 30 days
/// (`SESSION_LIFETIME_SECS`), so it ended within 30 days of its latest
/// document's last change.
const MIGRATION_V4: &str = r#"
CREATE TABLE document_owners (
    owner      TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX document_owners_by_expiry ON document_owners (expires_at);
INSERT INTO document_owners (owner, expires_at)
    SELECT owner, MAX(updated_at) + 2592000000 FROM documents
    WHERE owner != 'shared' GROUP BY owner;
"#;

/// v4 → v5: how an assistant message was produced (`extractive` or
/// `generative`); NULL for questions and for answers stored before.
const MIGRATION_V5: &str = r#"
ALTER TABLE messages ADD COLUMN mode TEXT;
"#;

/// v5 → v6: feedback on answers, one per answer (only the session owning
/// the conversation can give it), gone with its conversation.
const MIGRATION_V6: &str = r#"
CREATE TABLE feedback (
    job_id          TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    session         TEXT NOT NULL,
    rating          TEXT NOT NULL,
    comment         TEXT,
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX feedback_by_time ON feedback (created_at);
CREATE INDEX feedback_by_conversation ON feedback (conversation_id);
"#;

/// The pragmas every connection runs with: WAL (readers never block the
/// writer), a busy timeout, foreign keys.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the store file cannot use write-ahead logging (journal mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let check = |version: i64| {
        if version > SCHEMA_VERSION {
            Err(StoreError::Corrupt(format!(
                "the store file has schema version {version}, newer than this build's {SCHEMA_VERSION}"
            )))
        } else {
            Ok(version)
        }
    };
    if check(user_version(conn)?)? == SCHEMA_VERSION {
        return Ok(());
    }
    // Another process may be migrating the same file: decide under the write lock.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = check(user_version(&tx)?)?;
    // A new file goes through every step, so it ends up exactly like an
    // upgraded one.
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(MIGRATION_V2)?;
    }
    if version < 3 {
        tx.execute_batch(MIGRATION_V3)?;
    }
    if version < 4 {
        tx.execute_batch(MIGRATION_V4)?;
    }
    if version < 5 {
        tx.execute_batch(MIGRATION_V5)?;
    }
    if version < 6 {
        tx.execute_batch(MIGRATION_V6)?;
    }
    // Later versions: `if version < 7 { ... }`.
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::{
        DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, JobStatus,
    };
    use flowchat_domain::{DocumentId, JobId, Timestamp};

    use super::*;
    use crate::sqlite::{SqliteStore, test_store as store};
    use crate::{ClaimRequest, Store};

    #[tokio::test]
    async fn opening_twice_keeps_the_schema_and_data() {
        let (dir, store) = store();
        store
            .record_heartbeat("w", Timestamp::from_millis(5))
            .await
            .unwrap();
        drop(store);
        let again = SqliteStore::open(dir.path().join("store.db")).unwrap();
        let beat = again.last_heartbeat().await.unwrap().unwrap();
        assert_eq!(beat.at, Timestamp::from_millis(5));
        let conn = again.inner.conn.lock().unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A file written by the first schema (before `jobs.partial`) opens, is
    /// upgraded in place, keeps its jobs, and supports progress afterwards.
    #[tokio::test]
    async fn a_version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let queued = JobId::from_random([7; 16]);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO jobs (id, kind, status, owner, payload, attempts, created_at,
                 updated_at, available_at)
                 VALUES (?1, 'ingest', 'queued', NULL, '{\"type\":\"ingest_shared_folder\"}', 0, 5, 5, 5)",
                [queued.as_str()],
            )
            .unwrap();
        }

        let store = SqliteStore::open(&path).unwrap();
        {
            let conn = store.inner.conn.lock().unwrap();
            assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info('jobs')")
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(columns.iter().any(|c| c == "partial"), "{columns:?}");
        }
        let job = store.get_job(&queued).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.partial, None);
        assert_eq!(job.created_at, Timestamp::from_millis(5));

        let claimed = store
            .claim(&ClaimRequest {
                worker: "w".into(),
                max_jobs: 1,
                lease_ms: 1000,
                max_attempts: 3,
                now: Timestamp::from_millis(10),
            })
            .await
            .unwrap()
            .pop()
            .expect("the old job is claimable");
        assert!(
            store
                .record_progress(
                    &claimed,
                    "so far",
                    Timestamp::from_millis(5000),
                    Timestamp::from_millis(20)
                )
                .await
                .unwrap()
        );
        drop(store);

        // Opening the upgraded file again changes nothing.
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(
            user_version(&again.inner.conn.lock().unwrap()).unwrap(),
            SCHEMA_VERSION
        );
        let job = again.get_job(&queued).await.unwrap().unwrap();
        assert_eq!(job.partial.as_deref(), Some("so far"));
        assert_eq!(job.updated_at, Timestamp::from_millis(20));
    }

    /// The version moves only with its step, in one transaction: a v2 step
    /// that fails (here: the column is already there, as after a hand edit)
    /// leaves the file at version 1 and is reported, not half applied.
    #[test]
    fn a_failed_migration_keeps_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch("ALTER TABLE jobs ADD COLUMN partial TEXT")
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        assert!(SqliteStore::open(&path).is_err());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 1);
    }

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A version 2 file (before page counts and upload parts) opens, is
    /// upgraded in place, keeps its catalog (with no page counts), and
    /// stores page counts and upload parts afterwards.
    #[tokio::test]
    async fn a_version_2_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let id = DocumentId::for_content(b"v2 document");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(MIGRATION_V2).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO documents (id, name, owner, size_bytes, status, chunks, error, updated_at)
                 VALUES (?1, 'old.pdf', 'shared', 42, 'indexed', 3, NULL, 5)",
                [id.as_str()],
            )
            .unwrap();
        }

        let store = SqliteStore::open(&path).unwrap();
        {
            let conn = store.inner.conn.lock().unwrap();
            assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
            let documents = columns(&conn, "documents");
            assert!(
                documents.ends_with(&["pages".into(), "origin".into()]),
                "{documents:?}"
            );
            assert_eq!(
                columns(&conn, "upload_parts"),
                ["document_id", "part", "bytes", "expires_at"]
            );
        }
        let old = store.get_document(&id).await.unwrap().unwrap();
        let expected = DocumentRecord {
            id: id.clone(),
            name: "old.pdf".to_owned(),
            owner: DocumentOwner::Shared,
            size_bytes: 42,
            status: DocumentStatus::Indexed,
            chunks: 3,
            pages: None,
            origin: DocumentOrigin::Folder,
            error: None,
            updated_at: Timestamp::from_millis(5),
        };
        assert_eq!(old, expected);
        assert_eq!(store.list_documents(None).await.unwrap(), vec![old.clone()]);

        let paged = DocumentRecord {
            pages: Some(9),
            origin: DocumentOrigin::Upload,
            ..old
        };
        store.upsert_document(&paged).await.unwrap();
        store
            .put_upload_part(&id, 0, b"\0bytes\xff", Timestamp::from_millis(6))
            .await
            .unwrap();
        drop(store);

        // Opening the upgraded file again changes nothing.
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(
            user_version(&again.inner.conn.lock().unwrap()).unwrap(),
            SCHEMA_VERSION
        );
        assert_eq!(again.get_document(&id).await.unwrap(), Some(paged));
        assert_eq!(
            again.get_upload(&id, 1).await.unwrap().as_deref(),
            Some(&b"\0bytes\xff"[..])
        );
    }

    /// A version 3 file gets the session ends of the owners it already
    /// holds, bounded by their latest document plus a session's lifetime:
    /// without them, documents uploaded before the upgrade would never be
    /// cleaned up.
    #[tokio::test]
    async fn a_version_3_file_bounds_the_session_ends_of_its_owners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in [SCHEMA_V1, MIGRATION_V2, MIGRATION_V3] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            for (id, owner, at) in [("a1", "ana", 10), ("a2", "ana", 30), ("s1", "shared", 50)] {
                conn.execute(
                    "INSERT INTO documents (id, name, owner, size_bytes, status, chunks, updated_at)
                     VALUES (?1, 'x.md', ?2, 1, 'indexed', 1, ?3)",
                    rusqlite::params![id, owner, at],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let lifetime_ms = flowchat_domain::token::SESSION_LIFETIME_SECS * 1000;
        let at = Timestamp::from_millis;
        assert!(
            store
                .expired_document_owners(at(30 + lifetime_ms), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .expired_document_owners(at(31 + lifetime_ms), 10)
                .await
                .unwrap(),
            vec![flowchat_domain::SessionId::from_trusted("ana")]
        );
    }

    /// Answers stored before v5 read back without a mode (not a guessed
    /// one); new answers record theirs.
    #[tokio::test]
    async fn a_version_4_file_keeps_its_answers_without_a_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in [SCHEMA_V1, MIGRATION_V2, MIGRATION_V3, MIGRATION_V4] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute_batch(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at)
                     VALUES ('c1', 'ana', 'Leave', 1, 1);
                 INSERT INTO messages (conversation_id, role, content, citations, job_id, created_at)
                     VALUES ('c1', 'user', 'How much leave?', '[]', 'j1', 1),
                            ('c1', 'assistant', '30 days.', '[]', 'j1', 2);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let conversation = store
            .get_conversation(&flowchat_domain::ConversationId::from_trusted("c1"))
            .await
            .unwrap()
            .expect("kept");
        let modes: Vec<_> = conversation.messages.iter().map(|m| m.mode).collect();
        assert_eq!(modes, [None, None]);
        assert_eq!(conversation.messages[1].content, "30 days.");
    }

    /// A version 5 file gains the feedback table: its answers can be rated
    /// and the feedback is listed with them.
    #[tokio::test]
    async fn a_version_5_file_takes_feedback_on_its_answers() {
        use flowchat_domain::{FeedbackRating, SessionId};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in [
                SCHEMA_V1,
                MIGRATION_V2,
                MIGRATION_V3,
                MIGRATION_V4,
                MIGRATION_V5,
            ] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute_batch(
                "INSERT INTO conversations (id, owner, title, created_at, updated_at)
                     VALUES ('c1', 'ana', 'Leave', 1, 1);
                 INSERT INTO messages (conversation_id, role, content, citations, job_id, mode, created_at)
                     VALUES ('c1', 'user', 'How much leave?', '[]', 'j1', NULL, 1),
                            ('c1', 'assistant', '30 days.', '[]', 'j1', 'extractive', 2);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        }
        let outcome = store
            .record_feedback(
                &SessionId::from_trusted("ana"),
                &JobId::from_trusted("j1"),
                FeedbackRating::Up,
                None,
                Timestamp::from_millis(3),
            )
            .await
            .unwrap();
        assert_eq!(outcome, crate::FeedbackOutcome::Recorded);
        let listed = store.list_feedback(10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].question, "How much leave?");
        assert_eq!(listed[0].answer, "30 days.");
    }

    /// A v3 step that fails (the column is already there) leaves the file
    /// at version 2 without the step's other changes.
    #[test]
    fn a_failed_v3_migration_keeps_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(MIGRATION_V2).unwrap();
            conn.execute_batch("ALTER TABLE documents ADD COLUMN pages INTEGER")
                .unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
        }
        assert!(SqliteStore::open(&path).is_err());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 2);
        assert!(columns(&conn, "upload_parts").is_empty(), "rolled back");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("store.db");
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Unavailable(_))
        ));
    }
}
