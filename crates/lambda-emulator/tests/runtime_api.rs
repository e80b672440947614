//! The emulator's two sides spoken to directly: the test plays the
//! function's runtime client on the Runtime API while an HTTP client calls
//! the front, so the protocol is checked without any function binary.

use std::time::Duration;

use flowchat_lambda_emulator::LambdaFront;
use serde_json::Value;

const NEXT: &str = "2018-06-01/runtime/invocation/next";

struct Runtime {
    client: reqwest::Client,
    base: String,
}

impl Runtime {
    fn new(front: &LambdaFront) -> Runtime {
        Runtime {
            client: reqwest::Client::new(),
            base: format!("http://{}", front.runtime_api()),
        }
    }

    /// The next invocation: its id and its event.
    async fn next(&self) -> (String, Value) {
        let r = self
            .client
            .get(format!("{}/{NEXT}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        for header in [
            "lambda-runtime-deadline-ms",
            "lambda-runtime-invoked-function-arn",
        ] {
            assert!(r.headers().contains_key(header), "{header}");
        }
        (id, r.json().await.unwrap())
    }

    fn url(&self, id: &str, what: &str) -> String {
        format!("{}/2018-06-01/runtime/invocation/{id}/{what}", self.base)
    }

    /// A request to the invocation's `what` (`response` or `error`).
    fn post(&self, id: &str, what: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(id, what))
    }

    /// Sends `body` as the invocation's `what`, with no other header.
    async fn reply(
        &self,
        id: &str,
        what: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.post(id, what).body(body).send().await.unwrap()
    }
}

/// A front with no function behind it: the test plays the runtime.
async fn front(timeout_secs: u64) -> LambdaFront {
    LambdaFront::without_function(Duration::from_secs(timeout_secs))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_buffered_answer_and_the_event_it_answers() {
    let front = front(10).await;
    let runtime = Runtime::new(&front);
    let url = front.url();
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/session?x=1"))
            .header("content-type", "application/json")
            .body(r#"{"nickname":"a"}"#)
            .send()
            .await
            .unwrap()
    });
    let (id, event) = runtime.next().await;
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/api/session");
    assert_eq!(event["rawQueryString"], "x=1");
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["requestId"], id.as_str());
    assert_eq!(event["body"], r#"{"nickname":"a"}"#);
    let r = runtime
        .reply(
            &id,
            "response",
            r#"{"statusCode":201,"headers":{"content-type":"application/json"},"cookies":["c=1"],"body":"{\"ok\":true}"}"#,
        )
        .await;
    assert_eq!(r.status(), 202);
    let answer = call.await.unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["set-cookie"], "c=1");
    assert_eq!(answer.text().await.unwrap(), r#"{"ok":true}"#);

    // An unknown invocation id is refused.
    let r = runtime.reply("nope", "response", "{}").await;
    assert_eq!(r.status(), 400);
    front.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_reaches_the_client_chunk_by_chunk() {
    let front = front(10).await;
    let runtime = Runtime::new(&front);
    let url = front.url();
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{url}/api/chat/x/events"))
            .send()
            .await
            .unwrap()
    });
    let (id, _) = runtime.next().await;

    // The runtime's body: prelude, eight NULs, then chunks over time.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let post = runtime
        .post(&id, "response")
        .header("lambda-runtime-function-response-mode", "streaming")
        .header(
            "content-type",
            "application/vnd.awslambda.http-integration-response",
        )
        .body(body)
        .send();
    let post = tokio::spawn(post);
    let mut first =
        br#"{"statusCode":200,"headers":{"content-type":"text/event-stream"},"cookies":[]}"#
            .to_vec();
    first.extend_from_slice(&[0; 8]);
    first.extend_from_slice(b"event: one\n\n");
    sender.send(Ok(first)).await.unwrap();

    let mut answer = call.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let chunk = tokio::time::timeout(Duration::from_secs(5), answer.chunk())
        .await
        .expect("the first event arrives while the stream is still open")
        .unwrap()
        .unwrap();
    assert_eq!(&chunk[..], b"event: one\n\n");

    sender.send(Ok(b"event: two\n\n".to_vec())).await.unwrap();
    drop(sender);
    let mut rest = Vec::new();
    while let Some(chunk) = answer.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"event: two\n\n");
    assert_eq!(post.await.unwrap().unwrap().status(), 202);
    front.stop().await;
}

#[tokio::test]
async fn errors_and_silence_become_lambdas_own_answers() {
    let front = front(1).await;
    let runtime = Runtime::new(&front);
    let url = front.url();
    let call = tokio::spawn(async move { reqwest::get(format!("{url}/a")).await.unwrap() });
    let (id, _) = runtime.next().await;
    runtime
        .post(&id, "error")
        .header("lambda-runtime-function-error-type", "Unhandled")
        .body(r#"{"errorType":"Unhandled","errorMessage":"boom"}"#)
        .send()
        .await
        .unwrap();
    let answer = call.await.unwrap();
    assert_eq!(answer.status(), 502);

    // Nobody answers within the timeout.
    let url = front.url();
    let call = tokio::spawn(async move { reqwest::get(format!("{url}/b")).await.unwrap() });
    let _ = runtime.next().await;
    assert_eq!(call.await.unwrap().status(), 504);

    // Init errors are accepted (and make `start` fail; see flowchat-lambda's tests).
    let r = runtime
        .client
        .post(format!("{}/2018-06-01/runtime/init/error", runtime.base))
        .body(r#"{"errorType":"Runtime.InitError","errorMessage":"no config"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    front.stop().await;
}

#[tokio::test]
async fn concurrent_requests_queue_for_the_instances() {
    let front = front(10).await;
    let runtime = Runtime::new(&front);
    let url = front.url();
    let calls: Vec<_> = (0..3)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move { reqwest::get(format!("{url}/q/{n}")).await.unwrap() })
        })
        .collect();
    // One "instance" serves them one after the other.
    for _ in 0..3 {
        let (id, event) = runtime.next().await;
        let path = event["rawPath"].as_str().unwrap().to_owned();
        runtime
            .reply(
                &id,
                "response",
                format!(r#"{{"statusCode":200,"body":"{path}"}}"#),
            )
            .await;
    }
    for (n, call) in calls.into_iter().enumerate() {
        let answer = call.await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), format!("/q/{n}"));
    }
    front.stop().await;
}

#[tokio::test]
async fn lambdas_payload_limit_is_enforced_by_the_front() {
    let front = front(10).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/documents", front.url()))
        .body(vec![0u8; 6 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    front.stop().await;
}
