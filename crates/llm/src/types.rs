//! What callers hand to a language model and get back, independent of the
//! provider behind it.

use crate::error::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: ChatRole::Assistant,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// `None` uses the configured generation defaults.
    pub temperature: Option<f32>,
    /// `None` uses the configured generation defaults.
    pub max_tokens: Option<u32>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            temperature: None,
            max_tokens: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    pub content: String,
    /// The model that answered, as the provider names it (often a dated
    /// snapshot of the requested one).
    pub model: String,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    /// The id sent as `FlowOperationId` and recorded in the logs, to match a
    /// job with the provider's records.
    pub operation_id: String,
    /// Tries made, 1 = no retry.
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// More answer text.
    Delta(&'a str),
    /// A retried call starts over: discard the text received so far.
    Restart,
}

#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    fn provider(&self) -> &'static str;
    fn model(&self) -> &str;
    async fn chat(&self, request: &ChatRequest) -> Result<ChatCompletion, LlmError>;
    /// Streams the answer, calling `on_event` for every text delta, and
    /// returns the whole text at the end. A stream that breaks (cut
    /// connection, read timeout, 5xx/429 before the first byte) is retried
    /// from the start like any call; `on_event(StreamEvent::Restart)` comes
    /// first if any delta had been delivered, so partial text shown to a
    /// reader can be thrown away.
    ///
    /// The callback's lifetime is spelled out (`for<'e>`) because
    /// `async_trait` would otherwise turn the elided one into a fixed
    /// lifetime the implementation cannot lend its buffers for.
    async fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut (dyn for<'e> FnMut(StreamEvent<'e>) + Send),
    ) -> Result<ChatCompletion, LlmError>;
}

#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    fn provider(&self) -> &'static str;
    fn model(&self) -> &str;
    /// One vector per input, in input order. Inputs go out in batches of the
    /// configured size, each retried on its own, so one flaky batch does not
    /// repeat the whole document. Empty input gives an empty answer without
    /// a request.
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError>;
}
