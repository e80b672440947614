//! The embedded back end: every record in one SQLite file in WAL mode.
//!
//! One [`SqliteStore`] holds one connection behind a mutex and runs each call
//! on tokio's blocking pool. Several stores — in one process or in several,
//! like two drains sharing a disk — may open the same file: every
//! read-modify-write runs in a `BEGIN IMMEDIATE` transaction, which takes the
//! file's write lock before reading, so two claimers can never hand out the
//! same job. Readers never block writers (WAL).
//!
//! Timestamps are stored as integer milliseconds; payloads, results and
//! citations as JSON text. The schema is created and migrated on open and
//! versioned with `PRAGMA user_version`.
//!
//! The queue is the `jobs` table: a job is claimable when it is `queued` and
//! `available_at <= now`, or `running` with `lease_until < now` (its drain
//! stopped responding). A claim sets a fresh `lease_id`; only the holder of
//! the current lease may fail or release the job, while completion is
//! accepted from any claim (the work is done, and completion is idempotent).
//! The lease holder may also record progress: the answer text streamed so far
//! (`partial`, cleared whenever the attempt ends) and a later `lease_until`.
//!
//! Upload bytes wait in `upload_parts` until the drain ingests them. Unlike
//! everything else here they expire by this machine's clock, not the
//! caller's `now`: `get_upload` is given no time, and Redis judges the same
//! TTL by its own clock, so both back ends agree.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowchat_domain::model::{
    ChatAnswer, Citation, Conversation, ConversationSummary, DocumentOrigin, DocumentOwner,
    DocumentRecord, DocumentStatus, Job, JobPayload, JobResult, JobStatus, Message, Role,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::codec::{
    check_upload_part, corrupt, from_json, parse_kind, parse_status, to_json, to_u32,
};
use crate::rate;
use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, Completion, ConversationTarget, DeadLetter,
    FailureOutcome, Heartbeat, NewJob, QueueStats, RateCheck, RateDecision, Store, StoreError,
    SubmitOutcome, UploadOutcome, UploadSubmission,
};

/// The schema version this build creates and understands.
const SCHEMA_VERSION: i64 = 3;

