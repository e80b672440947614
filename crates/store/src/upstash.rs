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
//! | `P:session:<id>:conversations` | sorted set | the session's conversation ids by `updated_at`; same TTL |
//! | `P:rate:<key>:<window_ms>:<window_start>` | string | hits counted in one fixed window; expires two windows later |
//! | `P:heartbeats` | sorted set | worker → last heartbeat (ms) |
//! | `P:docs`, `P:docs:owner`, `P:docs:by-owner:<owner>` | hash, hash, set | catalog: id → record JSON, id → owner key, per-owner ids |
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
//!   its status in the stored JSON ([`FAILED_MARKER`]): Upstash's Lua has no
//!   JSON decoder.

mod scripts;

use std::time::Duration;

use flowchat_domain::model::{
    ChatAnswer, Citation, Conversation, ConversationSummary, DocumentOrigin, DocumentOwner,
    DocumentRecord, DocumentStatus, Job, JobKind, JobPayload, JobResult, JobStatus, Message, Role,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};
use flowchat_upstash::{Arg, Command, Script, UpstashClient, UpstashError, Value};
use serde::{Deserialize, Serialize};

use crate::codec::{base64, check_upload_part, corrupt, from_json, to_json, to_u32};
use crate::rate;
use crate::{
    ChatSubmission, ClaimRequest, ClaimedJob, Completion, ConversationTarget, DeadLetter,
    FailureOutcome, Heartbeat, NewJob, QueueStats, RateCheck, RateDecision, Store, StoreError,
    SubmitOutcome, UploadOutcome, UploadSubmission,
};

/// The consumer group of the job stream.
const GROUP: &str = "drain";

/// The most expired leases, and due retries, one claim looks at.
pub const SCAN_CAP: u32 = 1000;

/// The most claim rounds (reserve + take) one `claim` call makes.
const MAX_CLAIM_ROUNDS: usize = 4;

/// Heartbeats kept (most recent workers).
const HEARTBEATS_KEPT: i64 = 1000;

/// Extra time a rate counter lives past the window that still needs it.
const RATE_COUNTER_SLACK_MS: i64 = 1000;

/// Extra time an owner's conversation index keeps ids past the conversation
/// TTL, for clock differences between callers and Redis.
const CONVERSATION_PRUNE_SLACK_MS: i64 = 24 * 60 * 60 * 1000;

/// What a stored failed document's JSON holds, and no other record's JSON
/// does: serde writes [`StoredDocument`]'s fields in order, without spaces,
/// and escapes every quote inside a string, so this text can only be the
/// status field itself (a test pins it).
const FAILED_MARKER: &str = ",\"status\":\"failed\",";

/// The fields of a job hash read back as a [`Job`], in this order (also in `lua/lib.lua`).
const JOB_FIELDS: [&str; 11] = [
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
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
            .field("prefix", &self.keys.prefix)
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
            keys: Keys {
                prefix: format!("fc:{namespace}:"),
            },
            ttls,
        }
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
        &self.keys.prefix
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

    /// Keys and per-check arguments of rate checks, as the scripts take them.
    fn rate_parts(&self, checks: &[RateCheck], now: Timestamp) -> (Vec<String>, Vec<Arg>) {
        let mut keys = Vec::with_capacity(checks.len() * 2);
        let mut args = Vec::with_capacity(checks.len() * 5);
        for check in checks {
            let w = rate::windows(check.rule, now);
            keys.push(self.keys.rate(&check.key, w.window_ms, w.current_start));
            keys.push(self.keys.rate(&check.key, w.window_ms, w.previous_start));
            args.push(Arg::from(check.rule.limit));
            args.push(Arg::from(w.window_ms));
            args.push(Arg::from(w.current_start));
            args.push(Arg::from(w.current_end));
            // The current window's counter is read until the next window ends.
            let ttl = w.current_end.saturating_add(w.window_ms) - now.as_millis();
            args.push(Arg::from(ttl.saturating_add(RATE_COUNTER_SLACK_MS).max(1)));
        }
        (keys, args)
    }

    fn job_ttl(&self) -> i64 {
        millis(self.ttls.job)
    }

    fn conversation_ttl(&self) -> i64 {
        millis(self.ttls.conversation)
    }

    fn upload_ttl(&self) -> i64 {
        millis(self.ttls.upload)
    }

    fn upload_keys(&self, id: &DocumentId, parts: u32) -> Vec<String> {
        (0..parts)
            .map(|index| self.keys.upload(id.as_str(), index))
            .collect()
    }

    /// The arguments `enqueue_job` (lua/lib.lua) takes for `job`: id, kind,
    /// owner ('' for none), payload, now, job ttl ms.
    fn job_args(&self, job: &Job) -> Result<Vec<Arg>, StoreError> {
        Ok(vec![
            Arg::from(job.id.as_str()),
            Arg::from(job.kind.as_str()),
            Arg::from(job.owner.as_ref().map(SessionId::as_str).unwrap_or("")),
            Arg::from(to_json(&job.payload)?),
            Arg::from(job.created_at.as_millis()),
            Arg::from(self.job_ttl()),
        ])
    }

    /// Keys every queue-state script takes first: job, stream, leases, delayed,
    /// dead-letter stream, dead-letter index.
    fn queue_keys(&self, job: &JobId) -> Vec<String> {
        vec![
            self.keys.job(job.as_str()),
            self.keys.queue(),
            self.keys.leases(),
            self.keys.delayed(),
            self.keys.dead(),
            self.keys.dead_index(),
        ]
    }

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
                ],
            ));
        }
        let replies = self.eval_many(&scripts::TAKE, calls).await?;
        Ok(replies
            .into_iter()
            .zip(members)
            .map(|(reply, member)| {
                let mut parts = array(reply?, "take")?.into_iter();
                let status = text(parts.next().unwrap_or(Value::Nil), "take status")?;
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
            self.queue_keys(id),
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
            ],
            false,
        )
        .await
        .map(drop)
    }

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
            keys.push(self.keys.conversation(conversation.as_str()));
            keys.push(self.keys.messages(conversation.as_str()));
            keys.push(self.keys.owned_conversations(session.as_str()));
            let message = StoredMessage {
                role: Role::Assistant,
                content: answer.answer.clone(),
                citations: answer.citations.clone(),
                job_id: Some(id.clone()),
                created_at: now.as_millis(),
            };
            args.push(Arg::from(to_json(&message)?));
            args.push(Arg::from(self.conversation_ttl()));
            args.push(Arg::from(conversation.as_str()));
            args.push(Arg::from(session.as_str()));
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

