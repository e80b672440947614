//! The serverless back end: Redis over the Upstash REST protocol, through
//! [`flowchat_upstash::UpstashClient`]. Portable: builds for wasm32 (no
//! clock, no randomness, no tokio here; every time is the caller's `now`).
//!
//! # Keys
//!
//! Every key starts with `fc:<namespace>:` (written `P:` below).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:job:<id>` | hash | the job (`id kind status owner payload attempts result error created_at updated_at partial`), its queue state (`available_at seq sid lease_id lease_until worker`); TTL [`Ttls::job`], renewed on every change |
//! | `P:queue` | stream | one entry `job=<id>` per job not yet delivered, or delivered on its first attempt and not finished; consumer group `drain`, consumers are the claiming workers |
//! | `P:queue:leases` | sorted set | running jobs (and claims in progress), scored by `lease_until` |
//! | `P:queue:delayed` | sorted set | queued jobs that were delivered before (retries, releases, replays), scored by `available_at` |
//! | `P:queue:lease-seq` | string | counter behind lease ids |
//! | `P:dead` | stream | dead letters: `job kind attempts error failed_at` |
//! | `P:dead:index` | hash | job id → its dead letter's entry id |
//! | `P:conv:<id>` | hash | `owner title created_at updated_at`; TTL [`Ttls::conversation`], renewed on activity |
//! | `P:conv:<id>:messages` | list | one JSON object per message, in order; same TTL |
//! | `P:conv:<id>:feedback` | hash | job id → the feedback on that answer (JSON, with its question, answer and citations); TTL [`Ttls::conversation`] from the feedback, deleted with the conversation |
//! | `P:feedback:recent` | sorted set | `<conversation id> <job id>` of feedback by time (ms); pruned past the conversation TTL |
//! | `P:session:<id>:conversations` | sorted set | the session's conversation ids by `updated_at`; same TTL |
//! | `P:rate:<key>:<window_ms>:<window_start>` | string | hits counted in one fixed window; expires two windows later |
//! | `P:heartbeats` | sorted set | worker → last heartbeat (ms) |
//! | `P:docs`, `P:docs:owner`, `P:docs:by-owner:<owner>` | hash, hash, set | catalog: id → record JSON, id → owner key, per-owner ids |
//! | `P:docs:session-ends` | sorted set | sessions owning private documents, scored by when their token expires (ms): what the clean-up of ended sessions reads |
//! | `fc:namespaces` | set | outside every namespace: the namespaces with queued work, added by every script that queues a job and dropped by [`UpstashStore::forget_namespace_if_idle`]; drains that serve every namespace read it |
//! | `P:upload:<document id>:<index>` | string | part `index` of an upload's bytes, base64 (arguments must be UTF-8 text); TTL [`Ttls::upload`] from when it was stored |
//!
//! Members of the two queue sorted sets are `<seq>|<job id>`, where `seq` is
//! the id of the job's first stream entry: its place in arrival order.
//!
//! # The queue
//!
//! Enqueueing writes the job hash and `XADD`s the entry. A claim is two round
//! trips:
//!
//! 1. `reserve.lua` (stream, leases, delayed) picks up to `max_jobs`
//!    candidates — leases expired per the caller's `now` and due retries,
//!    oldest first by `seq`, then new entries read with non-blocking
//!    `XREADGROUP ... COUNT n ... >` — and reserves each by scoring it
//!    `now + lease_ms` in the lease index, so a racing claimer picks others.
//!    Every job in the two sorted sets was delivered before any entry still
//!    undelivered, so this is exactly the oldest-first order of the sqlite
//!    back end.
//! 2. `take.lua`, once per candidate (one pipeline), atomically checks the
//!    job hash against `now` — queued and due, or running with an expired
//!    lease — and leases it: `attempts + 1`, a new `lease_id`, `lease_until`;
//!    its stream entry (if it still has one) is `XCLAIM`ed to the claimer.
//!    A job found expired after `max_attempts` is failed and dead-lettered
//!    here, as in sqlite; anything else (finished, validly leased, gone) only
//!    has its index entries put right.
//!
//! A claimer that dies between the two steps leaves reservations that expire
//! like leases, so nothing is lost. Streams never decide by their own idle
//! times: leases are in the job hash and the lease index, judged by `now`.
//!
//! Completion, failure, release and dead-lettering `XACK` and `XDEL` the
//! job's stream entry, so the stream holds only undelivered and in-flight
//! entries and never grows with history. A retry, a release and a replay put
//! the job in the delayed set (not back in the stream: a new entry would go
//! behind newer jobs), from which claims take it when due.
//!
//! `record_progress` (`progress.lua`), from the current lease holder only,
//! stores the streamed text in the job's `partial` field and moves the lease
//! — the hash's `lease_until` and the job's score in the lease index, the two
//! things claims judge expiry by — to the new time. Every end of an attempt
//! (completion, failure, release, dead-lettering, a new lease by `take.lua`)
//! deletes `partial`.
//!
//! # Scripts and round trips
//!
//! Every script starts with `#!lua flags=allow-key-locking` and gets every
//! key it touches in `KEYS` (see `scripts.rs`). One request each: `ping`,
//! `hit_rate_limits`, `submit_chat`, `enqueue`, `get_job`, `get_conversation`
//! (MULTI/EXEC), `delete_conversation`, `complete_*`, `fail_job`, `release`,
//! `record_progress`, `dead_letters`, `replay_dead_letter`, `queue_stats`, heartbeats, catalog
//! calls (`submit_upload` and `delete_document` included), and each upload
//! call: `put_upload_part` (`SET ... PX`), `get_upload` (one `MGET` of every
//! part), `delete_upload` (one `DEL`). `list_conversations`: two (ids, then one pipeline of records).
//! `record_feedback`: three (the session's conversation ids, one pipeline of
//! their messages to find the answer, then one script that checks ownership
//! and the answer again and writes). `list_feedback`: two per page of the
//! recent-feedback index (members, then one pipeline of records).
//! `claim`: one when nothing is claimable, else two (more only when a
//! candidate turned out not claimable and the batch is not full). Scripts go
//! as `EVALSHA`; the first use on a fresh Redis costs one more request
//! (`NOSCRIPT`, then `EVAL`) unless [`UpstashStore::load_scripts`] ran.
//!
//! Stock Redis refuses the `allow-key-locking` flag (`Unexpected flag in
//! script shebang`); the local gateway (`flowchat-gateway`) emulates it, so
//! the store talks to the gateway exactly as it talks to Upstash. A REST
//! proxy that passes scripts to stock Redis unchanged (SRH) cannot run them.
//!
//! # Differences from sqlite
//!
//! - Dead letters are listed newest *recorded* first (stream order), which is
//!   `failed_at` order unless drains disagree about the time.
//! - A claim looks at no more than [`SCAN_CAP`] expired leases and as many
//!   due retries at once (the earliest-expired and earliest-due ones).
//! - Lease ids come from a counter in Redis: unique per namespace, not secret.
//! - Records expire ([`Ttls`]); a claim that meets an expired job drops its
//!   queue entries.
//! - `submit_upload` recognises a failed catalog record by the exact text of
//!   its status in the stored JSON (`FAILED_MARKER` in `catalog`): Upstash's
//!   Lua has no JSON decoder.
//!
//! # Modules
//!
//! This one holds the client, the TTLs and the script calls, and hands each
//! [`Store`] call to the module of its concern:
//!
//! - `keys`: the key names of the table above;
//! - `replies`: reading what Redis answers;
//! - `jobs`: job hashes, written and read back;
//! - `claims`: reserve and take (see "The queue");
//! - `queue`: what follows a claim (progress, completion, failure and
//!   retry, release), queue counts and heartbeats;
//! - `dead_letters`: jobs out of attempts, listed and replayed;
//! - `chat`: conversations, messages and chat submissions;
//! - `catalog`: the document catalog;
//! - `uploads`: upload parts and upload submissions;
//! - `rate_limits`: rate counters, checked inside submissions too.
//!
//! The Lua is in `lua/`, one file per script plus `lib.lua`, assembled by
//! `scripts`.

