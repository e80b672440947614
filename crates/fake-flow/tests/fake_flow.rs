//! Drives the fake over real HTTP, the way the Flow client and the drain do.

use std::time::Duration;

use flowchat_fake_flow::{
    AGENT, CLIENT_ID, CLIENT_SECRET, EMBEDDING_DIMS, FakeFlow, Fault, NO_ANSWER, TENANT, Target,
    expected_answer,
};
use serde_json::{Value, json};

const TOKEN: &str = "/auth-engine-api/v1/api-key/token";
const CHAT: &str = "/ai-orchestration-api/v1/openai/chat/completions";
const EMBEDDINGS: &str = "/ai-orchestration-api/v1/openai/embeddings";

const PROMPT: &str = "Answer from the sources.\n\
    <source n=\"1\" document=\"handbook.md\" location=\"section 2\">\n\
    Employees may work remotely up to three days per week after their probation period ends.\n\
    </source>\n\
    <source n=\"2\" document=\"other.md\">Unrelated.</source>\n\
    Question: how many remote days?";
const PROMPT_ANSWER: &str =
    "According to [1], Employees may work remotely up to three days per week after their.";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn token_response(flow: &FakeFlow, secret: &str) -> reqwest::Response {
    client()
        .post(format!("{}{TOKEN}", flow.base_url()))
        .header("Accept", "application/json")
        .header("FlowTenant", TENANT)
        .json(&json!({"clientId": CLIENT_ID, "clientSecret": secret, "appToAccess": "llm-api"}))
        .send()
        .await
        .unwrap()
}

async fn token(flow: &FakeFlow) -> String {
    let resp = token_response(flow, CLIENT_SECRET).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn llm(flow: &FakeFlow, path: &str, token: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}{path}", flow.base_url()))
        .bearer_auth(token)
        .header("FlowTenant", TENANT)
        .header("FlowAgent", AGENT)
}

fn chat_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0.1,
        "max_tokens": 512,
        "stream": stream,
    })
}

async fn chat(flow: &FakeFlow, token: &str, prompt: &str) -> reqwest::Response {
    llm(flow, CHAT, token)
        .json(&chat_body(prompt, false))
        .send()
        .await
        .unwrap()
}

/// Reads a streamed body; returns (raw text, whether it ended cleanly).
async fn read_stream(mut resp: reqwest::Response) -> (String, bool) {
    let mut raw = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => raw.extend_from_slice(&bytes),
            Ok(None) => return (String::from_utf8(raw).unwrap(), true),
            Err(_) => return (String::from_utf8(raw).unwrap(), false),
        }
    }
}

/// Parsed `data:` payloads of an SSE text, `[DONE]` as a string.
fn events(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())))
        .collect()
}

fn content_of(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect()
}

async fn embed(flow: &FakeFlow, token: &str, input: Value) -> reqwest::Response {
    llm(flow, EMBEDDINGS, token)
        .header("x-ms-model-mesh-model-name", "text-embedding-3-small")
        .json(&json!({"input": input, "user": "flow", "allowedModels": ["text-embedding-3-small"]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_exchange_success_and_wrong_secret() {
    let flow = FakeFlow::start().await;
    let resp = token_response(&flow, CLIENT_SECRET).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    let first = body["access_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("fake-token-1-"));
    assert_ne!(first, token(&flow).await, "tokens are unique");

    let resp = token_response(&flow, "wrong").await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string());

    assert_eq!(flow.count(Target::Token), 3);
    let statuses: Vec<u16> = flow.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401]);
    assert_eq!(flow.requests()[0].headers["flowtenant"], TENANT);
    assert_eq!(flow.requests()[0].body["appToAccess"], "llm-api");
    assert!(
        flow.header_problems().is_empty(),
        "{:?}",
        flow.header_problems()
    );

    let env = flow.env();
    assert!(env.contains(&("FLOW_BASE_URL", flow.base_url())));
    assert!(env.contains(&("LLM_PROVIDER", "flow".to_owned())));
    flow.stop().await;
}

#[tokio::test]
async fn chat_non_streaming_quotes_source_one() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    let resp = chat(&flow, &token, PROMPT).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], PROMPT_ANSWER);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 15);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 20);

    let body: Value = chat(&flow, &token, "No context here.")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], NO_ANSWER);
    assert!(
        flow.header_problems().is_empty(),
        "{:?}",
        flow.header_problems()
    );
}

