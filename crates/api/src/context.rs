use std::sync::Arc;

use flowchat_domain::config::Config;
use flowchat_domain::token::SessionSecret;
use flowchat_domain::{ConfigError, Timestamp};
use flowchat_store::Store;

/// What the API needs from the runtime it runs on. Native code uses the
/// system clock, the OS RNG and tokio timers; a Worker uses its own.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Platform: Send + Sync {
    fn now(&self) -> Timestamp;
    /// 16 bytes from a cryptographically secure source.
    fn random_bytes(&self) -> [u8; 16];
    async fn sleep_ms(&self, ms: u64);
}

/// The client's address as the runtime adapter determined it (the socket
/// peer locally, the platform's forwarding header when deployed). Adapters
/// put it in the request's extensions; handlers never trust client headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

/// Everything a handler may use, built once per process.
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub platform: Arc<dyn Platform>,
    pub(crate) secret: SessionSecret,
}

impl AppContext {
    /// Fails if the configuration has no session secret; the runtime must
    /// have resolved one (generated in development) before building the API.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        platform: Arc<dyn Platform>,
    ) -> Result<Self, ConfigError> {
        let secret = config.session_secret.clone().ok_or_else(|| ConfigError {
            variable: "SESSION_SECRET",
            message: "is not set".to_owned(),
        })?;
        Ok(Self {
            config: Arc::new(config),
            store,
            platform,
            secret,
        })
    }
}
