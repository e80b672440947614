//! The cases, the same on every runtime. Each gets the suite's context: the
//! primary instance `a` (namespace A, a drain answers, the shared folder is
//! indexed) and the secondary `b` (namespace B, no drain, low rate limits).
//! Every case makes its own sessions, so cases do not depend on each other,
//! except that `rate_limits` spends namespace B's allowance and runs last.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Target, form, multipart_type};
use crate::runtimes::{ALLOWED_ORIGIN, Runtime};

pub struct Ctx {
    pub runtime: Runtime,
    pub a: Target,
    pub b: Target,
}

pub async fn health(ctx: &Ctx) {
    let ping = ctx.a.get("/api/health/ping", None).await;
    assert_eq!(ping.status, 200, "{}", ping.body);
    assert_eq!(ping.body, json!({"status": "ok"}));
    assert!(ping.header("x-request-id").is_some());

    let ready = ctx.a.get("/api/health/ready", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body["checks"]["store"]["status"], "ok",
        "{}",
        ready.body
    );
    assert_eq!(
        ready.body["checks"]["store"]["backend"], "upstash",
        "{}",
        ready.body
    );
    assert_eq!(
        ready.body["checks"]["drain"]["status"], "ok",
        "namespace A's drain reports a heartbeat: {}",
        ready.body
    );

    // The API's description, served by every runtime (docs/openapi.yaml).
    let spec = ctx.a.get("/api/openapi.json", None).await;
    assert_eq!(spec.status, 200, "{}", spec.body);
    assert_eq!(spec.header("content-type"), Some("application/json"));
    assert!(spec.body["paths"]["/api/chat/{job_id}"]["get"].is_object());
}

