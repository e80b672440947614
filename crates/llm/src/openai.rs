//! Any OpenAI-compatible endpoint (OpenAI itself, Azure-style proxies,
//! local servers such as Ollama or vLLM): a static optional API key, the
//! standard paths under the base URL.

use reqwest::RequestBuilder;
use serde_json::json;

use crate::engine::{Backend, Engine};
use crate::error::LlmError;
use crate::retry::{AttemptFailure, CredentialSource};
use crate::settings::{GenerationSettings, HttpSettings, OpenAiSettings};
use crate::transport::HttpCore;

pub struct OpenAiClient {
    engine: Engine<OpenAiBackend>,
}

impl OpenAiClient {
    pub fn new(
        settings: OpenAiSettings,
        http: HttpSettings,
        generation: GenerationSettings,
    ) -> Result<Self, LlmError> {
        let base = settings.base_url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&base).is_err() {
            return Err(LlmError::Config(
                "the OpenAI base URL is not a valid URL".to_owned(),
            ));
        }
        let secrets = settings
            .api_key
            .iter()
            .map(|k| k.expose().to_owned())
            .collect();
        let core = HttpCore::new(http, secrets)?;
        let backend = OpenAiBackend {
            chat_url: format!("{base}/chat/completions"),
            embeddings_url: format!("{base}/embeddings"),
            settings,
        };
        Ok(OpenAiClient {
            engine: Engine {
                backend,
                core,
                generation,
            },
        })
    }
}

struct OpenAiBackend {
    settings: OpenAiSettings,
    chat_url: String,
    embeddings_url: String,
}

#[async_trait::async_trait]
impl CredentialSource for OpenAiBackend {
    /// A static key cannot be refreshed: a 401 is final.
    async fn invalidate(&self, _credential: Option<&str>) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl Backend for OpenAiBackend {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn chat_url(&self) -> &str {
        &self.chat_url
    }

    fn embeddings_url(&self) -> &str {
        &self.embeddings_url
    }

    fn chat_model(&self) -> &str {
        &self.settings.chat_model
    }

    fn embedding_model(&self) -> &str {
        &self.settings.embedding_model
    }

    async fn authorize(
        &self,
        _core: &HttpCore,
        request: RequestBuilder,
        _operation_id: &str,
    ) -> Result<(RequestBuilder, Option<String>), AttemptFailure> {
        let request = match &self.settings.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        };
        Ok((request, None))
    }

    fn embeddings_body(&self, request: RequestBuilder, inputs: &[String]) -> RequestBuilder {
        request.json(&json!({
            "model": self.settings.embedding_model,
            "input": inputs,
        }))
    }
}

crate::engine::engine_client!(OpenAiClient);
