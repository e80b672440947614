use http::Method;
use serde_json::json;

use crate::harness::api;

#[tokio::test]
async fn ping_answers_ok_to_get_and_head() {
    let api = api().build();
    let r = api.get("/api/health/ping").send().await;
    assert_eq!(r.json(200), &json!({"status": "ok"}));
    assert!(r.header("x-request-id").is_some());
    let r = api.call(Method::HEAD, "/api/health/ping").send().await;
    assert_eq!(r.status, 200);
    let r = api.post("/api/health/ping").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn ready_reports_each_check() {
    let api = api().build();
    let r = api.get("/api/health/ready").send().await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json(200);
    let latency = body["checks"]["store"]["latency_ms"].clone();
    assert_eq!(
        body,
        &json!({
            "status": "ready",
            "namespace": "dev",
            "checks": {
                "store": {"status": "ok", "backend": "sqlite", "latency_ms": latency},
                "queue": {"status": "ok", "queued": 0, "delayed": 0, "running": 0, "dead_letters": 0},
                "drain": {"status": "missing", "detail": "no drain has reported yet; queued jobs wait until one runs"},
                "llm": {
                    "status": "ok",
                    "mode": "extractive",
                    "detail": "no language model is configured; answers quote the documents",
                },
            }
        })
    );

    api.store
        .record_heartbeat("drain-1", api.now())
        .await
        .unwrap();
    api.platform.advance_secs(30);
    let (token, _) = api.session("ana").await;
    api.submit(&token, "hello?").await;
    let r = api.get("/api/health/ready").send().await;
    let checks = &r.json(200)["checks"];
    assert_eq!(
        checks["drain"],
        json!({"status": "ok", "worker": "drain-1", "last_seen": "2025-01-01T00:00:00Z", "age_seconds": 30})
    );
    assert_eq!(checks["queue"]["queued"], 1);

    api.platform.advance_secs(121);
    let r = api.get("/api/health/ready").send().await;
    assert_eq!(r.json(200)["checks"]["drain"]["status"], "stale");

    let r = api.delete("/api/health/ready").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn ready_names_a_generative_provider() {
    let api = api()
        .var("LLM_PROVIDER", "openai")
        .var("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .build();
    let r = api.get("/api/health/ready").send().await;
    assert_eq!(
        r.json(200)["checks"]["llm"],
        json!({
            "status": "ok",
            "mode": "generative",
            "provider": "openai",
            "detail": "the drain generates answers; its own start-up checks the credentials",
        })
    );
}