/// Key names under one namespace.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }
    fn queue(&self) -> String {
        format!("{}queue", self.prefix)
    }
    fn leases(&self) -> String {
        format!("{}queue:leases", self.prefix)
    }
    fn delayed(&self) -> String {
        format!("{}queue:delayed", self.prefix)
    }
    fn lease_seq(&self) -> String {
        format!("{}queue:lease-seq", self.prefix)
    }
    fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }
    fn dead_index(&self) -> String {
        format!("{}dead:index", self.prefix)
    }
    fn conversation(&self, id: &str) -> String {
        format!("{}conv:{id}", self.prefix)
    }
    fn messages(&self, id: &str) -> String {
        format!("{}conv:{id}:messages", self.prefix)
    }
    fn owned_conversations(&self, session: &str) -> String {
        format!("{}session:{session}:conversations", self.prefix)
    }
    fn rate(&self, key: &str, window_ms: i64, window_start: i64) -> String {
        format!("{}rate:{key}:{window_ms}:{window_start}", self.prefix)
    }
    fn heartbeats(&self) -> String {
        format!("{}heartbeats", self.prefix)
    }
    fn documents(&self) -> String {
        format!("{}docs", self.prefix)
    }
    fn document_owners(&self) -> String {
        format!("{}docs:owner", self.prefix)
    }
    fn owned_documents(&self, owner_key: &str) -> String {
        format!("{}docs:by-owner:{owner_key}", self.prefix)
    }
    fn upload(&self, document: &str, index: u32) -> String {
        format!("{}upload:{document}:{index}", self.prefix)
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

fn unexpected(what: &str, detail: impl std::fmt::Debug) -> StoreError {
    StoreError::Backend(format!(
        "unexpected reply from the {what} script: {detail:?}"
    ))
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(what, other)),
    }
}

fn text(value: Value, what: &str) -> Result<String, StoreError> {
    match value {
        Value::Bytes(bytes) => {
            String::from_utf8(bytes).map_err(|_| corrupt(what, "not UTF-8 text"))
        }
        Value::Ok => Ok("OK".to_owned()),
        other => Err(unexpected(what, other)),
    }
}

/// A stored string that may be missing (`Nil`).
fn optional_text(value: Value, what: &str) -> Result<Option<String>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Bytes(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt(what, "not UTF-8 text")),
        Value::Int(n) => Ok(Some(n.to_string())),
        other => Err(corrupt(what, format!("unexpected {other:?}"))),
    }
}

fn required_text(value: Value, what: &str) -> Result<String, StoreError> {
    optional_text(value, what)?.ok_or_else(|| corrupt(what, "missing"))
}

fn integer(value: Value, what: &str) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(n),
        Value::Nil => Err(corrupt(what, "missing")),
        other => other
            .as_i64()
            .ok_or_else(|| corrupt(what, format!("not an integer: {other:?}"))),
    }
}

/// A reply integer that Redis computed (counts, remaining hits).
fn count(value: Value, what: &str) -> Result<u64, StoreError> {
    let n = value.as_i64().ok_or_else(|| unexpected(what, &value))?;
    u64::try_from(n).map_err(|_| unexpected(what, n))
}

/// A job from the values of [`JOB_FIELDS`], in order.
fn parse_job(fields: Vec<Value>) -> Result<Job, StoreError> {
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

/// A message as stored in a conversation's list.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMessage {
    role: Role,
    content: String,
    #[serde(default)]
    citations: Vec<Citation>,
    #[serde(default)]
    job_id: Option<JobId>,
    /// Milliseconds since the epoch.
    created_at: i64,
}

impl StoredMessage {
    fn into_message(self) -> Message {
        Message {
            role: self.role,
            content: self.content,
            citations: self.citations,
            job_id: self.job_id,
            created_at: Timestamp::from_millis(self.created_at),
        }
    }
}

