//! Hostile clients against a real dev server over real sockets: forged
//! forwarding headers, event streams held open until the store is polled to
//! death, readiness checks in a loop.

mod common;

use std::time::Duration;

use common::{ADMIN, app};
use serde_json::json;

/// Session creations from one address, each under another forged address.
async fn sessions_with(app: &common::TestApp, header: &str, values: &[&str]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for value in values {
        let r = app
            .raw(
                app.client
                    .post(format!("{}/api/session", app.url))
                    .header(header, *value)
                    .json(&json!({"nickname": "mallory"})),
            )
            .await;
        statuses.push(r.status);
    }
    statuses
}

#[tokio::test]
async fn forged_forwarding_headers_do_not_buy_more_writes() {
    let app = app()
        .var("RATE_LIMIT_IP_PER_MINUTE", "2")
        .drain_concurrency(0)
        .spawn()
        .await;
    let forged = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    assert_eq!(
        sessions_with(&app, "x-forwarded-for", &forged).await,
        [201, 201, 429]
    );
    assert_eq!(sessions_with(&app, "x-real-ip", &forged[..1]).await, [429]);
    assert_eq!(
        sessions_with(&app, "cf-connecting-ip", &forged[..1]).await,
        [429]
    );
}

#[tokio::test]
async fn a_configured_proxy_header_is_trusted_and_its_last_entry_counts() {
    let app = app()
        .var("RATE_LIMIT_IP_PER_MINUTE", "1")
        .var("TRUSTED_IP_HEADER", "X-Forwarded-For")
        .drain_concurrency(0)
        .spawn()
        .await;
    // What the proxy appended is the last entry; what the client wrote
    // before it changes nothing.
    assert_eq!(
        sessions_with(
            &app,
            "x-forwarded-for",
            &["198.51.100.1, 203.0.113.1", "198.51.100.2, 203.0.113.1"]
        )
        .await,
        [201, 429]
    );
    assert_eq!(
        sessions_with(&app, "x-forwarded-for", &["203.0.113.2"]).await,
        [201]
    );
    // The same /64 is one client.
    assert_eq!(
        sessions_with(&app, "x-forwarded-for", &["2001:db8::1", "2001:db8::2"]).await,
        [201, 429]
    );
}

#[tokio::test]
async fn readiness_is_limited_per_address_but_not_for_operators() {
    let app = app()
        .var("RATE_LIMIT_IP_PER_MINUTE", "3")
        .var("ADMIN_TOKEN", ADMIN)
        .drain_concurrency(0)
        .spawn()
        .await;
    for _ in 0..3 {
        let r = app.get("/api/health/ready", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["checks"]["store"]["status"], "ok");
    }
    let r = app.get("/api/health/ready", None).await;
    let problem = r.problem(429);
    assert_eq!(problem["type"], "urn:flowchat:problem:rate-limited");
    assert!(r.header("retry-after").is_some());
    // Writes have their own count.
    app.session("ana").await;
    // An operator's monitor is not refused.
    let r = app.get("/api/health/ready", Some(ADMIN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Opens `job`'s event stream and keeps the connection (headers read, body
/// not).
async fn follow(app: &common::TestApp, job: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/api/chat/{job}/events", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fifth_event_stream_is_refused_and_a_closed_one_is_given_back() {
    let app = app().drain_concurrency(0).spawn().await;
    let (token, _) = app.session("ana").await;
    let job = app.submit(&token, "anyone there?").await;

    let mut open = Vec::new();
    for _ in 0..4 {
        let r = follow(&app, &job, &token).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = follow(&app, &job, &token).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let problem: serde_json::Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("MAX_FOLLOWERS_PER_SESSION"), "{detail}");

    // The client hangs up one stream. The server notices at the latest on
    // its next write (a keep-alive comment every 10 s), then frees the slot.
    drop(open.pop());
    let mut accepted = None;
    for _ in 0..150 {
        let r = follow(&app, &job, &token).await;
        if r.status() == 200 {
            accepted = Some(r);
            break;
        }
        assert_eq!(r.status(), 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        accepted.is_some(),
        "the closed stream's slot was never freed"
    );
}
