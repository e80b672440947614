//! Language-model settings as plain values. They are read from the
//! environment by `flowchat-config` (the one place configuration is parsed);
//! here they only describe an endpoint, its credentials and its limits.

use std::fmt;

/// Which kind of endpoint the settings describe. Kept local to this crate so
/// the clients do not depend on how the application spells its own provider
/// choice (which also includes modes without a language model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Flow,
    OpenAi,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Flow => "flow",
            ProviderKind::OpenAi => "openai",
        }
    }
}

/// A credential that must never reach a log line or an error message; the
/// only way to read it is the explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// Without a trailing `/`, so paths can be appended verbatim.
    pub base_url: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub app_to_access: String,
    pub agent: String,
    pub channel: Option<String>,
    pub chat_model: String,
    pub embedding_model: String,
}

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Without a trailing `/`, so paths can be appended verbatim.
    pub base_url: String,
    /// Optional because local OpenAI-compatible servers usually need none.
    pub api_key: Option<Secret>,
    pub chat_model: String,
    pub embedding_model: String,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout_ms: u64,
    /// The longest wait for the response head or for the next bytes of a
    /// body or stream. Not a total deadline: a long answer may stream for
    /// minutes as long as it keeps moving.
    pub read_timeout_ms: u64,
    /// The longest a whole chat call may take, retries and their waits
    /// included: a stream that keeps trickling never trips the read
    /// timeout, and without this bound it would hold its job (and extend
    /// its lease) forever.
    pub answer_timeout_ms: u64,
    /// Retries after the first try.
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout_ms: 5_000,
            read_timeout_ms: 60_000,
            answer_timeout_ms: 120_000,
            max_retries: 3,
            retry_base_ms: 500,
            retry_max_ms: 20_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenerationSettings {
    pub temperature: f32,
    pub max_output_tokens: u32,
    /// The prompt budget callers plan with; defaults to the chat model's
    /// known context window.
    pub context_tokens: u32,
    pub embedding_batch: usize,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            temperature: 0.2,
            max_output_tokens: 800,
            context_tokens: context_window(DEFAULT_CHAT_MODEL),
            embedding_batch: 64,
        }
    }
}

#[derive(Debug, Clone)]
pub enum ProviderSettings {
    Flow(FlowSettings),
    OpenAi(OpenAiSettings),
}

#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub provider: ProviderSettings,
    pub http: HttpSettings,
    pub generation: GenerationSettings,
}

const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";

impl LlmSettings {
    pub fn chat_model(&self) -> &str {
        match &self.provider {
            ProviderSettings::Flow(f) => &f.chat_model,
            ProviderSettings::OpenAi(o) => &o.chat_model,
        }
    }

    pub fn embedding_model(&self) -> &str {
        match &self.provider {
            ProviderSettings::Flow(f) => &f.embedding_model,
            ProviderSettings::OpenAi(o) => &o.embedding_model,
        }
    }

    pub fn provider_name(&self) -> &'static str {
        match &self.provider {
            ProviderSettings::Flow(_) => ProviderKind::Flow.as_str(),
            ProviderSettings::OpenAi(_) => ProviderKind::OpenAi.as_str(),
        }
    }
}

/// Context windows of well-known models. Unknown models get 8192 tokens: too
/// small wastes some context, too large makes every long prompt fail.
pub fn context_window(model: &str) -> u32 {
    let model = model.trim().to_ascii_lowercase();
    // Gateways sometimes prefix the vendor ("azure/gpt-4o").
    let model = model.rsplit('/').next().unwrap_or_default();
    let family = |name: &str| {
        model == name
            || model
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-'))
    };
    if family("gpt-4.1") {
        1_047_576
    } else if family("gpt-4o") || family("gpt-4-turbo") {
        128_000
    } else if family("gpt-4-32k") {
        32_768
    } else if family("gpt-4") {
        // The dated "-preview" snapshots are GPT-4 Turbo.
        if model.ends_with("-preview") {
            128_000
        } else {
            8_192
        }
    } else if family("gpt-3.5-turbo") {
        16_385
    } else if family("o1-mini") || family("o1-preview") {
        128_000
    } else if family("o1") || family("o3") || family("o4-mini") {
        200_000
    } else {
        8_192
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_when_shown() {
        let key = Secret::new("sk-abc");
        assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
        assert_eq!(key.expose(), "sk-abc");
    }

    #[test]
    fn known_context_windows() {
        assert_eq!(context_window("gpt-4o"), 128_000);
        assert_eq!(context_window("gpt-4o-mini"), 128_000);
        assert_eq!(context_window("GPT-4o-2024-08-06"), 128_000);
        assert_eq!(context_window("gpt-4.1"), 1_047_576);
        assert_eq!(context_window("gpt-4.1-mini"), 1_047_576);
        assert_eq!(context_window("gpt-4-turbo"), 128_000);
        assert_eq!(context_window("gpt-4"), 8_192);
        assert_eq!(context_window("gpt-3.5-turbo"), 16_385);
        assert_eq!(context_window("o1"), 200_000);
        assert_eq!(context_window("o3"), 200_000);
        assert_eq!(context_window("o4-mini"), 200_000);
        assert_eq!(context_window("azure/gpt-4o"), 128_000);
        assert_eq!(context_window("llama3"), 8_192);
        assert_eq!(context_window("gpt-4x"), 8_192);
    }
}
