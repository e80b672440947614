//! Who is calling: a session (signed token) or an operator (`ADMIN_TOKEN`).

use bytes::Bytes;
use flowchat_domain::SessionClaims;
use flowchat_domain::token;
use http::Request;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::request::bearer;

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

pub(crate) fn is_admin(ctx: &AppContext, req: &Request<Bytes>) -> bool {
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
