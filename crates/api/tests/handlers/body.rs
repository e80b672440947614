//! `read_limited`, the body reader every runtime adapter calls.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request};
use http_body_util::{Full, StreamBody};
use serde_json::Value;

use crate::harness::api;

/// A body that must never be read.
struct Untouchable;

impl http_body::Body for Untouchable {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        panic!("the body was read although its declared length is over the limit")
    }
}

fn head(method: Method, path: &str, content_length: Option<usize>) -> Parts {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(len) = content_length {
        request = request.header("content-length", len);
    }
    request.body(()).unwrap().into_parts().0
}

/// A body of `len` bytes sent in 1 KiB frames, with no declared length.
fn streamed(len: usize) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
    let frames = (0..len.div_ceil(1024)).map(move |i| {
        let size = (len - i * 1024).min(1024);
        Ok(http_body::Frame::data(Bytes::from(vec![b'x'; size])))
    });
    StreamBody::new(futures_util::stream::iter(frames))
}

async fn refused(response: http::Response<flowchat_api::Body>) -> Value {
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = serde_json::from_slice(&response.into_body().collect().await).unwrap();
    assert_eq!(body["type"], "urn:flowchat:problem:payload-too-large");
    body
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_unread() {
    let api = api().build();
    let parts = head(Method::POST, "/api/chat", Some(64 * 1024 + 1));
    let response = flowchat_api::read_limited(&api.ctx, &parts, Untouchable)
        .await
        .unwrap_err();
    assert_eq!(refused(response).await["limit_bytes"], 64 * 1024);
}

#[tokio::test]
async fn a_body_streaming_past_the_limit_is_cut_off() {
    let api = api().build();
    let parts = head(Method::POST, "/api/chat", None);
    let response = flowchat_api::read_limited(&api.ctx, &parts, streamed(64 * 1024 + 1))
        .await
        .unwrap_err();
    refused(response).await;
    // Longer than it said.
    let parts = head(Method::POST, "/api/chat", Some(10));
    let response = flowchat_api::read_limited(&api.ctx, &parts, streamed(64 * 1024 + 1))
        .await
        .unwrap_err();
    refused(response).await;

    let parts = head(Method::POST, "/api/chat", None);
    let bytes = flowchat_api::read_limited(&api.ctx, &parts, streamed(64 * 1024))
        .await
        .unwrap_or_else(|_| panic!("a body at the limit is read"));
    assert_eq!(bytes.len(), 64 * 1024);
    let parts = head(Method::GET, "/api/chat/x", Some(5));
    let bytes = flowchat_api::read_limited(&api.ctx, &parts, Full::new(Bytes::from("hello")))
        .await
        .unwrap_or_else(|_| panic!("a small body is read"));
    assert_eq!(bytes, "hello");
}

#[tokio::test]
async fn uploads_may_carry_the_file_limit_and_the_multipart_framing() {
    let api = api().var("MAX_UPLOAD_MB", "1").build();
    let limit = 1024 * 1024 + flowchat_api::MULTIPART_OVERHEAD_BYTES;
    for path in ["/api/documents", "/api/documents/upload", "/api/documents/"] {
        assert_eq!(
            flowchat_api::body_limit(&api.ctx, &Method::POST, path),
            limit,
            "{path}"
        );
        let parts = head(Method::POST, path, Some(limit));
        let bytes = flowchat_api::read_limited(&api.ctx, &parts, streamed(limit))
            .await
            .unwrap_or_else(|_| panic!("{path}: an upload at the limit is read"));
        assert_eq!(bytes.len(), limit);
        let parts = head(Method::POST, path, Some(limit + 1));
        let response = flowchat_api::read_limited(&api.ctx, &parts, Untouchable)
            .await
            .unwrap_err();
        assert_eq!(refused(response).await["limit_bytes"], limit);
    }
    // Other methods and routes keep the small limit.
    assert_eq!(
        flowchat_api::body_limit(&api.ctx, &Method::GET, "/api/documents"),
        flowchat_api::MAX_REQUEST_BYTES
    );
    assert_eq!(
        flowchat_api::body_limit(&api.ctx, &Method::POST, "/api/documents/ingest"),
        flowchat_api::MAX_REQUEST_BYTES
    );
}

#[tokio::test]
async fn runtimes_that_cannot_stream_get_the_whole_event_stream() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    api.answer_next("Yes.").await;
    let request = Request::builder()
        .uri(format!("/api/chat/{job_id}/events"))
        .header("authorization", format!("Bearer {token}"))
        .extension(flowchat_api::ClientIp("192.0.2.9".to_owned()))
        .body(Bytes::new())
        .unwrap();
    let response = flowchat_api::handle_buffered(&api.ctx, request).await;
    assert_eq!(response.status(), 200);
    let text = std::str::from_utf8(response.body()).unwrap();
    assert!(text.starts_with("retry: 1000\n\n"), "{text}");
    assert!(text.contains("event: answer\n"), "{text}");
}