/// A catalog entry as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDocument {
    id: DocumentId,
    name: String,
    /// `shared` or a session id.
    owner: String,
    size_bytes: u64,
    status: DocumentStatus,
    chunks: u32,
    #[serde(default)]
    error: Option<String>,
    /// Milliseconds since the epoch.
    updated_at: i64,
    /// This and `origin` come last: records written before they existed
    /// read the same, with none and from the folder (there were no uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pages: Option<u32>,
    #[serde(default)]
    origin: DocumentOrigin,
}

impl StoredDocument {
    fn from_record(record: &DocumentRecord) -> Self {
        StoredDocument {
            id: record.id.clone(),
            name: record.name.clone(),
            owner: record.owner.as_key().to_owned(),
            size_bytes: record.size_bytes,
            status: record.status,
            chunks: record.chunks,
            error: record.error.clone(),
            updated_at: record.updated_at.as_millis(),
            pages: record.pages,
            origin: record.origin,
        }
    }

    fn into_record(self) -> DocumentRecord {
        DocumentRecord {
            id: self.id,
            name: self.name,
            owner: DocumentOwner::from_key(&self.owner),
            size_bytes: self.size_bytes,
            status: self.status,
            chunks: self.chunks,
            pages: self.pages,
            origin: self.origin,
            error: self.error,
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }

    fn parse(raw: Value) -> Result<DocumentRecord, StoreError> {
        let raw = required_text(raw, "document")?;
        from_json::<StoredDocument>("document", &raw).map(StoredDocument::into_record)
    }
}

/// Reads a rate script's answer: `{'ok', remaining...}` or
/// `{'limited', index, retry_after_ms}`; `Err(refusal)` for a refusal.
fn rate_outcome(
    parts: &mut std::vec::IntoIter<Value>,
    status: &str,
    checks: &[RateCheck],
    now: Timestamp,
) -> Result<Result<RateDecision, RateDecision>, StoreError> {
    let decision = |check: &RateCheck, allowed, remaining, retry_after_ms| RateDecision {
        allowed,
        limit: check.rule.limit,
        remaining,
        reset_at: Timestamp::from_millis(rate::windows(check.rule, now).current_end),
        retry_after_ms,
    };
    match status {
        "ok" => {
            let mut decisions = Vec::with_capacity(checks.len());
            for check in checks {
                let remaining = count(parts.next().unwrap_or(Value::Nil), "remaining hits")?;
                decisions.push(decision(
                    check,
                    true,
                    u32::try_from(remaining).unwrap_or(u32::MAX),
                    0,
                ));
            }
            Ok(Ok(rate::combine(&decisions, now)))
        }
        "limited" => {
            let index = count(parts.next().unwrap_or(Value::Nil), "refusing check")?;
            let wait = count(parts.next().unwrap_or(Value::Nil), "retry after")?;
            let check = usize::try_from(index)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| checks.get(i))
                .ok_or_else(|| unexpected("rate", index))?;
            Ok(Err(decision(
                check,
                false,
                0,
                i64::try_from(wait).unwrap_or(i64::MAX),
            )))
        }
        other => Err(unexpected("rate", other)),
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Store for UpstashStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client.ping().await.map_err(store_error)
    }

    /// One script: every check evaluated with the [`rate`] arithmetic (in
    /// Lua), then all counted or none. No request at all without checks.
    async fn hit_rate_limits(
        &self,
        checks: &[RateCheck],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        if checks.is_empty() {
            return Ok(rate::combine(&[], now));
        }
        let (keys, rate_args) = self.rate_parts(checks, now);
        let mut args = vec![
            Arg::from(now.as_millis()),
            Arg::from(rate::MIN_RETRY_AFTER_MS),
            Arg::from(checks.len()),
        ];
        args.extend(rate_args);
        let reply = self
            .eval(&scripts::HIT_RATE_LIMITS, keys, args, false)
            .await?;
        let mut parts = array(reply, "rate")?.into_iter();
        let status = text(parts.next().unwrap_or(Value::Nil), "rate status")?;
        Ok(match rate_outcome(&mut parts, &status, checks, now)? {
            Ok(decision) | Err(decision) => decision,
        })
    }

