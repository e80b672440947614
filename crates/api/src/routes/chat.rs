//! Asking questions: `POST /api/chat` queues a chat job and answers 202 at
//! once; `GET /api/chat/{id}` follows the job (optionally long-polling);
//! `POST /api/chat/completions` is the original synchronous contract.

use bytes::Bytes;
use flowchat_domain::model::{Job, JobResult, JobStatus, title_from_first_message};
use flowchat_domain::{ConversationId, JobId, MessageText, Nickname, SessionId, Timestamp};
use flowchat_store::{ChatSubmission, ConversationTarget, RateCheck, SubmitOutcome};
use http::{Request, Response, StatusCode};
use serde::Deserialize;

use crate::auth::{optional_session, require_actor, require_session};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::{
    actor_session, follower_slot, ip_write_check, session_chat_check, visible_job,
};
use crate::request::{json_body, query_param};
use crate::response::{Body, json, no_store, with_location};
use crate::views::{ChatCompletion, ChatJob, CompletionSource, SubmittedChat};

/// The longest `wait` a client may ask for, in seconds (under the usual
/// 30 s proxy and function timeouts).
pub(crate) const MAX_WAIT_SECS: u64 = 25;

#[derive(Deserialize)]
struct SubmitBody {
    message: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

/// Validates, rate-limits and writes one chat message and its job, in one
/// store round trip. Returns the queued job and its conversation.
async fn submit_message(
    ctx: &AppContext,
    session: &SessionId,
    message: MessageText,
    conversation: Option<ConversationId>,
    rate_checks: Vec<RateCheck>,
) -> Result<(Job, ConversationId), ApiError> {
    let now = ctx.platform.now();
    let target = match conversation {
        Some(id) => ConversationTarget::Existing(id),
        None => ConversationTarget::New {
            id: ConversationId::from_random(ctx.platform.random_bytes()),
            title: title_from_first_message(message.as_str()),
        },
    };
    let submission = ChatSubmission {
        session: session.clone(),
        conversation: target,
        message: message.into_string(),
        job_id: JobId::from_random(ctx.platform.random_bytes()),
        rate_checks,
        now,
    };
    match ctx.store.submit_chat(submission).await? {
        SubmitOutcome::Accepted {
            job,
            conversation_id,
        } => {
            tracing::info!(job_id = %job.id, conversation_id = %conversation_id, "chat job queued");
            Ok((job, conversation_id))
        }
        SubmitOutcome::RateLimited(decision) => Err(ApiError::rate_limited(decision, now)),
        SubmitOutcome::ConversationNotFound => {
            Err(ApiError::NotFound("no such conversation".to_owned()))
        }
    }
}

fn parse_conversation_id(raw: Option<String>) -> Result<Option<ConversationId>, ApiError> {
    raw.map(|raw| ConversationId::parse(&raw, "conversation_id"))
        .transpose()
        .map_err(ApiError::from)
}

/// `POST /api/chat` → `202 {job_id, conversation_id, status}`.
pub(crate) async fn submit(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let claims = require_session(ctx, req)?;
    let body: SubmitBody = json_body(req)?;
    let message = MessageText::parse(&body.message)?;
    let conversation = parse_conversation_id(body.conversation_id)?;
    let checks = vec![
        session_chat_check(ctx, &claims.session_id),
        ip_write_check(ctx, req),
    ];
    let (job, conversation_id) =
        submit_message(ctx, &claims.session_id, message, conversation, checks).await?;

    let response = json(
        StatusCode::ACCEPTED,
        &SubmittedChat {
            job_id: &job.id,
            conversation_id: &conversation_id,
            status: job.status,
        },
    );
    Ok(with_location(response, format!("/api/chat/{}", job.id)))
}

/// Polls the job until its status or streamed partial text changes, or
/// `deadline` passes.
/// Starts fast (most extractive answers take milliseconds) and backs off.
async fn wait_for_change(
    ctx: &AppContext,
    mut job: Job,
    deadline: Timestamp,
) -> Result<Job, ApiError> {
    let seen = (job.status, job.partial.clone());
    let mut interval_ms = 5;
    while (job.status, &job.partial) == (seen.0, &seen.1) && !job.status.is_finished() {
        let remaining = deadline.millis_since(ctx.platform.now());
        if remaining <= 0 {
            break;
        }
        ctx.platform
            .sleep_ms(interval_ms.min(remaining as u64))
            .await;
        interval_ms = (interval_ms * 2).min(250);
        job = match ctx.store.get_job(&job.id).await? {
            Some(job) => job,
            None => return Err(ApiError::NotFound("the job has expired".to_owned())),
        };
    }
    Ok(job)
}

/// `GET /api/chat/{job_id}?wait=N`: only the job's owner (or an operator)
/// may read it; anyone else gets the same 404 as for a missing job.
pub(crate) async fn get_job(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let actor = require_actor(ctx, req)?;
    let id = JobId::parse(raw_id, "job_id")?;
    let wait_secs = match query_param(req, "wait") {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= MAX_WAIT_SECS)
            .ok_or_else(|| {
                ApiError::Validation(flowchat_domain::ValidationError::new(
                    "wait",
                    "range",
                    format!("wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"),
                ))
            })?,
    };

