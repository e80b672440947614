//! Building responses: JSON bodies from [`crate::views`], the headers
//! several routes share, and the body type every runtime adapter converts.

use bytes::Bytes;
use flowchat_store::RateDecision;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

/// Server-Sent Events produced over time; native runtimes need `Send`.
#[cfg(not(target_arch = "wasm32"))]
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>;
#[cfg(target_arch = "wasm32")]
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes>>>;

/// A response body: complete, or an event stream the adapter forwards as it
/// is produced (every stream ends on its own within a bounded time).
pub enum Body {
    Full(Bytes),
    Events(EventStream),
}

impl Body {
    /// The whole body, waiting for a stream to end (for runtimes that cannot
    /// stream: the client then receives every event at once).
    pub async fn collect(self) -> Bytes {
        match self {
            Body::Full(bytes) => bytes,
            Body::Events(mut stream) => {
                use futures_util::StreamExt;
                let mut all = Vec::new();
                while let Some(chunk) = stream.next().await {
                    all.extend_from_slice(&chunk);
                }
                Bytes::from(all)
            }
        }
    }
}

pub(crate) fn full(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::Full(bytes.into()));
    *response.status_mut() = status;
    response
}

pub fn json<T: Serialize>(status: StatusCode, view: &T) -> Response<Body> {
    // Views are plain structs with string keys: serialising cannot fail.
    let bytes = serde_json::to_vec(view).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = full(status, bytes);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn no_content() -> Response<Body> {
    full(StatusCode::NO_CONTENT, Bytes::new())
}

/// For answers that change while a client polls: a cached copy would hide
/// the change.
pub(crate) fn no_store(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where the created or queued thing can be followed.
pub(crate) fn with_location(mut response: Response<Body>, location: String) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds).
pub(crate) fn insert_rate_limit_headers(
    headers: &mut HeaderMap,
    d: &RateDecision,
    reset_secs: i64,
) {
    headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset_secs.max(0)));
}
