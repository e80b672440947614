//! Who may see what, and how often anyone may write.
//!
//! A record the caller may not see answers exactly like a missing one (404),
//! so ids cannot be probed. Rate checks mostly travel with the write they
//! limit, so the store counts them in the same transaction and a refused
//! write counts nothing; where the request itself is the cost (creating a
//! session, an upload's body), [`count_ip_write`] counts it first.

use bytes::Bytes;
use flowchat_domain::model::{Conversation, DocumentOwner, DocumentRecord, Job};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};
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

/// Counts this request against the client address's write limit before
/// anything else is done with it, so that even a request refused later
/// (a bad upload) costs its sender one hit.
pub(crate) async fn count_ip_write(
    ctx: &AppContext,
    req: &Request<Bytes>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let decision = ctx
        .store
        .hit_rate_limits(&[ip_write_check(ctx, req)], now)
        .await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::rate_limited(decision, now))
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

/// How long an event stream lives at most.
const FOLLOWER_LIFETIME_MS: i64 = 25_000;
/// Follower starts allowed per lifetime, as a multiple of the open ones.
const FOLLOWER_STARTS_PER_SLOT: u32 = 3;

/// An event stream's slot in this process ([`follower_slot`]), and its
/// start counted in the store: at most `FOLLOWER_STARTS_PER_SLOT` times the
/// follower limits per 25 s (a stream's longest life), per session and per
/// address. The process's count is exact where one process serves everyone
/// (the dev server); on serverless, where each instance counts only itself,
/// the store's count is what bounds how many streams a session or an
/// address keeps open across instances (at most three times the limits),
/// for one store call per stream. `?wait=` reads are not counted this way:
/// a client following a streamed answer with them starts one per change,
/// several a second.
pub(crate) async fn follower(
    ctx: &AppContext,
    req: &Request<Bytes>,
    session: Option<&SessionId>,
) -> Result<FollowerSlot, ApiError> {
    let slot = follower_slot(ctx, req, session)?;
    let limits = &ctx.config.rate_limits;
    let starts = |open: u32| RateRule {
        limit: open.saturating_mul(FOLLOWER_STARTS_PER_SLOT),
        window_ms: FOLLOWER_LIFETIME_MS,
    };
    let mut checks = vec![RateCheck {
        key: format!("follow:ip:{}", ip_key(req)),
        rule: starts(limits.followers_per_ip),
    }];
    if let Some(session) = session {
        checks.push(RateCheck {
            key: format!("follow:session:{session}"),
            rule: starts(limits.followers_per_session),
        });
    }
    let now = ctx.platform.now();
    let decision = ctx.store.hit_rate_limits(&checks, now).await?;
    if decision.allowed {
        Ok(slot)
    } else {
        Err(ApiError::rate_limited(decision, now))
    }
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

/// Feedback on a job that is not an answer in the caller's conversations
/// (missing, unanswered, or someone else's: all the same).
pub(crate) fn answer_not_found() -> ApiError {
    ApiError::NotFound("no such answer".to_owned())
}
