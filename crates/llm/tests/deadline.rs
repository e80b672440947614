//! The answer deadline (`LLM_ANSWER_TIMEOUT_SECONDS`, issue 14): one chat
//! call, every retry and wait included, ends by then. Read timeouts alone
//! never end a stream that keeps sending, nor bound the sum of the retries.

use std::time::{Duration, Instant};

use flowchat_fake_flow::{FakeFlow, Fault, Target};
use flowchat_llm::{ChatMessage, ChatModel, ChatRequest, FlowClient, LlmError, ProviderKind};
use flowchat_llm::{ProviderSettings, StreamEvent};

fn client(fake: &FakeFlow, extra: &[(&str, &str)]) -> FlowClient {
    let mut vars: Vec<(String, String)> = fake
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    vars.extend(
        [("LLM_RETRY_BASE_MS", "10"), ("LLM_RETRY_MAX_MS", "50")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let settings = flowchat_config::llm_settings(ProviderKind::Flow, move |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let ProviderSettings::Flow(flow) = settings.provider else {
        unreachable!("flow settings")
    };
    FlowClient::new(flow, settings.http, settings.generation).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("Tell me everything.")])
}

#[tokio::test]
async fn a_stream_that_never_ends_is_cut_at_the_deadline() {
    let fake = FakeFlow::start().await;
    let client = client(
        &fake,
        &[
            ("LLM_ANSWER_TIMEOUT_SECONDS", "1"),
            ("LLM_READ_TIMEOUT_MS", "500"),
            ("LLM_MAX_RETRIES", "3"),
        ],
    );
    fake.push_fault(Target::Chat, Fault::Endless { every_ms: 50 });
    let mut deltas = 0;
    let started = Instant::now();
    let error = client
        .chat_stream(&request(), &mut |event: StreamEvent<'_>| {
            if matches!(event, StreamEvent::Delta(_)) {
                deltas += 1;
            }
        })
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, LlmError::Timeout(_)), "{error:?}");
    assert!(!error.is_permanent(), "worth trying again later");
    assert!(deltas > 5, "it was streaming: {deltas} deltas");
    // The read timeout (500 ms) never fired: words kept coming.
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(fake.count(Target::Chat), 1);
    fake.stop().await;
}

#[tokio::test]
async fn retries_end_at_the_deadline_too() {
    let fake = FakeFlow::start().await;
    let client = client(
        &fake,
        &[
            ("LLM_ANSWER_TIMEOUT_SECONDS", "1"),
            ("LLM_READ_TIMEOUT_MS", "400"),
            ("LLM_MAX_RETRIES", "10"),
        ],
    );
    for _ in 0..10 {
        fake.push_fault(Target::Chat, Fault::Hang);
    }
    let started = Instant::now();
    let error = client.chat(&request()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, LlmError::Timeout(_)), "{error:?}");
    // Eleven tries of 400 ms would take 4.4 s.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(fake.count(Target::Chat) < 5, "{}", fake.count(Target::Chat));
    fake.stop().await;
}
