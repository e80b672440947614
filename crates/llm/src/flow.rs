//! CI&T Flow: client credentials are exchanged for a bearer token that is
//! cached and refreshed a little before it expires, and every call carries
//! the tenant, agent and operation headers Flow uses to route and trace it.

use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::engine::{Backend, Engine};
use crate::error::LlmError;
use crate::retry::{AttemptFailure, CredentialSource};
use crate::settings::{FlowSettings, GenerationSettings, HttpSettings};
use crate::transport::{HttpCore, status_failure};

/// Used when the token answer does not say how long it lives; Flow tokens
/// are documented to last about an hour.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Keeps absurd `expires_in` values from overflowing the clock.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Refresh at most this early, so an hour-long token is replaced five
/// minutes before it expires (as Flow's own clients do).
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A client for Flow's OpenAI-shaped chat and embeddings endpoints.
pub struct FlowClient {
    engine: Engine<FlowBackend>,
}

impl FlowClient {
    pub fn new(
        settings: FlowSettings,
        http: HttpSettings,
        generation: GenerationSettings,
    ) -> Result<Self, LlmError> {
        let base = settings.base_url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&base).is_err() {
            return Err(LlmError::Config(
                "the Flow base URL is not a valid URL".to_owned(),
            ));
        }
        let core = HttpCore::new(http, vec![settings.client_secret.expose().to_owned()])?;
        let backend = FlowBackend {
            token_url: format!("{base}/auth-engine-api/v1/api-key/token"),
            chat_url: format!("{base}/ai-orchestration-api/v1/openai/chat/completions"),
            embeddings_url: format!("{base}/ai-orchestration-api/v1/openai/embeddings"),
            settings,
            token: Mutex::new(None),
        };
        Ok(FlowClient {
            engine: Engine {
                backend,
                core,
                generation,
            },
        })
    }
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

struct FlowBackend {
    settings: FlowSettings,
    token_url: String,
    chat_url: String,
    embeddings_url: String,
    /// Held across a refresh, so concurrent callers with a cold or stale
    /// cache wait for the one token request instead of each sending theirs.
    token: Mutex<Option<CachedToken>>,
}

impl FlowBackend {
    async fn token(&self, core: &HttpCore) -> Result<String, AttemptFailure> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token(core).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self, core: &HttpCore) -> Result<CachedToken, AttemptFailure> {
        let asked_at = Instant::now();
        let request = core
            .client
            .post(&self.token_url)
            .header(ACCEPT, "application/json")
            .header("FlowTenant", &self.settings.tenant)
            .json(&json!({
                "clientId": self.settings.client_id,
                "clientSecret": self.settings.client_secret.expose(),
                "appToAccess": self.settings.app_to_access,
            }));
        let response = core.send_raw(request).await?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let (status, wait, detail) = core.error_parts(response, None).await;
            return Err(match status {
                408 | 429 | 500..=599 => status_failure(status, wait, detail, None),
                _ => AttemptFailure::Permanent(LlmError::Auth {
                    status,
                    message: format!("the Flow token exchange was refused: {detail}"),
                }),
            });
        }
        let body = core.read_all(response).await?;
        // The body holds the token: it is never quoted in an error.
        let answer: Value = serde_json::from_slice(&body).map_err(|e| {
            if e.is_eof() {
                AttemptFailure::retryable(LlmError::StreamInterrupted(
                    "the Flow token answer ended early".to_owned(),
                ))
            } else {
                AttemptFailure::Permanent(LlmError::InvalidResponse(format!(
                    "the Flow token answer (HTTP {status}) is not JSON"
                )))
            }
        })?;
        let value = ["access_token", "accessToken"]
            .iter()
            .find_map(|k| answer.get(*k).and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AttemptFailure::Permanent(LlmError::InvalidResponse(
                    "the Flow token answer has no access_token".to_owned(),
                ))
            })?
            .to_owned();
        let lifetime = answer
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "fetched a Flow access token"
        );
        Ok(CachedToken {
            value,
            refresh_at: asked_at + lifetime - refresh_margin(lifetime),
        })
    }
}

/// How long before expiry a token is replaced: five minutes, or a fifth of
/// a short lifetime so short-lived tokens are still used for a while.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(MAX_REFRESH_MARGIN)
}

#[async_trait::async_trait]
impl CredentialSource for FlowBackend {
    async fn invalidate(&self, credential: Option<&str>) -> bool {
        let mut cached = self.token.lock().await;
        // Another caller may already have replaced it; keep the new one.
        if cached.as_ref().map(|t| t.value.as_str()) == credential {
            *cached = None;
        }
        true
    }
}

#[async_trait::async_trait]
impl Backend for FlowBackend {
    fn provider(&self) -> &'static str {
        "flow"
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
        core: &HttpCore,
        request: RequestBuilder,
        operation_id: &str,
    ) -> Result<(RequestBuilder, Option<String>), AttemptFailure> {
        let token = self.token(core).await?;
        let mut request = request
            .bearer_auth(&token)
            .header("FlowTenant", &self.settings.tenant)
            .header("FlowAgent", &self.settings.agent)
            .header("FlowOperationId", operation_id);
        if let Some(channel) = &self.settings.channel {
            request = request.header("FlowChannel", channel);
        }
        Ok((request, Some(token)))
    }

    /// Flow routes embeddings by the model-mesh header, and only to models
    /// listed in `allowedModels`; both must name the same model.
    fn embeddings_body(&self, request: RequestBuilder, inputs: &[String]) -> RequestBuilder {
        let model = &self.settings.embedding_model;
        request
            .header("x-ms-model-mesh-model-name", model)
            .json(&json!({
                "input": inputs,
                "user": "flow",
                "allowedModels": [model],
            }))
    }
}

crate::engine::engine_client!(FlowClient);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_a_fifth_capped_at_five_minutes() {
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }
}
