//! The OpenAI-compatible client against a canned server: standard paths,
//! the optional key, and the same retry and streaming behaviour as Flow.

mod support;

use flowchat_llm::{
    ChatMessage, ChatModel, ChatRequest, Embedder, LlmError, OpenAiClient, ProviderKind,
    ProviderSettings, StreamEvent,
};
use serde_json::json;
use support::{Canned, serve};

const KEY: &str = "sk-test-key-that-must-not-leak-0123456789";

fn client(base_url: &str, key: Option<&str>) -> OpenAiClient {
    let mut vars = vec![
        ("OPENAI_BASE_URL", format!("{base_url}/v1/")),
        ("OPENAI_CHAT_MODEL", "llama3".to_owned()),
        ("OPENAI_EMBEDDING_MODEL", "nomic-embed-text".to_owned()),
        ("LLM_RETRY_BASE_MS", "10".to_owned()),
        ("LLM_RETRY_MAX_MS", "20".to_owned()),
    ];
    if let Some(key) = key {
        vars.push(("OPENAI_API_KEY", key.to_owned()));
    }
    let s = flowchat_config::llm_settings(ProviderKind::OpenAi, |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    assert_eq!(
        s.generation.context_tokens, 8_192,
        "unknown model: conservative"
    );
    let ProviderSettings::OpenAi(openai) = s.provider else {
        unreachable!()
    };
    OpenAiClient::new(openai, s.http, s.generation).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hello")],
        temperature: Some(0.7),
        max_tokens: Some(50),
    }
}

fn completion(text: &str) -> Canned {
    Canned::json(
        200,
        json!({"model": "llama3", "choices": [{"message": {"role": "assistant", "content": text}}]}),
    )
}

#[tokio::test]
async fn chat_uses_the_standard_path_and_the_key() {
    let server = serve(vec![completion("hi there")]).await;
    let client = client(&server.base_url, Some(KEY));

    let answer = client.chat(&request()).await.unwrap();

    assert_eq!(answer.content, "hi there");
    assert_eq!(answer.prompt_tokens, None);
    assert_eq!(ChatModel::provider(&client), "openai");
    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(seen.request_line.starts_with("POST /v1/chat/completions "));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen.header("flowtenant"), None);
    assert_eq!(seen.body["model"], "llama3");
    assert_eq!(seen.body["max_tokens"], 50);
    assert!((seen.body["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
}

#[tokio::test]
async fn no_key_means_no_authorization_header() {
    let server = serve(vec![completion("ok")]).await;
    let client = client(&server.base_url, None);

    client.chat(&request()).await.unwrap();

    assert_eq!(server.seen.lock().unwrap()[0].header("authorization"), None);
}

#[tokio::test]
async fn embeddings_send_the_model_and_follow_indices() {
    let server = serve(vec![Canned::json(
        200,
        json!({"data": [
            {"index": 1, "embedding": [0.0, 1.0]},
            {"index": 0, "embedding": [1.0, 0.0]},
        ]}),
    )])
    .await;
    let client = client(&server.base_url, Some(KEY));

    let vectors = client.embed(&["a".into(), "b".into()]).await.unwrap();

    assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_eq!(Embedder::model(&client), "nomic-embed-text");
    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(seen.request_line.starts_with("POST /v1/embeddings "));
    assert_eq!(
        seen.body,
        json!({"model": "nomic-embed-text", "input": ["a", "b"]})
    );
}

#[tokio::test]
async fn a_short_embeddings_answer_is_invalid() {
    let server = serve(vec![Canned::json(
        200,
        json!({"data": [{"index": 0, "embedding": [1.0]}]}),
    )])
    .await;
    let client = client(&server.base_url, None);

    let error = client.embed(&["a".into(), "b".into()]).await.unwrap_err();

    assert!(matches!(error, LlmError::InvalidResponse(_)), "{error:?}");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_static_key_refused_is_final_and_redacted() {
    let server = serve(vec![Canned::json(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "code": "invalid_api_key"}}),
    )])
    .await;
    let client = client(&server.base_url, Some(KEY));

    let error = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.contains("must-not-leak"), "{text}");
    assert_eq!(
        server.seen.lock().unwrap().len(),
        1,
        "no refresh for a static key"
    );
}

#[tokio::test]
async fn streaming_with_crlf_comments_and_a_json_fallback() {
    let body = ": ping\r\n\r\n\
                data: {\"choices\":[],\"prompt_filter_results\":[]}\r\n\r\n\
                data: {\"model\":\"llama3\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n\
                data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\r\n\r\n\
                data: [DONE]\r\n\r\n";
    let server = serve(vec![Canned::sse(body), completion("whole answer")]).await;
    let client = client(&server.base_url, None);

    let mut deltas = Vec::new();
    let mut on_event = |e: StreamEvent<'_>| {
        if let StreamEvent::Delta(d) = e {
            deltas.push(d.to_owned())
        }
    };
    let first = client.chat_stream(&request(), &mut on_event).await.unwrap();
    // A server that ignores `stream: true` still gives one delta.
    let second = client.chat_stream(&request(), &mut on_event).await.unwrap();

    assert_eq!(first.content, "Hello");
    assert_eq!(first.model, "llama3");
    assert_eq!(
        (first.prompt_tokens, first.completion_tokens),
        (Some(3), Some(2))
    );
    assert_eq!(second.content, "whole answer");
    assert_eq!(deltas, vec!["Hel", "lo", "whole answer"]);
    assert_eq!(server.seen.lock().unwrap()[0].body["stream"], true);
}

#[tokio::test]
async fn a_stream_without_done_is_interrupted_and_retried() {
    let cut = "data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n";
    let server = serve(vec![Canned::sse(cut), Canned::sse(cut), Canned::sse(cut)]).await;
    let client = client(&server.base_url, None);

    let mut events = Vec::new();
    let error = client
        .chat_stream(&request(), &mut |e| {
            events.push(match e {
                StreamEvent::Delta(d) => d.to_owned(),
                StreamEvent::Restart => "<restart>".to_owned(),
            })
        })
        .await
        .unwrap_err();

    assert!(matches!(error, LlmError::StreamInterrupted(_)), "{error:?}");
    assert!(error.to_string().contains("after 4 tries"), "{error}");
    assert_eq!(
        events,
        [
            "par",
            "<restart>",
            "par",
            "<restart>",
            "par",
            "<restart>",
            "par"
        ]
    );
    assert_eq!(server.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client(&format!("http://127.0.0.1:{port}"), Some(KEY));

    let error = client.chat(&request()).await.unwrap_err();

    assert!(matches!(error, LlmError::Connection(_)), "{error:?}");
    assert!(!error.is_permanent());
    assert!(!error.to_string().contains(KEY));
}
