//! FlowChat's HTTP API as one portable function:
//! [`handle`]`(&AppContext, http::Request<Bytes>) -> http::Response<Body>`.
//!
//! Every runtime (the dev server, Vercel functions, Lambda, a Cloudflare
//! Worker) converts its own request to that — reading the body with
//! [`read_limited`] — and the response back, and nothing else. Handlers
//! validate, authenticate, rate-limit and read or write the store; they
//! never call a language model or touch the knowledge index — that is the
//! drain's work, reached through jobs.
//!
//! Reading order: `router` (the one table of routes), `routes/*` (one
//! module per resource, none importing another), and what they share:
//! `views` (every response body), `policy` (who sees what, rate checks),
//! `auth`, `request`, `response`, `error`, `upload`, `body`.

mod auth;
mod body;
mod context;
mod cors;
mod error;
mod followers;
mod policy;
mod request;
mod response;
mod router;
mod routes;
mod upload;
mod views;

pub use body::{
    MAX_REQUEST_BYTES, MULTIPART_OVERHEAD_BYTES, body_limit, payload_too_large, read_limited,
};
pub use context::{AppContext, ClientIp, Platform};
pub use error::{ApiError, problem_response};
pub use request::{bearer_token, request_id};
pub use response::{Body, EventStream, json};
pub use router::{handle, handle_buffered};
