//! How much of a request body the API reads, and the one reader every
//! runtime adapter uses, so the limits hold alike on every runtime: a
//! declared `Content-Length` over the limit is refused before a byte is
//! read, and a body that streams past it (chunked, or longer than it said)
//! is cut off as soon as it does.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, header};
use http_body_util::{BodyExt, Limited};

use crate::context::AppContext;
use crate::error::{ApiError, problem_response};
use crate::request::request_id;
use crate::response::Body;

/// The largest request body any route but an upload accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What an upload's body may carry beyond the file itself: the multipart
/// boundaries, part headers and any small extra fields.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// The routes that take a document in a multipart body.
pub(crate) fn is_upload_path(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/api/documents" | "/api/documents/upload"
    )
}

/// The largest body the route at `path` accepts for `method`: an upload
/// (`POST /api/documents`, `POST /api/documents/upload`) takes
/// `MAX_UPLOAD_MB` plus [`MULTIPART_OVERHEAD_BYTES`], every other request
/// [`MAX_REQUEST_BYTES`].
pub fn body_limit(ctx: &AppContext, method: &Method, path: &str) -> usize {
    if method == Method::POST && is_upload_path(path) {
        ctx.config.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    } else {
        MAX_REQUEST_BYTES
    }
}

/// The 413 problem for a body over `limit` that was not read. It carries
/// the request id like every other answer, but no CORS headers: the request
/// never reached the router.
pub fn payload_too_large(ctx: &AppContext, headers: &HeaderMap, limit: usize) -> Response<Body> {
    let request_id = request_id(ctx.platform.as_ref(), headers);
    let mut response = problem_response(&ApiError::PayloadTooLarge { limit }, &request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Reads the body of the request whose head is `parts`, up to its route's
/// [`body_limit`]; past it, the answer to send instead (413). A body that
/// fails to arrive in full (the client went away) is answered the same way:
/// nothing usable was received.
pub async fn read_limited<B>(
    ctx: &AppContext,
    parts: &Parts,
    body: B,
) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = body_limit(ctx, &parts.method, parts.uri.path());
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(payload_too_large(ctx, &parts.headers, limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(payload_too_large(ctx, &parts.headers, limit)),
    }
}
