use http::Method;
use serde_json::json;

use crate::harness::api;

#[tokio::test]
async fn unknown_paths_are_404_problems() {
    let api = api().build();
    for path in ["/", "/api", "/api/nope", "/api/chat/a/b/c", "/api/health"] {
        let r = api.get(path).send().await;
        let p = r.problem(404);
        assert_eq!(p["type"], "urn:flowchat:problem:not-found");
        assert_eq!(p["title"], "Not found");
    }
    // A trailing slash names the same route.
    let r = api.get("/api/health/ping/").send().await;
    assert_eq!(r.json(200), &json!({"status": "ok"}));
}

#[tokio::test]
async fn problems_carry_every_rfc_9457_member() {
    let api = api().build();
    let r = api
        .post("/api/session")
        .header("x-request-id", "req-1")
        .json(json!({"nickname": ""}))
        .send()
        .await;
    assert_eq!(
        r.problem(400),
        &json!({
            "type": "urn:flowchat:problem:validation",
            "title": "Invalid request field",
            "status": 400,
            "detail": "nickname: nickname must not be empty",
            "request_id": "req-1",
            "field": "nickname",
            "rule": "required",
        })
    );
    let r = api.call(Method::PATCH, "/api/chat").send().await;
    assert_eq!(
        r.problem(405),
        &json!({
            "type": "urn:flowchat:problem:method-not-allowed",
            "title": "Method not allowed",
            "status": 405,
            "detail": "PATCH is not allowed here; use POST",
            "request_id": r.header("x-request-id").unwrap(),
        })
    );
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane() {
    let api = api().build();
    let r = api
        .get("/api/health/ping")
        .header("x-request-id", "trace-abc_123")
        .send()
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc_123"));
    for bad in ["bad id", &"x".repeat(65)] {
        let r = api
            .get("/api/health/ping")
            .header("x-request-id", bad)
            .send()
            .await;
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
    }
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let api = api()
        .var("CORS_ORIGINS", "https://chat.example.com")
        .build();
    let r = api
        .call(Method::OPTIONS, "/api/chat")
        .header("origin", "https://chat.example.com")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://chat.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    let r = api
        .get("/api/health/ping")
        .header("origin", "https://chat.example.com")
        .send()
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://chat.example.com")
    );
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("retry-after")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = api
        .call(Method::OPTIONS, "/api/chat")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);

    let api = crate::harness::api().build();
    let r = api
        .get("/api/health/ping")
        .header("origin", "https://chat.example.com")
        .send()
        .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}
