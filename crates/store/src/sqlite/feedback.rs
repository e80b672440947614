//! Feedback on answers: recorded by the session owning the conversation,
//! listed for operators with the question, answer and citations.

use flowchat_domain::model::Citation;
use flowchat_domain::{
    ConversationId, Feedback, FeedbackComment, FeedbackRating, FeedbackView, JobId, SessionId,
    Timestamp,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, immediate};
use crate::codec::{corrupt, from_json};
use crate::{FeedbackOutcome, StoreError};

/// The ownership check and the write in one transaction; a second call
/// replaces the first.
pub(super) async fn record(
    store: &SqliteStore,
    session: &SessionId,
    job_id: &JobId,
    rating: FeedbackRating,
    comment: Option<&FeedbackComment>,
    now: Timestamp,
) -> Result<FeedbackOutcome, StoreError> {
    let session = session.clone();
    let job_id = job_id.clone();
    let comment = comment.map(|c| c.as_str().to_owned());
    store
        .run(move |conn, _| {
            let tx = immediate(conn)?;
            let conversation: Option<String> = tx
                .prepare_cached(
                    "SELECT m.conversation_id FROM messages m
                     JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.job_id = ?1 AND m.role = 'assistant' AND c.owner = ?2",
                )?
                .query_row(params![job_id.as_str(), session.as_str()], |row| row.get(0))
                .optional()?;
            let Some(conversation) = conversation else {
                return Ok(FeedbackOutcome::AnswerNotFound);
            };
            tx.prepare_cached(
                "INSERT INTO feedback (job_id, conversation_id, session, rating, comment, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (job_id) DO UPDATE SET conversation_id = excluded.conversation_id,
                 session = excluded.session, rating = excluded.rating,
                 comment = excluded.comment, created_at = excluded.created_at",
            )?
            .execute(params![
                job_id.as_str(),
                conversation,
                session.as_str(),
                rating.as_str(),
                comment,
                now.as_millis()
            ])?;
            tx.commit()?;
            Ok(FeedbackOutcome::Recorded)
        })
        .await
}

/// The feedback on the answers of conversation `id`.
pub(super) fn of_conversation(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Vec<Feedback>, StoreError> {
    let rows: Vec<(String, String, String, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT job_id, session, rating, comment, created_at FROM feedback
             WHERE conversation_id = ?1",
        )?
        .query_map([id.as_str()], |row| {
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
        .map(|(job, session, rating, comment, at)| {
            Ok(Feedback {
                job_id: JobId::from_trusted(job),
                session: SessionId::from_trusted(session),
                rating: FeedbackRating::parse(&rating).ok_or_else(|| {
                    corrupt("feedback rating", format!("unknown rating {rating:?}"))
                })?,
                comment: comment.map(FeedbackComment::from_trusted),
                created_at: Timestamp::from_millis(at),
            })
        })
        .collect()
}

/// job id, conversation, session, rating, comment, created at, question,
/// answer, citations.
type FeedbackRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    String,
    String,
);

/// Newest first (then by job id, descending).
pub(super) async fn list(store: &SqliteStore, limit: u32) -> Result<Vec<FeedbackView>, StoreError> {
    store
        .run(move |conn, _| {
            let rows: Vec<FeedbackRow> = conn
                .prepare_cached(
                    "SELECT f.job_id, f.conversation_id, f.session, f.rating, f.comment, f.created_at,
                            (SELECT q.content FROM messages q
                             WHERE q.conversation_id = f.conversation_id AND q.job_id = f.job_id
                               AND q.role = 'user' ORDER BY q.id LIMIT 1),
                            a.content, a.citations
                     FROM feedback f
                     JOIN messages a ON a.job_id = f.job_id AND a.role = 'assistant'
                          AND a.conversation_id = f.conversation_id
                     ORDER BY f.created_at DESC, f.job_id DESC LIMIT ?1",
                )?
                .query_map([limit], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(
                    |(job, conversation, session, rating, comment, at, question, answer, citations)| {
                        Ok(FeedbackView {
                            feedback: Feedback {
                                job_id: JobId::from_trusted(job),
                                session: SessionId::from_trusted(session),
                                rating: FeedbackRating::parse(&rating).ok_or_else(|| {
                                    corrupt("feedback rating", format!("unknown rating {rating:?}"))
                                })?,
                                comment: comment.map(FeedbackComment::from_trusted),
                                created_at: Timestamp::from_millis(at),
                            },
                            conversation_id: ConversationId::from_trusted(conversation),
                            question: question.unwrap_or_default(),
                            answer,
                            citations: from_json::<Vec<Citation>>("answer citations", &citations)?,
                        })
                    },
                )
                .collect()
        })
        .await
}