    /// One script, one request: rate checks (evaluated, then counted only if
    /// the rest succeeds) → ownership check or conversation creation → user
    /// message → job hash → `XADD`.
    async fn submit_chat(&self, submission: ChatSubmission) -> Result<SubmitOutcome, StoreError> {
        let ChatSubmission {
            session,
            conversation,
            message,
            job_id,
            rate_checks,
            now,
        } = submission;
        let (conversation_id, is_new, title) = match conversation {
            ConversationTarget::Existing(id) => (id, false, String::new()),
            ConversationTarget::New { id, title } => (id, true, title),
        };
        let payload = JobPayload::Chat {
            session_id: session.clone(),
            conversation_id: conversation_id.clone(),
            question: message.clone(),
        };
        let stored = StoredMessage {
            role: Role::User,
            content: message,
            citations: Vec::new(),
            job_id: Some(job_id.clone()),
            created_at: now.as_millis(),
        };
        let (rate_keys, rate_args) = self.rate_parts(&rate_checks, now);
        let mut keys = vec![
            self.keys.job(job_id.as_str()),
            self.keys.queue(),
            self.keys.conversation(conversation_id.as_str()),
            self.keys.messages(conversation_id.as_str()),
            self.keys.owned_conversations(session.as_str()),
        ];
        keys.extend(rate_keys);
        let conversation_ttl = self.conversation_ttl();
        let prune_before = now
            .as_millis()
            .saturating_sub(conversation_ttl)
            .saturating_sub(CONVERSATION_PRUNE_SLACK_MS);
        let mut args = vec![
            Arg::from(now.as_millis()),
            Arg::from(job_id.as_str()),
            Arg::from(session.as_str()),
            Arg::from(to_json(&payload)?),
            Arg::from(to_json(&stored)?),
            Arg::from(if is_new { "1" } else { "0" }),
            Arg::from(title),
            Arg::from(self.job_ttl()),
            Arg::from(conversation_ttl),
            Arg::from(conversation_id.as_str()),
            Arg::from(rate::MIN_RETRY_AFTER_MS),
            Arg::from(prune_before),
            Arg::from(rate_checks.len()),
        ];
        args.extend(rate_args);
        let reply = self.eval(&scripts::SUBMIT_CHAT, keys, args, false).await?;
        let mut parts = array(reply, "submit")?.into_iter();
        let status = text(parts.next().unwrap_or(Value::Nil), "submit status")?;
        match status.as_str() {
            "ok" | "limited" => match rate_outcome(&mut parts, &status, &rate_checks, now)? {
                Ok(_) => Ok(SubmitOutcome::Accepted {
                    job: Job::queued(job_id, Some(session), payload, now),
                    conversation_id,
                }),
                Err(refused) => Ok(SubmitOutcome::RateLimited(refused)),
            },
            "not_found" => Ok(SubmitOutcome::ConversationNotFound),
            "job_exists" => Err(StoreError::Backend(format!("job {job_id} already exists"))),
            other => Err(unexpected("submit", other)),
        }
    }

