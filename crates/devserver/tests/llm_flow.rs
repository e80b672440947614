//! End to end through the dev server with the drain answering from a fake
//! CI&T Flow server: generated answers with citations, streamed partial
//! text (polling and Server-Sent Events), and every fault the real API has.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, app};
use flowchat_fake_flow::{FakeFlow, Fault, Target};
use flowchat_store::Store;
use serde_json::Value;

const CHAIR: &str = "How much is the allowance for a desk chair?";

/// No request reached the fake without the documented headers.
fn assert_well_formed(fake: &FakeFlow) {
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    for request in fake.requests() {
        if request.target == Some(Target::Chat) || request.target == Some(Target::Embeddings) {
            let op = request.headers.get("flowoperationid").map(String::as_str);
            assert!(
                op.is_some_and(|v| !v.is_empty()),
                "FlowOperationId missing on {}",
                request.path
            );
        }
    }
}

async fn dead_letters(app: &TestApp) -> Vec<flowchat_store::DeadLetter> {
    let data = app.vars["FLOWCHAT_DATA_DIR"].clone();
    let store =
        flowchat_store::sqlite::SqliteStore::open(format!("{data}/flowchat-dev.db")).unwrap();
    store.dead_letters(10).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_answers_with_citations_and_history() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).spawn().await;
    let (token, _) = app.session("ana").await;

    let job = app.ask(&token, CHAIR, None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["mode"], "generative");
    let answer = job["answer"].as_str().unwrap();
    assert!(answer.starts_with("According to [1],"), "{answer}");
    let citations = job["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1, "{job}");
    assert_eq!(citations[0]["source"], "policy.md");
    assert_eq!(citations[0]["index"], 1);
    assert!(
        job.get("partial").is_none(),
        "partial text is gone once the answer is stored"
    );

    // The prompt carried the fenced source and the question.
    let chat = fake
        .requests()
        .into_iter()
        .find(|r| r.target == Some(Target::Chat))
        .unwrap();
    let messages = chat.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("<source n=\"1\" document=\"policy.md\""),
        "{last}"
    );
    assert!(last.ends_with(&format!("Question: {CHAIR}")), "{last}");
    assert_eq!(chat.body["model"], "gpt-4o-mini");
    assert_eq!(chat.body["stream"], true);

    // A follow-up carries the earlier turns.
    let conversation = job["conversation_id"].as_str().unwrap();
    let second = app
        .ask(&token, "And the core hours?", Some(conversation))
        .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let chats: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(Target::Chat))
        .collect();
    let messages = chats[1].body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(messages[1]["content"], CHAIR);

    let history = app
        .get(&format!("/api/conversations/{conversation}"), Some(&token))
        .await;
    let stored = history.body["messages"].as_array().unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[1]["citations"][0]["source"], "policy.md");

    assert_eq!(fake.count(Target::Token), 1, "one token serves every call");
    assert_well_formed(&fake);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_text_is_visible_before_the_answer_ends() {
    let fake = FakeFlow::start().await;
    fake.set_stream_chunk_delay_ms(40);
    let app = app()
        .flow(&fake)
        .var("PARTIAL_FLUSH_MS", "50")
        .spawn()
        .await;
    let (token, _) = app.session("ana").await;

    // Polling: a running job shows the text streamed so far.
    let job_id = app.submit(&token, &format!("{CHAIR} [[fake:long]]")).await;
    let mut seen_partial = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let r = app
            .get(&format!("/api/chat/{job_id}?wait=5"), Some(&token))
            .await;
        if r.body["status"] == "succeeded" {
            break;
        }
        if let Some(p) = r.body["partial"].as_str() {
            assert_eq!(r.body["status"], "running");
            seen_partial = Some(p.to_owned());
        }
    }
    let partial = seen_partial.expect("partial text was shown while the model streamed");
    let done = app.wait_job(&token, &job_id).await;
    let answer = done["answer"].as_str().unwrap();
    assert!(
        answer.starts_with(&partial) && answer.len() > partial.len(),
        "{partial:?} / {answer:?}"
    );

    // Server-Sent Events: partial events, then the answer with citations.
    let job_id = app.submit(&token, &format!("{CHAIR} [[fake:long]]")).await;
    let response = app
        .client
        .get(format!("{}/api/chat/{job_id}/events", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(response).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let partials = names.iter().filter(|n| **n == "partial").count();
    assert!(partials >= 2, "several partial events: {names:?}");
    assert_eq!(names.last(), Some(&"answer"), "{names:?}");
    let (_, answer) = events.last().unwrap();
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .starts_with("According to [1],")
    );
    assert_eq!(answer["citations"][0]["source"], "policy.md");
    let last_partial = events.iter().rev().find(|(n, _)| n == "partial").unwrap();
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .starts_with(last_partial.1["text"].as_str().unwrap())
    );

    // Someone else's job is not theirs to follow.
    let (other, _) = app.session("bob").await;
    let r = app
        .get(&format!("/api/chat/{job_id}/events"), Some(&other))
        .await;
    assert_eq!(r.status, 404);
    let r = app.get(&format!("/api/chat/{job_id}/events"), None).await;
    assert_eq!(r.status, 401);
    assert_well_formed(&fake);
    app.server.unwrap().stop().await;
}

