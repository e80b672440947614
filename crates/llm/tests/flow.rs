//! The Flow client against the fake Flow server: the documented protocol,
//! the retry rules, token caching and the failure modes the real service
//! produces now and then.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowchat_fake_flow::{AGENT, CLIENT_SECRET, FakeFlow, Fault, Target, expected_answer};
use flowchat_llm::{
    ChatMessage, ChatModel, ChatRequest, Embedder, FlowClient, LlmError, LlmSettings, ProviderKind,
    ProviderSettings, StreamEvent,
};
use serde_json::json;
use support::{Canned, serve};

const SOURCE_TEXT: &str = "Remote work is allowed up to three days per week for every team member \
                           after the probation period ends";

fn question() -> String {
    format!(
        "Question: how many remote days?\n<source n=\"1\" document=\"policy.md\">{SOURCE_TEXT}</source>"
    )
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("Answer from the sources."),
        ChatMessage::user(question()),
    ])
}

fn settings(
    base_url: &str,
    env: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> LlmSettings {
    let mut vars: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    vars.push(("FLOW_BASE_URL".into(), base_url.to_owned()));
    vars.push(("LLM_RETRY_BASE_MS".into(), "10".into()));
    vars.push(("LLM_RETRY_MAX_MS".into(), "50".into()));
    vars.push(("LLM_READ_TIMEOUT_MS".into(), "5000".into()));
    for (k, v) in extra {
        vars.push((k.to_string(), v.to_string()));
    }
    // Later entries win, like overriding an environment variable.
    flowchat_config::llm_settings(ProviderKind::Flow, move |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn client(fake: &FakeFlow, extra: &[(&str, &str)]) -> FlowClient {
    let s = settings(&fake.base_url(), fake.env(), extra);
    let ProviderSettings::Flow(flow) = s.provider else {
        unreachable!()
    };
    FlowClient::new(flow, s.http, s.generation).unwrap()
}

/// What every test checks at its end.
async fn finish(fake: FakeFlow) {
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    fake.stop().await;
}

fn assert_clean(error: &LlmError) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(CLIENT_SECRET), "secret leaked: {text}");
    assert!(!text.contains("fake-token-"), "token leaked: {text}");
}

#[derive(Debug, PartialEq)]
enum Seen {
    Delta(String),
    Restart,
}

async fn stream(
    client: &FlowClient,
) -> (Result<flowchat_llm::ChatCompletion, LlmError>, Vec<Seen>) {
    let mut seen = Vec::new();
    let result = client
        .chat_stream(&request(), &mut |event| match event {
            StreamEvent::Delta(d) => seen.push(Seen::Delta(d.to_owned())),
            StreamEvent::Restart => seen.push(Seen::Restart),
        })
        .await;
    (result, seen)
}

#[tokio::test]
async fn chat_sends_the_documented_request_and_reads_the_answer() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("FLOW_CHANNEL", "web")]);

    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.content, expected_answer(&question()));
    assert_eq!(completion.attempts, 1);
    assert_eq!(completion.model, "gpt-4o-mini");
    assert!(completion.prompt_tokens.is_some() && completion.completion_tokens.is_some());
    assert_eq!(completion.operation_id.len(), 16);
    assert_eq!(fake.count(Target::Token), 1);

    let chat = fake
        .requests()
        .into_iter()
        .find(|r| r.target == Some(Target::Chat))
        .unwrap();
    assert_eq!(chat.headers["flowagent"], AGENT);
    assert_eq!(chat.headers["flowchannel"], "web");
    assert_eq!(chat.headers["flowoperationid"], completion.operation_id);
    assert!(chat.headers["authorization"].starts_with("Bearer "));
    assert_eq!(chat.body["model"], "gpt-4o-mini");
    assert_eq!(chat.body["stream"], false);
    assert_eq!(chat.body["max_tokens"], 800);
    assert_eq!(chat.body["messages"][0]["role"], "system");
    assert_eq!(chat.body["messages"][1]["role"], "user");
    let temperature = chat.body["temperature"].as_f64().unwrap();
    assert!((temperature - 0.2).abs() < 1e-6);
    finish(fake).await;
}

