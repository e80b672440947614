use bytes::Bytes;
use flowchat_store::RateDecision;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Bytes> {
    // Serialising our own plain structs cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn no_content() -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
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
