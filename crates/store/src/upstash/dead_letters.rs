//! Dead letters: jobs that ran out of attempts, in a stream with an index
//! by job id, kept for an operator to read and replay.

use flowchat_domain::model::JobKind;
use flowchat_domain::{JobId, Timestamp};
use flowchat_upstash::{Arg, Value};

use super::replies::{array, count, integer, required_text};
use super::{UpstashStore, scripts};
use crate::codec::{corrupt, to_u32};
use crate::{DeadLetter, StoreError};

/// Newest recorded first.
pub(super) async fn list(store: &UpstashStore, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let reply = store
        .eval(
            &scripts::DEAD_LETTERS,
            vec![store.keys.dead()],
            vec![Arg::from(limit)],
            true,
        )
        .await?;
    array(reply, "dead letters")?
        .into_iter()
        .map(|letter| {
            let mut f = array(letter, "dead letter")?.into_iter();
            let mut next = || f.next().unwrap_or(Value::Nil);
            let job_id = required_text(next(), "dead letter job")?;
            let kind = required_text(next(), "dead letter kind")?;
            let attempts = integer(next(), "dead letter attempts")?;
            let error = required_text(next(), "dead letter error")?;
            let failed_at = integer(next(), "dead letter failed_at")?;
            Ok(DeadLetter {
                job_id: JobId::from_trusted(job_id),
                kind: JobKind::parse(&kind)
                    .ok_or_else(|| corrupt("dead letter kind", format!("unknown kind {kind:?}")))?,
                attempts: to_u32("dead letter attempts", attempts)?,
                error,
                failed_at: Timestamp::from_millis(failed_at),
            })
        })
        .collect()
}

/// The job goes back to `queued`, due now and ahead of newer jobs, with 0
/// attempts and no error.
pub(super) async fn replay(
    store: &UpstashStore,
    id: &JobId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let reply = store
        .eval(
            &scripts::REPLAY,
            vec![
                store.keys.job(id.as_str()),
                store.keys.leases(),
                store.keys.delayed(),
                store.keys.dead(),
                store.keys.dead_index(),
                store.keys.registry(),
            ],
            vec![
                Arg::from(id.as_str()),
                Arg::from(now.as_millis()),
                Arg::from(store.job_ttl()),
                Arg::from(store.namespace()),
            ],
            false,
        )
        .await?;
    Ok(count(reply, "replay")? == 1)
}
