use flowchat_api::Platform;
use flowchat_domain::model::{IngestReport, JobResult};
use serde_json::{Value, json};

use crate::harness::{ADMIN, api, chat_answer};

const NO_SUCH_CONVERSATION: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn a_message_is_queued_with_its_conversation() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let r = api
        .post("/api/chat")
        .token(&token)
        .json(json!({"message": "How much is the chair allowance?"}))
        .send()
        .await;
    let body = r.json(202).clone();
    let job_id = body["job_id"].as_str().unwrap();
    let conversation_id = body["conversation_id"].as_str().unwrap();
    assert_eq!(
        body,
        json!({"job_id": job_id, "conversation_id": conversation_id, "status": "queued"})
    );
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/chat/{job_id}"))
    );

    // The next message continues the conversation.
    let r = api
        .post("/api/chat")
        .token(&token)
        .json(json!({"message": "And the desk?", "conversation_id": conversation_id}))
        .send()
        .await;
    assert_eq!(r.json(202)["conversation_id"], conversation_id);
}

#[tokio::test]
async fn bad_messages_are_refused_naming_the_field() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let post = |body: Value| api.post("/api/chat").token(&token).json(body).send();
    post(json!({})).await.invalid("message", "required");
    post(json!({"message": "   "}))
        .await
        .invalid("message", "required");
    post(json!({"message": "x".repeat(4001)}))
        .await
        .invalid("message", "length");
    post(json!({"message": "bell\u{7}"}))
        .await
        .invalid("message", "characters");
    post(json!({"message": ["a"]}))
        .await
        .invalid("message", "type");
    post(json!({"message": "hi", "conversation_id": "nope"}))
        .await
        .invalid("conversation_id", "format");
    post(json!({"message": "hi", "conversation_id": 5}))
        .await
        .invalid("conversation_id", "type");
    let r = post(json!({"message": "hi", "conversation_id": NO_SUCH_CONVERSATION})).await;
    assert_eq!(r.problem(404)["detail"], "no such conversation");

    // Another session's conversation is just as missing.
    let (_, conversation) = api.submit(&token, "mine").await;
    let (bob, _) = api.session("bob").await;
    let r = api
        .post("/api/chat")
        .token(&bob)
        .json(json!({"message": "hi", "conversation_id": conversation}))
        .send()
        .await;
    r.problem(404);
}