mod catalog;
mod chat;
mod claims;
mod dead_letters;
mod feedback;
mod jobs;
mod keys;
mod queue;
mod rate_limits;
mod registry;
mod replies;
mod scripts;
mod uploads;

use std::time::Duration;

use flowchat_domain::model::{
    ChatAnswer, Conversation, ConversationSummary, DocumentRecord, Job, JobResult,
};
use flowchat_domain::{
    ConversationId, DocumentId, FeedbackComment, FeedbackRating, FeedbackView, JobId, SessionId,
    Timestamp,
};
use flowchat_upstash::{Arg, Command, Script, UpstashClient, UpstashError, Value};

pub use self::claims::SCAN_CAP;
use self::keys::Keys;
use crate::codec::duration_millis;
use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, Completion, DeadLetter, FailureOutcome,
    FeedbackOutcome, Heartbeat, NewJob, QueueStats, RateCheck, RateDecision, Store, StoreError,
    SubmitOutcome, UploadOutcome, UploadSubmission,
};

/// How long records live in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Job records, from their last change.
    pub job: Duration,
    /// Conversations and their messages, from their last activity.
    pub conversation: Duration,
    /// Upload blobs, until the drain ingests them.
    pub upload: Duration,
}

impl Default for Ttls {
    /// Jobs 7 days, idle conversations 90 days, upload blobs 24 hours.
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Ttls {
            job: Duration::from_secs(7 * DAY),
            conversation: Duration::from_secs(90 * DAY),
            upload: Duration::from_secs(DAY),
        }
    }
}

