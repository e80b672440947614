//! What every native FlowChat process does at start-up, in one place: read
//! the configuration, settle the session secret, set up logging, open the
//! store, and provide the clock and RNG the portable crates ask for.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use flowchat_api::{AppContext, Platform};
use flowchat_domain::config::{Config, Environment, LogFormat, StoreKind};
use flowchat_domain::token::SessionSecret;
use flowchat_domain::{ConfigError, Timestamp};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_store::{Store, StoreError};
use flowchat_upstash::{
    ReqwestTransport, TokioSleeper, UpstashClient, UpstashConfig, UpstashError,
};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
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

/// The system clock as a [`Timestamp`].
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(millis)
}

/// 16 bytes from the operating system's CSPRNG.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is not something a process can recover from.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Clock, RNG and timers for the portable API on a tokio runtime.
pub struct NativePlatform;

#[async_trait::async_trait]
impl Platform for NativePlatform {
    fn now(&self) -> Timestamp {
        now()
    }

    fn random_bytes(&self) -> [u8; 16] {
        random_bytes()
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Reads `.env` from the working directory into the process environment
/// (variables already set win). Only the dev server and a locally run drain
/// call this; deployed functions get their environment from the platform.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

/// The process environment as a lookup function.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn config_from_env() -> Result<Config, ConfigError> {
    Config::from_lookup(env_var)
}

/// Pretty, coloured logs for people; JSON lines for log collectors.
/// `RUST_LOG` filters (default `info`). Safe to call more than once.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Creates the data directory if needed.
pub fn ensure_data_dir(config: &Config) -> Result<PathBuf, BootError> {
    let path = PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&path).map_err(|source| BootError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Ok(path)
}

const SECRET_FILE: &str = "session_secret";

/// In development without `SESSION_SECRET`, generates a secret once and keeps
/// it in the data directory (mode 0600) so sessions survive restarts. In
/// production the configuration already refused to start without one.
pub fn settle_session_secret(config: &mut Config) -> Result<(), BootError> {
    if config.session_secret.is_some() || config.env == Environment::Production {
        return Ok(());
    }
    let dir = ensure_data_dir(config)?;
    let path = dir.join(SECRET_FILE);
    let io_err = |source| BootError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let secret = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => bytes,
        _ => {
            let mut bytes = Vec::with_capacity(64);
            for _ in 0..2 {
                bytes.extend(
                    random_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into_bytes(),
                );
            }
            write_private(&path, &bytes).map_err(io_err)?;
            tracing::info!(path = %path.display(), "generated a development session secret");
            bytes
        }
    };
    config.session_secret = Some(SessionSecret::new(secret).map_err(|e| ConfigError {
        variable: "SESSION_SECRET",
        message: e.to_string(),
    })?);
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// The sqlite store file: one per namespace, so namespaces never mix.
pub fn store_path(config: &Config) -> PathBuf {
    Path::new(&config.data_dir).join(format!("flowchat-{}.db", config.namespace))
}

/// The embedded knowledge index file, one per namespace.
pub fn knowledge_path(config: &Config) -> PathBuf {
    Path::new(&config.data_dir).join(format!("knowledge-{}.db", config.namespace))
}

/// Opens the configured store. For Upstash it checks the credentials with
/// one `PING`: a wrong token stops start-up with a clear message, while an
/// unreachable server only logs a warning (it may come back; readiness and
/// every request report it meanwhile with a 503).
pub async fn open_store(
    config: &Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Store>, BootError> {
    match config.store {
        StoreKind::Sqlite => {
            ensure_data_dir(config)?;
            Ok(Arc::new(SqliteStore::open(store_path(config))?))
        }
        StoreKind::Upstash => {
            let store = upstash_store(config, lookup)?;
            match store.client().ping().await {
                Ok(_) => {}
                Err(UpstashError::Unauthorized) => return Err(BootError::UpstashUnauthorized),
                Err(e) => {
                    tracing::warn!(error = %e, "Upstash did not answer at start-up; requests get 503 until it does")
                }
            }
            Ok(Arc::new(store))
        }
    }
}

/// The Upstash store for `config`'s namespace, from the REST URL and token
/// found through `lookup`.
pub fn upstash_store(
    config: &Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<UpstashStore, BootError> {
    let upstash = UpstashConfig::from_lookup(lookup)
        .map_err(|e| BootError::Upstash(e.to_string()))?
        .ok_or_else(|| ConfigError {
            variable: "UPSTASH_REDIS_REST_URL",
            message: "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (or KV_REST_API_URL and KV_REST_API_TOKEN) are required when FLOWCHAT_STORE=upstash".to_owned(),
        })?;
    let transport = ReqwestTransport::new().map_err(|e| BootError::Upstash(e.to_string()))?;
    let client =
        UpstashClient::new(upstash, Arc::new(transport)).with_sleeper(Arc::new(TokioSleeper));
    const DAY: u64 = 24 * 60 * 60;
    let ttls = Ttls {
        job: std::time::Duration::from_secs(config.ttls.job_days as u64 * DAY),
        conversation: std::time::Duration::from_secs(config.ttls.conversation_days as u64 * DAY),
        upload: std::time::Duration::from_secs(config.ttls.upload_hours as u64 * 3600),
    };
    Ok(UpstashStore::new(client, &config.namespace, ttls))
}

/// Configuration, secret, logging and store: everything the API needs.
/// `lookup` reads the store's credentials (the process environment, usually).
pub async fn boot_api(
    config: Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<AppContext, BootError> {
    let mut config = config;
    settle_session_secret(&mut config)?;
    let store = open_store(&config, lookup).await?;
    Ok(AppContext::new(config, store, Arc::new(NativePlatform))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let make = || {
            Config::from_lookup(|k| (k == "FLOWCHAT_DATA_DIR").then(|| data_dir.clone())).unwrap()
        };
        let mut first = make();
        settle_session_secret(&mut first).unwrap();
        let mut second = make();
        settle_session_secret(&mut second).unwrap();
        let sign = |c: &Config| {
            let claims = flowchat_domain::SessionClaims::new(
                flowchat_domain::SessionId::from_random([3; 16]),
                &flowchat_domain::Nickname::parse("x").unwrap(),
                Timestamp::from_millis(0),
            );
            flowchat_domain::token::issue(c.session_secret.as_ref().unwrap(), &claims)
        };
        assert_eq!(sign(&first), sign(&second));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