#[tokio::test]
async fn chat_needs_a_valid_session() {
    let api = api().build();
    let r = api
        .post("/api/chat")
        .json(json!({"message": "hi"}))
        .send()
        .await;
    let p = r.problem(401);
    assert_eq!(p["type"], "urn:flowchat:problem:unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(p["detail"].as_str().unwrap().contains("POST /api/session"));

    let r = api
        .post("/api/chat")
        .token("forged.token")
        .json(json!({"message": "hi"}))
        .send()
        .await;
    r.problem(401);
    // A token from another secret.
    let other = crate::harness::api()
        .var("SESSION_SECRET", "another-secret-another-secret-another-0")
        .build();
    let (foreign, _) = other.session("ana").await;
    api.post("/api/chat")
        .token(&foreign)
        .json(json!({"message": "hi"}))
        .send()
        .await
        .problem(401);
    // An expired one.
    let (token, _) = api.session("ana").await;
    api.platform.advance_secs(400 * 24 * 3600);
    api.post("/api/chat")
        .token(&token)
        .json(json!({"message": "hi"}))
        .send()
        .await
        .problem(401);
    // The admin token is no session.
    api.post("/api/chat")
        .token(ADMIN)
        .json(json!({"message": "hi"}))
        .send()
        .await
        .problem(401);
}

#[tokio::test]
async fn chat_is_rate_limited_per_session_and_per_ip() {
    let api = api().var("RATE_LIMIT_CHAT_PER_MINUTE", "2").build();
    let (token, _) = api.session("ana").await;
    api.submit(&token, "one").await;
    api.submit(&token, "two").await;
    let r = api
        .post("/api/chat")
        .token(&token)
        .json(json!({"message": "three"}))
        .send()
        .await;
    assert_eq!(r.problem(429)["type"], "urn:flowchat:problem:rate-limited");
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    // A sliding window: up to a whole window and a millisecond, rounded up.
    assert!((1..=61).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("2"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let reset: i64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((0..=60).contains(&reset), "{reset}");
    // Another session is not limited by this one.
    let (bob, _) = api.session("bob").await;
    api.submit(&bob, "hi").await;

    let api = crate::harness::api()
        .var("RATE_LIMIT_IP_PER_MINUTE", "1")
        .build();
    let (token, _) = api.session("ana").await;
    api.submit(&token, "one").await;
    let r = api
        .post("/api/chat")
        .token(&token)
        .json(json!({"message": "two"}))
        .send()
        .await;
    r.problem(429);
    assert_eq!(r.header("ratelimit-limit"), Some("1"));
}

#[tokio::test]
async fn a_job_is_read_by_its_owner_and_operators_only() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, conversation_id) = api.submit(&token, "chairs?").await;
    let path = format!("/api/chat/{job_id}");

    let r = api.get(&path).token(&token).send().await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.json(200),
        &json!({
            "job_id": job_id,
            "kind": "chat",
            "status": "queued",
            "attempts": 0,
            "error": null,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "conversation_id": conversation_id,
            "answer": null,
            "citations": [],
        })
    );

    // Partial text while the drain streams.
    let claim = api.claim().await.unwrap();
    api.store
        .record_progress(&claim, "Chairs are", api.now().plus_secs(60), api.now())
        .await
        .unwrap();
    let r = api.get(&path).token(&token).send().await;
    let body = r.json(200);
    assert_eq!(body["status"], "running");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["partial"], "Chairs are");
    assert_eq!(body["answer"], Value::Null);

    api.store
        .complete_chat(&claim, &chat_answer("Chairs are covered [1]."), api.now())
        .await
        .unwrap();
    let r = api.get(&path).token(&token).send().await;
    assert_eq!(
        r.json(200),
        &json!({
            "job_id": job_id,
            "kind": "chat",
            "status": "succeeded",
            "attempts": 1,
            "error": null,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "conversation_id": conversation_id,
            "answer": "Chairs are covered [1].",
            "citations": [{
                "index": 1,
                "document_id": "0123456789abcdef0123456789abcdef",
                "source": "policy.md",
                "chunk": 0,
                "heading": "Equipment",
                "score": 1.5,
                "excerpt": "a laptop and a headset",
            }],
            "mode": "extractive",
        })
    );

    // An operator reads any job; another session gets the same 404 as for
    // a job that does not exist.
    api.get(&path).token(ADMIN).send().await.json(200);
    let (bob, _) = api.session("bob").await;
    let r = api.get(&path).token(&bob).send().await;
    assert_eq!(r.problem(404)["detail"], "no such job");
    let r = api
        .get(&format!("/api/chat/{NO_SUCH_CONVERSATION}"))
        .token(&token)
        .send()
        .await;
    assert_eq!(r.problem(404)["detail"], "no such job");
    api.get("/api/chat/not-a-uuid")
        .token(&token)
        .send()
        .await
        .invalid("job_id", "format");
    api.get(&path).send().await.problem(401);
    let r = api.delete(&path).token(&token).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn an_ingest_job_shows_its_report() {
    let api = api().build();
    let r = api.post("/api/documents/ingest").token(ADMIN).send().await;
    let job_id = r.json(202)["job_id"].as_str().unwrap().to_owned();
    let report = IngestReport {
        added: 2,
        updated: 0,
        unchanged: 1,
        removed: 0,
        failed: vec![],
    };
    api.complete_next(JobResult::Ingest(report.clone())).await;
    let r = api
        .get(&format!("/api/chat/{job_id}"))
        .token(ADMIN)
        .send()
        .await;
    let body = r.json(200);
    assert_eq!(body["kind"], "ingest");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["report"], serde_json::to_value(&report).unwrap());
    for absent in ["answer", "citations", "mode", "conversation_id", "partial"] {
        assert!(body.get(absent).is_none(), "{absent}: {body}");
    }
}

#[tokio::test]
async fn wait_holds_the_answer_until_the_job_changes() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "chairs?").await;
    let path = format!("/api/chat/{job_id}");

    // Nothing changes: the wait ends at its deadline (the test clock moves
    // only while the handler sleeps).
    let before = api.now();
    let r = api
        .get(&format!("{path}?wait=3"))
        .token(&token)
        .send()
        .await;
    assert_eq!(r.json(200)["status"], "queued");
    assert!(api.now().millis_since(before) >= 3000);

    for bad in ["26", "-1", "soon", "1.5"] {
        api.get(&format!("{path}?wait={bad}"))
            .token(&token)
            .send()
            .await
            .invalid("wait", "range");
    }

    // A drain answering meanwhile ends the wait early. It claims first, so
    // the answer is the only change the wait can see.
    let claim = api.claim().await.unwrap();
    let before = api.now();
    let drain = async {
        tokio::task::yield_now().await;
        api.store
            .complete_chat(&claim, &chat_answer("Yes [1]."), api.now())
            .await
            .unwrap();
    };
    let (r, _) = tokio::join!(
        api.get(&format!("{path}?wait=25")).token(&token).send(),
        drain
    );
    let body = r.json(200);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["answer"], "Yes [1].");
    assert!(api.now().millis_since(before) < 25_000);
}

