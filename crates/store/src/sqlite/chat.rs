//! Conversations and their messages: a chat submission (rate limits,
//! ownership, the user's message and the chat job, in one transaction),
//! reading and deleting conversations, and appending a completed job's
//! answer.

use flowchat_domain::model::{
    AnswerMode, ChatAnswer, Citation, Conversation, ConversationSummary, Job, JobPayload, Message,
    Role,
};
use flowchat_domain::{ConversationId, JobId, SessionId, Timestamp};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::jobs::insert_job;
use super::{Inner, SqliteStore, immediate, rate_limits};
use crate::codec::{corrupt, from_json, to_json, to_u32};
use crate::{ChatSubmission, ConversationTarget, StoreError, SubmitOutcome};

/// The owner of a conversation, if it exists.
fn conversation_owner(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT owner FROM conversations WHERE id = ?1")?
        .query_row([id.as_str()], |row| row.get(0))
        .optional()?)
}

fn touch_conversation(conn: &Connection, id: &ConversationId, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE conversations SET updated_at = MAX(updated_at, ?2) WHERE id = ?1")?
        .execute(params![id.as_str(), now])?;
    Ok(())
}

/// One `BEGIN IMMEDIATE` transaction: rate checks (evaluated, not yet
/// counted) → ownership check or conversation creation → count the hits →
/// user message → queued chat job, claimable at once.
pub(super) async fn submit(
    store: &SqliteStore,
    submission: ChatSubmission,
) -> Result<SubmitOutcome, StoreError> {
    store
        .run(move |conn, inner| submit_tx(conn, inner, submission))
        .await
}

fn submit_tx(
    conn: &mut Connection,
    inner: &Inner,
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
    let now_ms = now.as_millis();
    // Every early return drops `tx`, which rolls back: nothing written or counted.
    let tx = immediate(conn)?;
    let evaluated = match rate_limits::evaluate(&tx, &rate_checks, now)? {
        Ok(evaluated) => evaluated,
        Err(refused) => return Ok(SubmitOutcome::RateLimited(refused)),
    };
    let conversation_id = match conversation {
        ConversationTarget::Existing(id) => {
            if conversation_owner(&tx, &id)?.as_deref() != Some(session.as_str()) {
                return Ok(SubmitOutcome::ConversationNotFound);
            }
            touch_conversation(&tx, &id, now_ms)?;
            id
        }
        ConversationTarget::New { id, title } => {
            let created = tx
                .prepare_cached(
                    "INSERT INTO conversations (id, owner, title, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![id.as_str(), session.as_str(), title, now_ms])?;
            if created == 0 {
                if conversation_owner(&tx, &id)?.as_deref() != Some(session.as_str()) {
                    return Ok(SubmitOutcome::ConversationNotFound);
                }
                touch_conversation(&tx, &id, now_ms)?;
            }
            id
        }
    };
    rate_limits::count(&tx, inner, &evaluated, now)?;
    tx.prepare_cached(
        "INSERT INTO messages (conversation_id, role, content, citations, job_id, created_at)
         VALUES (?1, 'user', ?2, '[]', ?3, ?4)",
    )?
    .execute(params![
        conversation_id.as_str(),
        message,
        job_id.as_str(),
        now_ms
    ])?;
    let payload = JobPayload::Chat {
        session_id: session.clone(),
        conversation_id: conversation_id.clone(),
        question: message,
    };
    let job = Job::queued(job_id, Some(session), payload, now);
    insert_job(&tx, &job, now_ms)?;
    tx.commit()?;
    Ok(SubmitOutcome::Accepted {
        job,
        conversation_id,
    })
}

/// Appends a chat job's answer as the assistant message of its
/// conversation, if that conversation still exists and has no answer of
/// this job yet (a unique index).
pub(super) fn append_answer(
    conn: &Connection,
    conversation_id: &ConversationId,
    answer: &ChatAnswer,
    job_id: &JobId,
    now_ms: i64,
) -> Result<(), StoreError> {
    let appended = conn
        .prepare_cached(
            "INSERT INTO messages (conversation_id, role, content, citations, job_id, mode, created_at)
             SELECT ?1, 'assistant', ?2, ?3, ?4, ?5, ?6
             WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            conversation_id.as_str(),
            answer.answer,
            to_json(&answer.citations)?,
            job_id.as_str(),
            answer.mode.as_str(),
            now_ms
        ])?;
    if appended > 0 {
        touch_conversation(conn, conversation_id, now_ms)?;
    }
    Ok(())
}

