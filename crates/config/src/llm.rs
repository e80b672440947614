//! The language-model clients' settings: which endpoint, which credentials,
//! how patient, how creative. Every error names the variable and never
//! repeats a secret.

use flowchat_domain::ConfigError;
use flowchat_llm::{
    FlowSettings, GenerationSettings, HttpSettings, LlmSettings, OpenAiSettings, ProviderKind,
    ProviderSettings, Secret, context_window,
};

use crate::env::{Env, error};

const DEFAULT_FLOW_BASE_URL: &str = "https://flow.ciandt.com";
const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// The settings of the `kind` endpoint.
pub fn llm_settings(
    kind: ProviderKind,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<LlmSettings, ConfigError> {
    let env = Env::new(lookup);
    let provider = match kind {
        ProviderKind::Flow => ProviderSettings::Flow(FlowSettings {
            base_url: env.url_or("FLOW_BASE_URL", DEFAULT_FLOW_BASE_URL)?,
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
            base_url: env.url_or("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL)?,
            api_key: env.get("OPENAI_API_KEY").map(Secret::new),
            chat_model: env.or("OPENAI_CHAT_MODEL", DEFAULT_CHAT_MODEL),
            embedding_model: env.or("OPENAI_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL),
        }),
    };
    let defaults = HttpSettings::default();
    let http = HttpSettings {
        connect_timeout_ms: env.number(
            "LLM_CONNECT_TIMEOUT_MS",
            defaults.connect_timeout_ms,
            1..=600_000,
        )?,
        read_timeout_ms: env.number(
            "LLM_READ_TIMEOUT_MS",
            defaults.read_timeout_ms,
            1..=3_600_000,
        )?,
        answer_timeout_ms: env.number(
            "LLM_ANSWER_TIMEOUT_SECONDS",
            defaults.answer_timeout_ms / 1000,
            1..=3_600,
        )? * 1000,
        max_retries: env.number("LLM_MAX_RETRIES", defaults.max_retries, 0..=20)?,
        retry_base_ms: env.number("LLM_RETRY_BASE_MS", defaults.retry_base_ms, 0..=600_000)?,
        retry_max_ms: env.number("LLM_RETRY_MAX_MS", defaults.retry_max_ms, 0..=3_600_000)?,
    };
    let chat_model = match &provider {
        ProviderSettings::Flow(f) => &f.chat_model,
        ProviderSettings::OpenAi(o) => &o.chat_model,
    };
    let defaults = GenerationSettings::default();
    let max_output_tokens = env.number(
        "LLM_MAX_OUTPUT_TOKENS",
        defaults.max_output_tokens,
        1..=u32::MAX,
    )?;
    let context_tokens = env.number(
        "LLM_CONTEXT_TOKENS",
        context_window(chat_model),
        1..=u32::MAX,
    )?;
    if max_output_tokens >= context_tokens {
        return Err(error(
            "LLM_MAX_OUTPUT_TOKENS",
            format!(
                "{max_output_tokens} leaves no room for the prompt in a context of {context_tokens} tokens"
            ),
        ));
    }
    let generation = GenerationSettings {
        temperature: env.decimal("LLM_TEMPERATURE", defaults.temperature, 0.0..=2.0)?,
        max_output_tokens,
        context_tokens,
        embedding_batch: env.number("EMBEDDING_BATCH_SIZE", defaults.embedding_batch, 1..=2048)?,
    };
    Ok(LlmSettings {
        provider,
        http,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map as lookup;

    const FLOW_MIN: &[(&str, &str)] = &[
        ("FLOW_TENANT", "acme"),
        ("FLOW_CLIENT_ID", "id-1"),
        ("FLOW_CLIENT_SECRET", "super-secret-value"),
    ];

    #[test]
    fn flow_defaults() {
        let s = llm_settings(ProviderKind::Flow, lookup(FLOW_MIN)).unwrap();
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
        assert_eq!(s.http.answer_timeout_ms, 120_000);
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
        let s = llm_settings(ProviderKind::OpenAi, lookup(&[])).unwrap();
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
            ("LLM_ANSWER_TIMEOUT_SECONDS", "45"),
        ]);
        let s = llm_settings(ProviderKind::Flow, lookup(&pairs)).unwrap();
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
        assert_eq!(s.http.answer_timeout_ms, 45_000);
    }

    #[test]
    fn missing_tenant_names_the_variable() {
        let pairs: Vec<_> = FLOW_MIN
            .iter()
            .copied()
            .filter(|(k, _)| *k != "FLOW_TENANT")
            .chain([("FLOW_TENANT", "   ")])
            .collect();
        let err = llm_settings(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
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
        let err = llm_settings(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
        assert_eq!(err.variable, "FLOW_CLIENT_SECRET");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (var, value) in [
            ("LLM_MAX_RETRIES", "three"),
            ("LLM_READ_TIMEOUT_MS", "0"),
            ("LLM_ANSWER_TIMEOUT_SECONDS", "0"),
            ("LLM_ANSWER_TIMEOUT_SECONDS", "3601"),
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
            let err = llm_settings(ProviderKind::Flow, lookup(&pairs)).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}: {err}");
        }
    }

    #[test]
    fn url_errors_do_not_echo_credentials() {
        let pairs = [("OPENAI_BASE_URL", "gopher://user:hunter2@host")];
        let err = llm_settings(ProviderKind::OpenAi, lookup(&pairs)).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = llm_settings(ProviderKind::Flow, lookup(FLOW_MIN)).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("super-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }
}
