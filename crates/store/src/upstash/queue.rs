//! The queue once a job is claimed (claims are `claims`'): progress from
//! the lease holder, completion, failure with a retry or a dead letter,
//! release, the counts of each state, and the drains' heartbeats.

use flowchat_domain::model::{ChatAnswer, JobPayload, JobResult};
use flowchat_domain::{ConversationId, JobId, SessionId, Timestamp};
use flowchat_upstash::{Arg, Command, Value};

use super::replies::{array, count, required_text, text, unexpected};
use super::{UpstashStore, dead_letters, scripts, store_error};
use crate::codec::{corrupt, to_json};
use crate::{ClaimedJob, Completion, FailureOutcome, Heartbeat, QueueStats, StoreError};

/// The consumer group of the job stream.
pub(super) const GROUP: &str = "drain";

/// Heartbeats kept (most recent workers).
const HEARTBEATS_KEPT: i64 = 1000;

impl UpstashStore {
    /// Keys every queue-state script takes first: job, stream, leases, delayed,
    /// dead-letter stream, dead-letter index.
    pub(super) fn queue_keys(&self, job: &JobId) -> Vec<String> {
        vec![
            self.keys.job(job.as_str()),
            self.keys.queue(),
            self.keys.leases(),
            self.keys.delayed(),
            self.keys.dead(),
            self.keys.dead_index(),
        ]
    }
}

impl UpstashStore {
    async fn complete(
        &self,
        claim: &ClaimedJob,
        result: &JobResult,
        append: Option<(&ChatAnswer, &SessionId, &ConversationId)>,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        let id = &claim.job.id;
        let mut keys = self.queue_keys(id);
        let mut args = vec![
            Arg::from(id.as_str()),
            Arg::from(now.as_millis()),
            Arg::from(to_json(result)?),
            Arg::from(GROUP),
            Arg::from(self.job_ttl()),
        ];
        if let Some((answer, session, conversation)) = append {
            let (more_keys, more_args) =
                self.answer_append(id, answer, session, conversation, now)?;
            keys.extend(more_keys);
            args.extend(more_args);
        }
        let reply = self.eval(&scripts::COMPLETE, keys, args, false).await?;
        match text(reply, "complete")?.as_str() {
            "stored" => Ok(Completion::Stored),
            "done" => Ok(Completion::AlreadyDone),
            "missing" => Err(StoreError::Backend(format!("job {id} does not exist"))),
            other => Err(unexpected("complete", other)),
        }
    }
}

/// Accepted from any claim of the job, even an expired one. The status
/// check and the message append are one script, so one assistant message
/// however many completions race. A deleted conversation gets no message.
pub(super) async fn complete_chat(
    store: &UpstashStore,
    claim: &ClaimedJob,
    answer: &ChatAnswer,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    let result = JobResult::Chat(answer.clone());
    match &claim.job.payload {
        JobPayload::Chat {
            session_id,
            conversation_id,
            ..
        } => {
            store
                .complete(
                    claim,
                    &result,
                    Some((answer, session_id, conversation_id)),
                    now,
                )
                .await
        }
        // No conversation to append to: the result is stored, as sqlite does.
        JobPayload::IngestSharedFolder
        | JobPayload::IngestUpload { .. }
        | JobPayload::DeleteDocument { .. } => store.complete(claim, &result, None, now).await,
    }
}

pub(super) async fn complete_job(
    store: &UpstashStore,
    claim: &ClaimedJob,
    result: &JobResult,
    now: Timestamp,
) -> Result<Completion, StoreError> {
    store.complete(claim, result, None, now).await
}

/// One script, from the current lease holder only: `partial`,
/// `updated_at` and the lease (hash and lease index) in one step.
pub(super) async fn record_progress(
    store: &UpstashStore,
    claim: &ClaimedJob,
    partial: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let id = &claim.job.id;
    let reply = store
        .eval(
            &scripts::PROGRESS,
            vec![store.keys.job(id.as_str()), store.keys.leases()],
            vec![
                Arg::from(id.as_str()),
                Arg::from(&claim.lease_id),
                Arg::from(partial),
                Arg::from(lease_until.as_millis()),
                Arg::from(now.as_millis()),
                Arg::from(store.job_ttl()),
            ],
            // Safe to repeat: the same fields set to the same values.
            true,
        )
        .await?;
    Ok(count(reply, "progress")? == 1)
}

