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

pub use context::{AppContext, ClientIp, Platform};
pub use error::ApiError;
pub use response::{Body, EventStream};
pub use router::{handle, respond};

/// The largest request body any route accepts. Adapters refuse larger bodies
/// (with [`payload_too_large`]) before reading them.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The 413 problem an adapter returns when a body exceeds [`MAX_REQUEST_BYTES`]
/// before it was read.
pub fn payload_too_large(
    ctx: &AppContext,
    headers: &http::HeaderMap,
) -> http::Response<bytes::Bytes> {
    let request_id = request::request_id(ctx, headers);
    let mut response = error::problem_response(
        &ApiError::PayloadTooLarge {
            limit: MAX_REQUEST_BYTES,
        },
        &request_id,
    );
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
