//! Claims: two round trips, `reserve.lua` then `take.lua` per candidate
//! (see the module documentation of `upstash`), and what a claim does with
//! a job it leased but cannot read.

use flowchat_domain::model::Job;
use flowchat_domain::{JobId, Timestamp};
use flowchat_upstash::{Arg, Value};

use super::jobs::parse_job;
use super::queue::GROUP;
use super::replies::{array, tagged, text, unexpected};
use super::{UpstashStore, dead_letters, scripts};
use crate::{ClaimRequest, ClaimedJob, StoreError};

/// The most expired leases, and due retries, one claim looks at.
pub const SCAN_CAP: u32 = 1000;

/// The most claim rounds (reserve + take) one `claim` call makes.
const MAX_CLAIM_ROUNDS: usize = 4;

impl UpstashStore {
    /// Step 1: reserves up to `wanted` candidates, oldest first; their
    /// queue members (`<seq>|<job id>`).
    async fn reserve(
        &self,
        request: &ClaimRequest,
        wanted: u32,
    ) -> Result<Vec<String>, StoreError> {
        let reply = self
            .eval(
                &scripts::RESERVE,
                vec![self.keys.queue(), self.keys.leases(), self.keys.delayed()],
                vec![
                    Arg::from(request.now.as_millis()),
                    Arg::from(wanted),
                    Arg::from(request.lease_ms.max(1)),
                    Arg::from(&request.worker),
                    Arg::from(GROUP),
                    Arg::from(SCAN_CAP),
                ],
                false,
            )
            .await?;
        array(reply, "reserve")?
            .into_iter()
            .map(|v| text(v, "reserved member"))
            .collect()
    }

    /// Step 2: leases each reserved candidate that is still claimable, in
    /// one pipeline of atomic runs.
    async fn take(
        &self,
        request: &ClaimRequest,
        members: Vec<String>,
    ) -> Result<Vec<Result<Taken, StoreError>>, StoreError> {
        let lease_until = request
            .now
            .as_millis()
            .saturating_add(request.lease_ms.max(1));
        let mut calls = Vec::with_capacity(members.len());
        for member in &members {
            let Some((_, id)) = member.split_once('|') else {
                return Err(StoreError::Backend(format!(
                    "the queue holds a malformed member {member:?}"
                )));
            };
            calls.push((
                vec![
                    self.keys.job(id),
                    self.keys.queue(),
                    self.keys.leases(),
                    self.keys.delayed(),
                    self.keys.dead(),
                    self.keys.dead_index(),
                    self.keys.lease_seq(),
                    self.keys.documents(),
                ],
                vec![
                    Arg::from(member),
                    Arg::from(request.now.as_millis()),
                    Arg::from(lease_until),
                    Arg::from(&request.worker),
                    Arg::from(&request.worker),
                    Arg::from(GROUP),
                    Arg::from(request.max_attempts),
                    Arg::from(self.job_ttl()),
                    dead_letters::upload_given_up()?,
                ],
            ));
        }
        let replies = self.eval_many(&scripts::TAKE, calls).await?;
        Ok(replies
            .into_iter()
            .zip(members)
            .map(|(reply, member)| {
                let (status, mut parts) = tagged(reply?, "take")?;
                match status.as_str() {
                    "ok" => {
                        let lease_id = text(parts.next().unwrap_or(Value::Nil), "lease id")?;
                        Ok(match parse_job(parts.collect()) {
                            Ok(job) => Taken::Leased {
                                job,
                                lease_id,
                                lease_until: Timestamp::from_millis(lease_until),
                            },
                            Err(error) => Taken::Unreadable {
                                id: JobId::from_trusted(
                                    member.split_once('|').map(|(_, id)| id).unwrap_or_default(),
                                ),
                                lease_id,
                                error,
                            },
                        })
                    }
                    "dead" | "skip" => Ok(Taken::NotClaimable),
                    other => Err(unexpected("take", other)),
                }
            })
            .collect())
    }

    /// Fails a job this claim just leased but cannot read, without a retry.
    async fn fail_unreadable(
        &self,
        id: &JobId,
        lease_id: &str,
        error: &StoreError,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.eval(
            &scripts::FAIL,
            self.dead_letter_keys(id),
            vec![
                Arg::from(id.as_str()),
                Arg::from(lease_id),
                Arg::from(format!("the stored job cannot be read: {error}")),
                Arg::from(""),
                Arg::from(now.as_millis()),
                Arg::from(GROUP),
                Arg::from(self.job_ttl()),
                // No dead letter: its kind may be what cannot be read.
                Arg::from("0"),
                dead_letters::upload_given_up()?,
            ],
            false,
        )
        .await
        .map(drop)
    }
}

/// What one `take.lua` run did.
// `Leased` holds a whole job and the others little, but each outcome is
// consumed as soon as the batch's replies are read: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Taken {
    /// Leased to this claim.
    Leased {
        job: Job,
        lease_id: String,
        lease_until: Timestamp,
    },
    /// Leased to this claim, but its record cannot be read.
    Unreadable {
        id: JobId,
        lease_id: String,
        error: StoreError,
    },
    /// Not claimable after all (finished, validly leased, gone, or just
    /// dead-lettered for running out of attempts).
    NotClaimable,
}