pub(super) async fn list(
    store: &SqliteStore,
    owner: &SessionId,
) -> Result<Vec<ConversationSummary>, StoreError> {
    let owner = owner.clone();
    store
        .run(move |conn, _| {
            let rows: Vec<(String, String, i64, i64, i64)> = conn
                .prepare_cached(
                    "SELECT c.id, c.title, c.created_at, c.updated_at,
                        (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)
                 FROM conversations c WHERE c.owner = ?1
                 ORDER BY c.updated_at DESC, c.created_at DESC, c.id DESC",
                )?
                .query_map([owner.as_str()], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, title, created_at, updated_at, count)| {
                    Ok(ConversationSummary {
                        id: ConversationId::from_trusted(id),
                        title,
                        message_count: to_u32("message count", count)?,
                        created_at: Timestamp::from_millis(created_at),
                        updated_at: Timestamp::from_millis(updated_at),
                    })
                })
                .collect()
        })
        .await
}

/// Messages in the order they were written.
pub(super) async fn get(
    store: &SqliteStore,
    id: &ConversationId,
) -> Result<Option<Conversation>, StoreError> {
    let id = id.clone();
    store.run(move |conn, _| get_tx(conn, id)).await
}

/// role, content, citations, job id, mode, created at.
type MessageRow = (String, String, String, Option<String>, Option<String>, i64);

fn read_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn get_tx(conn: &mut Connection, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
    // A read transaction: the conversation and its messages from one snapshot.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let head: Option<(String, String, i64, i64)> = tx
        .prepare_cached(
            "SELECT owner, title, created_at, updated_at FROM conversations WHERE id = ?1",
        )?
        .query_row([id.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((owner, title, created_at, updated_at)) = head else {
        return Ok(None);
    };
    let rows: Vec<_> = tx
        .prepare_cached(
            "SELECT role, content, citations, job_id, mode, created_at FROM messages
             WHERE conversation_id = ?1 ORDER BY id",
        )?
        .query_map([id.as_str()], read_message)?
        .collect::<Result<_, _>>()?;
    let feedback = super::feedback::of_conversation(&tx, &id)?;
    drop(tx);
    let messages = rows
        .into_iter()
        .map(|(role, content, citations, job_id, mode, created_at)| {
            Ok(Message {
                role: Role::parse(&role)
                    .ok_or_else(|| corrupt("message role", format!("unknown role {role:?}")))?,
                content,
                citations: from_json::<Vec<Citation>>("message citations", &citations)?,
                job_id: job_id.map(JobId::from_trusted),
                mode: mode
                    .map(|m| {
                        AnswerMode::parse(&m)
                            .ok_or_else(|| corrupt("message mode", format!("unknown mode {m:?}")))
                    })
                    .transpose()?,
                created_at: Timestamp::from_millis(created_at),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(Conversation {
        id,
        owner: SessionId::from_trusted(owner),
        title,
        created_at: Timestamp::from_millis(created_at),
        updated_at: Timestamp::from_millis(updated_at),
        messages,
        feedback,
    }))
}

/// Jobs that refer to the conversation stay readable.
pub(super) async fn delete(
    store: &SqliteStore,
    id: &ConversationId,
    owner: &SessionId,
) -> Result<bool, StoreError> {
    let (id, owner) = (id.clone(), owner.clone());
    store
        .run(move |conn, _| {
            let tx = immediate(conn)?;
            if conversation_owner(&tx, &id)?.as_deref() != Some(owner.as_str()) {
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM messages WHERE conversation_id = ?1")?
                .execute([id.as_str()])?;
            tx.prepare_cached("DELETE FROM conversations WHERE id = ?1")?
                .execute([id.as_str()])?;
            tx.commit()?;
            Ok(true)
        })
        .await
}