/// The Upstash store: one client and one namespace. Cheap to clone.
#[derive(Clone)]
pub struct UpstashStore {
    client: UpstashClient,
    namespace: String,
    keys: Keys,
    ttls: Ttls,
}

impl std::fmt::Debug for UpstashStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstashStore")
            .field("prefix", &self.keys.prefix())
            .field("ttls", &self.ttls)
            .finish_non_exhaustive()
    }
}

impl UpstashStore {
    /// A store on `client` whose keys all start with `fc:<namespace>:`.
    pub fn new(client: UpstashClient, namespace: &str, ttls: Ttls) -> Self {
        UpstashStore {
            client,
            namespace: namespace.to_owned(),
            keys: Keys::new(namespace),
            ttls,
        }
    }

    /// The store of another namespace over the same client.
    pub fn in_namespace(&self, namespace: &str) -> UpstashStore {
        UpstashStore::new(self.client.clone(), namespace, self.ttls)
    }

    /// The client in use (for request counting and diagnostics).
    pub fn client(&self) -> &UpstashClient {
        &self.client
    }

    /// The namespace given to [`UpstashStore::new`].
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The prefix of every key of this store, `fc:<namespace>:`.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Caches every script in Redis (`SCRIPT LOAD`, one request), so that no
    /// call pays the `NOSCRIPT` round trip later. Optional: call it at start-up.
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let commands = scripts::all()
            .iter()
            .map(|script| Command::new("SCRIPT").arg("LOAD").arg(script.source()))
            .collect();
        let replies = self
            .client
            .pipeline_idempotent(commands)
            .await
            .map_err(store_error)?;
        for reply in replies {
            reply.map_err(UpstashError::from).map_err(store_error)?;
        }
        Ok(())
    }

    async fn eval(
        &self,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<Arg>,
        idempotent: bool,
    ) -> Result<Value, StoreError> {
        let keys: Vec<Arg> = keys.into_iter().map(Arg::from).collect();
        self.client
            .eval(script, &keys, &args, idempotent)
            .await
            .map_err(store_error)
    }

    /// Runs a script once per `(keys, args)` in one pipeline: `EVALSHA`,
    /// then `EVAL` for the ones Redis did not know (`NOSCRIPT`). Each run is
    /// atomic; the pipeline is not. A run is sent again only after an answer
    /// proving it did not run.
    async fn eval_many(
        &self,
        script: &'static Script,
        calls: Vec<(Vec<String>, Vec<Arg>)>,
    ) -> Result<Vec<Result<Value, StoreError>>, StoreError> {
        let command = |head: Command, (keys, args): &(Vec<String>, Vec<Arg>)| {
            head.arg(keys.len()).args(keys).args(args)
        };
        let commands = calls
            .iter()
            .map(|call| command(Command::new("EVALSHA").arg(script.sha1()), call))
            .collect();
        let replies = self.client.pipeline(commands).await.map_err(store_error)?;
        let mut results: Vec<Option<Result<Value, StoreError>>> =
            (0..calls.len()).map(|_| None).collect();
        let mut unknown = Vec::new();
        for (i, reply) in replies.into_iter().enumerate().take(calls.len()) {
            match reply.map_err(UpstashError::from) {
                Err(e) if e.is_noscript() => unknown.push(i),
                other => results[i] = Some(other.map_err(store_error)),
            }
        }
        if !unknown.is_empty() {
            let commands = unknown
                .iter()
                .map(|&i| command(Command::new("EVAL").arg(script.source()), &calls[i]))
                .collect();
            let replies = self.client.pipeline(commands).await.map_err(store_error)?;
            for (i, reply) in unknown.into_iter().zip(replies) {
                results[i] = Some(reply.map_err(UpstashError::from).map_err(store_error));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("missing reply".to_owned()))))
            .collect())
    }

    fn job_ttl(&self) -> i64 {
        duration_millis(self.ttls.job)
    }

    fn conversation_ttl(&self) -> i64 {
        duration_millis(self.ttls.conversation)
    }

    fn upload_ttl(&self) -> i64 {
        duration_millis(self.ttls.upload)
    }
}

