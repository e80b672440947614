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

/// Makes every file and folder this process creates private to its user
/// (umask 077). The store and the knowledge index hold people's chats and
/// private documents, and SQLite creates its `-wal` and `-shm` files with the
/// database's mode, so one process-wide mask covers them, backups and the
/// session secret alike, however a file is created. Call it first in `main`
/// of every native binary that writes the data directory.
pub fn restrict_new_file_permissions() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates the data directory if needed (owner-only: mode 0700 on Unix).
pub fn ensure_data_dir(config: &Config) -> Result<std::path::PathBuf, StartupError> {
    let path = std::path::PathBuf::from(&config.data_dir);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&path)
        .map_err(|source| StartupError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    Ok(path)
}
