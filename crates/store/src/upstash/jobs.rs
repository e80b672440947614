//! Job hashes: how a [`Job`] is written (by the scripts, from
//! [`UpstashStore::job_args`]) and read back. Their queue state (stream
//! entry, leases, retries) is `queue`'s.

use flowchat_domain::model::{Job, JobKind, JobStatus};
use flowchat_domain::{JobId, SessionId, Timestamp};
use flowchat_upstash::{Arg, Command, Value};

use super::replies::{array, integer, optional_text, required_text, tagged, unexpected};
use super::{UpstashStore, scripts, store_error};
use crate::codec::{corrupt, from_json, to_json, to_u32};
use crate::{NewJob, StoreError};

/// The fields of a job hash read back as a [`Job`], in this order (also in `lua/lib.lua`).
pub(super) const JOB_FIELDS: [&str; 11] = [
    "id",
    "kind",
    "status",
    "owner",
    "payload",
    "attempts",
    "result",
    "error",
    "created_at",
    "updated_at",
    "partial",
];

impl UpstashStore {
    /// The arguments `enqueue_job` (lua/lib.lua) takes for `job`: id, kind,
    /// owner ('' for none), payload, now, job ttl ms.
    pub(super) fn job_args(&self, job: &Job) -> Result<Vec<Arg>, StoreError> {
        Ok(vec![
            Arg::from(job.id.as_str()),
            Arg::from(job.kind.as_str()),
            Arg::from(job.owner.as_ref().map(SessionId::as_str).unwrap_or("")),
            Arg::from(to_json(&job.payload)?),
            Arg::from(job.created_at.as_millis()),
            Arg::from(self.job_ttl()),
        ])
    }
}

/// The error for a job id that is taken: ids are random, so this is a bug
/// or a replayed request, never a user's mistake.
pub(super) fn already_exists(id: &JobId) -> StoreError {
    StoreError::Backend(format!("job {id} already exists"))
}

/// A job from the values of [`JOB_FIELDS`], in order.
pub(super) fn parse_job(fields: Vec<Value>) -> Result<Job, StoreError> {
    let mut f = fields.into_iter();
    let mut next = || f.next().unwrap_or(Value::Nil);
    let id = required_text(next(), "job id")?;
    let kind = required_text(next(), "job kind")?;
    let status = required_text(next(), "job status")?;
    let owner = optional_text(next(), "job owner")?;
    let payload = required_text(next(), "job payload")?;
    let attempts = integer(next(), "job attempts")?;
    let result = optional_text(next(), "job result")?;
    let error = optional_text(next(), "job error")?;
    let created_at = integer(next(), "job created_at")?;
    let updated_at = integer(next(), "job updated_at")?;
    let partial = optional_text(next(), "job partial")?;
    Ok(Job {
        id: JobId::from_trusted(id),
        kind: JobKind::parse(&kind)
            .ok_or_else(|| corrupt("job kind", format!("unknown kind {kind:?}")))?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| corrupt("job status", format!("unknown status {status:?}")))?,
        owner: owner.map(SessionId::from_trusted),
        payload: from_json("job payload", &payload)?,
        attempts: to_u32("job attempts", attempts)?,
        result: result
            .as_deref()
            .map(|raw| from_json("job result", raw))
            .transpose()?,
        error,
        partial,
        created_at: Timestamp::from_millis(created_at),
        updated_at: Timestamp::from_millis(updated_at),
    })
}

pub(super) async fn enqueue(store: &UpstashStore, job: NewJob) -> Result<Job, StoreError> {
    let job = job.into_queued();
    let mut args = store.job_args(&job)?;
    args.push(Arg::from(store.namespace()));
    let reply = store
        .eval(
            &scripts::ENQUEUE,
            vec![
                store.keys.job(job.id.as_str()),
                store.keys.queue(),
                store.keys.registry(),
            ],
            args,
            false,
        )
        .await?;
    let (status, _) = tagged(reply, "enqueue")?;
    match status.as_str() {
        "ok" => Ok(job),
        "job_exists" => Err(already_exists(&job.id)),
        other => Err(unexpected("enqueue", other)),
    }
}

pub(super) async fn get(store: &UpstashStore, id: &JobId) -> Result<Option<Job>, StoreError> {
    let reply = store
        .client
        .cmd_read(
            Command::new("HMGET")
                .arg(store.keys.job(id.as_str()))
                .args(JOB_FIELDS),
        )
        .await
        .map_err(store_error)?;
    let fields = array(reply, "HMGET")?;
    if fields.iter().all(Value::is_nil) {
        return Ok(None);
    }
    parse_job(fields).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_reads_jobs_with_the_same_fields() {
        let lib = include_str!("lua/lib.lua");
        let quoted: Vec<String> = JOB_FIELDS.iter().map(|f| format!("'{f}'")).collect();
        let table = lib
            .split("local JOB_FIELDS = {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("JOB_FIELDS in lib.lua");
        let lua: Vec<&str> = table.split(',').map(str::trim).collect();
        assert_eq!(lua, quoted);
    }
}
