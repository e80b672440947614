//! The one entry point every runtime calls, and the one table of routes.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use tracing::Instrument;

use crate::context::AppContext;
use crate::cors;
use crate::error::{ApiError, problem_response};
use crate::request::request_id;
use crate::response::Body;
use crate::routes::{chat, conversations, documents, events, feedback, health, openapi, session};

/// Answers one request. Never panics on input and never fails: every error
/// becomes a problem+json response carrying the request id. The body is
/// complete, or an event stream for the adapter to forward as it comes;
/// a runtime that cannot stream uses [`handle_buffered`].
pub async fn handle(ctx: &AppContext, req: Request<Bytes>) -> Response<Body> {
    let request_id = request_id(ctx.platform.as_ref(), req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let started = ctx.platform.now();
        let mut response = if req.method() == Method::OPTIONS {
            cors::preflight(ctx, req.headers())
        } else {
            route(ctx, &req).await.unwrap_or_else(|error| {
                if let ApiError::Internal(detail) = &error {
                    tracing::error!(error = %detail, "request failed");
                }
                problem_response(&error, &request_id)
            })
        };
        cors::decorate(ctx, req.headers(), &mut response);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = ctx.platform.now().millis_since(started),
            "request finished"
        );
        response
    }
    .instrument(span)
    .await
}

/// [`handle`], with an event stream collected until it ends: the client
/// then receives every event at once, when the stream closes.
pub async fn handle_buffered(ctx: &AppContext, req: Request<Bytes>) -> Response<Bytes> {
    let (parts, body) = handle(ctx, req).await.into_parts();
    Response::from_parts(parts, body.collect().await)
}

fn not_allowed(method: &Method, allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow,
    }
}

async fn route(ctx: &AppContext, req: &Request<Bytes>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method();
    match segments.as_slice() {
        ["api", "health", "ping"] => match *method {
            Method::GET | Method::HEAD => Ok(health::ping()),
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "health", "ready"] => match *method {
            Method::GET | Method::HEAD => health::ready(ctx, req).await,
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "openapi.json"] => match *method {
            Method::GET | Method::HEAD => Ok(openapi::document()),
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "session"] => match *method {
            Method::POST => session::create(ctx, req).await,
            _ => Err(not_allowed(method, "POST")),
        },
        ["api", "chat"] => match *method {
            Method::POST => chat::submit(ctx, req).await,
            _ => Err(not_allowed(method, "POST")),
        },
        ["api", "chat", "completions"] => match *method {
            Method::POST => chat::completions(ctx, req).await,
            _ => Err(not_allowed(method, "POST")),
        },
        ["api", "chat", id] => match *method {
            Method::GET => chat::get_job(ctx, req, id).await,
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "chat", id, "events"] => match *method {
            Method::GET => events::open(ctx, req, id).await,
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "chat", id, "feedback"] => match *method {
            Method::PUT => feedback::put(ctx, req, id).await,
            _ => Err(not_allowed(method, "PUT")),
        },
        ["api", "conversations"] => match *method {
            Method::GET => conversations::list(ctx, req).await,
            _ => Err(not_allowed(method, "GET")),
        },
        ["api", "conversations", id] => match *method {
            Method::GET => conversations::get(ctx, req, id).await,
            Method::DELETE => conversations::delete(ctx, req, id).await,
            _ => Err(not_allowed(method, "GET, DELETE")),
        },
        ["api", "documents"] => match *method {
            Method::GET => documents::list(ctx, req).await,
            Method::POST => documents::upload(ctx, req).await,
            _ => Err(not_allowed(method, "GET, POST")),
        },
        ["api", "documents", "ingest"] => match *method {
            Method::POST => documents::ingest(ctx, req).await,
            _ => Err(not_allowed(method, "POST")),
        },
        ["api", "documents", "upload"] => match *method {
            Method::POST => documents::upload(ctx, req).await,
            _ => Err(not_allowed(method, "POST")),
        },
        ["api", "documents", id] => match *method {
            Method::GET => documents::get(ctx, req, id).await,
            Method::DELETE => documents::delete(ctx, req, id).await,
            _ => Err(not_allowed(method, "GET, DELETE")),
        },
        _ => Err(ApiError::NotFound(format!("no route for {path}"))),
    }
}
