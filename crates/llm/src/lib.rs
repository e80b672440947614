//! Language-model clients for CI&T Flow and any OpenAI-compatible endpoint:
//! chat (whole or streamed) and embeddings. Calls are retried with capped,
//! jittered backoff on rate limits, server errors, timeouts and broken
//! streams; errors are typed so callers can tell a job worth retrying later
//! from one that never will succeed, and their messages are safe to show.

mod engine;
mod error;
mod flow;
mod openai;
mod retry;
pub mod settings;
mod sse;
mod transport;
mod types;
mod wire;

use std::sync::Arc;

pub use error::LlmError;
pub use flow::FlowClient;
pub use openai::OpenAiClient;
pub use settings::{
    FlowSettings, GenerationSettings, HttpSettings, LlmSettings, OpenAiSettings, ProviderKind,
    ProviderSettings, Secret, context_window,
};
pub use types::{
    ChatCompletion, ChatMessage, ChatModel, ChatRequest, ChatRole, Embedder, StreamEvent,
};

/// The chat model the settings describe.
pub fn chat_model(settings: &LlmSettings) -> Result<Arc<dyn ChatModel>, LlmError> {
    Ok(models(settings)?.chat)
}

/// The embedder the settings describe.
pub fn embedder(settings: &LlmSettings) -> Result<Arc<dyn Embedder>, LlmError> {
    Ok(models(settings)?.embedder)
}

/// A chat model and an embedder backed by one client.
#[derive(Clone)]
pub struct LlmModels {
    pub chat: Arc<dyn ChatModel>,
    pub embedder: Arc<dyn Embedder>,
}

/// Both, sharing one client: with Flow that means one token cache and one
/// connection pool instead of two.
pub fn models(settings: &LlmSettings) -> Result<LlmModels, LlmError> {
    fn both<C: ChatModel + Embedder + 'static>(client: C) -> LlmModels {
        let client = Arc::new(client);
        LlmModels {
            chat: client.clone(),
            embedder: client,
        }
    }
    let (http, generation) = (settings.http.clone(), settings.generation.clone());
    Ok(match &settings.provider {
        ProviderSettings::Flow(flow) => both(FlowClient::new(flow.clone(), http, generation)?),
        ProviderSettings::OpenAi(openai) => {
            both(OpenAiClient::new(openai.clone(), http, generation)?)
        }
    })
}
