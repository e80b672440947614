//! CORS for a web app served from another origin (`CORS_ORIGINS`). With no
//! origins configured the API is same-origin only and sends no CORS headers.

use http::{HeaderMap, HeaderValue, Response, header};

use crate::context::AppContext;
use crate::response::{Body, no_content};

fn allowed_origin(ctx: &AppContext, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let allowed = ctx.config.cors_origins.allow(origin)?;
    HeaderValue::from_str(&allowed).ok()
}

/// The answer to a preflight `OPTIONS` request.
pub(crate) fn preflight(ctx: &AppContext, headers: &HeaderMap) -> Response<Body> {
    let mut response = no_content();
    if let Some(origin) = allowed_origin(ctx, headers) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-request-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

pub(crate) fn decorate<B>(
    ctx: &AppContext,
    request_headers: &HeaderMap,
    response: &mut Response<B>,
) {
    if let Some(origin) = allowed_origin(ctx, request_headers) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, location"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}
