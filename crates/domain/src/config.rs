//! All configuration, read once per process from the environment into one
//! typed struct. A missing or malformed value stops start-up with a message
//! that names the variable. The lookup function is injected so the rules run
//! the same on every runtime (and in tests without touching the process env).

use crate::token::{SecretTooShort, SessionSecret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// One embedded SQLite file in the data directory.
    Sqlite,
    /// Redis over the Upstash REST protocol (`UPSTASH_REDIS_REST_URL` / `_TOKEN`).
    Upstash,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Upstash => "upstash",
        }
    }
}

/// How long records live in stores that expire them (Upstash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTtls {
    pub job_days: u32,
    pub conversation_days: u32,
    pub upload_hours: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    /// No language model: answers quote the most relevant passages.
    Extractive,
    /// CI&T Flow (client-credentials token exchange, OpenAI-shaped calls).
    Flow,
    /// Any OpenAI-compatible endpoint (`OPENAI_BASE_URL`).
    OpenAi,
}

impl LlmProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmProvider::Extractive => "extractive",
            LlmProvider::Flow => "flow",
            LlmProvider::OpenAi => "openai",
        }
    }
}

/// Who turns text into vectors for semantic retrieval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingsProvider {
    /// Lexical retrieval only (BM25).
    None,
    Flow,
    OpenAi,
}

impl EmbeddingsProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingsProvider::None => "none",
            EmbeddingsProvider::Flow => "flow",
            EmbeddingsProvider::OpenAi => "openai",
        }
    }
}

/// Where the knowledge index lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorStore {
    /// Embedded: chunks, BM25 and vectors in one SQLite file in the data directory.
    Sqlite,
    /// A Chroma server (`CHROMA_URL`): shared by several drains, no local disk needed.
    Chroma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Same-origin only: no CORS headers are sent.
    None,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    /// The value for `Access-Control-Allow-Origin` when `origin` asks, if any.
    pub fn allow(&self, origin: &str) -> Option<String> {
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some("*".to_owned()),
            CorsOrigins::List(list) => list.iter().find(|o| o.as_str() == origin).cloned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Chat messages per minute per session.
    pub chat_per_minute: u32,
    /// Writes (sessions created, messages, uploads) per minute per client IP.
    pub ip_writes_per_minute: u32,
}

/// How the drain treats jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSettings {
    /// Claims after which a failing job is dead-lettered.
    pub max_attempts: u32,
    /// How long a claim lasts before another drain may take the job.
    pub lease_secs: u32,
    /// First retry delay; doubled on every further attempt.
    pub retry_base_secs: u32,
    /// Upper bound on a retry delay.
    pub retry_max_secs: u32,
    /// Longest gap between two writes of streamed partial text to the job.
    pub partial_flush_ms: u32,
    /// After SIGTERM/SIGINT, how long in-flight jobs may run before they are
    /// released for another drain.
    pub shutdown_grace_secs: u32,
}

/// How generated answers are prompted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptConfig {
    /// `SYSTEM_PROMPT`: the operator's instructions, inline.
    pub system_prompt: Option<String>,
    /// `SYSTEM_PROMPT_FILE`: a file holding them (read by the drain at
    /// start-up; the inline value wins when both are set).
    pub system_prompt_file: Option<String>,
    /// Earlier messages of the conversation sent along with a question.
    pub history_turns: u32,
}

/// An operator credential compared in constant time; never printed.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Constant-time comparison with what a request presented.
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= (x ^ y) as usize;
        }
        diff == 0
    }
}

pub const ADMIN_TOKEN_MIN_CHARS: usize = 16;

#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    /// Where the sqlite files and the generated development secret live.
    pub data_dir: String,
    /// The shared documents folder.
    pub documents_path: String,
    /// `None` only in development before the runtime generated one.
    pub session_secret: Option<SessionSecret>,
    /// `None` disables the admin endpoints.
    pub admin_token: Option<AdminToken>,
    pub cors_origins: CorsOrigins,
    pub store: StoreKind,
    pub ttls: RecordTtls,
    pub namespace: String,
    pub rate_limits: RateLimits,
    pub llm_provider: LlmProvider,
    pub embeddings_provider: EmbeddingsProvider,
    pub vector_store: VectorStore,
    pub log_format: LogFormat,
    pub drain: DrainSettings,
    /// How long `POST /api/chat/completions` waits for its answer.
    pub sync_chat_timeout_secs: u32,
    /// How many passages retrieval returns for an answer.
    pub retrieval_top_k: u32,
    pub prompt: PromptConfig,
    /// `MAX_UPLOAD_MB` (1–4, default 4) in bytes: the largest file
    /// `POST /api/documents` accepts. Kept under Vercel's 4.5 MB request
    /// limit together with the multipart overhead.
    pub max_upload_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