#[tokio::test]
async fn streaming_concatenates_to_answer_and_ends_with_done() {
    let flow = FakeFlow::start().await;
    flow.set_stream_chunk_delay_ms(1);
    let token = token(&flow).await;
    let prompt = format!("{PROMPT} [[fake:long]]");
    let resp = llm(&flow, CHAT, &token)
        .json(&chat_body(&prompt, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (raw, clean) = read_stream(resp).await;
    assert!(clean);
    assert!(raw.ends_with("data: [DONE]\n\n"));
    let events = events(&raw);
    assert_eq!(events[0]["choices"], json!([]), "Azure filter chunk first");
    assert_eq!(events[1]["choices"][0]["delta"]["role"], "assistant");
    let text = content_of(&events);
    assert_eq!(text, expected_answer(&prompt));
    assert!(text.starts_with(PROMPT_ANSWER) && text.ends_with(" word40"));
    // About one word per chunk.
    assert!(events.len() > 50);
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn token_expires_after_lifetime() {
    let flow = FakeFlow::start().await;
    flow.set_token_lifetime_secs(1);
    let resp = token_response(&flow, CLIENT_SECRET).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(chat(&flow, &token, "hi").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let resp = chat(&flow, &token, "hi").await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    assert!(
        flow.header_problems().is_empty(),
        "expiry is not a header problem"
    );
}

#[tokio::test]
async fn expire_all_tokens_invalidates_issued_tokens() {
    let flow = FakeFlow::start().await;
    let old = token(&flow).await;
    assert_eq!(chat(&flow, &old, "hi").await.status(), 200);
    flow.expire_all_tokens();
    assert_eq!(chat(&flow, &old, "hi").await.status(), 401);
    assert_eq!(
        embed(&flow, &old, json!("x")).await.status(),
        401,
        "embeddings too"
    );
    let new = token(&flow).await;
    assert_eq!(chat(&flow, &new, "hi").await.status(), 200);
    assert_eq!(chat(&flow, "never-issued", "hi").await.status(), 401);
    assert!(flow.header_problems().is_empty());
}

#[tokio::test]
async fn queued_429_with_retry_after_then_success() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    flow.push_fault(
        Target::Chat,
        Fault::Status {
            status: 429,
            retry_after_secs: Some(7),
        },
    );
    flow.push_fault(
        Target::Chat,
        Fault::Status {
            status: 503,
            retry_after_secs: None,
        },
    );
    let resp = chat(&flow, &token, PROMPT).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    let resp = chat(&flow, &token, PROMPT).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_none());
    let resp = chat(&flow, &token, PROMPT).await;
    assert_eq!(resp.status(), 200);
    let statuses: Vec<u16> = flow
        .requests()
        .iter()
        .filter(|r| r.target == Some(Target::Chat))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 503, 200]);
    assert_eq!(flow.count(Target::Chat), 3);
    assert_eq!(flow.count(Target::Embeddings), 0);
}