#[tokio::test]
async fn streamed_deltas_add_up_to_the_answer() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);

    let (result, seen) = stream(&client).await;
    let completion = result.unwrap();

    let expected = expected_answer(&question());
    assert_eq!(completion.content, expected);
    assert!(seen.len() > 3, "expected word-sized deltas: {seen:?}");
    let joined: String = seen
        .iter()
        .map(|s| match s {
            Seen::Delta(d) => d.as_str(),
            Seen::Restart => panic!("no restart expected"),
        })
        .collect();
    assert_eq!(joined, expected);
    assert_eq!(completion.attempts, 1);
    let chat = fake
        .requests()
        .into_iter()
        .find(|r| r.target == Some(Target::Chat))
        .unwrap();
    assert_eq!(chat.body["stream"], true);
    finish(fake).await;
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("LLM_RETRY_MAX_MS", "5000")]);
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 429,
            retry_after_secs: Some(1),
        },
    );

    let started = Instant::now();
    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.count(Target::Chat), 2);
    let ids: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(Target::Chat))
        .map(|r| r.headers["flowoperationid"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "one operation id across retries");
    finish(fake).await;
}

#[tokio::test]
async fn rate_limit_that_persists_is_reported_with_the_tries() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("LLM_MAX_RETRIES", "2")]);
    for _ in 0..3 {
        fake.push_fault(
            Target::Chat,
            Fault::Status {
                status: 429,
                retry_after_secs: None,
            },
        );
    }

    let error = client.chat(&request()).await.unwrap_err();

    assert!(matches!(error, LlmError::RateLimited { .. }), "{error:?}");
    assert!(!error.is_permanent());
    assert_eq!(error.status(), Some(429));
    let text = error.to_string();
    assert!(text.contains("rate limited (HTTP 429)"), "{text}");
    assert!(text.contains("after 3 tries"), "{text}");
    assert_eq!(fake.count(Target::Chat), 3);
    assert_clean(&error);
    finish(fake).await;
}

#[tokio::test]
async fn server_error_is_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 500,
            retry_after_secs: None,
        },
    );

    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 2);
    assert_eq!(completion.content, expected_answer(&question()));
    assert_eq!(fake.count(Target::Chat), 2);
    finish(fake).await;
}

#[tokio::test]
async fn bad_request_is_permanent_and_not_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 400,
            retry_after_secs: None,
        },
    );

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert!(
        error
            .to_string()
            .starts_with("the language model refused the request (HTTP 400): "),
        "{error}"
    );
    assert_eq!(fake.count(Target::Chat), 1);
    assert_clean(&error);
    finish(fake).await;
}

#[tokio::test]
async fn forbidden_is_permanent_and_not_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 403,
            retry_after_secs: None,
        },
    );

    let (result, seen) = stream(&client).await;
    let error = result.unwrap_err();

    assert!(
        matches!(error, LlmError::Rejected { status: 403, .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert!(seen.is_empty());
    assert_eq!(fake.count(Target::Chat), 1);
    assert_clean(&error);
    finish(fake).await;
}

#[tokio::test]
async fn a_cut_stream_restarts_and_completes() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(Target::Chat, Fault::CutStream { after_chunks: 3 });

    let (result, seen) = stream(&client).await;
    let completion = result.unwrap();

    let expected = expected_answer(&question());
    assert_eq!(completion.content, expected);
    assert_eq!(completion.attempts, 2);
    let restart = seen
        .iter()
        .position(|s| *s == Seen::Restart)
        .expect("a restart event");
    assert!(restart > 0, "deltas came before the restart: {seen:?}");
    assert_eq!(seen.iter().filter(|s| **s == Seen::Restart).count(), 1);
    let after: String = seen[restart + 1..]
        .iter()
        .map(|s| match s {
            Seen::Delta(d) => d.as_str(),
            Seen::Restart => "",
        })
        .collect();
    assert_eq!(after, expected);
    assert_eq!(fake.count(Target::Chat), 2);
    finish(fake).await;
}

#[tokio::test]
async fn a_truncated_json_answer_is_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(Target::Chat, Fault::CutStream { after_chunks: 0 });

    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 2);
    assert_eq!(completion.content, expected_answer(&question()));
    finish(fake).await;
}