/// Maps a client error. Unreachable, timed out, throttled, or a Redis that
/// is loading or busy: the request may succeed later (503). Never carries
/// the token: the client's errors never do.
fn store_error(error: UpstashError) -> StoreError {
    match &error {
        UpstashError::Transport(_) | UpstashError::Timeout | UpstashError::Unauthorized => {
            StoreError::Unavailable(error.to_string())
        }
        UpstashError::Command(message)
            if ["BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"]
                .iter()
                .any(|code| message.starts_with(code)) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

/// Each call is its concern module's; the documentation of what this back
/// end does beyond the trait's is there.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Store for UpstashStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client.ping().await.map_err(store_error)
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

/// A store on the gateway of `env`, under `namespace`, for the modules' tests.
#[cfg(test)]
fn test_store(env: &flowchat_gateway::testing::TestGateway, namespace: &str) -> UpstashStore {
    let transport = flowchat_upstash::ReqwestTransport::new().expect("an HTTP client");
    let client = UpstashClient::new(
        flowchat_upstash::UpstashConfig::new(env.url(), flowchat_upstash::Token::new(env.token())),
        std::sync::Arc::new(transport),
    );
    UpstashStore::new(client, namespace, Ttls::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_what_the_api_needs() {
        assert!(matches!(
            store_error(UpstashError::Timeout),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(UpstashError::Transport("503".into())),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(UpstashError::Command(
                "BUSY Redis is busy running a script".into()
            )),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(UpstashError::Command("WRONGTYPE Operation".into())),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            store_error(UpstashError::Protocol("bad".into())),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn ttls_default_to_the_documented_values() {
        let ttls = Ttls::default();
        assert_eq!(ttls.job, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(ttls.conversation, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(ttls.upload, Duration::from_secs(24 * 3600));
    }
}
