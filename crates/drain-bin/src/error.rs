use flowchat_domain::ConfigError;
use flowchat_drain::AssembleError;
use flowchat_startup::StartupError;

/// What went wrong, sorted by who must act: the operator's configuration
/// (exit 2) or anything else (exit 1).
pub enum CliError {
    Config(anyhow::Error),
    Other(anyhow::Error),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e.into())
    }
}

impl From<StartupError> for CliError {
    fn from(e: StartupError) -> Self {
        if e.is_configuration() {
            CliError::Config(e.into())
        } else {
            CliError::Other(e.into())
        }
    }
}

impl From<AssembleError> for CliError {
    fn from(e: AssembleError) -> Self {
        if e.is_configuration() {
            CliError::Config(e.into())
        } else {
            CliError::Other(e.into())
        }
    }
}

impl From<flowchat_store::StoreError> for CliError {
    fn from(e: flowchat_store::StoreError) -> Self {
        CliError::Other(e.into())
    }
}
