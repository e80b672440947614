//! Feedback on answers. Recording reads the session's conversations to find
//! the answer (its question, text and citations are kept with the feedback),
//! then one script checks ownership and the answer again and writes. The
//! listing reads the recent-feedback index, then one pipeline of records.

use flowchat_domain::model::{Citation, Role};
use flowchat_domain::{
    ConversationId, Feedback, FeedbackComment, FeedbackRating, FeedbackView, JobId, SessionId,
    Timestamp,
};
use flowchat_upstash::{Arg, Command, Value};
use serde::{Deserialize, Serialize};

use super::chat::StoredMessage;
use super::replies::{array, optional_text, text, unexpected};
use super::{UpstashStore, scripts, store_error};
use crate::codec::{from_json, to_json};
use crate::{FeedbackOutcome, StoreError};

/// Extra time the recent-feedback index keeps members past the conversation
/// TTL, for clock differences between callers and Redis.
const PRUNE_SLACK_MS: i64 = 24 * 60 * 60 * 1000;

/// Feedback as stored in a conversation's feedback hash.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFeedback {
    session: SessionId,
    rating: FeedbackRating,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<FeedbackComment>,
    /// Milliseconds since the epoch.
    created_at: i64,
    question: String,
    answer: String,
    #[serde(default)]
    citations: Vec<Citation>,
}

/// A conversation's feedback hash (`HGETALL`: job id, JSON, …) as records.
pub(super) fn from_hash(value: Value) -> Result<Vec<Feedback>, StoreError> {
    let values = match value {
        Value::Nil => return Ok(Vec::new()),
        other => array(other, "HGETALL")?,
    };
    let mut values = values.into_iter();
    let mut records = Vec::new();
    while let (Some(job), Some(raw)) = (values.next(), values.next()) {
        let job = text(job, "feedback job id")?;
        let raw = text(raw, "feedback")?;
        let stored: StoredFeedback = from_json("feedback", &raw)?;
        records.push(Feedback {
            job_id: JobId::from_trusted(job),
            session: stored.session,
            rating: stored.rating,
            comment: stored.comment,
            created_at: Timestamp::from_millis(stored.created_at),
        });
    }
    Ok(records)
}

/// The answer of `job_id` in one of `session`'s conversations: the
/// conversation, the question and the answer.
async fn find_answer(
    store: &UpstashStore,
    session: &SessionId,
    job_id: &JobId,
) -> Result<Option<(String, String, StoredMessage)>, StoreError> {
    let ids = store
        .client
        .cmd_read(
            Command::new("ZRANGE")
                .arg(store.keys.owned_conversations(session.as_str()))
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
        return Ok(None);
    }
    let commands = ids
        .iter()
        .map(|id| {
            Command::new("LRANGE")
                .arg(store.keys.messages(id))
                .arg(0)
                .arg(-1)
        })
        .collect();
    let replies = store
        .client
        .pipeline_idempotent(commands)
        .await
        .map_err(store_error)?;
    for (id, reply) in ids.into_iter().zip(replies) {
        let list = array(reply.map_err(|e| store_error(e.into()))?, "LRANGE")?;
        let mut question = String::new();
        for raw in list {
            let raw = text(raw, "message")?;
            let message: StoredMessage = from_json("message", &raw)?;
            if message.job_id.as_ref() != Some(job_id) {
                continue;
            }
            match message.role {
                Role::User => question = message.content,
                Role::Assistant => return Ok(Some((id, question, message))),
            }
        }
    }
    Ok(None)
}

pub(super) async fn record(
    store: &UpstashStore,
    session: &SessionId,
    job_id: &JobId,
    rating: FeedbackRating,
    comment: Option<&FeedbackComment>,
    now: Timestamp,
) -> Result<FeedbackOutcome, StoreError> {
    let Some((conversation, question, answer)) = find_answer(store, session, job_id).await? else {
        return Ok(FeedbackOutcome::AnswerNotFound);
    };
    let stored = StoredFeedback {
        session: session.clone(),
        rating,
        comment: comment.cloned(),
        created_at: now.as_millis(),
        question,
        answer: answer.content,
        citations: answer.citations,
    };
    let ttl = store.conversation_ttl();
    let prune_before = now
        .as_millis()
        .saturating_sub(ttl)
        .saturating_sub(PRUNE_SLACK_MS);
    let reply = store
        .eval(
            &scripts::RECORD_FEEDBACK,
            vec![
                store.keys.conversation(&conversation),
                store.keys.messages(&conversation),
                store.keys.feedback(&conversation),
                store.keys.recent_feedback(),
            ],
            vec![
                Arg::from(session.as_str()),
                Arg::from(job_id.as_str()),
                Arg::from(to_json(&stored)?),
                Arg::from(now.as_millis()),
                Arg::from(ttl),
                Arg::from(prune_before),
                Arg::from(format!("{conversation} {}", job_id.as_str())),
            ],
            // Repeating it writes the same feedback again.
            true,
        )
        .await?;
    match text(reply, "record feedback")?.as_str() {
        "ok" => Ok(FeedbackOutcome::Recorded),
        "not_found" => Ok(FeedbackOutcome::AnswerNotFound),
        other => Err(unexpected("record feedback", other)),
    }
}

/// Newest first; members whose conversation is gone are skipped (and the
/// index read on until `limit` are found or it runs out).
pub(super) async fn list(
    store: &UpstashStore,
    limit: u32,
) -> Result<Vec<FeedbackView>, StoreError> {
    let mut views = Vec::new();
    let page = i64::from(limit.max(1));
    let mut start = 0i64;
    while views.len() < limit as usize {
        let members = store
            .client
            .cmd_read(
                Command::new("ZREVRANGE")
                    .arg(store.keys.recent_feedback())
                    .arg(start)
                    .arg(start + page - 1),
            )
            .await
            .map_err(store_error)?;
        let members = array(members, "ZREVRANGE")?
            .into_iter()
            .map(|v| text(v, "feedback member"))
            .collect::<Result<Vec<_>, _>>()?;
        if members.is_empty() {
            break;
        }
        let exhausted = (members.len() as i64) < page;
        start += page;
        let pairs: Vec<(String, String)> = members
            .into_iter()
            .filter_map(|m| m.split_once(' ').map(|(c, j)| (c.to_owned(), j.to_owned())))
            .collect();
        let commands = pairs
            .iter()
            .map(|(c, j)| Command::new("HGET").arg(store.keys.feedback(c)).arg(j))
            .collect();
        let replies = store
            .client
            .pipeline_idempotent(commands)
            .await
            .map_err(store_error)?;
        for ((conversation, job), reply) in pairs.into_iter().zip(replies) {
            let reply = reply.map_err(|e| store_error(e.into()))?;
            let Some(raw) = optional_text(reply, "feedback")? else {
                continue; // the conversation was deleted or expired
            };
            let stored: StoredFeedback = from_json("feedback", &raw)?;
            views.push(FeedbackView {
                feedback: Feedback {
                    job_id: JobId::from_trusted(job),
                    session: stored.session,
                    rating: stored.rating,
                    comment: stored.comment,
                    created_at: Timestamp::from_millis(stored.created_at),
                },
                conversation_id: ConversationId::from_trusted(conversation),
                question: stored.question,
                answer: stored.answer,
                citations: stored.citations,
            });
            if views.len() == limit as usize {
                break;
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(views)
}
