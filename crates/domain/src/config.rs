//! The application's configuration as types. `flowchat-config` reads it
//! from the environment (the one place variables are parsed); a missing or
//! malformed value stops start-up with a [`ConfigError`] naming the variable.

use std::path::{Path, PathBuf};

use crate::token::SessionSecret;

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
    /// Writes (sessions created, messages, uploads) per minute per client IP;
    /// also the readiness checks per minute per client IP.
    pub ip_writes_per_minute: u32,
    /// Followers (event streams, `?wait=` reads, synchronous completions)
    /// open at once per session, in one process.
    pub followers_per_session: u32,
    /// Followers open at once per client IP (an IPv6 /64), in one process.
    pub followers_per_ip: u32,
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

/// Scheduled backups of the embedded knowledge index, taken by the worker
/// drain (`flowchat-drain --follow`) on its own disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// `BACKUP_EVERY_HOURS` (1–720); `None` (unset) turns them off.
    pub every_hours: Option<u32>,
    /// `BACKUP_KEEP` (1–1000, default 7): archives kept, newest first; older
    /// ones are deleted after each backup.
    pub keep: u32,
    /// `BACKUP_DIR` (default `<FLOWCHAT_DATA_DIR>/backups`).
    pub dir: String,
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
    /// The configuration checks the length ([`ADMIN_TOKEN_MIN_CHARS`]).
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into())
    }

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
    /// `SESSION_SECRET` when set. The API requires one in production and
    /// generates one in development; the drain signs nothing.
    pub session_secret: Option<SessionSecret>,
    /// `None` disables the admin endpoints.
    pub admin_token: Option<AdminToken>,
    pub cors_origins: CorsOrigins,
    /// `TRUSTED_IP_HEADER` (lowercased): the request header the runtime
    /// adapter takes the client's address from. `None`: the platform's
    /// own (the socket on the dev server, `sourceIp` on Lambda,
    /// `x-real-ip` on Vercel, `cf-connecting-ip` on a Worker).
    pub trusted_ip_header: Option<String>,
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
    /// What one session may keep: `MAX_DOCUMENTS_PER_SESSION`,
    /// `MAX_BYTES_PER_SESSION`.
    pub document_quota: DocumentQuota,
}

/// How much one session may keep in the catalog, pending uploads included:
/// without it a free session could fill the store and the knowledge index
/// (and the embedding bill) one upload at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentQuota {
    pub max_documents: u32,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    /// The sqlite store file: one per namespace, so namespaces never mix.
    pub fn store_file(&self) -> PathBuf {
        Path::new(&self.data_dir).join(format!("flowchat-{}.db", self.namespace))
    }

    /// The embedded knowledge index file, one per namespace.
    pub fn knowledge_index_file(&self) -> PathBuf {
        Path::new(&self.data_dir).join(format!("knowledge-{}.db", self.namespace))
    }
}
