//! Feedback on answers: `PUT /api/chat/{job_id}/feedback` records the
//! session's 👍/👎 (and optional comment) on the answer of one of its chat
//! jobs; a second one replaces the first. An answer that is not in one of
//! the caller's conversations answers 404, exactly like a missing one.

use bytes::Bytes;
use flowchat_domain::{FeedbackComment, FeedbackRating, JobId, ValidationError};
use flowchat_store::FeedbackOutcome;
use http::{Request, Response};
use serde::Deserialize;

use crate::auth::require_session;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::{answer_not_found, count_ip_write};
use crate::request::json_body;
use crate::response::{Body, no_content};

#[derive(Deserialize)]
struct FeedbackBody {
    #[serde(default)]
    rating: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// `PUT /api/chat/{job_id}/feedback` → 204. Bad input is refused before
/// anything is counted or written; the write counts against the client
/// address's write limit.
pub(crate) async fn put(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let claims = require_session(ctx, req)?;
    let job_id = JobId::parse(raw_id, "job_id")?;
    let body: FeedbackBody = json_body(req)?;
    let rating = match body.rating.as_deref() {
        Some(raw) => FeedbackRating::parse_field(raw)?,
        None => {
            return Err(ValidationError::new(
                "rating",
                "required",
                "rating is required: \"up\" or \"down\"",
            )
            .into());
        }
    };
    let comment = FeedbackComment::parse_optional(body.comment.as_deref())?;
    let now = ctx.platform.now();
    count_ip_write(ctx, req, now).await?;
    match ctx
        .store
        .record_feedback(&claims.session_id, &job_id, rating, comment.as_ref(), now)
        .await?
    {
        FeedbackOutcome::Recorded => {
            tracing::info!(job_id = %job_id, rating = rating.as_str(), "feedback recorded");
            Ok(no_content())
        }
        FeedbackOutcome::AnswerNotFound => Err(answer_not_found()),
    }
}
