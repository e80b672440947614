//! The application's settings ([`Config`]): what every FlowChat process
//! reads, whatever its role.
//!
//! A process requires only what it uses: the session secret is checked here
//! when set (length), but only the API requires it in production — the drain
//! signs nothing and starts without it.

use flowchat_domain::ConfigError;
use flowchat_domain::config::{
    ADMIN_TOKEN_MIN_CHARS, AdminToken, Config, CorsOrigins, DocumentQuota, DrainSettings,
    EmbeddingsProvider, Environment, LlmProvider, LogFormat, PromptConfig, RateLimits, RecordTtls,
    StoreKind, VectorStore,
};
use flowchat_domain::token::{SecretTooShort, SessionSecret};

use crate::env::{Env, error};

/// Reads every application variable through `lookup`.
pub fn app_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let env = Env::new(lookup);
    let environment = env.choice(
        "FLOWCHAT_ENV",
        Environment::Development,
        &[
            ("development", Environment::Development),
            ("production", Environment::Production),
        ],
    )?;
    let data_dir = env.or("FLOWCHAT_DATA_DIR", "./data");
    let documents_path = env
        .get("DOCUMENTS_PATH")
        .unwrap_or_else(|| format!("{}/documents", data_dir.trim_end_matches('/')));
    let llm_provider = llm_provider(&env)?;
    let embeddings_provider = embeddings_provider(&env, llm_provider)?;
    let vector_store = env.choice(
        "VECTOR_STORE",
        VectorStore::Sqlite,
        &[
            ("sqlite", VectorStore::Sqlite),
            ("chroma", VectorStore::Chroma),
        ],
    )?;
    if vector_store == VectorStore::Chroma && embeddings_provider == EmbeddingsProvider::None {
        return Err(error(
            "EMBEDDINGS_PROVIDER",
            "VECTOR_STORE=chroma stores vectors only: set EMBEDDINGS_PROVIDER to `flow` or `openai` (with that provider's credentials)",
        ));
    }
    let default_log_format = match environment {
        Environment::Production => LogFormat::Json,
        Environment::Development => LogFormat::Pretty,
    };
    Ok(Config {
        env: environment,
        data_dir,
        documents_path,
        session_secret: session_secret(&env)?,
        admin_token: admin_token(&env)?,
        cors_origins: cors_origins(&env)?,
        trusted_ip_header: trusted_ip_header(&env)?,
        store: env.choice(
            "FLOWCHAT_STORE",
            StoreKind::Sqlite,
            &[
                ("sqlite", StoreKind::Sqlite),
                ("upstash", StoreKind::Upstash),
            ],
        )?,
        ttls: RecordTtls {
            job_days: env.number("JOB_TTL_DAYS", 7, 1..=3650)?,
            conversation_days: env.number("CONVERSATION_TTL_DAYS", 90, 1..=3650)?,
            upload_hours: env.number("UPLOAD_TTL_HOURS", 24, 1..=8760)?,
        },
        namespace: namespace(&env)?,
        rate_limits: RateLimits {
            chat_per_minute: env.number("RATE_LIMIT_CHAT_PER_MINUTE", 10, 1..=1_000_000)?,
            ip_writes_per_minute: env.number("RATE_LIMIT_IP_PER_MINUTE", 60, 1..=1_000_000)?,
            followers_per_session: env.number("MAX_FOLLOWERS_PER_SESSION", 4, 1..=1000)?,
            followers_per_ip: env.number("MAX_FOLLOWERS_PER_IP", 16, 1..=100_000)?,
        },
        llm_provider,
        embeddings_provider,
        vector_store,
        log_format: env.choice(
            "LOG_FORMAT",
            default_log_format,
            &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty)],
        )?,
        drain: DrainSettings {
            max_attempts: env.number("DRAIN_MAX_ATTEMPTS", 3, 1..=100)?,
            lease_secs: env.number("DRAIN_LEASE_SECONDS", 60, 1..=3600)?,
            retry_base_secs: env.number("DRAIN_RETRY_BASE_SECONDS", 2, 0..=3600)?,
            retry_max_secs: env.number("DRAIN_RETRY_MAX_SECONDS", 300, 0..=86_400)?,
            partial_flush_ms: env.number("PARTIAL_FLUSH_MS", 250, 10..=60_000)?,
            shutdown_grace_secs: env.number("DRAIN_SHUTDOWN_GRACE_SECONDS", 20, 0..=3600)?,
        },
        sync_chat_timeout_secs: env.number("CHAT_SYNC_TIMEOUT_SECONDS", 25, 1..=300)?,
        retrieval_top_k: env.number("RETRIEVAL_TOP_K", 5, 1..=50)?,
        prompt: PromptConfig {
            // Multi-line prompts keep their inner whitespace; only the ends
            // are trimmed (as for every variable).
            system_prompt: env.get("SYSTEM_PROMPT"),
            system_prompt_file: env.get("SYSTEM_PROMPT_FILE"),
            history_turns: env.number("HISTORY_TURNS", 6, 0..=100)?,
        },
        max_upload_bytes: env.number("MAX_UPLOAD_MB", 4usize, 1..=4)? * 1024 * 1024,
        document_quota: DocumentQuota {
            max_documents: env.number("MAX_DOCUMENTS_PER_SESSION", 50, 1..=100_000)?,
            max_bytes: env.number("MAX_BYTES_PER_SESSION", 50 * 1024 * 1024, 1..=1u64 << 40)?,
        },
    })
}