/// Only the current lease holder of a running job may fail it.
pub(super) async fn fail(
    store: &UpstashStore,
    claim: &ClaimedJob,
    error: &str,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<FailureOutcome, StoreError> {
    let id = &claim.job.id;
    let reply = store
        .eval(
            &scripts::FAIL,
            store.dead_letter_keys(id),
            vec![
                Arg::from(id.as_str()),
                Arg::from(&claim.lease_id),
                Arg::from(error),
                Arg::from(
                    retry_at
                        .map(|t| t.as_millis().to_string())
                        .unwrap_or_default(),
                ),
                Arg::from(now.as_millis()),
                Arg::from(GROUP),
                Arg::from(store.job_ttl()),
                Arg::from("1"),
                dead_letters::upload_given_up()?,
            ],
            false,
        )
        .await?;
    match text(reply, "fail")?.as_str() {
        "retry" => {
            Ok(FailureOutcome::RetryAt(retry_at.ok_or_else(|| {
                unexpected("fail", "retry without a time")
            })?))
        }
        "dead" => Ok(FailureOutcome::DeadLettered),
        "stale" => Ok(FailureOutcome::StaleClaim),
        other => Err(unexpected("fail", other)),
    }
}

pub(super) async fn release(
    store: &UpstashStore,
    claim: &ClaimedJob,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let id = &claim.job.id;
    let reply = store
        .eval(
            &scripts::RELEASE,
            vec![
                store.keys.job(id.as_str()),
                store.keys.queue(),
                store.keys.leases(),
                store.keys.delayed(),
            ],
            vec![
                Arg::from(id.as_str()),
                Arg::from(&claim.lease_id),
                Arg::from(now.as_millis()),
                Arg::from(GROUP),
                Arg::from(store.job_ttl()),
            ],
            false,
        )
        .await?;
    Ok(count(reply, "release")? == 1)
}

/// `queued` = undelivered stream entries + expired leases + due retries;
/// `delayed` = retries not yet due; `running` = leases not yet expired.
pub(super) async fn stats(store: &UpstashStore, now: Timestamp) -> Result<QueueStats, StoreError> {
    let reply = store
        .eval(
            &scripts::QUEUE_STATS,
            vec![
                store.keys.queue(),
                store.keys.leases(),
                store.keys.delayed(),
                store.keys.dead_index(),
            ],
            vec![Arg::from(now.as_millis()), Arg::from(GROUP)],
            true,
        )
        .await?;
    let mut parts = array(reply, "queue stats")?.into_iter();
    let mut next = || count(parts.next().unwrap_or(Value::Nil), "queue count");
    Ok(QueueStats {
        queued: next()?,
        delayed: next()?,
        running: next()?,
        dead_letters: next()?,
    })
}

pub(super) async fn record_heartbeat(
    store: &UpstashStore,
    worker: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let key = store.keys.heartbeats();
    let replies = store
        .client
        .multi_exec_idempotent(vec![
            Command::new("ZADD")
                .arg(&key)
                .arg(now.as_millis())
                .arg(worker),
            Command::new("ZREMRANGEBYRANK")
                .arg(&key)
                .arg(0)
                .arg(-(HEARTBEATS_KEPT + 1)),
        ])
        .await
        .map_err(store_error)?;
    for reply in replies {
        reply.map_err(|e| store_error(e.into()))?;
    }
    Ok(())
}

pub(super) async fn last_heartbeat(store: &UpstashStore) -> Result<Option<Heartbeat>, StoreError> {
    let reply = store
        .client
        .cmd_read(
            Command::new("ZRANGE")
                .arg(store.keys.heartbeats())
                .arg(0)
                .arg(0)
                .arg("REV")
                .arg("WITHSCORES"),
        )
        .await
        .map_err(store_error)?;
    let mut parts = array(reply, "ZRANGE")?.into_iter();
    let Some(worker) = parts.next() else {
        return Ok(None);
    };
    let worker = required_text(worker, "heartbeat worker")?;
    let score = parts.next().unwrap_or(Value::Nil);
    let at = score
        .as_f64()
        .filter(|s| s.is_finite())
        .ok_or_else(|| corrupt("heartbeat time", format!("{score:?}")))?;
    Ok(Some(Heartbeat {
        worker,
        // Scores hold whole milliseconds, exact below 2^53.
        at: Timestamp::from_millis(at as i64),
    }))
}
