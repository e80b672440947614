use serde_json::{Value, json};

use crate::harness::{ADMIN, Reply, TestApi, api, chat_answer};

/// The `(event, data)` pairs of an event stream; comments and `retry` lines
/// are left out.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// `job_id`'s event stream, followed with `token`.
async fn stream(api: &TestApi, job_id: &str, token: &str) -> Reply {
    api.get(&format!("/api/chat/{job_id}/events"))
        .token(token)
        .send()
        .await
}

#[tokio::test]
async fn a_finished_job_streams_its_status_and_answer() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    let job = api.answer_next("Covered [1].").await;

    let r = stream(&api, &job_id, &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    assert!(r.bytes.starts_with(b"retry: 1000\n\n"));
    let got = events(&r.bytes);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        (
            "status".to_owned(),
            json!({"status": "succeeded", "attempts": 1, "error": null})
        )
    );
    assert_eq!(got[1].0, "answer");
    assert_eq!(got[1].1["answer"], "Covered [1].");
    assert_eq!(
        got[1].1["citations"],
        serde_json::to_value(&chat_answer("x").citations).unwrap()
    );
    assert_eq!(
        got[1].1["conversation_id"],
        job.conversation_id().unwrap().as_str()
    );

    // The operator may follow it too.
    let r = stream(&api, &job_id, ADMIN).await;
    assert_eq!(events(&r.bytes).len(), 2);
}

#[tokio::test]
async fn a_running_job_streams_partial_text_until_the_connection_ends() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    let claim = api.claim().await.unwrap();
    api.store
        .record_progress(&claim, "Chairs", api.now().plus_secs(60), api.now())
        .await
        .unwrap();

    // Nothing more happens: the stream keeps the connection alive, then
    // ends after 25 s (of the test clock) for the client to reconnect.
    let r = stream(&api, &job_id, &token).await;
    let got = events(&r.bytes);
    assert_eq!(
        got,
        [
            (
                "status".to_owned(),
                json!({"status": "running", "attempts": 1, "error": null})
            ),
            ("partial".to_owned(), json!({"text": "Chairs"})),
        ]
    );
    let text = std::str::from_utf8(&r.bytes).unwrap();
    assert_eq!(text.matches(": keep-alive\n\n").count(), 2, "{text}");
}

#[tokio::test]
async fn a_failed_job_streams_failed() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    api.fail_next("no model").await;
    let r = stream(&api, &job_id, &token).await;
    let got = events(&r.bytes);
    assert_eq!(got[0].1["status"], "failed");
    assert_eq!(got[0].1["error"], "no model");
    assert_eq!(got[1].0, "failed");
    assert_eq!(got[1].1["error"], "no model");
}

#[tokio::test]
async fn events_refusals() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    let path = format!("/api/chat/{job_id}/events");
    api.get(&path).send().await.problem(401);
    let (bob, _) = api.session("bob").await;
    let r = api.get(&path).token(&bob).send().await;
    assert_eq!(r.problem(404)["detail"], "no such job");
    api.get("/api/chat/xyz/events")
        .token(&token)
        .send()
        .await
        .invalid("job_id", "format");
    let r = api.post(&path).token(&token).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET"));
}
