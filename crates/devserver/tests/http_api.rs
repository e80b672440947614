//! HTTP-level tests against a real dev server on a random port: real SQLite
//! store, real knowledge index, real in-process drain.

mod common;

use common::{ADMIN, SECRET, app, write_doc};
use flowchat_domain::token::{SessionClaims, SessionSecret, issue};
use flowchat_domain::{Nickname, SessionId, Timestamp};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_ping_and_ready() {
    let app = app().spawn().await;
    let ping = app.get("/api/health/ping", None).await;
    assert_eq!(ping.status, 200);
    assert_eq!(ping.body, json!({"status": "ok"}));
    assert!(ping.header("x-request-id").is_some());

    let ready = app.get("/api/health/ready", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let checks = &ready.body["checks"];
    assert_eq!(checks["store"]["status"], "ok");
    assert_eq!(
        checks["drain"]["status"], "ok",
        "the in-process drain reports a heartbeat"
    );
    assert_eq!(checks["llm"]["mode"], "extractive");
    assert_eq!(checks["queue"]["queued"], 0);
}

#[tokio::test]
async fn whole_chat_flow_with_citations_and_history() {
    let app = app().spawn().await;
    let (token, _) = app.session("Ana").await;

    let job = app
        .ask(&token, "How much is the allowance for a desk chair?", None)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["mode"], "extractive");
    let answer = job["answer"].as_str().unwrap();
    assert!(
        answer.to_lowercase().contains("no language model"),
        "{answer}"
    );
    assert!(answer.contains("150 euros"), "{answer}");
    let citation = &job["citations"][0];
    assert_eq!(citation["source"], "policy.md");
    assert_eq!(citation["index"], 1);
    assert!(
        citation["heading"]
            .as_str()
            .unwrap()
            .starts_with("Remote work policy"),
        "{citation}"
    );
    assert!(citation["excerpt"].as_str().unwrap().contains("desk chair"));
    assert!(citation["score"].as_f64().unwrap() > 0.0);
    assert_eq!(citation["document_id"].as_str().unwrap().len(), 32);

    let conversation_id = job["conversation_id"].as_str().unwrap().to_owned();
    let follow_up = app
        .ask(
            &token,
            "How much are meals reimbursed per day?",
            Some(&conversation_id),
        )
        .await;
    assert_eq!(follow_up["conversation_id"], conversation_id.as_str());
    assert_eq!(follow_up["citations"][0]["source"], "expenses.txt");

    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.status, 200);
    let conversations = list.body["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(
        conversations[0]["title"],
        "How much is the allowance for a desk chair?"
    );
    assert_eq!(conversations[0]["message_count"], 4);

    let full = app
        .get(
            &format!("/api/conversations/{conversation_id}"),
            Some(&token),
        )
        .await;
    assert_eq!(full.status, 200);
    let messages = full.body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(messages[1]["content"], job["answer"]);
    assert_eq!(messages[1]["citations"], job["citations"]);
    assert!(messages[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/conversations/{conversation_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let gone = app
        .get(
            &format!("/api/conversations/{conversation_id}"),
            Some(&token),
        )
        .await;
    gone.problem(404);
}

#[tokio::test]
async fn unrelated_questions_get_no_quoted_noise() {
    let app = app().spawn().await;
    let (token, _) = app.session("Bo").await;
    let job = app
        .ask(&token, "What is the airspeed of an unladen swallow?", None)
        .await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["citations"], json!([]));
    let answer = job["answer"].as_str().unwrap().to_lowercase();
    assert!(
        answer.contains("no passage in the documents matches"),
        "{answer}"
    );
    assert!(answer.contains("no language model"), "{answer}");
}

#[tokio::test]
async fn sessions_cannot_reach_each_others_jobs_or_conversations() {
    let app = app().spawn().await;
    let (alice, _) = app.session("alice").await;
    let (bob, _) = app.session("bob").await;
    let job = app
        .ask(&alice, "What equipment does the company provide?", None)
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    let conversation_id = job["conversation_id"].as_str().unwrap();

    app.get(&format!("/api/chat/{job_id}"), Some(&bob))
        .await
        .problem(404);
    app.get(&format!("/api/conversations/{conversation_id}"), Some(&bob))
        .await
        .problem(404);
    app.send(
        Method::DELETE,
        &format!("/api/conversations/{conversation_id}"),
        Some(&bob),
        None,
    )
    .await
    .problem(404);
    app.post(
        "/api/chat",
        Some(&bob),
        json!({"message": "hi", "conversation_id": conversation_id}),
    )
    .await
    .problem(404);
    let bobs = app.get("/api/conversations", Some(&bob)).await;
    assert_eq!(bobs.body["conversations"], json!([]));

    // Alice's conversation is untouched.
    let full = app
        .get(
            &format!("/api/conversations/{conversation_id}"),
            Some(&alice),
        )
        .await;
    assert_eq!(full.body["messages"].as_array().unwrap().len(), 2);

    // Anonymous callers of the compatibility endpoint reach no conversation.
    app.post(
        "/api/chat/completions",
        None,
        json!({"message": "hi", "conversation_id": conversation_id}),
    )
    .await
    .problem(404);
}

#[tokio::test]
async fn synchronous_completions_contract() {
    let app = app().spawn().await;
    let r = app
        .post(
            "/api/chat/completions",
            None,
            json!({"message": "What are the core hours?", "nickname": "legacy"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["response"].as_str().unwrap().contains("10:00"));
    assert!(r.body["conversation_id"].is_string());
    assert!(r.body["created_at"].is_string());
    let context = r.body["context"].as_array().unwrap();
    assert!(!context.is_empty());
    assert!(
        context[0]["content"]
            .as_str()
            .unwrap()
            .contains("Core hours")
    );
    assert_eq!(context[0]["document_id"].as_str().unwrap().len(), 32);
    // Whole passages with where they come from (issue 15): longer than the
    // excerpt the citation quotes from the same chunk.
    assert!(context[0]["source"].as_str().unwrap().ends_with(".md"));
    assert!(context[0]["chunk"].is_u64());
    let citations = r.body["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "{}", r.body);
    let cited = context
        .iter()
        .find(|p| {
            p["document_id"] == citations[0]["document_id"] && p["chunk"] == citations[0]["chunk"]
        })
        .expect("the cited passage is in the context");
    let excerpt = citations[0]["excerpt"].as_str().unwrap();
    let content = cited["content"].as_str().unwrap();
    assert!(content.len() > excerpt.len(), "{content:?} vs {excerpt:?}");

    // With a token, the answer lands in the caller's conversation.
    let (token, _) = app.session("carol").await;
    let r = app
        .post(
            "/api/chat/completions",
            Some(&token),
            json!({"message": "core hours?"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.body["conversation_id"].as_str().unwrap();
    let full = app
        .get(&format!("/api/conversations/{id}"), Some(&token))
        .await;
    assert_eq!(full.body["messages"].as_array().unwrap().len(), 2);

    app.post(
        "/api/chat/completions",
        None,
        json!({"message": "x", "nickname": "<bad>"}),
    )
    .await
    .problem(400);
}

fn forged_token(secret: &[u8], now: Timestamp) -> String {
    let claims = SessionClaims::new(
        SessionId::from_random([9; 16]),
        &Nickname::parse("mallory").unwrap(),
        now,
    );
    issue(&SessionSecret::new(secret.to_vec()).unwrap(), &claims)
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let app = app().spawn().await;
    let (token, _) = app.session("dana").await;
    let url = |p: &str| format!("{}{}", app.url, p);

    // Malformed JSON.
    let r = app
        .raw(
            app.client
                .post(url("/api/chat"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"message\": "),
        )
        .await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-json"
    );
    // Wrong type, named by field.
    let r = app
        .post("/api/chat", Some(&token), json!({"message": 42}))
        .await;
    assert_eq!(r.problem(400)["field"], "message");
    let r = app
        .post(
            "/api/chat",
            Some(&token),
            json!({"message": "hi", "conversation_id": 7}),
        )
        .await;
    assert_eq!(r.problem(400)["field"], "conversation_id");
    // Missing field.
    let r = app.post("/api/chat", Some(&token), json!({})).await;
    let p = r.problem(400);
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("message"), Some("required"))
    );
    // Not JSON at all.
    let r = app
        .raw(
            app.client
                .post(url("/api/chat"))
                .bearer_auth(&token)
                .body("message=hi"),
        )
        .await;
    r.problem(415);
    // Oversized body, refused before it is read in full.
    let big = "x".repeat(70 * 1024);
    let r = app
        .post("/api/chat", Some(&token), json!({"message": big}))
        .await;
    r.problem(413);
    // Empty, too long, control characters.
    for (message, rule) in [
        ("   ", "required"),
        (&"y".repeat(4001)[..], "length"),
        ("a\u{0}b", "characters"),
    ] {
        let r = app
            .post("/api/chat", Some(&token), json!({"message": message}))
            .await;
        let p = r.problem(400);
        assert_eq!(
            (p["field"].as_str(), p["rule"].as_str()),
            (Some("message"), Some(rule))
        );
    }
    // Malformed conversation id.
    let r = app
        .post(
            "/api/chat",
            Some(&token),
            json!({"message": "hi", "conversation_id": "../x"}),
        )
        .await;
    assert_eq!(r.problem(400)["field"], "conversation_id");
    // Bad nicknames.
    for nickname in ["", "<script>", &"n".repeat(41)] {
        let r = app
            .post("/api/session", None, json!({"nickname": nickname}))
            .await;
        assert_eq!(r.problem(400)["field"], "nickname");
    }
    // Missing, forged and expired tokens.
    app.post("/api/chat", None, json!({"message": "hi"}))
        .await
        .problem(401);
    let forged = forged_token(
        b"some-other-secret-some-other-secret!",
        Timestamp::from_millis(i64::MAX / 4),
    );
    let r = app
        .post("/api/chat", Some(&forged), json!({"message": "hi"}))
        .await;
    assert!(
        r.problem(401)["detail"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    let expired = forged_token(SECRET.as_bytes(), Timestamp::from_millis(0));
    let r = app
        .post("/api/chat", Some(&expired), json!({"message": "hi"}))
        .await;
    assert!(
        r.problem(401)["detail"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.post("/api/chat", Some("not-a-token"), json!({"message": "hi"}))
        .await
        .problem(401);
    // Bad ids and wait values.
    app.get("/api/chat/not-a-uuid", Some(&token))
        .await
        .problem(400);
    let r = app
        .get(
            "/api/chat/6f9619ff-8b86-4011-b42d-00c04fc964ff?wait=99",
            Some(&token),
        )
        .await;
    r.problem(400);
    app.get(
        "/api/chat/6f9619ff-8b86-4011-b42d-00c04fc964ff",
        Some(&token),
    )
    .await
    .problem(404);

    // Nothing was written by any of it.
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
    let ready = app.get("/api/health/ready", None).await;
    assert_eq!(ready.body["checks"]["queue"]["queued"], 0);
    assert_eq!(ready.body["checks"]["queue"]["running"], 0);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = app().spawn().await;
    app.get("/api/nope", None).await.problem(404);
    let r = app.get("/api/chat", None).await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = app.send(Method::PUT, "/api/session", None, None).await;
    r.problem(405);
}

#[tokio::test]
async fn chat_rate_limit_per_session() {
    let app = app().var("RATE_LIMIT_CHAT_PER_MINUTE", "3").spawn().await;
    let (token, _) = app.session("eve").await;
    for _ in 0..3 {
        let r = app
            .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
            .await;
        assert_eq!(r.status, 202);
    }
    let r = app
        .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
        .await;
    r.problem(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset <= 60);

    // Another session has its own allowance.
    let (other, _) = app.session("frank").await;
    let r = app
        .post("/api/chat", Some(&other), json!({"message": "core hours?"}))
        .await;
    assert_eq!(r.status, 202);
    // The refused message was not written.
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn ip_write_limit_stops_session_farming() {
    let app = app().var("RATE_LIMIT_IP_PER_MINUTE", "4").spawn().await;
    let (token, _) = app.session("gus").await;
    app.post("/api/chat", Some(&token), json!({"message": "hello"}))
        .await;
    app.session("gus2").await;
    app.session("gus3").await;
    // Fifth write from this address, whatever the session.
    let r = app
        .post("/api/session", None, json!({"nickname": "gus4"}))
        .await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());
    let r = app
        .post("/api/chat", Some(&token), json!({"message": "hello"}))
        .await;
    r.problem(429);
}

#[tokio::test]
async fn ingest_is_idempotent_and_follows_the_folder() {
    let app = app().var("ADMIN_TOKEN", ADMIN).spawn().await;
    let docs = app.get("/api/documents", None).await;
    let list = docs.body["documents"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|d| d["status"] == "indexed"
        && d["scope"] == "shared"
        && d["chunks"].as_u64() > Some(0)));

    let report = rescan(&app).await;
    assert_eq!(report["unchanged"], 2);
    assert_eq!(
        (
            report["added"].as_u64(),
            report["updated"].as_u64(),
            report["removed"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );

    write_doc(
        &app.docs,
        "guides/onboarding.md",
        "# Onboarding\n\nNew hires receive a badge on the first day from reception.\n",
    );
    write_doc(
        &app.docs,
        "expenses.txt",
        "Expense guidelines\n\nMeals are reimbursed up to 55 euros per day.\n",
    );
    std::fs::remove_file(app.docs.join("policy.md")).unwrap();
    let report = rescan(&app).await;
    assert_eq!(
        (
            report["added"].as_u64(),
            report["updated"].as_u64(),
            report["removed"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(0)),
        "{report}"
    );

    let names: Vec<String> = app.get("/api/documents", None).await.body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["expenses.txt", "guides/onboarding.md"]);

    let (token, _) = app.session("hana").await;
    let job = app
        .ask(&token, "How much are meals reimbursed per day?", None)
        .await;
    assert!(
        job["answer"].as_str().unwrap().contains("55 euros"),
        "{job}"
    );
    let job = app
        .ask(&token, "What does the desk chair allowance cover?", None)
        .await;
    assert!(
        job["citations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["source"] != "policy.md"),
        "removed files are not cited: {job}"
    );

    // Operator endpoint: no token, a session token, a wrong token.
    app.post("/api/documents/ingest", None, json!({}))
        .await
        .problem(401);
    app.post("/api/documents/ingest", Some(&token), json!({}))
        .await
        .problem(401);
    app.post(
        "/api/documents/ingest",
        Some("wrong-admin-token-000000"),
        json!({}),
    )
    .await
    .problem(401);
}

async fn rescan(app: &common::TestApp) -> serde_json::Value {
    let r = app
        .post("/api/documents/ingest", Some(ADMIN), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = app
        .wait_job(ADMIN, r.body["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["report"].clone()
}

#[tokio::test]
async fn admin_endpoints_are_off_without_admin_token() {
    let app = app().spawn().await;
    let r = app
        .post(
            "/api/documents/ingest",
            Some("anything-at-all-0000"),
            json!({}),
        )
        .await;
    assert!(
        r.problem(403)["detail"]
            .as_str()
            .unwrap()
            .contains("ADMIN_TOKEN")
    );
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let app = app()
        .var("CORS_ORIGINS", "http://localhost:5173")
        .spawn()
        .await;
    let ok = app
        .raw(
            app.client
                .request(Method::OPTIONS, format!("{}/api/chat", app.url))
                .header("origin", "http://localhost:5173"),
        )
        .await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let other = app
        .raw(
            app.client
                .get(format!("{}/api/health/ping", app.url))
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane() {
    let app = app().spawn().await;
    let r = app
        .raw(
            app.client
                .get(format!("{}/api/health/ping", app.url))
                .header("x-request-id", "trace-abc_123"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc_123"));
    let r = app
        .raw(
            app.client
                .get(format!("{}/api/health/ping", app.url))
                .header("x-request-id", "bad id with spaces"),
        )
        .await;
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
}

#[tokio::test]
async fn builtin_page_is_served() {
    let app = app().spawn().await;
    let res = app
        .client
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Pick a nickname") && html.contains("/api/chat"));
}

#[tokio::test]
async fn built_web_app_is_served_with_caching_and_csp() {
    let web = tempfile::tempdir().unwrap();
    write_doc(
        web.path(),
        "index.html",
        "<!doctype html><title>FlowChat app</title>",
    );
    write_doc(web.path(), "assets/index-abc123.js", "console.log('app')");
    let app = app().web_dir(web.path()).spawn().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.url)).send();

    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let csp = index.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    // Production (vercel.json) serves the same policy.
    let vercel: serde_json::Value =
        serde_json::from_str(include_str!("../../../vercel.json")).unwrap();
    let deployed_csp = vercel["headers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["headers"].as_array().unwrap())
        .find(|h| h["key"] == "Content-Security-Policy")
        .map(|h| h["value"].as_str().unwrap().to_owned());
    assert_eq!(deployed_csp.as_deref(), Some(csp));
    assert!(index.text().await.unwrap().contains("FlowChat app"));

    let asset = get("/assets/index-abc123.js").await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    // A path the app routes itself gets index.html; the API keeps its own 404s.
    let deep = get("/conversations/anything").await.unwrap();
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.unwrap().contains("FlowChat app"));
    let api = get("/api/nope").await.unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
}
