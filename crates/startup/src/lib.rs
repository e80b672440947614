//! What every native FlowChat process does at start-up, in one place: read
//! the environment (through `flowchat-config`), set up logging, settle the
//! session secret, open the store, and provide the clock and RNG that the
//! portable crates ask for. The API functions, the dev server and the drain
//! binary all start through here; it does not know the HTTP API or the
//! drain, so each process links only what it runs.

mod error;
mod platform;
mod secret;
mod store;
mod telemetry;

pub use error::StartupError;
pub use platform::{NativePlatform, now, random_bytes};
pub use secret::session_secret;
pub use store::{open_store, upstash_store};
pub use telemetry::init_tracing;

use flowchat_domain::{Config, ConfigError};

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

/// The application's configuration from the process environment.
pub fn config_from_env() -> Result<Config, ConfigError> {
    flowchat_config::app_config(env_var)
}

/// Creates the data directory if needed.
pub fn ensure_data_dir(config: &Config) -> Result<std::path::PathBuf, StartupError> {
    let path = std::path::PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&path).map_err(|source| StartupError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Ok(path)
}
