use flowchat_domain::ConfigError;
use flowchat_store::StoreError;

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "Upstash refused the token (UPSTASH_REDIS_REST_TOKEN / KV_REST_API_TOKEN): check that it belongs to this database"
    )]
    UpstashUnauthorized,
    #[error("cannot set up the Upstash client: {0}")]
    Upstash(String),
}

impl StartupError {
    /// Whether an operator must change the configuration (exit code 2 in
    /// the drain binary) rather than look at a failing service.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartupError::Config(_) | StartupError::UpstashUnauthorized | StartupError::Upstash(_)
        )
    }
}