fn session_secret<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<SessionSecret>, ConfigError> {
    env.get("SESSION_SECRET")
        .map(|raw| {
            SessionSecret::new(raw.into_bytes()).map_err(|SecretTooShort(n)| {
                error(
                    "SESSION_SECRET",
                    format!(
                        "must be at least 32 bytes long (got {n}); generate one with `openssl rand -hex 32`"
                    ),
                )
            })
        })
        .transpose()
}

fn admin_token<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<AdminToken>, ConfigError> {
    match env.get("ADMIN_TOKEN") {
        Some(raw) if raw.chars().count() < ADMIN_TOKEN_MIN_CHARS => Err(error(
            "ADMIN_TOKEN",
            format!("must be at least {ADMIN_TOKEN_MIN_CHARS} characters long"),
        )),
        Some(raw) => Ok(Some(AdminToken::new(raw))),
        None => Ok(None),
    }
}

/// A header name only: its value becomes the client's address, so a typo
/// must stop start-up rather than silently trust nothing (or the wrong thing).
fn trusted_ip_header<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env.get("TRUSTED_IP_HEADER") else {
        return Ok(None);
    };
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    if raw.len() > 64 || !raw.chars().all(token) {
        return Err(error(
            "TRUSTED_IP_HEADER",
            "must be one header name (ASCII letters, digits, - and _), e.g. x-forwarded-for",
        ));
    }
    Ok(Some(raw.to_ascii_lowercase()))
}

fn cors_origins<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<CorsOrigins, ConfigError> {
    let list = match env.get("CORS_ORIGINS").as_deref() {
        None => return Ok(CorsOrigins::None),
        Some("*") => return Ok(CorsOrigins::Any),
        Some(list) => list.to_owned(),
    };
    let origins: Vec<String> = list
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if let Some(bad) = origins
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
    {
        return Err(error(
            "CORS_ORIGINS",
            format!(
                "`{bad}` is not an origin; use a comma-separated list like https://chat.example.com, or *"
            ),
        ));
    }
    Ok(CorsOrigins::List(origins))
}

fn namespace<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<String, ConfigError> {
    match env.get("FLOWCHAT_NAMESPACE") {
        Some(ns) => checked_namespace(ns),
        None => Ok(derive_namespace(
            env.get("VERCEL_ENV").as_deref(),
            env.get("VERCEL_GIT_COMMIT_REF").as_deref(),
        )),
    }
}

/// Whether `name` can be a namespace: ASCII letters, digits, `-` and `_`,
/// 1 to 64 of them.
pub fn is_namespace(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    !name.is_empty() && name.len() <= 64 && name.chars().all(allowed)
}

/// A namespace as `FLOWCHAT_NAMESPACE` may name it: it becomes part of
/// every key and file name.
pub(crate) fn checked_namespace(ns: String) -> Result<String, ConfigError> {
    if !is_namespace(&ns) {
        return Err(error(
            "FLOWCHAT_NAMESPACE",
            "may contain only ASCII letters, digits, - and _, 1 to 64 characters",
        ));
    }
    Ok(ns)
}

/// `VERCEL_ENV` (+ the branch for previews) so preview deployments never
/// share keys with production; `dev` everywhere else.
fn derive_namespace(vercel_env: Option<&str>, branch: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(48)
            .collect()
    };
    match (vercel_env, branch) {
        (Some("preview"), Some(branch)) => format!("preview-{}", clean(branch)),
        (Some(env), _) => clean(env),
        (None, _) => "dev".to_owned(),
    }
}

