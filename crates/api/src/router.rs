use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use tracing::Instrument;

use crate::context::AppContext;
use crate::error::{ApiError, problem_response};
use crate::request::request_id;
use crate::response::Body;
use crate::{cors, routes};

/// Answers one request with a complete body; an event stream is collected
/// until it ends. Runtimes that can stream use [`respond`].
pub async fn handle(ctx: &AppContext, req: Request<Bytes>) -> Response<Bytes> {
    let (parts, body) = respond(ctx, req).await.into_parts();
    Response::from_parts(parts, body.collect().await)
}

/// Answers one request. Never panics on input and never fails: every error
/// becomes a problem+json response carrying the request id.
pub async fn respond(ctx: &AppContext, req: Request<Bytes>) -> Response<Body> {
    let request_id = request_id(ctx, req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let started = ctx.platform.now();
        let request_headers = req.headers().clone();
        let mut response = if req.method() == Method::OPTIONS {
            cors::preflight(ctx, &request_headers).map(Body::Full)
        } else {
            match dispatch(ctx, req).await {
                Ok(response) => response,
                Err(error) => {
                    if let ApiError::Internal(detail) = &error {
                        tracing::error!(error = %detail, "request failed");
                    }
                    problem_response(&error, &request_id).map(Body::Full)
                }
            }
        };
        cors::decorate(ctx, &request_headers, &mut response);
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

fn not_allowed(method: &Method, allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow,
    }
}

async fn dispatch(ctx: &AppContext, req: Request<Bytes>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if let ["api", "chat", id, "events"] = segments.as_slice() {
        return match req.method() {
            &Method::GET => routes::events::open(ctx, &req, id).await,
            method => Err(not_allowed(method, "GET")),
        };
    }
    dispatch_complete(ctx, req).await.map(|r| r.map(Body::Full))
}

async fn dispatch_complete(
    ctx: &AppContext,
    req: Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    match segments.as_slice() {
        ["api", "health", "ping"] => match method {
            Method::GET | Method::HEAD => Ok(routes::health::ping()),
            _ => Err(not_allowed(&method, "GET")),
        },
        ["api", "health", "ready"] => match method {
            Method::GET | Method::HEAD => routes::health::ready(ctx).await,
            _ => Err(not_allowed(&method, "GET")),
        },
        ["api", "session"] => match method {
            Method::POST => routes::session::create(ctx, &req).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        ["api", "chat"] => match method {
            Method::POST => routes::chat::submit(ctx, &req).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        ["api", "chat", "completions"] => match method {
            Method::POST => routes::chat::completions(ctx, &req).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        ["api", "chat", id] => match method {
            Method::GET => routes::chat::get_job(ctx, &req, id).await,
            _ => Err(not_allowed(&method, "GET")),
        },
        ["api", "conversations"] => match method {
            Method::GET => routes::conversations::list(ctx, &req).await,
            _ => Err(not_allowed(&method, "GET")),
        },
        ["api", "conversations", id] => match method {
            Method::GET => routes::conversations::get(ctx, &req, id).await,
            Method::DELETE => routes::conversations::delete(ctx, &req, id).await,
            _ => Err(not_allowed(&method, "GET, DELETE")),
        },
        ["api", "documents"] => match method {
            Method::GET => routes::documents::list(ctx, &req).await,
            Method::POST => routes::documents::upload(ctx, &req).await,
            _ => Err(not_allowed(&method, "GET, POST")),
        },
        ["api", "documents", "ingest"] => match method {
            Method::POST => routes::documents::ingest(ctx, &req).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        ["api", "documents", "upload"] => match method {
            Method::POST => routes::documents::upload(ctx, &req).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        ["api", "documents", id] => match method {
            Method::GET => routes::documents::get(ctx, &req, id).await,
            Method::DELETE => routes::documents::delete(ctx, &req, id).await,
            _ => Err(not_allowed(&method, "GET, DELETE")),
        },
        _ => Err(ApiError::NotFound(format!("no route for {path}"))),
    }
}
