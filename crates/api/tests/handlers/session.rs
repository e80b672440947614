use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{Reply, START, TestApi, api};

/// `POST /api/session` with `body` as JSON.
async fn post_json(api: &TestApi, body: Value) -> Reply {
    api.post("/api/session").json(body).send().await
}

/// `POST /api/session` with a raw body of `content_type`.
async fn post_raw(api: &TestApi, content_type: &str, body: impl Into<Bytes>) -> Reply {
    api.post("/api/session")
        .body(content_type, body)
        .send()
        .await
}

/// Ana's `POST /api/session` from the address `ip`.
async fn post_from(api: &TestApi, ip: &str) -> Reply {
    api.post("/api/session")
        .json(json!({"nickname": "ana"}))
        .ip(ip)
        .send()
        .await
}

#[tokio::test]
async fn a_nickname_gets_a_signed_session() {
    let api = api().build();
    let r = post_json(&api, json!({"nickname": "  Ana  "})).await;
    let body = r.json(201);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "nickname", "session_id", "token"]);
    assert_eq!(body["nickname"], "Ana");
    assert_eq!(body["session_id"].as_str().unwrap().len(), 36);
    let expires = flowchat_domain::Timestamp::parse_rfc3339(body["expires_at"].as_str().unwrap());
    assert!(expires.unwrap() > START);

    // The token opens the session's own endpoints.
    let token = body["token"].as_str().unwrap();
    let r = api.get("/api/conversations").token(token).send().await;
    assert_eq!(r.json(200), &json!({"conversations": []}));
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let api = api().build();
    post_json(&api, json!({}))
        .await
        .invalid("nickname", "required");
    post_json(&api, json!({"nickname": 7}))
        .await
        .invalid("nickname", "type");
    post_json(&api, json!({"nickname": "  "}))
        .await
        .invalid("nickname", "required");
    post_json(&api, json!({"nickname": "a<b>"}))
        .await
        .invalid("nickname", "characters");
    post_json(&api, json!({"nickname": "x".repeat(41)}))
        .await
        .invalid("nickname", "length");

    for malformed in ["{\"nickname\": ", "{\"nickname\": \"ana\"} trailing"] {
        let r = post_raw(&api, "application/json", malformed).await;
        assert_eq!(
            r.problem(400)["type"],
            "urn:flowchat:problem:malformed-json",
            "{malformed}"
        );
    }

    let r = post_raw(&api, "text/plain", "nickname=ana").await;
    let p = r.problem(415);
    assert_eq!(p["type"], "urn:flowchat:problem:unsupported-media-type");
    assert!(
        p["detail"].as_str().unwrap().contains("application/json"),
        "{p}"
    );
    let r = api.post("/api/session").send().await;
    assert!(
        r.problem(415)["detail"]
            .as_str()
            .unwrap()
            .contains("missing")
    );

    // A runtime that did not cap the body still gets a 413.
    let big = format!("{{\"nickname\": \"{}\"}}", "x".repeat(64 * 1024));
    let r = post_raw(&api, "application/json", big).await;
    let p = r.problem(413);
    assert_eq!(p["limit_bytes"], 64 * 1024);
    assert_eq!(p["type"], "urn:flowchat:problem:payload-too-large");
}

#[tokio::test]
async fn sessions_count_against_the_ip_write_limit() {
    let api = api().var("RATE_LIMIT_IP_PER_MINUTE", "2").build();
    for _ in 0..2 {
        let r = post_from(&api, "192.0.2.1").await;
        r.json(201);
    }
    let r = post_from(&api, "192.0.2.1").await;
    let p = r.problem(429);
    assert_eq!(p["type"], "urn:flowchat:problem:rate-limited");
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    // A sliding window: up to a whole window and a millisecond, rounded up.
    assert!((1..=61).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("2"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // Another address is counted apart.
    let r = post_from(&api, "192.0.2.2").await;
    r.json(201);
    // The window passes.
    api.platform.advance_secs(61);
    let r = post_from(&api, "192.0.2.1").await;
    r.json(201);
}

#[tokio::test]
async fn only_post_creates_a_session() {
    let api = api().build();
    let r = api.get("/api/session").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
}
