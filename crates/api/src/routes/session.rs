use bytes::Bytes;
use flowchat_domain::token::{self, SessionClaims};
use flowchat_domain::{Nickname, SessionId};
use flowchat_store::RateCheck;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::request::json_body;
use crate::response::json;
use crate::routes::chat::ip_write_check;

#[derive(Deserialize)]
struct CreateSession {
    nickname: String,
}

/// `POST /api/session`: the nickname gate. Counts as a write for the
/// client's IP, so sessions cannot be farmed to dodge per-session limits.
pub(crate) async fn create(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
    let body: CreateSession = json_body(req)?;
    let nickname = Nickname::parse(&body.nickname)?;
    let now = ctx.platform.now();

    let checks: [RateCheck; 1] = [ip_write_check(ctx, req)];
    let decision = ctx.store.hit_rate_limits(&checks, now).await?;
    if !decision.allowed {
        return Err(ApiError::rate_limited(decision, now));
    }

    let session_id = SessionId::from_random(ctx.platform.random_bytes());
    let claims = SessionClaims::new(session_id.clone(), &nickname, now);
    let token = token::issue(&ctx.secret, &claims);
    tracing::info!(session_id = %session_id, "session created");
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "session_id": session_id,
            "nickname": nickname,
            "expires_at": claims.expires_at(),
        }),
    ))
}
