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
//!
//! # Modules
//!
//! This one holds the connection and hands each [`Store`] call to the
//! module of its concern:
//!
//! - `schema`: the tables, and the migrations of older files;
//! - `jobs`: job rows, written and read back;
//! - `claims`: handing out claimable jobs under leases;
//! - `queue`: what follows a claim (progress, completion, failure and
//!   retry, release), queue counts and heartbeats;
//! - `dead_letters`: jobs out of attempts, listed and replayed;
//! - `chat`: conversations, messages and chat submissions;
//! - `feedback`: feedback on answers, and its listing for operators;
//! - `catalog`: the document catalog;
//! - `uploads`: upload bytes and upload submissions;
//! - `rate_limits`: rate-limit windows, checked inside submissions too.

mod catalog;
mod chat;
mod claims;
mod dead_letters;
mod feedback;
mod jobs;
mod queue;
mod rate_limits;
mod schema;
mod uploads;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowchat_domain::model::{
    ChatAnswer, Conversation, ConversationSummary, DocumentRecord, Job, JobResult,
};
use flowchat_domain::{
    ConversationId, DocumentId, FeedbackComment, FeedbackRating, FeedbackView, JobId, SessionId,
    Timestamp,
};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::codec::duration_millis;
use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, Completion, DeadLetter, FailureOutcome,
    FeedbackOutcome, Heartbeat, NewJob, QueueStats, RateCheck, RateDecision, Store, StoreError,
    SubmitOutcome, UploadOutcome, UploadSubmission,
};

/// How long upload bytes wait for the drain by default; the Upstash back
/// end's default ([`crate::upstash::Ttls`]) is the same.
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

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
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
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

/// A write transaction that holds the file's write lock from its start.
fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Each call is its concern module's; the documentation of what this back
/// end does beyond the trait's is there.
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

    async fn hit_rate_limits(
        &self,
        checks: &[RateCheck],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        rate_limits::hit(self, checks, now).await
    }

    async fn submit_chat(&self, submission: ChatSubmission) -> Result<SubmitOutcome, StoreError> {
        chat::submit(self, submission).await
    }

    async fn enqueue(&self, job: NewJob) -> Result<Job, StoreError> {
        jobs::enqueue(self, job).await
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        jobs::get(self, id).await
    }

    async fn list_conversations(
        &self,
        owner: &SessionId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        chat::list(self, owner).await
    }

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        chat::get(self, id).await
    }

    async fn delete_conversation(
        &self,
        id: &ConversationId,
        owner: &SessionId,
    ) -> Result<bool, StoreError> {
        chat::delete(self, id, owner).await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        claims::claim(self, request).await
    }

    async fn record_progress(
        &self,
        claim: &ClaimedJob,
        partial: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        queue::record_progress(self, claim, partial, lease_until, now).await
    }

    async fn complete_chat(
        &self,
        claim: &ClaimedJob,
        answer: &ChatAnswer,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        queue::complete_chat(self, claim, answer, now).await
    }

    async fn complete_job(
        &self,
        claim: &ClaimedJob,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        queue::complete_job(self, claim, result, now).await
    }

    async fn fail_job(
        &self,
        claim: &ClaimedJob,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        queue::fail(self, claim, error, retry_at, now).await
    }

    async fn release(&self, claim: &ClaimedJob, now: Timestamp) -> Result<bool, StoreError> {
        queue::release(self, claim, now).await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        dead_letters::list(self, limit).await
    }

    async fn replay_dead_letter(&self, id: &JobId, now: Timestamp) -> Result<bool, StoreError> {
        dead_letters::replay(self, id, now).await
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        queue::stats(self, now).await
    }

    async fn record_heartbeat(&self, worker: &str, now: Timestamp) -> Result<(), StoreError> {
        queue::record_heartbeat(self, worker, now).await
    }

    async fn last_heartbeat(&self) -> Result<Option<Heartbeat>, StoreError> {
        queue::last_heartbeat(self).await
    }

    async fn upsert_document(&self, record: &DocumentRecord) -> Result<(), StoreError> {
        catalog::upsert(self, record).await
    }

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, StoreError> {
        catalog::remove(self, id).await
    }

    async fn list_documents(
        &self,
        viewer: Option<&SessionId>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        catalog::list(self, viewer).await
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError> {
        catalog::get(self, id).await
    }

    async fn put_upload_part(
        &self,
        id: &DocumentId,
        index: u32,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        uploads::put_part(self, id, index, bytes, now).await
    }

    async fn get_upload(&self, id: &DocumentId, parts: u32) -> Result<Option<Vec<u8>>, StoreError> {
        uploads::get(self, id, parts).await
    }

    async fn delete_upload(&self, id: &DocumentId, parts: u32) -> Result<(), StoreError> {
        uploads::delete(self, id, parts).await
    }

    async fn submit_upload(&self, upload: UploadSubmission) -> Result<UploadOutcome, StoreError> {
        uploads::submit(self, upload).await
    }

    async fn delete_document(&self, id: &DocumentId, job: NewJob) -> Result<bool, StoreError> {
        catalog::delete(self, id, job).await
    }

    async fn owned_documents(&self, owner: &SessionId) -> Result<Vec<DocumentRecord>, StoreError> {
        catalog::owned(self, owner).await
    }

    async fn expired_document_owners(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError> {
        catalog::expired_owners(self, before, limit).await
    }

    async fn forget_document_owner(&self, owner: &SessionId) -> Result<bool, StoreError> {
        catalog::forget_owner(self, owner).await
    }

    async fn record_feedback(
        &self,
        session: &SessionId,
        job_id: &JobId,
        rating: FeedbackRating,
        comment: Option<&FeedbackComment>,
        now: Timestamp,
    ) -> Result<FeedbackOutcome, StoreError> {
        feedback::record(self, session, job_id, rating, comment, now).await
    }

    async fn list_feedback(&self, limit: u32) -> Result<Vec<FeedbackView>, StoreError> {
        feedback::list(self, limit).await
    }
}

/// A store in a new file of a temporary directory, for the modules' tests.
#[cfg(test)]
fn test_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
