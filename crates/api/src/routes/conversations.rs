//! A session's conversations. Another session's conversation answers 404,
//! exactly like a missing one, so ids cannot be probed.

use bytes::Bytes;
use flowchat_domain::ConversationId;
use http::{Request, Response, StatusCode};

use crate::auth::require_session;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::{conversation_not_found, visible_conversation};
use crate::response::{Body, json, no_content};
use crate::views::{Conversation, ConversationList};

pub(crate) async fn list(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let claims = require_session(ctx, req)?;
    let conversations = ctx.store.list_conversations(&claims.session_id).await?;
    Ok(json(
        StatusCode::OK,
        &ConversationList {
            conversations: &conversations,
        },
    ))
}

pub(crate) async fn get(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let claims = require_session(ctx, req)?;
    let id = ConversationId::parse(raw_id, "conversation_id")?;
    let conversation = visible_conversation(ctx, &id, &claims.session_id).await?;
    Ok(json(StatusCode::OK, &Conversation::from(&conversation)))
}

pub(crate) async fn delete(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
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
        Err(conversation_not_found())
    }
}