    async fn enqueue(&self, job: NewJob) -> Result<Job, StoreError> {
        let NewJob {
            id,
            owner,
            payload,
            now,
        } = job;
        let job = Job::queued(id, owner, payload, now);
        let reply = self
            .eval(
                &scripts::ENQUEUE,
                vec![self.keys.job(job.id.as_str()), self.keys.queue()],
                self.job_args(&job)?,
                false,
            )
            .await?;
        let mut parts = array(reply, "enqueue")?.into_iter();
        match text(parts.next().unwrap_or(Value::Nil), "enqueue status")?.as_str() {
            "ok" => Ok(job),
            "job_exists" => Err(StoreError::Backend(format!(
                "job {} already exists",
                job.id
            ))),
            other => Err(unexpected("enqueue", other)),
        }
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let reply = self
            .client
            .cmd_read(
                Command::new("HMGET")
                    .arg(self.keys.job(id.as_str()))
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

    /// Newest first (`updated_at`, then `created_at`, then id, all descending).
    async fn list_conversations(
        &self,
        owner: &SessionId,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let ids = self
            .client
            .cmd_read(
                Command::new("ZRANGE")
                    .arg(self.keys.owned_conversations(owner.as_str()))
                    .arg(0)
                    .arg(-1),
            )
            .await
            .map_err(store_error)?;
        let ids = array(ids, "ZRANGE")?
            .into_iter()
            .map(|v| text(v, "conversation id"))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut commands = Vec::with_capacity(ids.len() * 2);
        for id in &ids {
            commands.push(Command::new("HMGET").arg(self.keys.conversation(id)).args([
                "owner",
                "title",
                "created_at",
                "updated_at",
            ]));
            commands.push(Command::new("LLEN").arg(self.keys.messages(id)));
        }
        let mut replies = self
            .client
            .pipeline_idempotent(commands)
            .await
            .map_err(store_error)?
            .into_iter();
        let mut summaries = Vec::with_capacity(ids.len());
        for id in ids {
            let head = replies.next().unwrap_or(Ok(Value::Nil));
            let len = replies.next().unwrap_or(Ok(Value::Nil));
            let mut head = array(head.map_err(|e| store_error(e.into()))?, "HMGET")?.into_iter();
            let len = len.map_err(|e| store_error(e.into()))?;
            let Some(stored_owner) =
                optional_text(head.next().unwrap_or(Value::Nil), "conversation owner")?
            else {
                continue; // expired or deleted meanwhile
            };
            if stored_owner != owner.as_str() {
                continue;
            }
            let title = required_text(head.next().unwrap_or(Value::Nil), "conversation title")?;
            let created_at = integer(head.next().unwrap_or(Value::Nil), "conversation created_at")?;
            let updated_at = integer(head.next().unwrap_or(Value::Nil), "conversation updated_at")?;
            let messages = integer(len, "message count")?;
            summaries.push(ConversationSummary {
                id: ConversationId::from_trusted(id),
                title,
                message_count: to_u32("message count", messages)?,
                created_at: Timestamp::from_millis(created_at),
                updated_at: Timestamp::from_millis(updated_at),
            });
        }
        summaries.sort_by(|a, b| {
            (b.updated_at, b.created_at, &b.id).cmp(&(a.updated_at, a.created_at, &a.id))
        });
        Ok(summaries)
    }

    /// One MULTI/EXEC: the conversation and its messages from one moment.
    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let replies = self
            .client
            .multi_exec_idempotent(vec![
                Command::new("HMGET")
                    .arg(self.keys.conversation(id.as_str()))
                    .args(["owner", "title", "created_at", "updated_at"]),
                Command::new("LRANGE")
                    .arg(self.keys.messages(id.as_str()))
                    .arg(0)
                    .arg(-1),
            ])
            .await
            .map_err(store_error)?;
        let mut replies = replies.into_iter();
        let head = replies.next().unwrap_or(Ok(Value::Nil));
        let list = replies.next().unwrap_or(Ok(Value::Nil));
        let mut head = array(head.map_err(|e| store_error(e.into()))?, "HMGET")?.into_iter();
        let Some(owner) = optional_text(head.next().unwrap_or(Value::Nil), "conversation owner")?
        else {
            return Ok(None);
        };
        let title = required_text(head.next().unwrap_or(Value::Nil), "conversation title")?;
        let created_at = integer(head.next().unwrap_or(Value::Nil), "conversation created_at")?;
        let updated_at = integer(head.next().unwrap_or(Value::Nil), "conversation updated_at")?;
        let messages = array(list.map_err(|e| store_error(e.into()))?, "LRANGE")?
            .into_iter()
            .map(|raw| {
                let raw = required_text(raw, "message")?;
                from_json::<StoredMessage>("message", &raw).map(StoredMessage::into_message)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Conversation {
            id: id.clone(),
            owner: SessionId::from_trusted(owner),
            title,
            created_at: Timestamp::from_millis(created_at),
            updated_at: Timestamp::from_millis(updated_at),
            messages,
        }))
    }

    /// Jobs that refer to the conversation stay readable.
    async fn delete_conversation(
        &self,
        id: &ConversationId,
        owner: &SessionId,
    ) -> Result<bool, StoreError> {
        let reply = self
            .eval(
                &scripts::DELETE_CONVERSATION,
                vec![
                    self.keys.conversation(id.as_str()),
                    self.keys.messages(id.as_str()),
                    self.keys.owned_conversations(owner.as_str()),
                ],
                vec![Arg::from(owner.as_str()), Arg::from(id.as_str())],
                // Not retried: a repeat after a success would answer `false`.
                false,
            )
            .await?;
        Ok(count(reply, "delete")? == 1)
    }

    /// Two round trips (reserve, then take each candidate); see the module
    /// documentation. A job whose lease expired after `max_attempts` claims
    /// is failed and dead-lettered instead of being handed out again.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut claimed = Vec::new();
        let mut failure = None;
        for _ in 0..MAX_CLAIM_ROUNDS {
            let wanted = request
                .max_jobs
                .saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
            if wanted == 0 {
                break;
            }
            let members = match self.reserve(request, wanted).await {
                Ok(members) => members,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if members.is_empty() {
                break;
            }
            let taken = match self.take(request, members).await {
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
                        if let Err(e) = self
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

    /// Accepted from any claim of the job, even an expired one. The status
    /// check and the message append are one script, so one assistant message
    /// however many completions race. A deleted conversation gets no message.
    async fn complete_chat(
        &self,
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
                self.complete(
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
            | JobPayload::DeleteDocument { .. } => self.complete(claim, &result, None, now).await,
        }
    }

    async fn complete_job(
        &self,
        claim: &ClaimedJob,
        result: &JobResult,
        now: Timestamp,
    ) -> Result<Completion, StoreError> {
        self.complete(claim, result, None, now).await
    }

    /// One script, from the current lease holder only: `partial`,
    /// `updated_at` and the lease (hash and lease index) in one step.
    async fn record_progress(
        &self,
        claim: &ClaimedJob,
        partial: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = &claim.job.id;
        let reply = self
            .eval(
                &scripts::PROGRESS,
                vec![self.keys.job(id.as_str()), self.keys.leases()],
                vec![
                    Arg::from(id.as_str()),
                    Arg::from(&claim.lease_id),
                    Arg::from(partial),
                    Arg::from(lease_until.as_millis()),
                    Arg::from(now.as_millis()),
                    Arg::from(self.job_ttl()),
                ],
                // Safe to repeat: the same fields set to the same values.
                true,
            )
            .await?;
        Ok(count(reply, "progress")? == 1)
    }

    /// Only the current lease holder of a running job may fail it.
    async fn fail_job(
        &self,
        claim: &ClaimedJob,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        let id = &claim.job.id;
        let reply = self
            .eval(
                &scripts::FAIL,
                self.queue_keys(id),
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
                    Arg::from(self.job_ttl()),
                    Arg::from("1"),
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

    async fn release(&self, claim: &ClaimedJob, now: Timestamp) -> Result<bool, StoreError> {
        let id = &claim.job.id;
        let reply = self
            .eval(
                &scripts::RELEASE,
                vec![
                    self.keys.job(id.as_str()),
                    self.keys.queue(),
                    self.keys.leases(),
                    self.keys.delayed(),
                ],
                vec![
                    Arg::from(id.as_str()),
                    Arg::from(&claim.lease_id),
                    Arg::from(now.as_millis()),
                    Arg::from(GROUP),
                    Arg::from(self.job_ttl()),
                ],
                false,
            )
            .await?;
        Ok(count(reply, "release")? == 1)
    }

    /// Newest recorded first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .eval(
                &scripts::DEAD_LETTERS,
                vec![self.keys.dead()],
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
                    kind: JobKind::parse(&kind).ok_or_else(|| {
                        corrupt("dead letter kind", format!("unknown kind {kind:?}"))
                    })?,
                    attempts: to_u32("dead letter attempts", attempts)?,
                    error,
                    failed_at: Timestamp::from_millis(failed_at),
                })
            })
            .collect()
    }

    /// The job goes back to `queued`, due now and ahead of newer jobs, with 0
    /// attempts and no error.
    async fn replay_dead_letter(&self, id: &JobId, now: Timestamp) -> Result<bool, StoreError> {
        let reply = self
            .eval(
                &scripts::REPLAY,
                vec![
                    self.keys.job(id.as_str()),
                    self.keys.leases(),
                    self.keys.delayed(),
                    self.keys.dead(),
                    self.keys.dead_index(),
                ],
                vec![
                    Arg::from(id.as_str()),
                    Arg::from(now.as_millis()),
                    Arg::from(self.job_ttl()),
                ],
                false,
            )
            .await?;
        Ok(count(reply, "replay")? == 1)
    }

    /// `queued` = undelivered stream entries + expired leases + due retries;
    /// `delayed` = retries not yet due; `running` = leases not yet expired.
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        let reply = self
            .eval(
                &scripts::QUEUE_STATS,
                vec![
                    self.keys.queue(),
                    self.keys.leases(),
                    self.keys.delayed(),
                    self.keys.dead_index(),
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

    async fn record_heartbeat(&self, worker: &str, now: Timestamp) -> Result<(), StoreError> {
        let key = self.keys.heartbeats();
        let replies = self
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

    async fn last_heartbeat(&self) -> Result<Option<Heartbeat>, StoreError> {
        let reply = self
            .client
            .cmd_read(
                Command::new("ZRANGE")
                    .arg(self.keys.heartbeats())
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

    async fn upsert_document(&self, record: &DocumentRecord) -> Result<(), StoreError> {
        let owner = record.owner.as_key();
        self.eval(
            &scripts::UPSERT_DOCUMENT,
            vec![
                self.keys.documents(),
                self.keys.document_owners(),
                self.keys.owned_documents(owner),
            ],
            vec![
                Arg::from(record.id.as_str()),
                Arg::from(to_json(&StoredDocument::from_record(record))?),
                Arg::from(owner),
            ],
            true,
        )
        .await
        .map(drop)
    }

    async fn remove_document(&self, id: &DocumentId) -> Result<bool, StoreError> {
        let reply = self
            .eval(
                &scripts::REMOVE_DOCUMENT,
                vec![self.keys.documents(), self.keys.document_owners()],
                vec![Arg::from(id.as_str())],
                // Not retried: a repeat after a success would answer `false`.
                false,
            )
            .await?;
        Ok(count(reply, "remove document")? == 1)
    }

    /// By name, then id.
    async fn list_documents(
        &self,
        viewer: Option<&SessionId>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        let shared = DocumentOwner::Shared;
        let mut owners = vec![shared.as_key()];
        if let Some(viewer) = viewer {
            owners.push(viewer.as_str());
        }
        let mut keys = vec![self.keys.documents(), self.keys.document_owners()];
        keys.extend(owners.iter().map(|o| self.keys.owned_documents(o)));
        let reply = self
            .eval(
                &scripts::LIST_DOCUMENTS,
                keys,
                owners.iter().map(|o| Arg::from(*o)).collect(),
                true,
            )
            .await?;
        let mut records = array(reply, "list documents")?
            .into_iter()
            .map(StoredDocument::parse)
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(records)
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Option<DocumentRecord>, StoreError> {
        let reply = self
            .client
            .cmd_read(
                Command::new("HGET")
                    .arg(self.keys.documents())
                    .arg(id.as_str()),
            )
            .await
            .map_err(store_error)?;
        if reply.is_nil() {
            return Ok(None);
        }
        StoredDocument::parse(reply).map(Some)
    }

    /// `SET ... PX`, base64-encoded; the TTL runs from this write, by
    /// Redis's clock (`now` is not needed).
    async fn put_upload_part(
        &self,
        id: &DocumentId,
        index: u32,
        bytes: &[u8],
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        check_upload_part(index, bytes)?;
        self.client
            .cmd_read(
                Command::new("SET")
                    .arg(self.keys.upload(id.as_str(), index))
                    .arg(base64::encode(bytes))
                    .arg("PX")
                    .arg(self.upload_ttl()),
            )
            .await
            .map_err(store_error)
            .map(drop)
    }

    /// One `MGET` of every part.
    async fn get_upload(&self, id: &DocumentId, parts: u32) -> Result<Option<Vec<u8>>, StoreError> {
        if parts == 0 {
            return Ok(Some(Vec::new()));
        }
        let reply = self
            .client
            .cmd_read(Command::new("MGET").args(self.upload_keys(id, parts)))
            .await
            .map_err(store_error)?;
        let values = array(reply, "MGET")?;
        if values.len() != self.upload_keys(id, parts).len() {
            return Err(unexpected("MGET", format!("{} values", values.len())));
        }
        let mut joined = Vec::new();
        for value in values {
            match value {
                Value::Nil => return Ok(None),
                Value::Bytes(text) => joined.extend(
                    base64::decode(&text).ok_or_else(|| corrupt("upload part", "not base64"))?,
                ),
                other => return Err(corrupt("upload part", format!("unexpected {other:?}"))),
            }
        }
        Ok(Some(joined))
    }

    async fn delete_upload(&self, id: &DocumentId, parts: u32) -> Result<(), StoreError> {
        if parts == 0 {
            return Ok(());
        }
        self.client
            .cmd_read(Command::new("DEL").args(self.upload_keys(id, parts)))
            .await
            .map_err(store_error)
            .map(drop)
    }

    /// One script, one request: duplicate check → rate checks (the same
    /// Lua as `submit_chat`, counted only when accepted) → pending record
    /// (with the owner's index, as `upsert_document`) → job hash → `XADD`.
    async fn submit_upload(&self, upload: UploadSubmission) -> Result<UploadOutcome, StoreError> {
        let UploadSubmission {
            record,
            job,
            rate_checks,
        } = upload;
        let now = job.now;
        let job = Job::queued(job.id, job.owner, job.payload, now);
        let owner = record.owner.as_key();
        let (rate_keys, rate_args) = self.rate_parts(&rate_checks, now);
        let mut keys = vec![
            self.keys.documents(),
            self.keys.document_owners(),
            self.keys.owned_documents(owner),
            self.keys.job(job.id.as_str()),
            self.keys.queue(),
        ];
        keys.extend(rate_keys);
        let mut args = vec![
            Arg::from(record.id.as_str()),
            Arg::from(to_json(&StoredDocument::from_record(&record))?),
            Arg::from(owner),
            Arg::from(FAILED_MARKER),
        ];
        args.extend(self.job_args(&job)?);
        args.extend([
            Arg::from(rate::MIN_RETRY_AFTER_MS),
            Arg::from(rate_checks.len()),
        ]);
        args.extend(rate_args);
        let reply = self
            .eval(&scripts::SUBMIT_UPLOAD, keys, args, false)
            .await?;
        let mut parts = array(reply, "submit upload")?.into_iter();
        let status = text(parts.next().unwrap_or(Value::Nil), "submit upload status")?;
        match status.as_str() {
            "ok" | "limited" => match rate_outcome(&mut parts, &status, &rate_checks, now)? {
                Ok(_) => Ok(UploadOutcome::Accepted { job, record }),
                Err(refused) => Ok(UploadOutcome::RateLimited(refused)),
            },
            "exists" => Ok(UploadOutcome::Existing(StoredDocument::parse(
                parts.next().unwrap_or(Value::Nil),
            )?)),
            "job_exists" => Err(StoreError::Backend(format!(
                "job {} already exists",
                job.id
            ))),
            other => Err(unexpected("submit upload", other)),
        }
    }

    /// One script: the record and its owner entry go, the job is queued.
    async fn delete_document(&self, id: &DocumentId, job: NewJob) -> Result<bool, StoreError> {
        let job = Job::queued(job.id, job.owner, job.payload, job.now);
        let mut args = vec![Arg::from(id.as_str())];
        args.extend(self.job_args(&job)?);
        let reply = self
            .eval(
                &scripts::DELETE_DOCUMENT,
                vec![
                    self.keys.documents(),
                    self.keys.document_owners(),
                    self.keys.job(job.id.as_str()),
                    self.keys.queue(),
                ],
                args,
                // Not retried: a repeat after a success would answer `false`.
                false,
            )
            .await?;
        match text(reply, "delete document")?.as_str() {
            "ok" => Ok(true),
            "missing" => Ok(false),
            "job_exists" => Err(StoreError::Backend(format!(
                "job {} already exists",
                job.id
            ))),
            other => Err(unexpected("delete document", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flowchat_gateway::testing::TestGateway;
    use flowchat_upstash::{ReqwestTransport, Token, UpstashConfig};

    use super::*;
    use crate::RateRule;

    const T0: i64 = 1_800_000_000_000;

    fn store(env: &TestGateway, namespace: &str) -> UpstashStore {
        let transport = ReqwestTransport::new().expect("an HTTP client");
        let client = UpstashClient::new(
            UpstashConfig::new(env.url(), Token::new(env.token())),
            Arc::new(transport),
        );
        UpstashStore::new(client, namespace, Ttls::default())
    }

    /// A small deterministic generator (64-bit LCG) for probe inputs.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n.max(1)
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[usize::try_from(self.below(items.len() as u64)).unwrap()]
        }
    }

    /// The Lua decision equals `rate::decide` on every input tried: limits
    /// from 0 to a million, windows from 1 ms to a day, counts around and
    /// far beyond the limit, and instants all over the window.
    #[tokio::test]
    async fn lua_rate_arithmetic_matches_rust() {
        let env = TestGateway::start().await.expect("a gateway");
        let store = store(&env, "rate-probe");
        let mut rng = Lcg(42);
        let mut cases = Vec::new();
        for _ in 0..3000 {
            let window = rng.pick(&[1, 2, 7, 1000, 9_999, 10_000, 60_000, 3_600_000, 86_400_000]);
            let limit: u32 = rng.pick(&[0, 1, 2, 3, 5, 10, 60, 999, 1_000_000]);
            let near = u64::from(limit);
            let mut count = || match rng.below(4) {
                0 => 0,
                1 => near.saturating_sub(rng.below(3)),
                2 => near + rng.below(3),
                _ => rng.below(near * 3 + 5),
            };
            let (current, previous) = (count(), count());
            let offset = i64::try_from(rng.below(u64::try_from(window).unwrap() * 3)).unwrap();
            let now = Timestamp::from_millis(T0 + offset - window);
            cases.push((
                RateRule {
                    limit,
                    window_ms: window,
                },
                now,
                current,
                previous,
            ));
        }
        for chunk in cases.chunks(500) {
            let calls = chunk
                .iter()
                .map(|(rule, now, current, previous)| {
                    let w = rate::windows(*rule, *now);
                    (
                        Vec::new(),
                        vec![
                            Arg::from(rule.limit),
                            Arg::from(w.window_ms),
                            Arg::from(now.as_millis()),
                            Arg::from(w.current_start),
                            Arg::from(w.current_end),
                            Arg::from(*current),
                            Arg::from(*previous),
                            Arg::from(rate::MIN_RETRY_AFTER_MS),
                        ],
                    )
                })
                .collect();
            let replies = store
                .eval_many(&scripts::RATE_PROBE, calls)
                .await
                .expect("probe");
            for ((rule, now, current, previous), reply) in chunk.iter().zip(replies) {
                let parts = array(reply.expect("probe reply"), "probe").unwrap();
                let got: Vec<i64> = parts.iter().map(|v| v.as_i64().unwrap()).collect();
                let want = rate::decide(*rule, *now, *current, *previous);
                assert_eq!(
                    got,
                    vec![
                        i64::from(want.allowed),
                        i64::from(want.remaining),
                        want.retry_after_ms
                    ],
                    "rule {rule:?} at {} with current {current}, previous {previous}",
                    now.as_millis() - T0
                );
            }
        }
    }

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
    fn lua_reads_jobs_with_the_same_fields() {
        let lib = include_str!("upstash/lua/lib.lua");
        let quoted: Vec<String> = JOB_FIELDS.iter().map(|f| format!("'{f}'")).collect();
        let table = lib
            .split("local JOB_FIELDS = {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("JOB_FIELDS in lib.lua");
        let lua: Vec<&str> = table.split(',').map(str::trim).collect();
        assert_eq!(lua, quoted);
    }

    /// The marker `submit_upload.lua` looks for is in a failed record's JSON
    /// and in no other record's, whatever its text fields hold.
    #[test]
    fn the_failed_marker_matches_failed_records_only() {
        let tricky = format!("x{FAILED_MARKER}y\\\"{FAILED_MARKER}");
        for status in [
            DocumentStatus::Pending,
            DocumentStatus::Indexed,
            DocumentStatus::Failed,
        ] {
            for (pages, origin) in [
                (None, DocumentOrigin::Folder),
                (Some(3), DocumentOrigin::Upload),
            ] {
                let record = DocumentRecord {
                    id: DocumentId::for_content(b"marker"),
                    name: tricky.clone(),
                    owner: DocumentOwner::Session(SessionId::from_trusted(&tricky)),
                    size_bytes: 10,
                    status,
                    chunks: 2,
                    pages,
                    origin,
                    error: Some(tricky.clone()),
                    updated_at: Timestamp::from_millis(T0),
                };
                let json = to_json(&StoredDocument::from_record(&record)).unwrap();
                assert_eq!(
                    json.matches(FAILED_MARKER).count(),
                    usize::from(status == DocumentStatus::Failed),
                    "{json}"
                );
                let back = from_json::<StoredDocument>("document", &json)
                    .unwrap()
                    .into_record();
                assert_eq!(back, record);
            }
        }
        // A record stored before `pages` and `origin` existed reads with
        // none, from the folder.
        let old = r#"{"id":"2cf24dba5fb0a30e26e83b2ac5b9e29e","name":"a","owner":"shared","size_bytes":1,"status":"indexed","chunks":1,"error":null,"updated_at":5}"#;
        let record = from_json::<StoredDocument>("document", old)
            .unwrap()
            .into_record();
        assert_eq!(record.pages, None);
        assert_eq!(record.origin, DocumentOrigin::Folder);
    }

    #[test]
    fn ttls_default_to_the_issue() {
        let ttls = Ttls::default();
        assert_eq!(ttls.job, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(ttls.conversation, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(ttls.upload, Duration::from_secs(24 * 3600));
    }
}