/// Two round trips (reserve, then take each candidate); see the module
/// documentation. A job whose lease expired after `max_attempts` claims
/// is failed and dead-lettered instead of being handed out again.
pub(super) async fn claim(
    store: &UpstashStore,
    request: &ClaimRequest,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let mut claimed = Vec::new();
    let mut failure = None;
    for _ in 0..MAX_CLAIM_ROUNDS {
        let wanted = request
            .max_jobs
            .saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
        if wanted == 0 {
            break;
        }
        let members = match store.reserve(request, wanted).await {
            Ok(members) => members,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        if members.is_empty() {
            break;
        }
        let taken = match store.take(request, members).await {
            Ok(taken) => taken,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let mut short = false;
        for outcome in taken {
            match outcome {
                Ok(Taken::Leased {
                    job,
                    lease_id,
                    lease_until,
                }) => claimed.push(ClaimedJob {
                    job,
                    lease_id,
                    lease_until,
                }),
                Ok(Taken::Unreadable {
                    id,
                    lease_id,
                    error,
                }) => {
                    short = true;
                    // An unreadable job must not block the queue forever.
                    if let Err(e) = store
                        .fail_unreadable(&id, &lease_id, &error, request.now)
                        .await
                    {
                        failure = Some(e);
                    }
                }
                Ok(Taken::NotClaimable) => short = true,
                Err(e) => {
                    short = true;
                    failure = Some(e);
                }
            }
        }
        // All reserved jobs were handed out: either the batch is full or
        // the queue had no more. Otherwise look again for the rest.
        if !short || failure.is_some() {
            break;
        }
    }
    // Jobs already leased are handed out even if something else failed:
    // they would otherwise sit until their lease expires.
    match failure {
        Some(e) if claimed.is_empty() => Err(e),
        _ => Ok(claimed),
    }
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::JobPayload;
    use flowchat_gateway::testing::TestGateway;

    use super::*;
    use crate::upstash::test_store as store;
    use crate::{NewJob, Store};

    const T0: i64 = 1_800_000_000_000;

    fn request(now: i64, lease_ms: i64) -> ClaimRequest {
        ClaimRequest {
            worker: "w".into(),
            max_jobs: 1,
            lease_ms,
            max_attempts: 5,
            now: Timestamp::from_millis(T0 + now),
        }
    }

    async fn enqueue(store: &UpstashStore, n: u8, now: i64) -> Job {
        store
            .enqueue(NewJob {
                id: JobId::from_random([n; 16]),
                owner: None,
                payload: JobPayload::IngestSharedFolder,
                now: Timestamp::from_millis(T0 + now),
            })
            .await
            .expect("enqueue")
    }

    /// A claimer that dies after reserving (after XREADGROUP delivered the
    /// entry) loses nothing: the reservation expires like a lease, and the
    /// job is handed out with its first attempt.
    #[tokio::test]
    async fn a_claimer_dying_between_reserve_and_take_loses_nothing() {
        let env = TestGateway::start().await.expect("a gateway");
        let store = store(&env, "crash");
        let job = enqueue(&store, 1, 0).await;
        let reserved = store.reserve(&request(10, 1000), 1).await.expect("reserve");
        assert_eq!(reserved.len(), 1);
        // ... and the claimer is gone. Meanwhile the job is reserved, not claimable:
        assert!(
            store
                .claim(&request(500, 1000))
                .await
                .expect("claim")
                .is_empty()
        );
        let stats = store
            .queue_stats(Timestamp::from_millis(T0 + 500))
            .await
            .expect("stats");
        assert_eq!((stats.queued, stats.running), (0, 1));
        // Once the reservation runs out, the job is claimable again.
        let stats = store
            .queue_stats(Timestamp::from_millis(T0 + 1011))
            .await
            .expect("stats");
        assert_eq!((stats.queued, stats.running), (1, 0));
        let claimed = store.claim(&request(1011, 1000)).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].job.id, job.id);
        assert_eq!(
            claimed[0].job.attempts, 1,
            "the lost reservation was no attempt"
        );
        // The stale claimer waking up cannot take it.
        let late = store
            .take(&request(10, 1000), reserved)
            .await
            .expect("take");
        assert!(matches!(late[..], [Ok(Taken::NotClaimable)]));
        assert_eq!(
            store.get_job(&job.id).await.unwrap().unwrap().attempts,
            1,
            "unchanged by the stale take"
        );
    }

    /// Two claimers racing on the same expired lease: one gets it.
    #[tokio::test]
    async fn racing_takes_of_one_reservation_lease_once() {
        let env = TestGateway::start().await.expect("a gateway");
        let store = store(&env, "race");
        enqueue(&store, 2, 0).await;
        let reserved = store.reserve(&request(10, 1000), 1).await.expect("reserve");
        let req = request(10, 1000);
        let (a, b) = tokio::join!(
            store.take(&req, reserved.clone()),
            store.take(&req, reserved.clone())
        );
        let leased = a
            .unwrap()
            .into_iter()
            .chain(b.unwrap())
            .filter(|t| matches!(t, Ok(Taken::Leased { .. })))
            .count();
        assert_eq!(leased, 1);
    }
}