/// Reads an event stream to its end: (event name, JSON data) pairs.
async fn read_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let body = tokio::time::timeout(Duration::from_secs(30), response.text())
        .await
        .expect("the stream ends after the answer")
        .unwrap();
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_to_success() {
    let fake = FakeFlow::start().await;
    let app = app()
        .flow(&fake)
        .var("LLM_READ_TIMEOUT_MS", "700")
        .spawn()
        .await;
    let (token, _) = app.session("ana").await;

    let cases: Vec<(&str, Vec<Fault>)> = vec![
        (
            "429 with Retry-After",
            vec![Fault::Status {
                status: 429,
                retry_after_secs: Some(1),
            }],
        ),
        (
            "5xx then success",
            vec![
                Fault::Status {
                    status: 502,
                    retry_after_secs: None,
                },
                Fault::Status {
                    status: 500,
                    retry_after_secs: None,
                },
            ],
        ),
        (
            "a slow answer past the read timeout",
            vec![Fault::Delay { ms: 2_000 }],
        ),
        (
            "a stream cut in the middle",
            vec![Fault::CutStream { after_chunks: 3 }],
        ),
    ];
    for (case, faults) in cases {
        let before = fake.count(Target::Chat);
        let tries = faults.len() + 1;
        for fault in faults {
            fake.push_fault(Target::Chat, fault);
        }
        let started = Instant::now();
        let job = app.ask(&token, CHAIR, None).await;
        assert_eq!(job["status"], "succeeded", "{case}: {job}");
        assert!(
            job["answer"]
                .as_str()
                .unwrap()
                .starts_with("According to [1],"),
            "{case}: {job}"
        );
        assert_eq!(job["attempts"], 1, "{case}: retried inside one attempt");
        assert_eq!(fake.count(Target::Chat) - before, tries, "{case}");
        if case.starts_with("429") {
            assert!(
                started.elapsed() >= Duration::from_millis(900),
                "{case}: Retry-After honoured"
            );
        }
    }
    assert!(dead_letters(&app).await.is_empty());
    assert_well_formed(&fake);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_and_persistent_faults_fail_readably_and_dead_letter() {
    let fake = FakeFlow::start().await;
    let app = app()
        .flow(&fake)
        .var("LLM_MAX_RETRIES", "1")
        .var("DRAIN_MAX_ATTEMPTS", "2")
        .var("DRAIN_RETRY_BASE_SECONDS", "0")
        .spawn()
        .await;
    let (token, _) = app.session("ana").await;

    // 400 is permanent: one request, no retry, straight to the dead letters.
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 400,
            retry_after_secs: None,
        },
    );
    let before = fake.count(Target::Chat);
    let job = app.ask(&token, CHAIR, None).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1);
    // A sentence for the reader; the provider's answer is in the log.
    let error = job["error"].as_str().unwrap();
    assert_eq!(error, flowchat_drain::messages::LLM_REFUSED);
    assert!(!error.contains("400") && !error.contains(flowchat_fake_flow::CLIENT_SECRET));
    assert_eq!(fake.count(Target::Chat) - before, 1);
    let letters = dead_letters(&app).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].job_id.to_string(),
        job["job_id"].as_str().unwrap()
    );

    // A 503 that never clears: every attempt retries inside the client,
    // then the job is retried, then dead-lettered with the reason.
    for _ in 0..4 {
        fake.push_fault(
            Target::Chat,
            Fault::Status {
                status: 503,
                retry_after_secs: None,
            },
        );
    }
    let before = fake.count(Target::Chat);
    let job = app.ask(&token, CHAIR, None).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(
        job["error"],
        flowchat_drain::messages::LLM_UNAVAILABLE,
        "{job}"
    );
    assert_eq!(fake.count(Target::Chat) - before, 4);
    assert_eq!(dead_letters(&app).await.len(), 2);

    // No assistant message was written for the failed questions.
    let conversation = job["conversation_id"].as_str().unwrap();
    let history = app
        .get(&format!("/api/conversations/{conversation}"), Some(&token))
        .await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 1);
    assert_well_formed(&fake);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_run_is_refreshed_once() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).spawn().await;
    let (token, _) = app.session("ana").await;

    assert_eq!(app.ask(&token, CHAIR, None).await["status"], "succeeded");
    assert_eq!(fake.count(Target::Token), 1);
    fake.expire_all_tokens();
    let job = app.ask(&token, CHAIR, None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(fake.count(Target::Token), 2, "exactly one refresh");
    // The first call after the expiry (the question's embedding) met the
    // 401; chat and embeddings share the client, hence the one refresh.
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .map(|r| r.target)
        .collect();
    assert_eq!(refused, [Some(Target::Embeddings)]);
    let chats: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.target == Some(Target::Chat))
        .map(|r| r.status)
        .collect();
    assert_eq!(chats, [200, 200]);
    assert_well_formed(&fake);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_generative_provider() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).spawn().await;
    let r = app.get("/api/health/ready", None).await;
    assert_eq!(r.body["checks"]["llm"]["mode"], "generative");
    assert_eq!(r.body["checks"]["llm"]["provider"], "flow");
    let text = r.body.to_string();
    assert!(!text.contains(flowchat_fake_flow::CLIENT_SECRET));
    app.server.unwrap().stop().await;
}