/// An answer stored by a drain from before the passages were kept has no
/// `context`: the citations' excerpts stand in, as they did then.
#[tokio::test]
async fn completions_of_an_older_answer_give_its_excerpts_as_context() {
    let api = api().build();
    let drain = async {
        tokio::task::yield_now().await;
        let claim = api.claim_when_queued().await;
        let mut older = chat_answer("Yes [1].");
        older.context.clear();
        api.store
            .complete_chat(&claim, &older, api.platform.now())
            .await
            .unwrap();
    };
    let (r, ()) = tokio::join!(
        api.post("/api/chat/completions")
            .json(json!({"message": "Laptops?"}))
            .send(),
        drain
    );
    let body = r.json(200);
    assert_eq!(body["context"][0]["content"], "a laptop and a headset");
    assert_eq!(body["context"], {
        let mut c = body["citations"][0].clone();
        let o = c.as_object_mut().unwrap();
        o.remove("index");
        let excerpt = o.remove("excerpt").unwrap();
        o.insert("content".into(), excerpt);
        o.insert("page".into(), Value::Null);
        json!([c])
    });
}

#[tokio::test]
async fn completions_waits_for_the_answer() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let drain = async {
        tokio::task::yield_now().await;
        api.answer_next("Ten o'clock [1].").await
    };
    let (r, job) = tokio::join!(
        api.post("/api/chat/completions")
            .token(&token)
            .json(json!({"message": "When?", "nickname": "ana"}))
            .send(),
        drain
    );
    let conversation_id = job.conversation_id().unwrap().to_string();
    assert_eq!(
        r.json(200),
        &json!({
            "conversation_id": conversation_id,
            "response": "Ten o'clock [1].",
            // The passage retrieved, whole, as the original API gave it.
            "context": [{
                "document_id": "0123456789abcdef0123456789abcdef",
                "source": "policy.md",
                "chunk": 0,
                "page": null,
                "heading": "Equipment",
                "score": 1.5,
                "content": "## Equipment\n\nEveryone gets a laptop and a headset.",
            }],
            // The citations keep their own field.
            "citations": [{
                "index": 1,
                "document_id": "0123456789abcdef0123456789abcdef",
                "source": "policy.md",
                "chunk": 0,
                "heading": "Equipment",
                "score": 1.5,
                "excerpt": "a laptop and a headset",
            }],
            "created_at": job.updated_at,
        })
    );

    // Anonymous callers get an answer too.
    let drain = async {
        tokio::task::yield_now().await;
        api.answer_next("Yes.").await
    };
    let (r, _) = tokio::join!(
        api.post("/api/chat/completions")
            .json(json!({"message": "Anyone there?"}))
            .send(),
        drain
    );
    assert_eq!(r.json(200)["response"], "Yes.");
}

#[tokio::test]
async fn completions_refusals_and_timeouts() {
    let api = api().var("CHAT_SYNC_TIMEOUT_SECONDS", "2").build();
    let (token, _) = api.session("ana").await;
    api.post("/api/chat/completions")
        .json(json!({"message": "hi", "nickname": "bad<name>"}))
        .send()
        .await
        .invalid("nickname", "characters");
    api.post("/api/chat/completions")
        .json(json!({}))
        .send()
        .await
        .invalid("message", "required");
    let r = api
        .post("/api/chat/completions")
        .json(json!({"message": "hi", "conversation_id": NO_SUCH_CONVERSATION}))
        .send()
        .await;
    assert!(
        r.problem(404)["detail"]
            .as_str()
            .unwrap()
            .contains("session token")
    );
    api.post("/api/chat/completions")
        .token("bad")
        .json(json!({"message": "hi"}))
        .send()
        .await
        .problem(401);

    // Nobody answers: 504, telling a session how to follow the job.
    let r = api
        .post("/api/chat/completions")
        .token(&token)
        .json(json!({"message": "hi"}))
        .send()
        .await;
    let p = r.problem(504);
    assert_eq!(p["type"], "urn:flowchat:problem:timeout");
    assert!(
        p["detail"].as_str().unwrap().contains("GET /api/chat/"),
        "{p}"
    );
    let r = api
        .post("/api/chat/completions")
        .json(json!({"message": "hi"}))
        .send()
        .await;
    let p = r.problem(504);
    assert!(
        p["detail"].as_str().unwrap().contains("POST /api/session"),
        "{p}"
    );

    // Clear the queue, then fail the next job: 502.
    while api.claim().await.is_some() {}
    let drain = async {
        tokio::task::yield_now().await;
        api.fail_next("model exploded").await
    };
    let (r, _) = tokio::join!(
        api.post("/api/chat/completions")
            .token(&token)
            .json(json!({"message": "hi"}))
            .send(),
        drain
    );
    let p = r.problem(502);
    assert_eq!(p["type"], "urn:flowchat:problem:job-failed");
    assert!(
        p["detail"].as_str().unwrap().contains("model exploded"),
        "{p}"
    );

    let r = api.get("/api/chat/completions").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = api.get("/api/chat").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
}
