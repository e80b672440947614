use std::sync::Arc;

use flowchat_domain::config::Config;
use flowchat_domain::token::SessionSecret;
use flowchat_store::Store;

pub use flowchat_domain::Platform;

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
    /// `secret` signs session tokens: the runtime settles it at start-up
    /// (required in production, generated in development).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        platform: Arc<dyn Platform>,
        secret: SessionSecret,
    ) -> Self {
        Self {
            config: Arc::new(config),
            store,
            platform,
            secret,
        }
    }
}
