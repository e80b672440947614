//! Job rows: how a [`Job`] is written to the `jobs` table and read back.
//! Their queue state (leases, retries) is `queue`'s.

use flowchat_domain::model::Job;
use flowchat_domain::{JobId, SessionId, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, immediate};
use crate::codec::{from_json, parse_kind, parse_status, to_json, to_u32};
use crate::{NewJob, StoreError};

/// The `jobs` columns [`RawJob::read`] expects, in order.
macro_rules! job_columns {
    () => {
        "id, kind, status, owner, payload, attempts, result, error, created_at, updated_at, partial"
    };
}
pub(super) use job_columns;

/// A `jobs` row as stored, before its text is trusted.
pub(super) struct RawJob {
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
    pub(super) fn read(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
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

    pub(super) fn into_job(self) -> Result<Job, StoreError> {
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

pub(super) fn insert_job(
    tx: &Transaction<'_>,
    job: &Job,
    available_at: i64,
) -> Result<(), StoreError> {
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

pub(super) async fn enqueue(store: &SqliteStore, job: NewJob) -> Result<Job, StoreError> {
    store
        .run(move |conn, _| {
            let now = job.now;
            let job = job.into_queued();
            let tx = immediate(conn)?;
            insert_job(&tx, &job, now.as_millis())?;
            tx.commit()?;
            Ok(job)
        })
        .await
}

pub(super) async fn get(store: &SqliteStore, id: &JobId) -> Result<Option<Job>, StoreError> {
    let id = id.clone();
    store
        .run(move |conn, _| {
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
