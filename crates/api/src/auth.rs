//! Who is calling: a session (signed token) or an operator (`ADMIN_TOKEN`).

use bytes::Bytes;
use flowchat_domain::model::DocumentOwner;
use flowchat_domain::token;
use flowchat_domain::{SessionClaims, SessionId};
use http::Request;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::request::bearer;

/// Who acts on jobs and documents: an operator (admin token) or a session.
pub(crate) enum Actor {
    Admin,
    Session(SessionId),
}

impl Actor {
    /// Who may read the jobs this actor queues: operator jobs are nobody's.
    pub(crate) fn job_owner(&self) -> Option<SessionId> {
        match self {
            Actor::Admin => None,
            Actor::Session(id) => Some(id.clone()),
        }
    }

    /// Operators add shared documents; a session adds private ones.
    pub(crate) fn document_owner(&self) -> DocumentOwner {
        match self {
            Actor::Admin => DocumentOwner::Shared,
            Actor::Session(id) => DocumentOwner::Session(id.clone()),
        }
    }
}

/// The admin token, else a session token; 401 when neither.
pub(crate) fn require_actor(ctx: &AppContext, req: &Request<Bytes>) -> Result<Actor, ApiError> {
    if is_admin(ctx, req) {
        Ok(Actor::Admin)
    } else {
        Ok(Actor::Session(require_session(ctx, req)?.session_id))
    }
}

/// The admin token, a session token, or none (`None`); a bad session token
/// is still a 401.
pub(crate) fn optional_actor(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Option<Actor>, ApiError> {
    if is_admin(ctx, req) {
        Ok(Some(Actor::Admin))
    } else {
        Ok(optional_session(ctx, req)?.map(|c| Actor::Session(c.session_id)))
    }
}

/// The caller's session; 401 when the token is missing, forged or expired.
pub(crate) fn require_session(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<SessionClaims, ApiError> {
    optional_session(ctx, req)?.ok_or_else(|| {
        ApiError::Unauthorized(
            "this endpoint needs `Authorization: Bearer <token>`; get a token from POST /api/session".to_owned(),
        )
    })
}

/// The caller's session if a token was sent; a bad token is still a 401
/// rather than being silently ignored.
pub(crate) fn optional_session(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Option<SessionClaims>, ApiError> {
    let Some(credential) = bearer(req) else {
        return Ok(None);
    };
    token::verify(&ctx.secret, credential, ctx.platform.now())
        .map(Some)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

fn is_admin(ctx: &AppContext, req: &Request<Bytes>) -> bool {
    match (&ctx.config.admin_token, bearer(req)) {
        (Some(expected), Some(presented)) => expected.matches(presented),
        _ => false,
    }
}

pub(crate) fn require_admin(ctx: &AppContext, req: &Request<Bytes>) -> Result<(), ApiError> {
    if ctx.config.admin_token.is_none() {
        return Err(ApiError::Forbidden(
            "admin endpoints are disabled: ADMIN_TOKEN is not configured on this server".to_owned(),
        ));
    }
    if is_admin(ctx, req) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "this endpoint needs `Authorization: Bearer <ADMIN_TOKEN>`".to_owned(),
        ))
    }
}
