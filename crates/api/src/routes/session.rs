//! `POST /api/session`: the nickname gate.

use bytes::Bytes;
use flowchat_domain::token::{self, SessionClaims};
use flowchat_domain::{Nickname, SessionId};
use http::{Request, Response, StatusCode};
use serde::Deserialize;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::count_ip_write;
use crate::request::json_body;
use crate::response::{Body, json};
use crate::views::Session;

#[derive(Deserialize)]
struct CreateSession {
    nickname: String,
}

/// Counts as a write for the client's IP, so sessions cannot be farmed to
/// dodge per-session limits.
pub(crate) async fn create(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let body: CreateSession = json_body(req)?;
    let nickname = Nickname::parse(&body.nickname)?;
    let now = ctx.platform.now();

    count_ip_write(ctx, req, now).await?;

    let session_id = SessionId::from_random(ctx.platform.random_bytes());
    let claims = SessionClaims::new(session_id.clone(), &nickname, now);
    tracing::info!(session_id = %session_id, "session created");
    Ok(json(
        StatusCode::CREATED,
        &Session {
            token: token::issue(&ctx.secret, &claims),
            session_id: &session_id,
            nickname: &nickname,
            expires_at: claims.expires_at(),
        },
    ))
}