/// Flow credentials alone switch generation on: an operator who set them
/// expects the model to answer, not quotes.
fn llm_provider<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<LlmProvider, ConfigError> {
    let flow_credentials =
        env.get("FLOW_CLIENT_ID").is_some() && env.get("FLOW_CLIENT_SECRET").is_some();
    let default = if flow_credentials {
        LlmProvider::Flow
    } else {
        LlmProvider::Extractive
    };
    env.choice(
        "LLM_PROVIDER",
        default,
        &[
            ("flow", LlmProvider::Flow),
            ("openai", LlmProvider::OpenAi),
            ("extractive", LlmProvider::Extractive),
        ],
    )
}

/// Vectors come from the language model's provider unless told otherwise:
/// one set of credentials gives both.
fn embeddings_provider<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    llm: LlmProvider,
) -> Result<EmbeddingsProvider, ConfigError> {
    let default = match llm {
        LlmProvider::Flow => EmbeddingsProvider::Flow,
        LlmProvider::OpenAi => EmbeddingsProvider::OpenAi,
        LlmProvider::Extractive => EmbeddingsProvider::None,
    };
    env.choice(
        "EMBEDDINGS_PROVIDER",
        default,
        &[
            ("flow", EmbeddingsProvider::Flow),
            ("openai", EmbeddingsProvider::OpenAi),
            ("none", EmbeddingsProvider::None),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        app_config(crate::env::map(vars))
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert_eq!(c.data_dir, "./data");
        assert_eq!(c.documents_path, "./data/documents");
        assert_eq!(c.namespace, "dev");
        assert_eq!(c.rate_limits.chat_per_minute, 10);
        assert_eq!(c.rate_limits.ip_writes_per_minute, 60);
        assert_eq!(c.rate_limits.followers_per_session, 4);
        assert_eq!(c.rate_limits.followers_per_ip, 16);
        assert_eq!(c.trusted_ip_header, None);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.session_secret.is_none());
        assert_eq!(c.max_upload_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn trusted_ip_header_is_one_header_name() {
        let c = config(&[("TRUSTED_IP_HEADER", " X-Forwarded-For ")]).unwrap();
        assert_eq!(c.trusted_ip_header.as_deref(), Some("x-forwarded-for"));
        for bad in ["x-real-ip, x-forwarded-for", "x real ip", "x:ip"] {
            let e = config(&[("TRUSTED_IP_HEADER", bad)]).unwrap_err();
            assert_eq!(e.variable, "TRUSTED_IP_HEADER");
        }
        let e = config(&[("MAX_FOLLOWERS_PER_IP", "0")]).unwrap_err();
        assert_eq!(e.variable, "MAX_FOLLOWERS_PER_IP");
    }

    #[test]
    fn upload_limit_is_whole_megabytes_from_1_to_4() {
        let c = config(&[("MAX_UPLOAD_MB", "1")]).unwrap();
        assert_eq!(c.max_upload_bytes, 1024 * 1024);
        for bad in ["0", "5", "2.5", "four", "-1"] {
            let e = config(&[("MAX_UPLOAD_MB", bad)]).unwrap_err();
            assert_eq!(e.variable, "MAX_UPLOAD_MB");
            assert!(e.to_string().contains("from 1 to 4"), "{e}");
        }
    }

    #[test]
    fn session_quotas_default_to_50_documents_and_50_mib() {
        let c = config(&[]).unwrap();
        assert_eq!(c.document_quota.max_documents, 50);
        assert_eq!(c.document_quota.max_bytes, 50 * 1024 * 1024);
        let c = config(&[
            ("MAX_DOCUMENTS_PER_SESSION", "3"),
            ("MAX_BYTES_PER_SESSION", "1000"),
        ])
        .unwrap();
        assert_eq!(c.document_quota.max_documents, 3);
        assert_eq!(c.document_quota.max_bytes, 1000);
        for (var, bad) in [
            ("MAX_DOCUMENTS_PER_SESSION", "0"),
            ("MAX_BYTES_PER_SESSION", "0"),
            ("MAX_BYTES_PER_SESSION", "50MB"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().variable, var);
        }
    }

    #[test]
    fn a_secret_is_checked_when_set_but_not_required_here() {
        // Only the API needs a secret in production (the start-up of the
        // API requires it); the drain signs nothing.
        let c = config(&[("FLOWCHAT_ENV", "production")]).unwrap();
        assert!(c.session_secret.is_none());
        let e = config(&[("FLOWCHAT_ENV", "production"), ("SESSION_SECRET", "short")]).unwrap_err();
        assert_eq!(e.variable, "SESSION_SECRET");
        assert!(!e.to_string().contains("short"), "never echo the secret");
        let ok = config(&[
            ("FLOWCHAT_ENV", "production"),
            ("SESSION_SECRET", &"x".repeat(32)),
        ])
        .unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
        assert!(ok.session_secret.is_some());
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (var, value) in [
            ("RATE_LIMIT_CHAT_PER_MINUTE", "ten"),
            ("RATE_LIMIT_IP_PER_MINUTE", "0"),
            ("FLOWCHAT_STORE", "postgres"),
            ("LLM_PROVIDER", "magic"),
            ("LOG_FORMAT", "xml"),
            ("CORS_ORIGINS", "example.com"),
            ("FLOWCHAT_NAMESPACE", "a/b"),
            ("ADMIN_TOKEN", "short"),
            ("MAX_UPLOAD_MB", "10"),
        ] {
            assert_eq!(config(&[(var, value)]).unwrap_err().variable, var);
        }
    }

    #[test]
    fn flow_credentials_choose_the_flow_provider() {
        assert_eq!(config(&[]).unwrap().llm_provider, LlmProvider::Extractive);
        let creds = [("FLOW_CLIENT_ID", "id"), ("FLOW_CLIENT_SECRET", "secret")];
        assert_eq!(config(&creds).unwrap().llm_provider, LlmProvider::Flow);
        let only_id = [("FLOW_CLIENT_ID", "id")];
        assert_eq!(
            config(&only_id).unwrap().llm_provider,
            LlmProvider::Extractive
        );
        let explicit = [creds[0], creds[1], ("LLM_PROVIDER", "extractive")];
        assert_eq!(
            config(&explicit).unwrap().llm_provider,
            LlmProvider::Extractive
        );
        let openai = [("LLM_PROVIDER", "openai")];
        assert_eq!(config(&openai).unwrap().llm_provider, LlmProvider::OpenAi);
    }

    #[test]
    fn embeddings_follow_the_llm_provider_and_chroma_needs_them() {
        assert_eq!(
            config(&[]).unwrap().embeddings_provider,
            EmbeddingsProvider::None
        );
        let flow = [("LLM_PROVIDER", "flow")];
        assert_eq!(
            config(&flow).unwrap().embeddings_provider,
            EmbeddingsProvider::Flow
        );
        let lexical = [("LLM_PROVIDER", "flow"), ("EMBEDDINGS_PROVIDER", "none")];
        assert_eq!(
            config(&lexical).unwrap().embeddings_provider,
            EmbeddingsProvider::None
        );
        let e = config(&[("VECTOR_STORE", "chroma")]).unwrap_err();
        assert_eq!(e.variable, "EMBEDDINGS_PROVIDER");
        let ok = [
            ("VECTOR_STORE", "chroma"),
            ("EMBEDDINGS_PROVIDER", "openai"),
        ];
        assert_eq!(config(&ok).unwrap().vector_store, VectorStore::Chroma);
        assert_eq!(
            config(&[("VECTOR_STORE", "pinecone")])
                .unwrap_err()
                .variable,
            "VECTOR_STORE"
        );
    }

    #[test]
    fn namespace_follows_vercel_env() {
        let c = config(&[
            ("VERCEL_ENV", "preview"),
            ("VERCEL_GIT_COMMIT_REF", "feat/Upload"),
        ])
        .unwrap();
        assert_eq!(c.namespace, "preview-feat-upload");
        let c = config(&[("VERCEL_ENV", "production")]).unwrap();
        assert_eq!(c.namespace, "production");
        let c = config(&[("VERCEL_ENV", "production"), ("FLOWCHAT_NAMESPACE", "blue")]).unwrap();
        assert_eq!(c.namespace, "blue");
    }

    #[test]
    fn admin_token_compares_exactly() {
        let c = config(&[("ADMIN_TOKEN", "0123456789abcdef")]).unwrap();
        let t = c.admin_token.unwrap();
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcdef0"));
        assert!(!t.matches(""));
    }

    #[test]
    fn cors_list_matches_exact_origins() {
        let c = config(&[("CORS_ORIGINS", "https://a.example, http://localhost:5173/")]).unwrap();
        assert_eq!(
            c.cors_origins.allow("http://localhost:5173").as_deref(),
            Some("http://localhost:5173")
        );
        assert_eq!(c.cors_origins.allow("https://evil.example"), None);
    }
}