impl Config {
    /// Reads every variable through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let env = match get("FLOWCHAT_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(err(
                    "FLOWCHAT_ENV",
                    format!("expected `development` or `production`, got `{other}`"),
                ));
            }
        };

        let data_dir = get("FLOWCHAT_DATA_DIR").unwrap_or_else(|| "./data".to_owned());
        let documents_path = get("DOCUMENTS_PATH")
            .unwrap_or_else(|| format!("{}/documents", data_dir.trim_end_matches('/')));

        let session_secret = match get("SESSION_SECRET") {
            Some(raw) => Some(
                SessionSecret::new(raw.into_bytes())
                    .map_err(|SecretTooShort(n)| err("SESSION_SECRET", format!("must be at least 32 bytes long (got {n}); generate one with `openssl rand -hex 32`")))?,
            ),
            None if env == Environment::Production => {
                return Err(err(
                    "SESSION_SECRET",
                    "is required when FLOWCHAT_ENV=production (at least 32 bytes; `openssl rand -hex 32`)",
                ));
            }
            None => None,
        };

        let admin_token = match get("ADMIN_TOKEN") {
            Some(raw) if raw.chars().count() < ADMIN_TOKEN_MIN_CHARS => {
                return Err(err(
                    "ADMIN_TOKEN",
                    format!("must be at least {ADMIN_TOKEN_MIN_CHARS} characters long"),
                ));
            }
            Some(raw) => Some(AdminToken(raw)),
            None => None,
        };

        let cors_origins = match get("CORS_ORIGINS").as_deref() {
            None => CorsOrigins::None,
            Some("*") => CorsOrigins::Any,
            Some(list) => {
                let origins: Vec<String> = list
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect();
                if let Some(bad) = origins
                    .iter()
                    .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
                {
                    return Err(err(
                        "CORS_ORIGINS",
                        format!(
                            "`{bad}` is not an origin; use a comma-separated list like https://chat.example.com, or *"
                        ),
                    ));
                }
                CorsOrigins::List(origins)
            }
        };

        let store = match get("FLOWCHAT_STORE").as_deref() {
            None | Some("sqlite") => StoreKind::Sqlite,
            Some("upstash") => StoreKind::Upstash,
            Some(other) => {
                return Err(err(
                    "FLOWCHAT_STORE",
                    format!("expected `sqlite` or `upstash`, got `{other}`"),
                ));
            }
        };
        let ttls = RecordTtls {
            job_days: parse_number(&get, "JOB_TTL_DAYS", 7, 1, 3650)?,
            conversation_days: parse_number(&get, "CONVERSATION_TTL_DAYS", 90, 1, 3650)?,
            upload_hours: parse_number(&get, "UPLOAD_TTL_HOURS", 24, 1, 8760)?,
        };

        let namespace = match get("FLOWCHAT_NAMESPACE") {
            Some(ns) => {
                if !ns
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                    || ns.len() > 64
                {
                    return Err(err(
                        "FLOWCHAT_NAMESPACE",
                        "may contain only ASCII letters, digits, - and _, at most 64 characters",
                    ));
                }
                ns
            }
            None => derive_namespace(
                get("VERCEL_ENV").as_deref(),
                get("VERCEL_GIT_COMMIT_REF").as_deref(),
            ),
        };

        let rate_limits = RateLimits {
            chat_per_minute: parse_number(&get, "RATE_LIMIT_CHAT_PER_MINUTE", 10, 1, 1_000_000)?,
            ip_writes_per_minute: parse_number(&get, "RATE_LIMIT_IP_PER_MINUTE", 60, 1, 1_000_000)?,
        };

        // Flow credentials alone switch generation on: an operator who set
        // them expects the model to answer, not quotes.
        let llm_provider = match get("LLM_PROVIDER").as_deref() {
            None if get("FLOW_CLIENT_ID").is_some() && get("FLOW_CLIENT_SECRET").is_some() => {
                LlmProvider::Flow
            }
            None | Some("extractive") => LlmProvider::Extractive,
            Some("flow") => LlmProvider::Flow,
            Some("openai") => LlmProvider::OpenAi,
            Some(other) => {
                return Err(err(
                    "LLM_PROVIDER",
                    format!("expected `flow`, `openai` or `extractive`, got `{other}`"),
                ));
            }
        };

        // Vectors come from the language model's provider unless told
        // otherwise: one set of credentials gives both.
        let embeddings_provider = match get("EMBEDDINGS_PROVIDER").as_deref() {
            None => match llm_provider {
                LlmProvider::Flow => EmbeddingsProvider::Flow,
                LlmProvider::OpenAi => EmbeddingsProvider::OpenAi,
                LlmProvider::Extractive => EmbeddingsProvider::None,
            },
            Some("none") => EmbeddingsProvider::None,
            Some("flow") => EmbeddingsProvider::Flow,
            Some("openai") => EmbeddingsProvider::OpenAi,
            Some(other) => {
                return Err(err(
                    "EMBEDDINGS_PROVIDER",
                    format!("expected `flow`, `openai` or `none`, got `{other}`"),
                ));
            }
        };
        let vector_store = match get("VECTOR_STORE").as_deref() {
            None | Some("sqlite") => VectorStore::Sqlite,
            Some("chroma") => VectorStore::Chroma,
            Some(other) => {
                return Err(err(
                    "VECTOR_STORE",
                    format!("expected `sqlite` or `chroma`, got `{other}`"),
                ));
            }
        };
        if vector_store == VectorStore::Chroma && embeddings_provider == EmbeddingsProvider::None {
            return Err(err(
                "EMBEDDINGS_PROVIDER",
                "VECTOR_STORE=chroma stores vectors only: set EMBEDDINGS_PROVIDER to `flow` or `openai` (with that provider's credentials)",
            ));
        }

        let log_format = match get("LOG_FORMAT").as_deref() {
            None if env == Environment::Production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected `json` or `pretty`, got `{other}`"),
                ));
            }
        };

        let drain = DrainSettings {
            max_attempts: parse_number(&get, "DRAIN_MAX_ATTEMPTS", 3, 1, 100)?,
            lease_secs: parse_number(&get, "DRAIN_LEASE_SECONDS", 60, 1, 3600)?,
            retry_base_secs: parse_number(&get, "DRAIN_RETRY_BASE_SECONDS", 2, 0, 3600)?,
            retry_max_secs: parse_number(&get, "DRAIN_RETRY_MAX_SECONDS", 300, 0, 86_400)?,
            partial_flush_ms: parse_number(&get, "PARTIAL_FLUSH_MS", 250, 10, 60_000)?,
            shutdown_grace_secs: parse_number(&get, "DRAIN_SHUTDOWN_GRACE_SECONDS", 20, 0, 3600)?,
        };

        Ok(Config {
            env,
            data_dir,
            documents_path,
            session_secret,
            admin_token,
            cors_origins,
            store,
            ttls,
            namespace,
            rate_limits,
            llm_provider,
            embeddings_provider,
            vector_store,
            log_format,
            drain,
            sync_chat_timeout_secs: parse_number(&get, "CHAT_SYNC_TIMEOUT_SECONDS", 25, 1, 300)?,
            retrieval_top_k: parse_number(&get, "RETRIEVAL_TOP_K", 5, 1, 50)?,
            prompt: PromptConfig {
                // Multi-line prompts keep their inner whitespace; only the
                // ends are trimmed (as for every variable).
                system_prompt: get("SYSTEM_PROMPT"),
                system_prompt_file: get("SYSTEM_PROMPT_FILE"),
                history_turns: parse_number(&get, "HISTORY_TURNS", 6, 0, 100)?,
            },
            max_upload_bytes: parse_number(&get, "MAX_UPLOAD_MB", 4, 1, 4)? as usize * 1024 * 1024,
        })
    }
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

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(err(
                variable,
                format!("expected a whole number from {min} to {max}, got `{raw}`"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
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
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.session_secret.is_none());
        assert_eq!(c.max_upload_bytes, 4 * 1024 * 1024);
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
    fn production_requires_a_long_secret() {
        let e = config(&[("FLOWCHAT_ENV", "production")]).unwrap_err();
        assert_eq!(e.variable, "SESSION_SECRET");
        let e = config(&[("FLOWCHAT_ENV", "production"), ("SESSION_SECRET", "short")]).unwrap_err();
        assert_eq!(e.variable, "SESSION_SECRET");
        assert!(!e.to_string().contains("short"), "never echo the secret");
        let ok = config(&[
            ("FLOWCHAT_ENV", "production"),
            ("SESSION_SECRET", &"x".repeat(32)),
        ])
        .unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
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