pub async fn session(ctx: &Ctx) {
    let r = ctx
        .a
        .post("/api/session", None, json!({"nickname": "Ana"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body["token"].as_str().is_some_and(|t| t.len() > 20),
        "{}",
        r.body
    );
    assert!(r.body["session_id"].is_string(), "{}", r.body);
    for nickname in ["", "<script>", &"n".repeat(41)] {
        let r = ctx
            .a
            .post("/api/session", None, json!({"nickname": nickname}))
            .await;
        assert_eq!(r.problem(400)["field"], "nickname", "{nickname:?}");
    }
    let r = ctx.a.post("/api/session", None, json!({})).await;
    assert_eq!(r.problem(400)["field"], "nickname");
}

pub async fn chat_long_poll(ctx: &Ctx) {
    let (token, _) = ctx.a.session("poller").await;
    let accepted = ctx
        .a
        .submit(&token, "How much is the allowance for a desk chair?", None)
        .await;
    assert!(accepted["conversation_id"].is_string(), "{accepted}");
    assert_eq!(accepted["status"], "queued", "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap();

    let job = ctx.a.wait_job(&token, job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["job_id"], job_id);
    assert_eq!(job["mode"], "extractive", "{job}");
    let answer = job["answer"].as_str().unwrap();
    assert!(answer.contains("150 euros"), "{answer}");
    let citation = &job["citations"][0];
    assert_eq!(citation["source"], "policy.md", "{job}");
    assert!(citation["excerpt"].as_str().unwrap().contains("desk chair"));
    assert_eq!(citation["document_id"].as_str().unwrap().len(), 32);

    // A finished job answers a long poll at once.
    let started = Instant::now();
    let again = ctx
        .a
        .get(&format!("/api/chat/{job_id}?wait=10"), Some(&token))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["status"], "succeeded");
    assert!(started.elapsed() < Duration::from_secs(5));
}

pub async fn chat_sse(ctx: &Ctx) {
    // Followed to the answer.
    let (token, _) = ctx.a.session("streamer").await;
    let accepted = ctx.a.submit(&token, "What are the core hours?", None).await;
    let job_id = accepted["job_id"].as_str().unwrap();
    let text = ctx
        .a
        .events_until(
            &token,
            job_id,
            &["event: answer", "event: failed"],
            Duration::from_secs(30),
        )
        .await;
    assert!(text.starts_with("retry: 1000"), "{text}");
    assert!(text.contains("event: status"), "{text}");
    let answer = text
        .split("event: answer\ndata: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no answer event: {text}"));
    let answer: Value = serde_json::from_str(answer.lines().next().unwrap()).unwrap();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert!(
        answer["answer"].as_str().unwrap().contains("10:00"),
        "{answer}"
    );

    // Streamed, not buffered: with no drain in namespace B the job stays
    // queued, and its first events arrive while the stream is still open.
    let (token, _) = ctx.b.session("waiter").await;
    let accepted = ctx.b.submit(&token, "What are the core hours?", None).await;
    let text = ctx
        .b
        .events_until(
            &token,
            accepted["job_id"].as_str().unwrap(),
            &["event: status"],
            Duration::from_secs(10),
        )
        .await;
    assert!(text.starts_with("retry: 1000"), "{text}");
    assert!(text.contains(r#""status":"queued""#), "{text}");

    // Someone else's job, no token.
    let (other, _) = ctx.a.session("peeker").await;
    ctx.a
        .get(&format!("/api/chat/{job_id}/events"), Some(&other))
        .await
        .problem(404);
    ctx.a
        .get(&format!("/api/chat/{job_id}/events"), None)
        .await
        .problem(401);
}

pub async fn conversations(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("Ana").await;
    let job = app
        .ask(&token, "How much is the allowance for a desk chair?", None)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let conversation_id = job["conversation_id"].as_str().unwrap().to_owned();
    let follow_up = app
        .ask(
            &token,
            "How much are meals reimbursed per day?",
            Some(&conversation_id),
        )
        .await;
    assert_eq!(follow_up["conversation_id"], conversation_id.as_str());
    assert_eq!(
        follow_up["citations"][0]["source"], "expenses.txt",
        "{follow_up}"
    );

    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let conversations = list.body["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{}", list.body);
    assert_eq!(
        conversations[0]["title"],
        "How much is the allowance for a desk chair?"
    );
    assert_eq!(conversations[0]["message_count"], 4);

    let path = format!("/api/conversations/{conversation_id}");
    let full = app.get(&path, Some(&token)).await;
    assert_eq!(full.status, 200, "{}", full.body);
    let messages = full.body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(messages[1]["content"], job["answer"]);
    assert_eq!(messages[1]["citations"], job["citations"]);
    // Each answer says how it was made, as its job did; questions do not.
    assert_eq!(messages[1]["mode"], job["mode"]);
    assert!(messages[1]["mode"].is_string(), "{}", full.body);
    assert!(messages[0].get("mode").is_none(), "{}", full.body);

    // Another session sees none of it and cannot delete it.
    let (other, _) = app.session("Bo").await;
    app.get(&path, Some(&other)).await.problem(404);
    app.delete(&path, Some(&other)).await.problem(404);
    let theirs = app.get("/api/conversations", Some(&other)).await;
    assert_eq!(theirs.body["conversations"], json!([]));
    app.get("/api/conversations", None).await.problem(401);

    let deleted = app.delete(&path, Some(&token)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.get(&path, Some(&token)).await.problem(404);
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
    app.get("/api/conversations/not-an-id", Some(&token))
        .await
        .problem(400);
}

/// 👍/👎 on an answer: given, changed (the second replaces the first),
/// refused for another session exactly like a missing answer.
pub async fn feedback(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("Ana").await;
    let job = app
        .ask(&token, "How much is the allowance for a desk chair?", None)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let job_id = job["job_id"].as_str().unwrap();
    let path = format!("/api/chat/{job_id}/feedback");

    let given = app.put(&path, Some(&token), json!({"rating": "up"})).await;
    assert_eq!(given.status, 204, "{}", given.body);
    let changed = app
        .put(
            &path,
            Some(&token),
            json!({"rating": "down", "comment": "The amount is out of date."}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.body);

    let bad = app.put(&path, Some(&token), json!({"rating": "meh"})).await;
    let problem = bad.problem(400);
    assert_eq!(problem["field"], "rating", "{problem}");
    app.put(&path, None, json!({"rating": "up"}))
        .await
        .problem(401);

    let (other, _) = app.session("Bo").await;
    app.put(&path, Some(&other), json!({"rating": "down"}))
        .await
        .problem(404);
}

pub async fn completions(ctx: &Ctx) {
    let r = ctx
        .a
        .post(
            "/api/chat/completions",
            None,
            json!({"message": "What are the core hours?", "nickname": "legacy"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["response"].as_str().unwrap().contains("10:00"),
        "{}",
        r.body
    );
    assert!(r.body["conversation_id"].is_string());
    ctx.a
        .post(
            "/api/chat/completions",
            None,
            json!({"message": "x", "nickname": "<bad>"}),
        )
        .await
        .problem(400);
}

const NOTES: &[u8] =
    b"# Parking\n\nVisitor parking spots are on level minus two, next to the lifts.\n";
const PLAIN: &[u8] = b"Plain text, caf\xc3\xa9 included.\n";

/// Asserts a 202 for a new upload and returns the document id.
#[track_caller]
fn accepted_upload(r: &crate::client::Reply) -> String {
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "pending", "{}", r.body);
    assert!(r.body["job_id"].is_string(), "{}", r.body);
    assert_eq!(r.body["document"]["scope"], "private", "{}", r.body);
    let id = r.body["document_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/documents/{id}"))
    );
    id
}

pub async fn documents(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("uploader").await;
    let (other, _) = app.session("neighbour").await;

    let notes = accepted_upload(
        &app.upload("/api/documents", Some(&token), "parking.md", NOTES)
            .await,
    );
    let plain = accepted_upload(
        &app.upload("/api/documents/upload", Some(&token), "plain.txt", PLAIN)
            .await,
    );

    assert_eq!(
        app.document_names(Some(&token)).await,
        ["expenses.txt", "parking.md", "plain.txt", "policy.md"]
    );
    assert_eq!(
        app.document_names(None).await,
        ["expenses.txt", "policy.md"],
        "without a token, the shared documents only"
    );
    assert_eq!(
        app.document_names(Some(&other)).await,
        ["expenses.txt", "policy.md"]
    );

    // Read back by its owner; the drain indexes it.
    let path = format!("/api/documents/{notes}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let doc = loop {
        let r = app.get(&path, Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["id"], notes.as_str());
        assert_eq!(r.body["name"], "parking.md");
        assert_eq!(r.body["scope"], "private");
        assert_eq!(r.body["size_bytes"], NOTES.len());
        if r.body["status"] != "pending" {
            break r.body;
        }
        assert!(Instant::now() < deadline, "never indexed: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert!(doc["chunks"].as_u64().unwrap() >= 1, "{doc}");

    // Nobody else reads or deletes it.
    app.get(&path, None).await.problem(404);
    app.get(&path, Some(&other)).await.problem(404);
    app.delete(&path, Some(&other)).await.problem(404);
    app.delete(&path, None).await.problem(401);

    // A shared document is readable by anyone, deletable by no session.
    let shared = app.get("/api/documents", None).await;
    let shared_id = shared.body["documents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get(&format!("/api/documents/{shared_id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "shared");
    assert_eq!(r.body["status"], "indexed");
    app.delete(&format!("/api/documents/{shared_id}"), Some(&token))
        .await
        .problem(403);

    // Methods, ids, types, tokens.
    let r = app.send(Method::PUT, &path, Some(&token), None).await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    app.get("/api/documents/upload", Some(&token))
        .await
        .problem(405);
    app.get("/api/documents/not-an-id", Some(&token))
        .await
        .problem(400);
    let r = app
        .upload("/api/documents", Some(&token), "tool.exe", b"text")
        .await;
    assert_eq!(r.problem(415)["rule"], "extension");
    app.upload("/api/documents", None, "a.md", b"# A")
        .await
        .problem(401);

    // The owner deletes: gone at once, the clean-up queued.
    let r = app.delete(&path, Some(&token)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["document_id"], notes.as_str());
    assert_eq!(r.body["status"], "deleting");
    app.get(&path, Some(&token)).await.problem(404);
    let r = app
        .delete(&format!("/api/documents/{plain}"), Some(&token))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        app.document_names(Some(&token)).await,
        ["expenses.txt", "policy.md"]
    );
}

pub async fn problems(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("dana").await;

    // 400: malformed JSON, a field of the wrong type, a missing field, bad ids.
    let r = app
        .raw(
            app.client
                .post(app.at("/api/chat"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"message\": "),
        )
        .await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-json"
    );
    let r = app
        .post("/api/chat", Some(&token), json!({"message": 42}))
        .await;
    assert_eq!(r.problem(400)["field"], "message");
    let r = app.post("/api/chat", Some(&token), json!({})).await;
    let p = r.problem(400);
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("message"), Some("required"))
    );
    app.get("/api/chat/not-a-uuid", Some(&token))
        .await
        .problem(400);
    app.get(
        "/api/chat/6f9619ff-8b86-4011-b42d-00c04fc964ff?wait=99",
        Some(&token),
    )
    .await
    .problem(400);

    // 401: no token, a bad token, a session token on the operator endpoint.
    let r = app.post("/api/chat", None, json!({"message": "hi"})).await;
    r.problem(401);
    let r = app
        .post("/api/chat", Some("not-a-token"), json!({"message": "hi"}))
        .await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.post("/api/documents/ingest", Some(&token), json!({}))
        .await
        .problem(401);

    // 404: an unknown job; an unknown route.
    app.get(
        "/api/chat/6f9619ff-8b86-4011-b42d-00c04fc964ff",
        Some(&token),
    )
    .await
    .problem(404);
    let r = app.get("/api/nope", None).await;
    if ctx.runtime == Runtime::Vercel {
        // No function file matches: Vercel's platform answers, not ours.
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.header("x-vercel-error"), Some("NOT_FOUND"));
    } else {
        r.problem(404);
    }

    // 405, with Allow.
    let r = app.get("/api/chat", None).await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    app.send(Method::PUT, "/api/session", None, None)
        .await
        .problem(405);

    // 415: not JSON.
    app.raw(
        app.client
            .post(app.at("/api/chat"))
            .bearer_auth(&token)
            .body("message=hi"),
    )
    .await
    .problem(415);

    // Nothing was written by any of it.
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
}

/// 413 for a body over the route's limit, sent in full (read off a raw
/// socket: the server may answer before reading it all).
pub async fn too_large_sent(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("dana").await;
    let auth = ("Authorization", format!("Bearer {token}"));
    let chat = serde_json::to_vec(&json!({"message": "x".repeat(70 * 1024)})).unwrap();
    let declared = chat.len();
    let r = app
        .raw_post(
            "/api/chat",
            &[auth.clone(), ("Content-Type", "application/json".into())],
            chat,
            declared,
        )
        .await;
    assert_eq!(r.problem(413)["limit_bytes"], 64 * 1024);
    let body_limit = 1024 * 1024 + 64 * 1024;
    let upload = form(&[("file", Some("big.txt"), &vec![b'a'; body_limit])]);
    let declared = upload.len();
    let r = app
        .raw_post(
            "/api/documents",
            &[auth.clone(), ("Content-Type", multipart_type())],
            upload,
            declared,
        )
        .await;
    let p = r.problem(413);
    assert_eq!(p["type"], "urn:flowchat:problem:payload-too-large");
    assert_eq!(p["limit_bytes"], body_limit);

    // Nothing was written.
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
    assert_eq!(
        app.document_names(Some(&token)).await,
        ["expenses.txt", "policy.md"]
    );
}

/// 413 by the declared Content-Length, before the body is sent.
pub async fn too_large_declared(ctx: &Ctx) {
    let app = &ctx.a;
    let (token, _) = app.session("dana").await;
    let auth = ("Authorization", format!("Bearer {token}"));
    for (path, content_type) in [
        ("/api/documents", multipart_type()),
        ("/api/chat", "application/json".to_owned()),
    ] {
        let r = app
            .raw_post(
                path,
                &[auth.clone(), ("Content-Type", content_type)],
                b"--x".to_vec(),
                50 * 1024 * 1024,
            )
            .await;
        if ctx.runtime == Runtime::Lambda {
            // Lambda buffers the body into the invocation: a declared size
            // over its payload limit (6 MB) is refused by the platform (the
            // emulator, like AWS) before the function runs.
            assert_eq!(r.status, 413, "{path}: {}", r.head);
            assert!(
                r.body.to_string().contains("Request must be smaller than"),
                "{path}: {}",
                r.body
            );
        } else {
            r.problem(413);
        }
    }

    // Nothing was written by any of it.
    let list = app.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"], json!([]));
}

pub async fn cors(ctx: &Ctx) {
    let app = &ctx.a;
    let preflight = app
        .raw(
            app.client
                .request(Method::OPTIONS, app.at("/api/chat"))
                .header("origin", ALLOWED_ORIGIN)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
        )
        .await;
    assert_eq!(preflight.status, 204, "{}", preflight.body);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    let simple = app
        .raw(
            app.client
                .get(app.at("/api/health/ping"))
                .header("origin", ALLOWED_ORIGIN),
        )
        .await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let other = app
        .raw(
            app.client
                .get(app.at("/api/health/ping"))
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

pub async fn namespace_isolation(ctx: &Ctx) {
    let (token, _) = ctx.a.session("blue").await;
    let job = ctx.a.ask(&token, "What are the core hours?", None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let job_id = job["job_id"].as_str().unwrap();
    let conversation_id = job["conversation_id"].as_str().unwrap();
    let doc = accepted_upload(
        &ctx.a
            .upload(
                "/api/documents",
                Some(&token),
                "blue.md",
                b"# Blue team notes\n",
            )
            .await,
    );

    // The instances share SESSION_SECRET, so the token is valid on B: only
    // the namespace keeps the data apart.
    let b = &ctx.b;
    b.get(&format!("/api/chat/{job_id}"), Some(&token))
        .await
        .problem(404);
    b.get(
        &format!("/api/conversations/{conversation_id}"),
        Some(&token),
    )
    .await
    .problem(404);
    let list = b.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["conversations"], json!([]));
    b.get(&format!("/api/documents/{doc}"), Some(&token))
        .await
        .problem(404);
    assert!(
        !b.document_names(Some(&token))
            .await
            .contains(&"blue.md".to_owned())
    );

    // Still all there in A.
    let list = ctx.a.get("/api/conversations", Some(&token)).await;
    assert_eq!(list.body["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(
        ctx.a
            .get(&format!("/api/documents/{doc}"), Some(&token))
            .await
            .status,
        200
    );
}

/// Namespace B: 3 messages per session per minute, 12 writes per address.
pub async fn rate_limits(ctx: &Ctx) {
    let b = &ctx.b;
    let (token, _) = b.session("eve").await;
    for i in 0..3 {
        let r = b
            .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
            .await;
        assert_eq!(r.status, 202, "message {i}: {}", r.body);
    }
    let r = b
        .post("/api/chat", Some(&token), json!({"message": "core hours?"}))
        .await;
    r.problem(429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset <= 60);

    // Another session has its own allowance.
    let (other, _) = b.session("frank").await;
    let r = b
        .post("/api/chat", Some(&other), json!({"message": "core hours?"}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Writes from one address, whatever the session, until refused.
    let mut refused = None;
    for i in 0..14 {
        let r = b
            .post(
                "/api/session",
                None,
                json!({"nickname": format!("farm{i}")}),
            )
            .await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = refused.expect("the address's write limit (12 a minute) is enforced");
    r.problem(429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("ratelimit-limit"), Some("12"));
}

/// Vercel only: the router's static files and rewrite, in front of the
/// functions.
pub async fn static_files_first(ctx: &Ctx) {
    let app = &ctx.a;
    let index = app.client.get(app.at("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("FlowChat suite app"));
    let asset = app
        .client
        .get(app.at("/assets/app-abc123.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert!(asset.text().await.unwrap().contains("console.log"));
    let deep = app
        .client
        .get(app.at("/conversations/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.unwrap().contains("FlowChat suite app"));
    // Static segments before dynamic ones.
    let r = app.get("/api/documents/upload", None).await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
}
