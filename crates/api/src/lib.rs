//! FlowChat's HTTP API as one portable function:
//! `handle(&AppContext, http::Request<Bytes>) -> http::Response<Bytes>`.
//!
//! Every runtime (the dev server, Vercel functions, Lambda, a Cloudflare
//! Worker) converts its own request type to that and back, and nothing else.
//! Handlers validate, authenticate, rate-limit and read or write the store;
//! they never call a language model or touch the knowledge index — that is
//! the drain's work, reached through jobs.

mod auth;
mod context;
mod cors;
mod error;
mod request;
mod response;
mod router;
mod routes;
mod upload;

pub use context::{AppContext, ClientIp, Platform};
pub use error::ApiError;
pub use response::{Body, EventStream};
pub use router::{handle, respond};

/// The largest request body any route but an upload accepts. Adapters
/// refuse larger bodies (with [`payload_too_large`]) before reading them.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What an upload's body may carry beyond the file itself: the multipart
/// boundaries, part headers and any small extra fields.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// The largest body the route at `path` accepts for `method`: the upload
/// routes (`POST /api/documents`, `POST /api/documents/upload`) take
/// `MAX_UPLOAD_MB` plus [`MULTIPART_OVERHEAD_BYTES`], every other request
/// [`MAX_REQUEST_BYTES`]. Adapters enforce it before reading the body in
/// full: a declared `Content-Length` over it is refused unread, and reading
/// stops as soon as a streamed body passes it.
pub fn body_limit(ctx: &AppContext, method: &http::Method, path: &str) -> usize {
    if method == http::Method::POST && routes::documents::is_upload_path(path) {
        ctx.config.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    } else {
        MAX_REQUEST_BYTES
    }
}

/// The 413 problem an adapter returns when a body exceeds `limit` (from
/// [`body_limit`]) before it was read.
pub fn payload_too_large(
    ctx: &AppContext,
    headers: &http::HeaderMap,
    limit: usize,
) -> http::Response<bytes::Bytes> {
    let request_id = request::request_id(ctx, headers);
    let mut response = error::problem_response(&ApiError::PayloadTooLarge { limit }, &request_id);
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
