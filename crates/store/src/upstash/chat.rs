//! Conversations and their messages: a chat submission (one script: rate
//! limits, ownership, the user's message and the chat job), reading and
//! deleting conversations, and what a completed chat job appends.

use flowchat_domain::model::{
    AnswerMode, ChatAnswer, Citation, Conversation, ConversationSummary, Job, JobPayload, Message,
    Role,
};
use flowchat_domain::{ConversationId, JobId, SessionId, Timestamp};
use flowchat_upstash::{Arg, Command, Value};
use serde::{Deserialize, Serialize};

use super::jobs::already_exists;
use super::rate_limits::rate_outcome;
use super::replies::{
    array, count, integer, optional_text, required_text, tagged, text, unexpected,
};
use super::{UpstashStore, scripts, store_error};
use crate::codec::{from_json, to_json, to_u32};
use crate::rate;
use crate::{ChatSubmission, ConversationTarget, StoreError, SubmitOutcome};

/// Extra time an owner's conversation index keeps ids past the conversation
/// TTL, for clock differences between callers and Redis.
const CONVERSATION_PRUNE_SLACK_MS: i64 = 24 * 60 * 60 * 1000;

/// A message as stored in a conversation's list.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredMessage {
    pub(super) role: Role,
    pub(super) content: String,
    #[serde(default)]
    pub(super) citations: Vec<Citation>,
    #[serde(default)]
    pub(super) job_id: Option<JobId>,
    /// Absent for questions and for answers stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<AnswerMode>,
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
            mode: self.mode,
            created_at: Timestamp::from_millis(self.created_at),
        }
    }
}

impl UpstashStore {
    /// The keys and arguments `complete.lua` takes after its own to append a
    /// chat job's answer as the assistant message of its conversation.
    pub(super) fn answer_append(
        &self,
        job: &JobId,
        answer: &ChatAnswer,
        session: &SessionId,
        conversation: &ConversationId,
        now: Timestamp,
    ) -> Result<(Vec<String>, Vec<Arg>), StoreError> {
        let keys = vec![
            self.keys.conversation(conversation.as_str()),
            self.keys.messages(conversation.as_str()),
            self.keys.owned_conversations(session.as_str()),
        ];
        let message = StoredMessage {
            role: Role::Assistant,
            content: answer.answer.clone(),
            citations: answer.citations.clone(),
            job_id: Some(job.clone()),
            mode: Some(answer.mode),
            created_at: now.as_millis(),
        };
        let args = vec![
            Arg::from(to_json(&message)?),
            Arg::from(self.conversation_ttl()),
            Arg::from(conversation.as_str()),
            Arg::from(session.as_str()),
        ];
        Ok((keys, args))
    }
}

/// One script, one request: rate checks (evaluated, then counted only if
/// the rest succeeds) → ownership check or conversation creation → user
/// message → job hash → `XADD`.
pub(super) async fn submit(
    store: &UpstashStore,
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
        mode: None,
        created_at: now.as_millis(),
    };
    let (rate_keys, rate_args) = store.rate_parts(&rate_checks, now);
    let mut keys = vec![
        store.keys.job(job_id.as_str()),
        store.keys.queue(),
        store.keys.conversation(conversation_id.as_str()),
        store.keys.messages(conversation_id.as_str()),
        store.keys.owned_conversations(session.as_str()),
    ];
    keys.extend(rate_keys);
    keys.push(store.keys.registry());
    let conversation_ttl = store.conversation_ttl();
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
        Arg::from(store.job_ttl()),
        Arg::from(conversation_ttl),
        Arg::from(conversation_id.as_str()),
        Arg::from(rate::MIN_RETRY_AFTER_MS),
        Arg::from(prune_before),
        Arg::from(rate_checks.len()),
    ];
    args.extend(rate_args);
    args.push(Arg::from(store.namespace()));
    let reply = store.eval(&scripts::SUBMIT_CHAT, keys, args, false).await?;
    let (status, mut parts) = tagged(reply, "submit")?;
    match status.as_str() {
        "ok" | "limited" => match rate_outcome(&mut parts, &status, &rate_checks, now)? {
            Ok(_) => Ok(SubmitOutcome::Accepted {
                job: Job::queued(job_id, Some(session), payload, now),
                conversation_id,
            }),
            Err(refused) => Ok(SubmitOutcome::RateLimited(refused)),
        },
        "not_found" => Ok(SubmitOutcome::ConversationNotFound),
        "job_exists" => Err(already_exists(&job_id)),
        other => Err(unexpected("submit", other)),
    }
}

/// Newest first (`updated_at`, then `created_at`, then id, all descending).
pub(super) async fn list(
    store: &UpstashStore,
    owner: &SessionId,
) -> Result<Vec<ConversationSummary>, StoreError> {
    let ids = store
        .client
        .cmd_read(
            Command::new("ZRANGE")
                .arg(store.keys.owned_conversations(owner.as_str()))
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
        commands.push(
            Command::new("HMGET")
                .arg(store.keys.conversation(id))
                .args(["owner", "title", "created_at", "updated_at"]),
        );
        commands.push(Command::new("LLEN").arg(store.keys.messages(id)));
    }
    let mut replies = store
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
pub(super) async fn get(
    store: &UpstashStore,
    id: &ConversationId,
) -> Result<Option<Conversation>, StoreError> {
    let replies = store
        .client
        .multi_exec_idempotent(vec![
            Command::new("HMGET")
                .arg(store.keys.conversation(id.as_str()))
                .args(["owner", "title", "created_at", "updated_at"]),
            Command::new("LRANGE")
                .arg(store.keys.messages(id.as_str()))
                .arg(0)
                .arg(-1),
            Command::new("HGETALL").arg(store.keys.feedback(id.as_str())),
        ])
        .await
        .map_err(store_error)?;
    let mut replies = replies.into_iter();
    let head = replies.next().unwrap_or(Ok(Value::Nil));
    let list = replies.next().unwrap_or(Ok(Value::Nil));
    let feedback = replies.next().unwrap_or(Ok(Value::Nil));
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
        feedback: super::feedback::from_hash(feedback.map_err(|e| store_error(e.into()))?)?,
    }))
}

/// Jobs that refer to the conversation stay readable.
pub(super) async fn delete(
    store: &UpstashStore,
    id: &ConversationId,
    owner: &SessionId,
) -> Result<bool, StoreError> {
    let reply = store
        .eval(
            &scripts::DELETE_CONVERSATION,
            vec![
                store.keys.conversation(id.as_str()),
                store.keys.messages(id.as_str()),
                store.keys.owned_conversations(owner.as_str()),
                store.keys.feedback(id.as_str()),
            ],
            vec![Arg::from(owner.as_str()), Arg::from(id.as_str())],
            // Not retried: a repeat after a success would answer `false`.
            false,
        )
        .await?;
    Ok(count(reply, "delete")? == 1)
}
