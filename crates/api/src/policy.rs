//! Who may see what, and how often anyone may write.
//!
//! A record the caller may not see answers exactly like a missing one (404),
//! so ids cannot be probed. Rate checks are not counted here: they travel
//! with the write they limit, so the store counts them in the same
//! transaction and a refused write counts nothing.

use bytes::Bytes;
use flowchat_domain::model::{Conversation, DocumentOwner, DocumentRecord, Job};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId};
use flowchat_store::{RateCheck, RateRule};
use http::Request;

use crate::auth::Actor;
use crate::context::{AppContext, ClientIp};
use crate::error::ApiError;
use crate::followers::FollowerSlot;

/// The client's address as rate limits count it (an IPv6 /64 as one).
pub(crate) fn ip_key(req: &Request<Bytes>) -> String {
    req.extensions()
        .get::<ClientIp>()
        .map(ClientIp::rate_key)
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Writes (sessions, messages, uploads) per minute from the client's
/// address, so sessions cannot be farmed to dodge the per-session limits.
pub(crate) fn ip_write_check(ctx: &AppContext, req: &Request<Bytes>) -> RateCheck {
    RateCheck {
        key: format!("write:ip:{}", ip_key(req)),
        rule: RateRule::per_minute(ctx.config.rate_limits.ip_writes_per_minute),
    }
}

/// Readiness checks per minute from the client's address: the check is
/// unauthenticated and reads the store several times, so it is limited
/// like a write (`RATE_LIMIT_IP_PER_MINUTE`, its own count).
pub(crate) fn ip_ready_check(ctx: &AppContext, req: &Request<Bytes>) -> RateCheck {
    RateCheck {
        key: format!("ready:ip:{}", ip_key(req)),
        rule: RateRule::per_minute(ctx.config.rate_limits.ip_writes_per_minute),
    }
}

/// A slot for one more follower (event stream or waiting read) of
/// `actor`'s session from the client's address; hold it while following.
pub(crate) fn follower_slot(
    ctx: &AppContext,
    req: &Request<Bytes>,
    session: Option<&SessionId>,
) -> Result<FollowerSlot, ApiError> {
    ctx.followers.acquire(session, &ip_key(req))
}

/// The session an actor follows as (operators are limited per IP only).
pub(crate) fn actor_session(actor: &Actor) -> Option<&SessionId> {
    match actor {
        Actor::Admin => None,
        Actor::Session(session) => Some(session),
    }
}

/// Chat messages per minute from one session.
pub(crate) fn session_chat_check(ctx: &AppContext, session: &SessionId) -> RateCheck {
    RateCheck {
        key: format!("chat:session:{session}"),
        rule: RateRule::per_minute(ctx.config.rate_limits.chat_per_minute),
    }
}

/// The job `id` if `actor` may read it: operators read every job, a
/// session only its own.
pub(crate) async fn visible_job(
    ctx: &AppContext,
    id: &JobId,
    actor: &Actor,
) -> Result<Job, ApiError> {
    let not_found = || ApiError::NotFound("no such job".to_owned());
    let job = ctx.store.get_job(id).await?.ok_or_else(not_found)?;
    let visible = match actor {
        Actor::Admin => true,
        Actor::Session(session) => job.owner.as_ref() == Some(session),
    };
    if visible { Ok(job) } else { Err(not_found()) }
}

/// The document `id` if `viewer` may see it: shared documents are visible
/// to everyone, private ones to their session (and operators).
pub(crate) async fn visible_document(
    ctx: &AppContext,
    id: &DocumentId,
    viewer: Option<&Actor>,
) -> Result<DocumentRecord, ApiError> {
    let doc = ctx
        .store
        .get_document(id)
        .await?
        .ok_or_else(document_not_found)?;
    let visible = match (&doc.owner, viewer) {
        (DocumentOwner::Shared, _) | (_, Some(Actor::Admin)) => true,
        (DocumentOwner::Session(owner), Some(Actor::Session(viewer))) => owner == viewer,
        (DocumentOwner::Session(_), None) => false,
    };
    if visible {
        Ok(doc)
    } else {
        Err(document_not_found())
    }
}

/// The conversation `id` if it is `session`'s; conversations are never
/// shared, not even with operators.
pub(crate) async fn visible_conversation(
    ctx: &AppContext,
    id: &ConversationId,
    session: &SessionId,
) -> Result<Conversation, ApiError> {
    ctx.store
        .get_conversation(id)
        .await?
        .filter(|c| &c.owner == session)
        .ok_or_else(conversation_not_found)
}

pub(crate) fn document_not_found() -> ApiError {
    ApiError::NotFound("no such document".to_owned())
}

pub(crate) fn conversation_not_found() -> ApiError {
    ApiError::NotFound("no such conversation".to_owned())
}
