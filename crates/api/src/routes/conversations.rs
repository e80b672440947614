//! A session's conversations. Another session's conversation answers 404,
//! exactly like a missing one, so ids cannot be probed.

use bytes::Bytes;
use flowchat_domain::ConversationId;
use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::auth::require_session;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::response::{json, no_content};

fn not_found() -> ApiError {
    ApiError::NotFound("no such conversation".to_owned())
}

pub(crate) async fn list(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
    let claims = require_session(ctx, req)?;
    let conversations = ctx.store.list_conversations(&claims.session_id).await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "conversations": conversations }),
    ))
}

pub(crate) async fn get(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Bytes>, ApiError> {
    let claims = require_session(ctx, req)?;
    let id = ConversationId::parse(raw_id, "conversation_id")?;
    let conversation = ctx
        .store
        .get_conversation(&id)
        .await?
        .ok_or_else(not_found)?;
    if conversation.owner != claims.session_id {
        return Err(not_found());
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "id": conversation.id,
            "title": conversation.title,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "messages": conversation.messages,
        }),
    ))
}

pub(crate) async fn delete(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Bytes>, ApiError> {
    let claims = require_session(ctx, req)?;
    let id = ConversationId::parse(raw_id, "conversation_id")?;
    if ctx
        .store
        .delete_conversation(&id, &claims.session_id)
        .await?
    {
        tracing::info!(conversation_id = %id, "conversation deleted");
        Ok(no_content())
    } else {
        Err(not_found())
    }
}
