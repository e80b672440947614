//! A small page that really works (nickname gate, ask, answer with
//! citations) for when the web app has not been built.

use axum::response::{Html, IntoResponse};
use http::{HeaderValue, header};

const PAGE: &str = include_str!("assets/index.html");

pub(crate) async fn page() -> impl IntoResponse {
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