#[tokio::test]
async fn a_hanging_server_times_out_after_the_retries() {
    let fake = FakeFlow::start().await;
    let client = client(
        &fake,
        &[("LLM_READ_TIMEOUT_MS", "300"), ("LLM_MAX_RETRIES", "1")],
    );
    // Fetch the token first so only the chat calls hang.
    client.chat(&request()).await.unwrap();
    fake.push_fault(Target::Chat, Fault::Hang);
    fake.push_fault(Target::Chat, Fault::Hang);

    let started = Instant::now();
    let error = client.chat(&request()).await.unwrap_err();

    assert!(matches!(error, LlmError::Timeout(_)), "{error:?}");
    assert!(!error.is_permanent());
    assert!(error.to_string().contains("after 2 tries"), "{error}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(fake.count(Target::Chat), 3);
    finish(fake).await;
}

#[tokio::test]
async fn a_stream_request_without_answer_is_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("LLM_READ_TIMEOUT_MS", "300")]);
    fake.push_fault(Target::Chat, Fault::Hang);

    let (result, seen) = stream(&client).await;
    let completion = result.unwrap();

    assert_eq!(completion.attempts, 2);
    assert_eq!(completion.content, expected_answer(&question()));
    assert!(
        !seen.contains(&Seen::Restart),
        "nothing to discard: {seen:?}"
    );
    finish(fake).await;
}

#[tokio::test]
async fn a_stream_that_stalls_mid_answer_times_out() {
    let fake = FakeFlow::start().await;
    let client = client(
        &fake,
        &[("LLM_READ_TIMEOUT_MS", "300"), ("LLM_MAX_RETRIES", "1")],
    );
    fake.set_stream_chunk_delay_ms(600);

    let (result, seen) = stream(&client).await;
    let error = result.unwrap_err();

    assert!(matches!(error, LlmError::Timeout(_)), "{error:?}");
    assert!(matches!(seen.first(), Some(Seen::Delta(_))), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| **s == Seen::Restart).count(), 1);
    assert_eq!(fake.count(Target::Chat), 2);
    finish(fake).await;
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    client.chat(&request()).await.unwrap();
    assert_eq!(fake.count(Target::Token), 1);

    fake.expire_all_tokens();
    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 2);
    assert_eq!(fake.count(Target::Token), 2);
    let statuses: Vec<u16> = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(Target::Chat))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 401, 200]);
    finish(fake).await;
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_before_it_expires() {
    let fake = FakeFlow::start().await;
    fake.set_token_lifetime_secs(2);
    let client = client(&fake, &[]);
    client.chat(&request()).await.unwrap();
    client.chat(&request()).await.unwrap();
    assert_eq!(fake.count(Target::Token), 1, "a fresh token is reused");

    // Past 4/5 of the lifetime, before the fake would refuse it.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 1, "refreshed before, not after, a 401");
    assert_eq!(fake.count(Target::Token), 2);
    assert_eq!(fake.count(Target::Chat), 3);
    finish(fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_token_request() {
    let fake = FakeFlow::start().await;
    fake.push_fault(Target::Token, Fault::Delay { ms: 200 });
    let client = Arc::new(client(&fake, &[]));

    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.chat(&request()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().attempts, 1);
    }

    assert_eq!(fake.count(Target::Token), 1);
    assert_eq!(fake.count(Target::Chat), 10);
    finish(fake).await;
}

#[tokio::test]
async fn a_persistent_401_is_an_auth_error_after_one_refresh() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    for _ in 0..2 {
        fake.push_fault(
            Target::Chat,
            Fault::Status {
                status: 401,
                retry_after_secs: None,
            },
        );
    }

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert_eq!(fake.count(Target::Token), 2);
    assert_eq!(fake.count(Target::Chat), 2);
    assert_clean(&error);
    finish(fake).await;
}

