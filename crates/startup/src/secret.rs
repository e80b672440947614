//! The key that signs session tokens. Only the API needs it: the drain and
//! the admin commands start without one.

use std::path::Path;

use flowchat_domain::ConfigError;
use flowchat_domain::config::{Config, Environment};
use flowchat_domain::token::SessionSecret;

use crate::{StartupError, ensure_data_dir, random_bytes};

const SECRET_FILE: &str = "session_secret";

/// `SESSION_SECRET` when set. Otherwise production refuses to start, and
/// development generates a secret once and keeps it in the data directory
/// (mode 0600) so sessions survive restarts.
pub fn session_secret(config: &Config) -> Result<SessionSecret, StartupError> {
    if let Some(secret) = &config.session_secret {
        return Ok(secret.clone());
    }
    if config.env == Environment::Production {
        return Err(ConfigError {
            variable: "SESSION_SECRET",
            message: "is required when FLOWCHAT_ENV=production (at least 32 bytes; `openssl rand -hex 32`)".to_owned(),
        }
        .into());
    }
    let dir = ensure_data_dir(config)?;
    let path = dir.join(SECRET_FILE);
    let io_error = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => bytes,
        _ => {
            let fresh = format!(
                "{}{}",
                hex::encode(random_bytes()),
                hex::encode(random_bytes())
            );
            write_private(&path, fresh.as_bytes()).map_err(io_error)?;
            tracing::info!(path = %path.display(), "generated a development session secret");
            fresh.into_bytes()
        }
    };
    SessionSecret::new(bytes).map_err(|e| {
        ConfigError {
            variable: "SESSION_SECRET",
            message: e.to_string(),
        }
        .into()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use flowchat_domain::Timestamp;

    fn config(vars: &[(&str, String)]) -> Config {
        let vars = vars.to_vec();
        flowchat_config::app_config(move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let make = || config(&[("FLOWCHAT_DATA_DIR", data_dir.clone())]);
        let first = session_secret(&make()).unwrap();
        let second = session_secret(&make()).unwrap();
        let sign = |secret: &SessionSecret| {
            let claims = flowchat_domain::SessionClaims::new(
                flowchat_domain::SessionId::from_random([3; 16]),
                &flowchat_domain::Nickname::parse("x").unwrap(),
                Timestamp::from_millis(0),
            );
            flowchat_domain::token::issue(secret, &claims)
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

    #[test]
    fn production_requires_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let production = config(&[
            ("FLOWCHAT_ENV", "production".to_owned()),
            ("FLOWCHAT_DATA_DIR", data_dir.clone()),
        ]);
        let error = session_secret(&production).unwrap_err();
        assert!(error.to_string().contains("SESSION_SECRET"), "{error}");
        assert!(error.is_configuration());
        assert!(!dir.path().join(SECRET_FILE).exists(), "nothing generated");
        let set = config(&[
            ("FLOWCHAT_ENV", "production".to_owned()),
            ("SESSION_SECRET", "y".repeat(32)),
        ]);
        assert!(session_secret(&set).is_ok());
    }
}