/// How long upload bytes wait for the drain by default; the Upstash back
/// end's default ([`crate::upstash::Ttls`]) is the same.
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often (in the callers' time) stale rate-limit windows are swept.
const RATE_SWEEP_EVERY_MS: i64 = 60_000;

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

/// The `jobs` columns [`RawJob::read`] expects, in order.
macro_rules! job_columns {
    () => {
        "id, kind, status, owner, payload, attempts, result, error, created_at, updated_at, partial"
    };
}

/// The `documents` columns [`read_document`] expects, in order.
macro_rules! document_columns {
    () => {
        "id, name, owner, size_bytes, status, chunks, error, updated_at, pages, origin"
    };
}

/// The `WHERE` clause of claimable jobs at `?1` (now): due, or abandoned by
/// an expired lease. The status filter repeats the `jobs_pending` index's, so
/// the planner scans only waiting and running jobs.
macro_rules! claimable {
    () => {
        "status IN ('queued', 'running')
         AND ((status = 'queued' AND available_at <= ?1) OR (status = 'running' AND lease_until < ?1))"
    };
}

/// The embedded store. Cheap to clone: clones share one connection.
///
/// Its methods run on tokio's blocking pool, so they must be called from
/// within a tokio runtime.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// How long upload parts live, in milliseconds.
    upload_ttl_ms: i64,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// When (callers' time, ms) to next delete stale rate-limit windows.
    next_rate_sweep: AtomicI64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path` and brings its
    /// schema up to date. The parent directory must exist.
    ///
    /// This blocks briefly (file open, pragmas, migration); call it at start-up.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                next_rate_sweep: AtomicI64::new(i64::MIN),
            }),
            upload_ttl_ms: duration_millis(DEFAULT_UPLOAD_TTL),
        })
    }

    /// The same store with upload parts living `ttl` (from when each part
    /// was stored) instead of [`DEFAULT_UPLOAD_TTL`], as `Ttls::upload` does
    /// for Upstash.
    #[must_use]
    pub fn with_upload_ttl(mut self, ttl: Duration) -> Self {
        self.upload_ttl_ms = duration_millis(ttl);
        self
    }

    /// The file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the blocking pool with this store's connection.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().map_err(|_| {
                StoreError::Backend(
                    "the store connection is unusable after an earlier panic".to_owned(),
                )
            })?;
            work(&mut conn, &inner)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a store task did not finish: {e}")))?
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// This machine's clock, for upload expiry only (see the module documentation).
fn clock_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
    // Later versions: `if version < 4 { ... }`.
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match &error {
            E::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::FileLockingProtocolFailed => {
                    StoreError::Unavailable(error.to_string())
                }
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    StoreError::Corrupt(error.to_string())
                }
                _ => StoreError::Backend(error.to_string()),
            },
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::Utf8Error(..) => StoreError::Corrupt(error.to_string()),
            _ => StoreError::Backend(error.to_string()),
        }
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// A fresh, unguessable claim identifier.
fn new_lease_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Backend(format!("no randomness for a lease id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A `jobs` row as stored, before its text is trusted.
struct RawJob {
    id: String,
    kind: String,
    status: String,
    owner: Option<String>,
    payload: String,
    attempts: i64,
    result: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    partial: Option<String>,
}

impl RawJob {
    /// Reads the columns of [`job_columns!`] starting at `first`.
    fn read(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(RawJob {
            id: row.get(first)?,
            kind: row.get(first + 1)?,
            status: row.get(first + 2)?,
            owner: row.get(first + 3)?,
            payload: row.get(first + 4)?,
            attempts: row.get(first + 5)?,
            result: row.get(first + 6)?,
            error: row.get(first + 7)?,
            created_at: row.get(first + 8)?,
            updated_at: row.get(first + 9)?,
            partial: row.get(first + 10)?,
        })
    }

    fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            kind: parse_kind(&self.kind)?,
            status: parse_status(&self.status)?,
            owner: self.owner.map(SessionId::from_trusted),
            payload: from_json("job payload", &self.payload)?,
            attempts: to_u32("job attempts", self.attempts)?,
            result: self
                .result
                .as_deref()
                .map(|raw| from_json("job result", raw))
                .transpose()?,
            error: self.error,
            partial: self.partial,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            id: JobId::from_trusted(self.id),
        })
    }
}

fn insert_job(tx: &Transaction<'_>, job: &Job, available_at: i64) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO jobs (id, kind, status, owner, payload, attempts, created_at, updated_at, available_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    insert.execute(params![
        job.id.as_str(),
        job.kind.as_str(),
        job.status.as_str(),
        job.owner.as_ref().map(SessionId::as_str),
        to_json(&job.payload)?,
        job.attempts,
        job.created_at.as_millis(),
        job.updated_at.as_millis(),
        available_at,
    ])?;
    Ok(())
}

/// One rate check evaluated inside a transaction, ready to be counted.
struct Evaluated<'a> {
    check: &'a RateCheck,
    window_ms: i64,
    current_start: i64,
    decision: RateDecision,
}

/// Evaluates every check without counting. `Err(decision)` is the first refusal.
fn evaluate_rates<'a>(
    conn: &Connection,
    checks: &'a [RateCheck],
    now: Timestamp,
) -> Result<Result<Vec<Evaluated<'a>>, RateDecision>, StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT window_start, hits FROM rate_windows
         WHERE key = ?1 AND window_ms = ?2 AND window_start IN (?3, ?4)",
    )?;
    let mut evaluated = Vec::with_capacity(checks.len());
    for check in checks {
        let windows = rate::windows(check.rule, now);
        let (mut current, mut previous) = (0u64, 0u64);
        let mut rows = select.query(params![
            check.key,
            windows.window_ms,
            windows.current_start,
            windows.previous_start
        ])?;
        while let Some(row) = rows.next()? {
            let start: i64 = row.get(0)?;
            let hits: i64 = row.get(1)?;
            let hits = u64::try_from(hits).map_err(|_| corrupt("rate counter", hits))?;
            if start == windows.current_start {
                current = hits;
            } else {
                previous = hits;
            }
        }
        let decision = rate::decide(check.rule, now, current, previous);
        if !decision.allowed {
            return Ok(Err(decision));
        }
        evaluated.push(Evaluated {
            check,
            window_ms: windows.window_ms,
            current_start: windows.current_start,
            decision,
        });
    }
    Ok(Ok(evaluated))
}

/// Counts one hit on every evaluated check and returns the combined decision;
/// now and then deletes windows too old to matter (older than the previous one).
fn count_rates(
    conn: &Connection,
    inner: &Inner,
    evaluated: &[Evaluated<'_>],
    now: Timestamp,
) -> Result<RateDecision, StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO rate_windows (key, window_ms, window_start, hits) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (key, window_ms, window_start) DO UPDATE SET hits = hits + 1",
    )?;
    for e in evaluated {
        upsert.execute(params![e.check.key, e.window_ms, e.current_start])?;
    }
    let now_ms = now.as_millis();
    if !evaluated.is_empty() && now_ms >= inner.next_rate_sweep.load(Ordering::Relaxed) {
        inner.next_rate_sweep.store(
            now_ms.saturating_add(RATE_SWEEP_EVERY_MS),
            Ordering::Relaxed,
        );
        conn.prepare_cached("DELETE FROM rate_windows WHERE window_start + 2 * window_ms <= ?1")?
            .execute([now_ms])?;
    }
    let decisions: Vec<RateDecision> = evaluated.iter().map(|e| e.decision).collect();
    Ok(rate::combine(&decisions, now))
}

/// The owner of a conversation, if it exists.
fn conversation_owner(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT owner FROM conversations WHERE id = ?1")?
        .query_row([id.as_str()], |row| row.get(0))
        .optional()?)
}

fn touch_conversation(conn: &Connection, id: &ConversationId, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE conversations SET updated_at = MAX(updated_at, ?2) WHERE id = ?1")?
        .execute(params![id.as_str(), now])?;
    Ok(())
}

fn submit_chat_tx(
    conn: &mut Connection,
    inner: &Inner,
    submission: ChatSubmission,
) -> Result<SubmitOutcome, StoreError> {
    let ChatSubmission {
        session,
        conversation,
        message,
        job_id,
        rate_checks,
        now,
    } = submission;
    let now_ms = now.as_millis();
    // Every early return drops `tx`, which rolls back: nothing written or counted.
    let tx = immediate(conn)?;
    let evaluated = match evaluate_rates(&tx, &rate_checks, now)? {
        Ok(evaluated) => evaluated,
        Err(refused) => return Ok(SubmitOutcome::RateLimited(refused)),
    };
    let conversation_id = match conversation {
        ConversationTarget::Existing(id) => {
            if conversation_owner(&tx, &id)?.as_deref() != Some(session.as_str()) {
                return Ok(SubmitOutcome::ConversationNotFound);
            }
            touch_conversation(&tx, &id, now_ms)?;
            id
        }
        ConversationTarget::New { id, title } => {
            let created = tx
                .prepare_cached(
                    "INSERT INTO conversations (id, owner, title, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![id.as_str(), session.as_str(), title, now_ms])?;
            if created == 0 {
                if conversation_owner(&tx, &id)?.as_deref() != Some(session.as_str()) {
                    return Ok(SubmitOutcome::ConversationNotFound);
                }
                touch_conversation(&tx, &id, now_ms)?;
            }
            id
        }
    };
    count_rates(&tx, inner, &evaluated, now)?;
    tx.prepare_cached(
        "INSERT INTO messages (conversation_id, role, content, citations, job_id, created_at)
         VALUES (?1, 'user', ?2, '[]', ?3, ?4)",
    )?
    .execute(params![
        conversation_id.as_str(),
        message,
        job_id.as_str(),
        now_ms
    ])?;
    let payload = JobPayload::Chat {
        session_id: session.clone(),
        conversation_id: conversation_id.clone(),
        question: message,
    };
    let job = Job::queued(job_id, Some(session), payload, now);
    insert_job(&tx, &job, now_ms)?;
    tx.commit()?;
    Ok(SubmitOutcome::Accepted {
        job,
        conversation_id,
    })
}

/// Handles one claimable row: hands it out (`Some`), or dead-letters it when
/// its lease expired once too often, or fails it when it cannot be read.
fn claim_row(
    tx: &Transaction<'_>,
    seq: i64,
    raw: RawJob,
    request: &ClaimRequest,
    lease_until: i64,
) -> Result<Option<ClaimedJob>, StoreError> {
    let now = request.now.as_millis();
    let mut job = match raw.into_job() {
        Ok(job) => job,
        Err(error) => {
            // An unreadable job must not block the queue forever.
            tx.prepare_cached(
                "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
                 partial = NULL, updated_at = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, format!("the stored job cannot be read: {error}"), now])?;
            return Ok(None);
        }
    };
    if job.status == JobStatus::Running && job.attempts >= request.max_attempts {
        let error = format!(
            "the drain processing this job stopped responding (its lease expired) on attempt {} of {}; giving up",
            job.attempts, request.max_attempts
        );
        tx.prepare_cached(
            "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
             partial = NULL, updated_at = ?3 WHERE seq = ?1",
        )?
        .execute(params![seq, error, now])?;
        add_dead_letter(tx, &job.id, job.kind.as_str(), job.attempts, &error, now)?;
        return Ok(None);
    }
    let lease_id = new_lease_id()?;
    job.status = JobStatus::Running;
    job.attempts = job.attempts.saturating_add(1);
    job.updated_at = request.now;
    // A new attempt starts from nothing, whatever an abandoned one streamed.
    job.partial = None;
    tx.prepare_cached(
        "UPDATE jobs SET status = 'running', attempts = ?2, lease_id = ?3, lease_until = ?4,
         worker = ?5, partial = NULL, updated_at = ?6 WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        job.attempts,
        lease_id,
        lease_until,
        request.worker,
        now
    ])?;
    Ok(Some(ClaimedJob {
        job,
        lease_id,
        lease_until: Timestamp::from_millis(lease_until),
    }))
}

fn add_dead_letter(
    tx: &Transaction<'_>,
    job_id: &JobId,
    kind: &str,
    attempts: u32,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (job_id, kind, attempts, error, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind, attempts = excluded.attempts,
         error = excluded.error, failed_at = excluded.failed_at",
    )?
    .execute(params![job_id.as_str(), kind, attempts, error, now])?;
    Ok(())
}

fn claim_tx(conn: &mut Connection, request: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
    let now = request.now.as_millis();
    // A lease shorter than 1 ms would leave the job claimable by the same scan.
    let lease_until = now.saturating_add(request.lease_ms.max(1));
    let wanted = usize::try_from(request.max_jobs).unwrap_or(usize::MAX);
    let mut claimed = Vec::new();
    if wanted == 0 {
        return Ok(claimed);
    }
    // Idle drains poll often: look without the write lock first, so an empty
    // queue never holds up submissions. A job arriving right after this look
    // is simply found by the next poll.
    let any = conn
        .prepare_cached(concat!(
            "SELECT 1 FROM jobs WHERE ",
            claimable!(),
            " LIMIT 1"
        ))?
        .exists([now])?;
    if !any {
        return Ok(claimed);
    }
    let tx = immediate(conn)?;
    // Each round's rows all leave the claimable set (handed out with a lease
    // in the future, or failed), so the loop ends.
    while claimed.len() < wanted {
        let limit = i64::try_from(wanted - claimed.len()).unwrap_or(i64::MAX);
        let rows: Vec<(i64, RawJob)> = {
            let mut select = tx.prepare_cached(concat!(
                "SELECT seq, ",
                job_columns!(),
                " FROM jobs WHERE ",
                claimable!(),
                " ORDER BY seq LIMIT ?2"
            ))?;
            select
                .query_map(params![now, limit], |row| {
                    Ok((row.get(0)?, RawJob::read(row, 1)?))
                })?
                .collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            break;
        }
        for (seq, raw) in rows {
            if let Some(job) = claim_row(&tx, seq, raw, &request, lease_until)? {
                claimed.push(job);
            }
        }
    }
    tx.commit()?;
    Ok(claimed)
}

/// Stores a job's result once. With `append_answer`, a chat answer for a chat
/// job also becomes the assistant message of the payload's conversation, if
/// that conversation still exists.
fn complete_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    result: JobResult,
    append_answer: bool,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let now_ms = now.as_millis();
    let tx = immediate(conn)?;
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([claim.job.id.as_str()], |row| row.get(0))
        .optional()?;
    let Some(status) = status else {
        return Err(StoreError::Backend(format!(
            "job {} does not exist",
            claim.job.id
        )));
    };
    if parse_status(&status)? == JobStatus::Succeeded {
        return Ok(Completion::AlreadyDone);
    }
    tx.prepare_cached(
        "UPDATE jobs SET status = 'succeeded', result = ?2, error = NULL, lease_id = NULL,
         lease_until = NULL, partial = NULL, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![claim.job.id.as_str(), to_json(&result)?, now_ms])?;
    // A job a claim gave up on can still finish; it is no longer dead.
    tx.prepare_cached("DELETE FROM dead_letters WHERE job_id = ?1")?
        .execute([claim.job.id.as_str()])?;
    if let (
        true,
        JobResult::Chat(answer),
        JobPayload::Chat {
            conversation_id, ..
        },
    ) = (append_answer, &result, &claim.job.payload)
    {
        let appended = tx
            .prepare_cached(
                "INSERT INTO messages (conversation_id, role, content, citations, job_id, created_at)
                 SELECT ?1, 'assistant', ?2, ?3, ?4, ?5
                 WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                conversation_id.as_str(),
                answer.answer,
                to_json(&answer.citations)?,
                claim.job.id.as_str(),
                now_ms
            ])?;
        if appended > 0 {
            touch_conversation(&tx, conversation_id, now_ms)?;
        }
    }
    tx.commit()?;
    Ok(Completion::Stored)
}

/// The current lease and state of a job, for the lease-holder checks.
struct LeaseState {
    status: String,
    lease_id: Option<String>,
    kind: String,
    attempts: i64,
}

fn lease_state(tx: &Transaction<'_>, id: &JobId) -> Result<Option<LeaseState>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT status, lease_id, kind, attempts FROM jobs WHERE id = ?1")?
        .query_row([id.as_str()], |row| {
            Ok(LeaseState {
                status: row.get(0)?,
                lease_id: row.get(1)?,
                kind: row.get(2)?,
                attempts: row.get(3)?,
            })
        })
        .optional()?)
}

/// Whether `claim` still holds its job: running, under this very lease.
fn holds(state: &Option<LeaseState>, claim: &ClaimedJob) -> bool {
    matches!(state, Some(s) if s.status == JobStatus::Running.as_str()
        && s.lease_id.as_deref() == Some(claim.lease_id.as_str()))
}

fn fail_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    error: String,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<FailureOutcome, StoreError> {
    let now_ms = now.as_millis();
    let tx = immediate(conn)?;
    let state = lease_state(&tx, &claim.job.id)?;
    if !holds(&state, &claim) {
        return Ok(FailureOutcome::StaleClaim);
    }
    let Some(current) = state else {
        return Ok(FailureOutcome::StaleClaim);
    };
    let outcome =
        match retry_at {
            Some(at) => {
                tx.prepare_cached(
                "UPDATE jobs SET status = 'queued', available_at = ?2, error = ?3, lease_id = NULL,
                 lease_until = NULL, partial = NULL, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![claim.job.id.as_str(), at.as_millis(), error, now_ms])?;
                FailureOutcome::RetryAt(at)
            }
            None => {
                tx.prepare_cached(
                "UPDATE jobs SET status = 'failed', error = ?2, lease_id = NULL, lease_until = NULL,
                 partial = NULL, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![claim.job.id.as_str(), error, now_ms])?;
                let attempts = to_u32("job attempts", current.attempts)?;
                add_dead_letter(&tx, &claim.job.id, &current.kind, attempts, &error, now_ms)?;
                FailureOutcome::DeadLettered
            }
        };
    tx.commit()?;
    Ok(outcome)
}

fn release_tx(
    conn: &mut Connection,
    claim: ClaimedJob,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    let state = lease_state(&tx, &claim.job.id)?;
    if !holds(&state, &claim) {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE jobs SET status = 'queued', available_at = ?2, attempts = MAX(attempts - 1, 0),
         lease_id = NULL, lease_until = NULL, partial = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![claim.job.id.as_str(), now.as_millis()])?;
    tx.commit()?;
    Ok(true)
}

fn read_message(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, Option<String>, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn get_conversation_tx(
    conn: &mut Connection,
    id: ConversationId,
) -> Result<Option<Conversation>, StoreError> {
    // A read transaction: the conversation and its messages from one snapshot.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let head: Option<(String, String, i64, i64)> = tx
        .prepare_cached(
            "SELECT owner, title, created_at, updated_at FROM conversations WHERE id = ?1",
        )?
        .query_row([id.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((owner, title, created_at, updated_at)) = head else {
        return Ok(None);
    };
    let rows: Vec<_> = tx
        .prepare_cached(
            "SELECT role, content, citations, job_id, created_at FROM messages
             WHERE conversation_id = ?1 ORDER BY id",
        )?
        .query_map([id.as_str()], read_message)?
        .collect::<Result<_, _>>()?;
    drop(tx);
    let messages = rows
        .into_iter()
        .map(|(role, content, citations, job_id, created_at)| {
            Ok(Message {
                role: Role::parse(&role)
                    .ok_or_else(|| corrupt("message role", format!("unknown role {role:?}")))?,
                content,
                citations: from_json::<Vec<Citation>>("message citations", &citations)?,
                job_id: job_id.map(JobId::from_trusted),
                created_at: Timestamp::from_millis(created_at),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(Conversation {
        id,
        owner: SessionId::from_trusted(owner),
        title,
        created_at: Timestamp::from_millis(created_at),
        updated_at: Timestamp::from_millis(updated_at),
        messages,
    }))
}

fn read_document(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<DocumentRecord, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let owner: String = row.get(2)?;
    let size: i64 = row.get(3)?;
    let status: String = row.get(4)?;
    let chunks: i64 = row.get(5)?;
    let error: Option<String> = row.get(6)?;
    let updated_at: i64 = row.get(7)?;
    let pages: Option<i64> = row.get(8)?;
    let origin: String = row.get(9)?;
    Ok((|| {
        Ok(DocumentRecord {
            id: DocumentId::from_trusted(id),
            name,
            owner: DocumentOwner::from_key(&owner),
            size_bytes: u64::try_from(size).map_err(|_| corrupt("document size", size))?,
            status: DocumentStatus::parse(&status)
                .ok_or_else(|| corrupt("document status", format!("unknown status {status:?}")))?,
            chunks: to_u32("document chunks", chunks)?,
            pages: pages.map(|p| to_u32("document pages", p)).transpose()?,
            origin: DocumentOrigin::parse(&origin)
                .ok_or_else(|| corrupt("document origin", format!("unknown origin {origin:?}")))?,
            error,
            updated_at: Timestamp::from_millis(updated_at),
        })
    })())
}

fn get_document(conn: &Connection, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        document_columns!(),
        " FROM documents WHERE id = ?1"
    ))?
    .query_row([id.as_str()], read_document)
    .optional()?
    .transpose()
}

/// Inserts or replaces the catalog entry with this id.
fn write_document(conn: &Connection, record: &DocumentRecord) -> Result<(), StoreError> {
    let size = i64::try_from(record.size_bytes).map_err(|_| {
        StoreError::Backend(format!("document size {} is too large", record.size_bytes))
    })?;
    conn.prepare_cached(
        "INSERT INTO documents (id, name, owner, size_bytes, status, chunks, error, updated_at,
           pages, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, owner = excluded.owner,
           size_bytes = excluded.size_bytes, status = excluded.status,
           chunks = excluded.chunks, error = excluded.error, updated_at = excluded.updated_at,
           pages = excluded.pages, origin = excluded.origin",
    )?
    .execute(params![
        record.id.as_str(),
        record.name,
        record.owner.as_key(),
        size,
        record.status.as_str(),
        record.chunks,
        record.error,
        record.updated_at.as_millis(),
        record.pages,
        record.origin.as_str(),
    ])?;
    Ok(())
}

fn submit_upload_tx(
    conn: &mut Connection,
    inner: &Inner,
    upload: UploadSubmission,
) -> Result<UploadOutcome, StoreError> {
    let UploadSubmission {
        record,
        job,
        rate_checks,
    } = upload;
    let now = job.now;
    // Every early return drops `tx`, which rolls back: nothing written or counted.
    let tx = immediate(conn)?;
    if let Some(existing) = get_document(&tx, &record.id)?
        && existing.status != DocumentStatus::Failed
    {
        return Ok(UploadOutcome::Existing(existing));
    }
    let evaluated = match evaluate_rates(&tx, &rate_checks, now)? {
        Ok(evaluated) => evaluated,
        Err(refused) => return Ok(UploadOutcome::RateLimited(refused)),
    };
    count_rates(&tx, inner, &evaluated, now)?;
    write_document(&tx, &record)?;
    let job = Job::queued(job.id, job.owner, job.payload, now);
    insert_job(&tx, &job, now.as_millis())?;
    tx.commit()?;
    Ok(UploadOutcome::Accepted { job, record })
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn, _| {
            conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// See [`rate`] for the arithmetic: all checks are evaluated in one
    /// write transaction and counted only if every one allows the hit.
    async fn hit_rate_limits(
        &self,
        checks: &[RateCheck],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let checks = checks.to_vec();
        self.run(move |conn, inner| {
            let tx = immediate(conn)?;
            let evaluated = match evaluate_rates(&tx, &checks, now)? {
                Ok(evaluated) => evaluated,
                Err(refused) => return Ok(refused),
            };
            let decision = count_rates(&tx, inner, &evaluated, now)?;
            tx.commit()?;
            Ok(decision)
        })
        .await
    }

    /// One `BEGIN IMMEDIATE` transaction: rate checks (evaluated, not yet
    /// counted) → ownership check or conversation creation → count the hits →
    /// user message → queued chat job, claimable at once.
    async fn submit_chat(&self, submission: ChatSubmission) -> Result<SubmitOutcome, StoreError> {
        self.run(move |conn, inner| submit_chat_tx(conn, inner, submission))
            .await
    }

    async fn enqueue(&self, job: NewJob) -> Result<Job, StoreError> {
        self.run(move |conn, _| {
            let NewJob {
                id,
                owner,
                payload,
                now,
            } = job;
            let job = Job::queued(id, owner, payload, now);
            let tx = immediate(conn)?;
            insert_job(&tx, &job, now.as_millis())?;
            tx.commit()?;
            Ok(job)
        })
        .await
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            let raw = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE id = ?1"
                ))?
                .query_row([id.as_str()], |row| RawJob::read(row, 0))
                .optional()?;
            raw.map(RawJob::into_job).transpose()
        })
        .await
    }

    async fn list_conversations(
        &self,
        owner: &SessionId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let owner = owner.clone();
        self.run(move |conn, _| {
            let rows: Vec<(String, String, i64, i64, i64)> = conn
                .prepare_cached(
                    "SELECT c.id, c.title, c.created_at, c.updated_at,
                            (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)
                     FROM conversations c WHERE c.owner = ?1
                     ORDER BY c.updated_at DESC, c.created_at DESC, c.id DESC",
                )?
                .query_map([owner.as_str()], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, title, created_at, updated_at, count)| {
                    Ok(ConversationSummary {
                        id: ConversationId::from_trusted(id),
                        title,
                        message_count: to_u32("message count", count)?,
                        created_at: Timestamp::from_millis(created_at),
                        updated_at: Timestamp::from_millis(updated_at),
                    })
                })
                .collect()
        })
        .await
    }

    /// Messages in the order they were written.
    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| get_conversation_tx(conn, id)).await
    }

    /// Jobs that refer to the conversation stay readable.
    async fn delete_conversation(
        &self,
        id: &ConversationId,
        owner: &SessionId,
    ) -> Result<bool, StoreError> {
        let (id, owner) = (id.clone(), owner.clone());
        self.run(move |conn, _| {
            let tx = immediate(conn)?;
            if conversation_owner(&tx, &id)?.as_deref() != Some(owner.as_str()) {
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM messages WHERE conversation_id = ?1")?
                .execute([id.as_str()])?;
            tx.prepare_cached("DELETE FROM conversations WHERE id = ?1")?
                .execute([id.as_str()])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// A running job whose lease expired after `max_attempts` claims is
    /// failed and dead-lettered here instead of being handed out again.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        let request = request.clone();
        self.run(move |conn, _| claim_tx(conn, request)).await
    }

    /// One `UPDATE` guarded by the lease (as `fail_job` and `release` are):
    /// it changes the row only while the job is running under this claim.
    /// The new `lease_until` is what claims compare with `now`.
    async fn record_progress(
        &self,
        claim: &ClaimedJob,
        partial: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (id, lease_id, partial) = (
            claim.job.id.clone(),
            claim.lease_id.clone(),
            partial.to_owned(),
        );
        self.run(move |conn, _| {
            let changed = conn
                .prepare_cached(
                    "UPDATE jobs SET partial = ?3, lease_until = ?4, updated_at = ?5
                     WHERE id = ?1 AND status = 'running' AND lease_id = ?2",
                )?
                .execute(params![
                    id.as_str(),
                    lease_id,
                    partial,
                    lease_until.as_millis(),
                    now.as_millis()
                ])?;
            Ok(changed > 0)
        })
        .await
    }

    /// Accepted from any claim of the job, even an expired one: the answer
    /// exists, and a unique index keeps it to one assistant message. If the
    /// conversation was deleted meanwhile the job still succeeds, without a
    /// message. A job dead-lettered by a claim that completes after all
    /// leaves the dead letters.
    async fn complete_chat(
        &self,
        claim: &ClaimedJob,
        answer: &ChatAnswer,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        let (claim, result) = (claim.clone(), JobResult::Chat(answer.clone()));
        self.run(move |conn, _| complete_tx(conn, claim, result, true, now))
            .await
    }

    /// Stores the result without appending any message.
    async fn complete_job(
        &self,
        claim: &ClaimedJob,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        let (claim, result) = (claim.clone(), result.clone());
        self.run(move |conn, _| complete_tx(conn, claim, result, false, now))
            .await
    }

    /// Only the current lease holder of a running job may fail it.
    async fn fail_job(
        &self,
        claim: &ClaimedJob,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        let (claim, error) = (claim.clone(), error.to_owned());
        self.run(move |conn, _| fail_tx(conn, claim, error, retry_at, now))
            .await
    }

    async fn release(&self, claim: &ClaimedJob, now: Timestamp) -> Result<bool, StoreError> {
        let claim = claim.clone();
        self.run(move |conn, _| release_tx(conn, claim, now)).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.run(move |conn, _| {
            let rows: Vec<(String, String, i64, String, i64)> = conn
                .prepare_cached(
                    "SELECT job_id, kind, attempts, error, failed_at FROM dead_letters
                     ORDER BY failed_at DESC, seq DESC LIMIT ?1",
                )?
                .query_map([limit], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(job_id, kind, attempts, error, failed_at)| {
                    Ok(DeadLetter {
                        job_id: JobId::from_trusted(job_id),
                        kind: parse_kind(&kind)?,
                        attempts: to_u32("dead letter attempts", attempts)?,
                        error,
                        failed_at: Timestamp::from_millis(failed_at),
                    })
                })
                .collect()
        })
        .await
    }

    /// The job goes back to `queued`, due now, with 0 attempts and no error.
    async fn replay_dead_letter(&self, id: &JobId, now: Timestamp) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            let tx = immediate(conn)?;
            let removed = tx
                .prepare_cached("DELETE FROM dead_letters WHERE job_id = ?1")?
                .execute([id.as_str()])?;
            if removed == 0 {
                return Ok(false);
            }
            let requeued = tx
                .prepare_cached(
                    "UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, result = NULL,
                     available_at = ?2, lease_id = NULL, lease_until = NULL, partial = NULL,
                     updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id.as_str(), now.as_millis()])?;
            // A dead letter whose job is gone is dropped, and reported as not replayed.
            tx.commit()?;
            Ok(requeued > 0)
        })
        .await
    }

    /// Running jobs whose lease expired count as `queued` (they are claimable).
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let (queued, delayed, running): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT
                       COALESCE(SUM((status = 'queued' AND available_at <= ?1)
                                    OR (status = 'running' AND lease_until < ?1)), 0),
                       COALESCE(SUM(status = 'queued' AND available_at > ?1), 0),
                       COALESCE(SUM(status = 'running' AND lease_until >= ?1), 0)
                     FROM jobs WHERE status IN ('queued', 'running')",
                )?
                .query_row([now.as_millis()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            let dead: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM dead_letters")?
                .query_row([], |row| row.get(0))?;
            let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("queue count", n));
            Ok(QueueStats {
                queued: count(queued)?,
                delayed: count(delayed)?,
                running: count(running)?,
                dead_letters: count(dead)?,
            })
        })
        .await
    }

    async fn record_heartbeat(&self, worker: &str, now: Timestamp) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO heartbeats (worker, at) VALUES (?1, ?2)
                 ON CONFLICT (worker) DO UPDATE SET at = excluded.at",
            )?
            .execute(params![worker, now.as_millis()])?;
            Ok(())
        })
        .await
    }

    async fn last_heartbeat(&self) -> Result<Option<Heartbeat>, StoreError> {
        self.run(|conn, _| {
            let row: Option<(String, i64)> = conn
                .prepare_cached("SELECT worker, at FROM heartbeats ORDER BY at DESC LIMIT 1")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            Ok(row.map(|(worker, at)| Heartbeat {
                worker,
                at: Timestamp::from_millis(at),
            }))
        })
        .await
    }

    async fn upsert_document(&self, record: &DocumentRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run(move |conn, _| write_document(conn, &record)).await
    }

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            let removed = conn
                .prepare_cached("DELETE FROM documents WHERE id = ?1")?
                .execute([id.as_str()])?;
            Ok(removed > 0)
        })
        .await
    }

    async fn list_documents(
        &self,
        viewer: Option<&SessionId>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        let viewer = viewer.map(|v| v.as_str().to_owned());
        self.run(move |conn, _| {
            let shared = DocumentOwner::Shared;
            // `shared` twice when there is no viewer: a session id is a UUID, never `shared`.
            let own = viewer.as_deref().unwrap_or(shared.as_key());
            let rows: Vec<Result<DocumentRecord, StoreError>> = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    document_columns!(),
                    " FROM documents WHERE owner = ?1 OR owner = ?2 ORDER BY name, id"
                ))?
                .query_map(params![shared.as_key(), own], read_document)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| get_document(conn, &id)).await
    }

    /// Expired parts of any upload are deleted on the way.
    async fn put_upload_part(
        &self,
        id: &DocumentId,
        index: u32,
        bytes: &[u8],
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        check_upload_part(index, bytes)?;
        let (id, bytes, ttl) = (id.clone(), bytes.to_vec(), self.upload_ttl_ms);
        self.run(move |conn, _| {
            let clock = clock_millis();
            let tx = immediate(conn)?;
            tx.prepare_cached("DELETE FROM upload_parts WHERE expires_at <= ?1")?
                .execute([clock])?;
            tx.prepare_cached(
                "INSERT INTO upload_parts (document_id, part, bytes, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (document_id, part) DO UPDATE SET bytes = excluded.bytes,
                   expires_at = excluded.expires_at",
            )?
            .execute(params![
                id.as_str(),
                index,
                bytes,
                clock.saturating_add(ttl)
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, id: &DocumentId, parts: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            let rows: Vec<(i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT part, bytes FROM upload_parts
                     WHERE document_id = ?1 AND part >= 0 AND part < ?2 AND expires_at > ?3
                     ORDER BY part",
                )?
                .query_map(params![id.as_str(), parts, clock_millis()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            // The key is (id, part), so `parts` rows are exactly parts 0..parts.
            if rows.len() != usize::try_from(parts).unwrap_or(usize::MAX) {
                return Ok(None);
            }
            let mut joined = Vec::with_capacity(rows.iter().map(|(_, b)| b.len()).sum());
            for (_, bytes) in rows {
                joined.extend_from_slice(&bytes);
            }
            Ok(Some(joined))
        })
        .await
    }

    async fn delete_upload(&self, id: &DocumentId, parts: u32) -> Result<(), StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "DELETE FROM upload_parts WHERE document_id = ?1 AND part >= 0 AND part < ?2",
            )?
            .execute(params![id.as_str(), parts])?;
            Ok(())
        })
        .await
    }

    /// One `BEGIN IMMEDIATE` transaction: the duplicate check → rate checks
    /// (the same code as `submit_chat`) → count the hits → the pending
    /// record → the queued ingest job.
    async fn submit_upload(&self, upload: UploadSubmission) -> Result<UploadOutcome, StoreError> {
        self.run(move |conn, inner| submit_upload_tx(conn, inner, upload))
            .await
    }

    async fn delete_document(&self, id: &DocumentId, job: NewJob) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(move |conn, _| {
            let tx = immediate(conn)?;
            let removed = tx
                .prepare_cached("DELETE FROM documents WHERE id = ?1")?
                .execute([id.as_str()])?;
            if removed == 0 {
                return Ok(false);
            }
            let now = job.now.as_millis();
            let job = Job::queued(job.id, job.owner, job.payload, job.now);
            insert_job(&tx, &job, now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        (dir, store)
    }

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
            assert_eq!(user_version(&conn).unwrap(), 3);
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

    /// Parts past their expiry are no upload, and the next stored part
    /// deletes them; the TTL runs from the write, by this machine's clock.
    #[tokio::test]
    async fn expired_upload_parts_are_ignored_and_swept() {
        let (_dir, store) = store();
        let store = store.with_upload_ttl(Duration::from_secs(60));
        let (old, fresh) = (
            DocumentId::for_content(b"old upload"),
            DocumentId::for_content(b"fresh upload"),
        );
        let before = clock_millis();
        for id in [&old, &fresh] {
            store
                .put_upload_part(id, 0, b"part", Timestamp::from_millis(0))
                .await
                .unwrap();
        }
        let expiry = |id: &DocumentId| -> Vec<i64> {
            store
                .inner
                .conn
                .lock()
                .unwrap()
                .prepare("SELECT expires_at FROM upload_parts WHERE document_id = ?1")
                .unwrap()
                .query_map([id.as_str()], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let at = expiry(&fresh)[0];
        assert!(
            at >= before + 60_000 && at <= clock_millis() + 60_000,
            "{at}"
        );

        store
            .inner
            .conn
            .lock()
            .unwrap()
            .execute(
                "UPDATE upload_parts SET expires_at = ?2 WHERE document_id = ?1",
                params![old.as_str(), clock_millis() - 1],
            )
            .unwrap();
        assert_eq!(store.get_upload(&old, 1).await.unwrap(), None);
        assert_eq!(
            store.get_upload(&fresh, 1).await.unwrap().as_deref(),
            Some(&b"part"[..])
        );
        assert_eq!(expiry(&old).len(), 1, "reading deletes nothing");
        store
            .put_upload_part(&fresh, 1, b"more", Timestamp::from_millis(0))
            .await
            .unwrap();
        assert!(expiry(&old).is_empty(), "swept by the next write");
        assert_eq!(expiry(&fresh).len(), 2);
    }

    /// A page count that does not fit a u32, or an unknown origin, is
    /// corrupt, not a panic, a wrapped number or a guess.
    #[tokio::test]
    async fn an_impossible_page_count_or_origin_is_corrupt() {
        let (_dir, store) = store();
        let id = DocumentId::for_content(b"pages");
        store
            .upsert_document(&DocumentRecord {
                id: id.clone(),
                name: "x.pdf".to_owned(),
                owner: DocumentOwner::Shared,
                size_bytes: 1,
                status: DocumentStatus::Indexed,
                chunks: 1,
                pages: Some(1),
                origin: DocumentOrigin::Upload,
                error: None,
                updated_at: Timestamp::from_millis(1),
            })
            .await
            .unwrap();
        for bad in ["pages = -3", "pages = 1, origin = 'mail'"] {
            store
                .inner
                .conn
                .lock()
                .unwrap()
                .execute(&format!("UPDATE documents SET {bad}"), [])
                .unwrap();
            assert!(
                matches!(store.get_document(&id).await, Err(StoreError::Corrupt(_))),
                "{bad}"
            );
            assert!(
                matches!(
                    store.list_documents(None).await,
                    Err(StoreError::Corrupt(_))
                ),
                "{bad}"
            );
        }
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

    #[tokio::test]
    async fn bad_stored_data_is_corrupt_not_a_panic() {
        let (_dir, store) = store();
        let id = JobId::from_random([1; 16]);
        store
            .enqueue(NewJob {
                id: id.clone(),
                owner: None,
                payload: JobPayload::IngestSharedFolder,
                now: Timestamp::from_millis(1),
            })
            .await
            .unwrap();
        store
            .inner
            .conn
            .lock()
            .unwrap()
            .execute("UPDATE jobs SET payload = '{nope'", [])
            .unwrap();
        assert!(matches!(
            store.get_job(&id).await,
            Err(StoreError::Corrupt(_))
        ));
        // A claim fails the unreadable job instead of blocking the queue.
        let claimed = store
            .claim(&ClaimRequest {
                worker: "w".into(),
                max_jobs: 1,
                lease_ms: 1000,
                max_attempts: 3,
                now: Timestamp::from_millis(3),
            })
            .await
            .unwrap();
        assert!(claimed.is_empty());
        let status: String = store
            .inner
            .conn
            .lock()
            .unwrap()
            .query_row("SELECT status FROM jobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "failed");
    }

    #[test]
    fn busy_maps_to_unavailable() {
        let error = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(
            StoreError::from(error),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn claims_use_the_pending_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        let conn = store.inner.conn.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare(concat!(
                "EXPLAIN QUERY PLAN SELECT seq, ",
                job_columns!(),
                " FROM jobs WHERE ",
                claimable!(),
                " ORDER BY seq LIMIT ?2"
            ))
            .unwrap()
            .query_map(params![0, 1], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("jobs_pending")),
            "plan: {plan:?}"
        );
    }
}