#[tokio::test]
async fn refused_credentials_are_permanent() {
    let fake = FakeFlow::start().await;
    let s = settings(
        &fake.base_url(),
        fake.env(),
        &[("FLOW_CLIENT_SECRET", "a-wrong-secret-value")],
    );
    let ProviderSettings::Flow(flow) = s.provider else {
        unreachable!()
    };
    let client = FlowClient::new(flow, s.http, s.generation).unwrap();

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert!(!error.to_string().contains("a-wrong-secret-value"));
    assert_eq!(fake.count(Target::Token), 1);
    assert_eq!(fake.count(Target::Chat), 0);
    finish(fake).await;
}

#[tokio::test]
async fn token_endpoint_outages_are_retried() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);
    fake.push_fault(
        Target::Token,
        Fault::Status {
            status: 503,
            retry_after_secs: None,
        },
    );

    let completion = client.chat(&request()).await.unwrap();

    assert_eq!(completion.attempts, 2);
    assert_eq!(fake.count(Target::Token), 2);
    finish(fake).await;
}

#[tokio::test]
async fn embeddings_are_batched_and_kept_in_order() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("EMBEDDING_BATCH_SIZE", "2")]);
    let inputs: Vec<String> = [
        "remote work policy",
        "holiday calendar",
        "expense reports",
        "security training",
        "onboarding checklist",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let vectors = client.embed(&inputs).await.unwrap();

    assert_eq!(vectors.len(), 5);
    for (input, vector) in inputs.iter().zip(&vectors) {
        assert_eq!(vector.len(), 1536);
        assert_eq!(*vector, flowchat_fake_flow::embedding(input), "{input}");
    }
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(Target::Embeddings))
        .collect();
    assert_eq!(requests.len(), 3);
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| r.body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    for r in &requests {
        assert_eq!(
            r.headers["x-ms-model-mesh-model-name"],
            r.body["allowedModels"][0].as_str().unwrap()
        );
        assert_eq!(
            r.headers["x-ms-model-mesh-model-name"],
            "text-embedding-3-small"
        );
        assert_eq!(r.body["user"], "flow");
        assert!(r.headers.contains_key("flowoperationid"));
    }
    finish(fake).await;
}

#[tokio::test]
async fn no_inputs_means_no_request() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[]);

    assert!(client.embed(&[]).await.unwrap().is_empty());

    assert_eq!(fake.requests().len(), 0);
    finish(fake).await;
}

#[tokio::test]
async fn a_failing_embeddings_batch_is_retried_alone() {
    let fake = FakeFlow::start().await;
    let client = client(&fake, &[("EMBEDDING_BATCH_SIZE", "2")]);
    fake.push_fault(
        Target::Embeddings,
        Fault::Status {
            status: 502,
            retry_after_secs: None,
        },
    );
    let inputs: Vec<String> = vec!["a b".into(), "c d".into(), "e f".into()];

    let vectors = client.embed(&inputs).await.unwrap();

    assert_eq!(vectors[2], flowchat_fake_flow::embedding("e f"));
    assert_eq!(fake.count(Target::Embeddings), 3);
    finish(fake).await;
}