#[tokio::test]
async fn cut_stream_ends_without_done() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    flow.push_fault(Target::Chat, Fault::CutStream { after_chunks: 3 });
    let resp = llm(&flow, CHAT, &token)
        .json(&chat_body(PROMPT, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (raw, clean) = read_stream(resp).await;
    assert!(!clean, "the body must end with an error");
    assert!(!raw.contains("[DONE]"));
    assert_eq!(content_of(&events(&raw)), "According to [1],");

    // Non-streaming: truncated JSON.
    flow.push_fault(Target::Chat, Fault::CutStream { after_chunks: 0 });
    let resp = chat(&flow, &token, PROMPT).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    // The queue is empty again.
    let (raw, clean) = read_stream(
        llm(&flow, CHAT, &token)
            .json(&chat_body(PROMPT, true))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(clean && raw.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn embeddings_order_and_similarity() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    let texts = [
        "Employees may work remotely three days per week.",
        "Quarterly revenue grew by twelve percent in Brazil.",
        "How many days per week may employees work remotely?",
    ];
    let resp = embed(&flow, &token, json!(texts)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            assert_eq!(d["object"], "embedding");
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == EMBEDDING_DIMS));
    let cos = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((cos(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-4);
    assert!(cos(&vectors[0], &vectors[2]) > cos(&vectors[0], &vectors[1]) + 0.2);

    // A single string gives the same vector as in the batch (deterministic).
    let body: Value = embed(&flow, &token, json!(texts[1]))
        .await
        .json()
        .await
        .unwrap();
    let single: Vec<f64> = body["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(single, vectors[1]);

    for bad in [json!([]), json!(""), json!(["ok", ""]), json!(42)] {
        assert_eq!(embed(&flow, &token, bad).await.status(), 400);
    }
    let problems = flow.header_problems();
    assert_eq!(problems.len(), 4, "{problems:?}");
}

#[tokio::test]
async fn header_problems_report_missing_headers() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    assert!(flow.header_problems().is_empty());

    let resp = client()
        .post(format!("{}{CHAT}", flow.base_url()))
        .bearer_auth(&token)
        .header("FlowTenant", TENANT)
        .json(&chat_body("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        flow.header_problems(),
        [format!("POST {CHAT}: missing FlowAgent header")]
    );

    // Embeddings with a model header that does not match allowedModels[0].
    let resp = llm(&flow, EMBEDDINGS, &token)
        .header("x-ms-model-mesh-model-name", "text-embedding-ada-002")
        .json(&json!({"input": "x", "user": "flow", "allowedModels": ["text-embedding-3-small"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problems = flow.header_problems();
    assert_eq!(problems.len(), 2);
    assert!(
        problems[1].contains("x-ms-model-mesh-model-name"),
        "{problems:?}"
    );

    // Token call without FlowTenant; garbage body on chat: 400s, no panic.
    let resp = client()
        .post(format!("{}{TOKEN}", flow.base_url()))
        .json(&json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "appToAccess": "llm-api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = llm(&flow, CHAT, &token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problems = flow.header_problems();
    assert_eq!(
        problems[2],
        format!("POST {TOKEN}: missing FlowTenant header")
    );
    assert_eq!(problems[3], format!("POST {CHAT}: body is not valid JSON"));
    assert_eq!(flow.requests().last().unwrap().body, Value::Null);
}

#[tokio::test]
async fn hang_and_delay_faults_and_health() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    flow.push_fault(Target::Embeddings, Fault::Hang);
    let err = client()
        .post(format!("{}{EMBEDDINGS}", flow.base_url()))
        .timeout(Duration::from_millis(200))
        .bearer_auth(&token)
        .header("FlowTenant", TENANT)
        .header("FlowAgent", AGENT)
        .header("x-ms-model-mesh-model-name", "text-embedding-3-small")
        .json(&json!({"input": "x", "user": "flow", "allowedModels": ["text-embedding-3-small"]}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    flow.push_fault(Target::Chat, Fault::Delay { ms: 150 });
    let started = std::time::Instant::now();
    assert_eq!(chat(&flow, &token, "hi").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    for path in [
        "/ai-orchestration-api/v1/health",
        "/auth-engine-api/v1/health",
    ] {
        let resp = client()
            .get(format!("{}{path}", flow.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    }
    assert!(
        flow.header_problems().is_empty(),
        "{:?}",
        flow.header_problems()
    );
    let base = flow.base_url();
    flow.stop().await;
    assert!(
        client()
            .get(format!("{base}/auth-engine-api/v1/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn random_faults_follow_their_rates_and_queued_faults_come_first() {
    let flow = FakeFlow::start().await;
    let token = token(&flow).await;
    flow.set_record_requests(false);
    let unavailable = Fault::Status {
        status: 503,
        retry_after_secs: None,
    };
    let teapot = Fault::Status {
        status: 418,
        retry_after_secs: None,
    };
    flow.set_random_faults(Target::Chat, &[(0.25, unavailable.clone())], 7);
    flow.push_fault(Target::Chat, teapot);
    assert_eq!(chat(&flow, &token, PROMPT).await.status(), 418);
    let mut failed = 0;
    for _ in 0..400 {
        match chat(&flow, &token, PROMPT).await.status().as_u16() {
            503 => failed += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // 25 % of 400, give or take what a fair generator strays.
    assert!((70..=130).contains(&failed), "{failed} of 400 failed");
    assert_eq!(
        flow.random_faults_injected(Target::Chat),
        vec![(unavailable, failed)]
    );
    // Counted, not kept; embeddings get no random faults.
    assert_eq!(flow.count(Target::Chat), 401);
    assert!(
        flow.requests()
            .iter()
            .all(|r| r.target != Some(Target::Chat))
    );
    let resp = embed(&flow, &token, json!(["a"])).await;
    assert_eq!(resp.status(), 200);
    flow.set_random_faults(Target::Chat, &[], 0);
    assert_eq!(chat(&flow, &token, PROMPT).await.status(), 200);
}