    let job = visible_job(ctx, &id, &actor).await?;
    let job = if wait_secs > 0 && !job.status.is_finished() {
        // Held until this function returns or the client goes away (the
        // runtime drops the future, and the slot with it).
        let _slot = follower_slot(ctx, req, actor_session(&actor))?;
        let deadline = ctx.platform.now().plus_secs(wait_secs as i64);
        wait_for_change(ctx, job, deadline).await?
    } else {
        job
    };
    Ok(no_store(json(StatusCode::OK, &ChatJob::from(&job))))
}

#[derive(Deserialize)]
struct CompletionsBody {
    message: String,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
}

/// `POST /api/chat/completions`: the original system's synchronous contract.
/// Queues the job like `POST /api/chat`, then waits (bounded by
/// `CHAT_SYNC_TIMEOUT_SECONDS`) for the answer.
pub(crate) async fn completions(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let claims = optional_session(ctx, req)?;
    let body: CompletionsBody = json_body(req)?;
    let message = MessageText::parse(&body.message)?;
    let conversation = parse_conversation_id(body.conversation_id)?;
    if let Some(raw) = &body.nickname {
        Nickname::parse(raw)?;
    }

    let (session, checks) = match &claims {
        Some(claims) => (
            claims.session_id.clone(),
            vec![
                session_chat_check(ctx, &claims.session_id),
                ip_write_check(ctx, req),
            ],
        ),
        None => {
            // A one-off session: it owns no conversation, so a conversation_id
            // from an anonymous caller can never match.
            if conversation.is_some() {
                return Err(ApiError::NotFound(
                    "no such conversation (send the session token to continue a conversation)"
                        .to_owned(),
                ));
            }
            (
                SessionId::from_random(ctx.platform.random_bytes()),
                vec![ip_write_check(ctx, req)],
            )
        }
    };
    // Taken before the write, so a refused caller leaves nothing queued;
    // held while this request waits for the answer.
    let _slot = follower_slot(ctx, req, claims.as_ref().map(|c| &c.session_id))?;
    let (job, conversation_id) =
        submit_message(ctx, &session, message, conversation, checks).await?;

    let deadline = ctx
        .platform
        .now()
        .plus_secs(ctx.config.sync_chat_timeout_secs as i64);
    let mut job = job;
    while !job.status.is_finished() && ctx.platform.now() < deadline {
        job = wait_for_change(ctx, job, deadline).await?;
    }
    match (&job.status, &job.result) {
        (JobStatus::Succeeded, Some(JobResult::Chat(answer))) => Ok(json(
            StatusCode::OK,
            &ChatCompletion {
                conversation_id: &conversation_id,
                response: &answer.answer,
                context: CompletionSource::all(answer),
                citations: &answer.citations,
                created_at: job.updated_at,
            },
        )),
        (JobStatus::Failed, _) => Err(ApiError::UpstreamFailed(format!(
            "the assistant could not answer (job {}): {}",
            job.id,
            job.error.as_deref().unwrap_or("unknown error")
        ))),
        _ if claims.is_some() => Err(ApiError::Timeout(format!(
            "the answer was not ready within {} s; follow it with GET /api/chat/{}",
            ctx.config.sync_chat_timeout_secs, job.id
        ))),
        // An anonymous caller holds no token to follow the job with.
        _ => Err(ApiError::Timeout(format!(
            "the answer was not ready within {} s; try again later, or create a session (POST /api/session) and send its token to follow answers with GET /api/chat/{{id}}",
            ctx.config.sync_chat_timeout_secs
        ))),
    }
}
