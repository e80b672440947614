//! The HTTP API with `FLOWCHAT_STORE=upstash`: a real redis-server behind
//! the Upstash-protocol gateway, spoken to exactly as Upstash would be.

mod common;

use common::{TestApp, app};
use flowchat_gateway::testing::TestGateway;
use reqwest::Method;
use serde_json::json;

fn namespace() -> String {
    let bytes = flowchat_startup::random_bytes();
    format!(
        "t{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn upstash_app(gateway: &TestGateway, namespace: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut builder = app()
        .var("FLOWCHAT_STORE", "upstash")
        .var("UPSTASH_REDIS_REST_URL", &gateway.url())
        .var("UPSTASH_REDIS_REST_TOKEN", gateway.token())
        .var("FLOWCHAT_NAMESPACE", namespace);
    for (k, v) in extra {
        builder = builder.var(k, v);
    }
    builder.spawn().await
}

#[tokio::test]
async fn whole_chat_flow_on_upstash() {
    let gateway = TestGateway::start().await.unwrap();
    let app = upstash_app(&gateway, &namespace(), &[]).await;

    let ready = app.get("/api/health/ready", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["checks"]["store"]["backend"], "upstash");
    assert_eq!(ready.body["checks"]["drain"]["status"], "ok");

    let docs = app.get("/api/documents", None).await;
    assert_eq!(
        docs.body["documents"].as_array().unwrap().len(),
        2,
        "{}",
        docs.body
    );

    let (token, _) = app.session("Ana").await;
    let job = app
        .ask(&token, "How much is the allowance for a desk chair?", None)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["citations"][0]["source"], "policy.md");
    let conversation_id = job["conversation_id"].as_str().unwrap().to_owned();
    let follow_up = app
        .ask(
            &token,
            "How much are meals reimbursed per day?",
            Some(&conversation_id),
        )
        .await;
    assert_eq!(follow_up["citations"][0]["source"], "expenses.txt");

    let full = app
        .get(
            &format!("/api/conversations/{conversation_id}"),
            Some(&token),
        )
        .await;
    let roles: Vec<&str> = full.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"][0]["message_count"], 4);

    let (other, _) = app.session("Bo").await;
    app.get(
        &format!("/api/conversations/{conversation_id}"),
        Some(&other),
    )
    .await
    .problem(404);
    app.get(
        &format!("/api/chat/{}", job["job_id"].as_str().unwrap()),
        Some(&other),
    )
    .await
    .problem(404);

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/conversations/{conversation_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
}

#[tokio::test]
async fn fifty_concurrent_messages_never_exceed_the_limit() {
    let gateway = TestGateway::start().await.unwrap();
    let app = upstash_app(
        &gateway,
        &namespace(),
        &[("RATE_LIMIT_CHAT_PER_MINUTE", "10")],
    )
    .await;
    let (token, _) = app.session("burst").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/api/chat", app.url);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"message": "core hours?"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        40,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn redis_down_answers_503_then_recovers_without_a_restart() {
    let mut gateway = TestGateway::start().await.unwrap();
    let app = upstash_app(&gateway, &namespace(), &[]).await;
    let (token, _) = app.session("outage").await;
    assert_eq!(
        app.post("/api/chat", Some(&token), json!({"message": "core hours?"}))
            .await
            .status,
        202
    );

    gateway.redis.stop();
    let r = app
        .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
        .await;
    let problem = r.problem(503);
    assert!(r.header("retry-after").is_some());
    let detail = problem["detail"].as_str().unwrap();
    assert!(!detail.contains(gateway.token()), "no secret in responses");
    let ready = app.get("/api/health/ready", None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.header("retry-after").is_some());
    assert!(!ready.body.to_string().contains(gateway.token()));
    // Store errors name hosts and internals: only operators see them.
    let error = ready.body["checks"]["store"]["error"].as_str().unwrap();
    assert!(error.starts_with("the store did not answer"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");

    gateway.redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if app
            .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
            .await
            .status
            == 202
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the API recovers once Redis is back");
    assert_eq!(app.get("/api/health/ready", None).await.status, 200);
}

#[tokio::test]
async fn namespaces_never_see_each_others_data() {
    let gateway = TestGateway::start().await.unwrap();
    let blue = upstash_app(&gateway, &namespace(), &[]).await;
    let green = upstash_app(&gateway, &namespace(), &[]).await;
    let (token, _) = blue.session("shared-secret-user").await;
    let job = blue.ask(&token, "What are the core hours?", None).await;
    let job_id = job["job_id"].as_str().unwrap();
    // The test servers share SESSION_SECRET, so the token is valid on both:
    // only the namespace keeps the data apart.
    green
        .get(&format!("/api/chat/{job_id}"), Some(&token))
        .await
        .problem(404);
    let list = green.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
    let list = blue.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_token_stops_start_up_with_a_clear_message() {
    let gateway = TestGateway::start().await.unwrap();
    let error = app()
        .var("FLOWCHAT_STORE", "upstash")
        .var("UPSTASH_REDIS_REST_URL", &gateway.url())
        .var("UPSTASH_REDIS_REST_TOKEN", "definitely-not-the-token")
        .try_spawn()
        .await
        .err()
        .expect("start-up refuses a wrong token");
    let message = format!("{error:#}");
    assert!(message.contains("refused the token"), "{message}");
    assert!(
        !message.contains("definitely-not-the-token"),
        "never echo the token: {message}"
    );

    let missing = app()
        .var("FLOWCHAT_STORE", "upstash")
        .try_spawn()
        .await
        .err()
        .expect("needs a URL");
    assert!(
        format!("{missing:#}").contains("UPSTASH_REDIS_REST_URL"),
        "{missing:#}"
    );
}
