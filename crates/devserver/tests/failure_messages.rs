//! What a user sees when an answer fails (issue 14, M6), through the dev
//! server with its in-process drain and the fake Flow server: the job, its
//! event stream and the 502 of `POST /api/chat/completions` carry a short
//! safe sentence, never the provider's status or text.

mod common;

use std::time::Duration;

use common::app;
use flowchat_drain::messages::LLM_UNAVAILABLE;
use flowchat_fake_flow::{FakeFlow, Fault, Target};
use serde_json::{Value, json};

const QUESTION: &str = "How much is the allowance for a desk chair?";

/// What the provider said, which users must not see.
const INTERNAL: [&str; 3] = ["HTTP 503", "upstream provider error", "gave up after"];

fn unavailable() -> Fault {
    Fault::Status {
        status: 503,
        retry_after_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_shows_a_safe_sentence_in_the_job_its_events_and_the_502() {
    let fake = FakeFlow::start().await;
    let app = app()
        .flow(&fake)
        .var("LLM_MAX_RETRIES", "0")
        .var("DRAIN_MAX_ATTEMPTS", "1")
        .spawn()
        .await;
    let (token, _) = app.session("ana").await;

    fake.push_fault(Target::Chat, unavailable());
    let job_id = app.submit(&token, QUESTION).await;
    let response = app
        .client
        .get(format!("{}/api/chat/{job_id}/events", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stream = tokio::time::timeout(Duration::from_secs(30), response.text())
        .await
        .expect("the stream ends with the failure")
        .unwrap();
    assert!(stream.contains("event: failed"), "{stream}");
    assert!(stream.contains(LLM_UNAVAILABLE), "{stream}");
    for internal in INTERNAL {
        assert!(!stream.contains(internal), "{internal} in:\n{stream}");
    }
    let job = app.wait_job(&token, &job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"], LLM_UNAVAILABLE, "{job}");

    fake.push_fault(Target::Chat, unavailable());
    let reply = app
        .post(
            "/api/chat/completions",
            Some(&token),
            json!({"message": QUESTION}),
        )
        .await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.ends_with(LLM_UNAVAILABLE), "{detail}");
    for internal in INTERNAL {
        assert!(!detail.contains(internal), "{detail}");
    }
    assert_eq!(
        reply.body["type"],
        Value::from("urn:flowchat:problem:job-failed")
    );
    app.server.unwrap().stop().await;
}