#[tokio::test]
async fn the_factory_builds_working_models_from_settings() {
    let fake = FakeFlow::start().await;
    let s = settings(&fake.base_url(), fake.env(), &[]);

    let models = flowchat_llm::models(&s).unwrap();
    assert_eq!(models.chat.provider(), "flow");
    assert_eq!(models.chat.model(), "gpt-4o-mini");
    assert_eq!(models.embedder.model(), "text-embedding-3-small");
    models.chat.chat(&request()).await.unwrap();
    models.embedder.embed(&["x y".to_owned()]).await.unwrap();

    // Chat and embeddings share the client, so one token serves both.
    assert_eq!(fake.count(Target::Token), 1);
    let chat = flowchat_llm::chat_model(&s).unwrap();
    let embedder = flowchat_llm::embedder(&s).unwrap();
    assert_eq!(chat.provider(), "flow");
    assert_eq!(embedder.provider(), "flow");
    finish(fake).await;
}

/// Upstream bodies that echo the request must not carry the secret into
/// an error message.
#[tokio::test]
async fn echoed_credentials_are_redacted() {
    let server = serve(vec![Canned::json(
        401,
        json!({"error": {"message": format!("bad clientSecret {CLIENT_SECRET} for tenant")}}),
    )])
    .await;
    let s = settings(
        &server.base_url,
        vec![
            ("FLOW_CLIENT_ID", "id".into()),
            ("FLOW_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("FLOW_TENANT", "t".into()),
        ],
        &[],
    );
    let ProviderSettings::Flow(flow) = s.provider else {
        unreachable!()
    };
    let client = FlowClient::new(flow, s.http, s.generation).unwrap();

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("[redacted]"), "{error}");
    assert_clean(&error);

    let token = server.seen.lock().unwrap()[0].clone();
    assert!(
        token
            .request_line
            .starts_with("POST /auth-engine-api/v1/api-key/token ")
    );
    assert_eq!(token.body["clientSecret"], CLIENT_SECRET);
    assert_eq!(token.body["appToAccess"], "llm-api");
    assert_eq!(token.header("flowtenant"), Some("t"));
}

#[tokio::test]
async fn echoed_tokens_are_redacted() {
    let token = "eyJhbGciOiJIUzI1NiJ9.opaque-token-value";
    let server = serve(vec![
        Canned::json(200, json!({"access_token": token, "expires_in": 3600})),
        Canned::json(
            400,
            json!({"error": {"message": format!("request with Authorization: Bearer {token} is invalid")}}),
        ),
    ])
    .await;
    let s = settings(
        &server.base_url,
        vec![
            ("FLOW_CLIENT_ID", "id".into()),
            ("FLOW_CLIENT_SECRET", "s3cret-value".into()),
            ("FLOW_TENANT", "t".into()),
        ],
        &[],
    );
    let ProviderSettings::Flow(flow) = s.provider else {
        unreachable!()
    };
    let client = FlowClient::new(flow, s.http, s.generation).unwrap();

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("opaque-token-value"), "{error}");
}

#[tokio::test]
async fn a_stream_error_event_is_mapped_like_a_status() {
    let server = serve(vec![
        Canned::json(
            200,
            json!({"access_token": "tok-123456", "expires_in": 3600}),
        ),
        Canned::sse(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
             data: {\"error\":{\"message\":\"content policy\",\"code\":400}}\n\n",
        ),
    ])
    .await;
    let s = settings(
        &server.base_url,
        vec![
            ("FLOW_CLIENT_ID", "id".into()),
            ("FLOW_CLIENT_SECRET", "s3cret-value".into()),
            ("FLOW_TENANT", "t".into()),
        ],
        &[],
    );
    let ProviderSettings::Flow(flow) = s.provider else {
        unreachable!()
    };
    let client = FlowClient::new(flow, s.http, s.generation).unwrap();

    let mut deltas = Vec::new();
    let error = client
        .chat_stream(&request(), &mut |e| {
            if let StreamEvent::Delta(d) = e {
                deltas.push(d.to_owned())
            }
        })
        .await
        .unwrap_err();

    assert!(
        matches!(error, LlmError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("content policy"));
    assert_eq!(deltas, vec!["Hi"]);
}
