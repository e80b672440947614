//! Language-model settings, read once from the environment through an
//! injected lookup so the rules are testable without touching the process
//! environment. Every error names the variable and never repeats a secret.

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct LlmConfigError {
    pub variable: &'static str,
    pub message: String,
}

const DEFAULT_FLOW_BASE_URL: &str = "https://flow.ciandt.com";
const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";

impl LlmSettings {
    /// Reads the settings for `kind` through `lookup`. Empty or whitespace
    /// values count as unset, because deployment dashboards often keep a
    /// variable defined but blank.
    pub fn from_lookup(
        kind: ProviderKind,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmConfigError> {
        let env = Env(&lookup);
        let provider = match kind {
            ProviderKind::Flow => ProviderSettings::Flow(FlowSettings {
                base_url: env.url("FLOW_BASE_URL", DEFAULT_FLOW_BASE_URL)?,
                tenant: env.required("FLOW_TENANT")?,
                client_id: env.required("FLOW_CLIENT_ID")?,
                client_secret: Secret::new(env.required("FLOW_CLIENT_SECRET")?),
                app_to_access: env.or("FLOW_APP_TO_ACCESS", "llm-api"),
                agent: env.or("FLOW_AGENT", "flowchat"),
                channel: env.get("FLOW_CHANNEL"),
                chat_model: env.or("FLOW_CHAT_MODEL", DEFAULT_CHAT_MODEL),
                embedding_model: env.or("FLOW_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL),
            }),
            ProviderKind::OpenAi => ProviderSettings::OpenAi(OpenAiSettings {
                base_url: env.url("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL)?,
                api_key: env.get("OPENAI_API_KEY").map(Secret::new),
                chat_model: env.or("OPENAI_CHAT_MODEL", DEFAULT_CHAT_MODEL),
                embedding_model: env.or("OPENAI_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL),
            }),
        };

        let http = HttpSettings {
            connect_timeout_ms: env.number("LLM_CONNECT_TIMEOUT_MS", 5_000, 1, 600_000)?,
            read_timeout_ms: env.number("LLM_READ_TIMEOUT_MS", 60_000, 1, 3_600_000)?,
            max_retries: env.number("LLM_MAX_RETRIES", 3, 0, 20)? as u32,
            retry_base_ms: env.number("LLM_RETRY_BASE_MS", 500, 0, 600_000)?,
            retry_max_ms: env.number("LLM_RETRY_MAX_MS", 20_000, 0, 3_600_000)?,
        };

        let chat_model = match &provider {
            ProviderSettings::Flow(f) => &f.chat_model,
            ProviderSettings::OpenAi(o) => &o.chat_model,
        };
        let max_output_tokens =
            env.number("LLM_MAX_OUTPUT_TOKENS", 800, 1, u32::MAX as u64)? as u32;
        let context_tokens = env.number(
            "LLM_CONTEXT_TOKENS",
            context_window(chat_model) as u64,
            1,
            u32::MAX as u64,
        )? as u32;
        if max_output_tokens >= context_tokens {
            return Err(LlmConfigError {
                variable: "LLM_MAX_OUTPUT_TOKENS",
                message: format!(
                    "{max_output_tokens} leaves no room for the prompt in a context of {context_tokens} tokens"
                ),
            });
        }
        let generation = GenerationSettings {
            temperature: env.temperature("LLM_TEMPERATURE", 0.2)?,
            max_output_tokens,
            context_tokens,
            embedding_batch: env.number("EMBEDDING_BATCH_SIZE", 64, 1, 2048)? as usize,
        };

        Ok(LlmSettings {
            provider,
            http,
            generation,
        })
    }

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

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    fn required(&self, name: &'static str) -> Result<String, LlmConfigError> {
        self.get(name).ok_or_else(|| LlmConfigError {
            variable: name,
            message: "is required but not set".to_owned(),
        })
    }

    fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, LlmConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let value: u64 = raw.parse().map_err(|_| LlmConfigError {
            variable: name,
            message: format!("expected a whole number, got {:?}", shorten(&raw)),
        })?;
        if !(min..=max).contains(&value) {
            return Err(LlmConfigError {
                variable: name,
                message: format!("{value} is outside {min}..={max}"),
            });
        }
        Ok(value)
    }

    fn temperature(&self, name: &'static str, default: f32) -> Result<f32, LlmConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<f32>() {
            Ok(v) if v.is_finite() && (0.0..=2.0).contains(&v) => Ok(v),
            _ => Err(LlmConfigError {
                variable: name,
                message: format!("expected a number from 0 to 2, got {:?}", shorten(&raw)),
            }),
        }
    }

    /// The value is not echoed on error: a URL may carry credentials.
    fn url(&self, name: &'static str, default: &str) -> Result<String, LlmConfigError> {
        let raw = self.or(name, default);
        let trimmed = raw.trim_end_matches('/').to_owned();
        let valid = reqwest::Url::parse(&trimmed).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !valid {
            return Err(LlmConfigError {
                variable: name,
                message: "expected an absolute http:// or https:// URL".to_owned(),
            });
        }
        Ok(trimmed)
    }
}

fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FLOW_MIN: &[(&str, &str)] = &[
        ("FLOW_TENANT", "acme"),
        ("FLOW_CLIENT_ID", "id-1"),
        ("FLOW_CLIENT_SECRET", "super-secret-value"),
    ];

    #[test]
    fn flow_defaults() {
        let s = LlmSettings::from_lookup(ProviderKind::Flow, lookup(FLOW_MIN)).unwrap();
        let ProviderSettings::Flow(f) = &s.provider else {
            panic!("expected flow")
        };
        assert_eq!(f.base_url, "https://flow.ciandt.com");
        assert_eq!(f.tenant, "acme");
        assert_eq!(f.client_id, "id-1");
        assert_eq!(f.client_secret.expose(), "super-secret-value");
        assert_eq!(f.app_to_access, "llm-api");
        assert_eq!(f.agent, "flowchat");
        assert_eq!(f.channel, None);
        assert_eq!(s.chat_model(), "gpt-4o-mini");
        assert_eq!(s.embedding_model(), "text-embedding-3-small");
        assert_eq!(s.provider_name(), "flow");
        assert_eq!(s.http.connect_timeout_ms, 5_000);
        assert_eq!(s.http.read_timeout_ms, 60_000);
        assert_eq!(s.http.max_retries, 3);
        assert_eq!(s.http.retry_base_ms, 500);
        assert_eq!(s.http.retry_max_ms, 20_000);
        assert_eq!(s.generation.temperature, 0.2);
        assert_eq!(s.generation.max_output_tokens, 800);
        assert_eq!(s.generation.context_tokens, 128_000);
        assert_eq!(s.generation.embedding_batch, 64);
    }

    #[test]
    fn openai_defaults_need_no_key() {
        let s = LlmSettings::from_lookup(ProviderKind::OpenAi, lookup(&[])).unwrap();
        let ProviderSettings::OpenAi(o) = &s.provider else {
            panic!("expected openai")
        };
        assert_eq!(o.base_url, "https://api.openai.com/v1");
        assert!(o.api_key.is_none());
        assert_eq!(s.provider_name(), "openai");
    }

    #[test]
    fn overrides_and_trailing_slash() {
        let mut pairs = FLOW_MIN.to_vec();
        pairs.extend([
            ("FLOW_BASE_URL", "http://localhost:8080/ "),
            ("FLOW_CHANNEL", "web"),
            ("FLOW_CHAT_MODEL", "gpt-4"),
            ("LLM_MAX_OUTPUT_TOKENS", "500"),
            ("LLM_TEMPERATURE", "1.5"),
            ("EMBEDDING_BATCH_SIZE", "16"),
            ("LLM_MAX_RETRIES", "0"),
        ]);
        let s = LlmSettings::from_lookup(ProviderKind::Flow, lookup(&pairs)).unwrap();
        let ProviderSettings::Flow(f) = &s.provider else {
            panic!()
        };
        assert_eq!(f.base_url, "http://localhost:8080");
        assert_eq!(f.channel.as_deref(), Some("web"));
        assert_eq!(s.generation.context_tokens, 8_192);
        assert_eq!(s.generation.max_output_tokens, 500);
        assert_eq!(s.generation.temperature, 1.5);
        assert_eq!(s.generation.embedding_batch, 16);
        assert_eq!(s.http.max_retries, 0);
    }

    #[test]
    fn missing_tenant_names_the_variable() {
        let pairs: Vec<_> = FLOW_MIN
            .iter()
            .copied()
            .filter(|(k, _)| *k != "FLOW_TENANT")
            .chain([("FLOW_TENANT", "   ")])
            .collect();
        let err = LlmSettings::from_lookup(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
        assert_eq!(err.variable, "FLOW_TENANT");
        assert!(err.to_string().contains("FLOW_TENANT"), "{err}");
    }

    #[test]
    fn missing_secret_is_named_not_echoed() {
        let pairs: Vec<_> = FLOW_MIN
            .iter()
            .copied()
            .filter(|(k, _)| *k != "FLOW_CLIENT_SECRET")
            .collect();
        let err = LlmSettings::from_lookup(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
        assert_eq!(err.variable, "FLOW_CLIENT_SECRET");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (var, value) in [
            ("LLM_MAX_RETRIES", "three"),
            ("LLM_READ_TIMEOUT_MS", "0"),
            ("LLM_TEMPERATURE", "2.5"),
            ("LLM_TEMPERATURE", "NaN"),
            ("EMBEDDING_BATCH_SIZE", "0"),
            ("EMBEDDING_BATCH_SIZE", "4096"),
            ("FLOW_BASE_URL", "ftp://example.com"),
            ("FLOW_BASE_URL", "not a url"),
            ("LLM_MAX_OUTPUT_TOKENS", "200000"),
        ] {
            let mut pairs = FLOW_MIN.to_vec();
            pairs.push((var, value));
            let err = LlmSettings::from_lookup(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}: {err}");
        }
    }

    #[test]
    fn url_errors_do_not_echo_credentials() {
        let pairs = [("OPENAI_BASE_URL", "gopher://user:hunter2@host")];
        let err = LlmSettings::from_lookup(ProviderKind::OpenAi, lookup(&pairs)).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = LlmSettings::from_lookup(ProviderKind::Flow, lookup(FLOW_MIN)).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("super-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));
        let key = Secret::new("sk-abc");
        assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
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
