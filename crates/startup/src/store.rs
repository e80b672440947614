use std::sync::Arc;

use flowchat_domain::config::{Config, StoreKind};
use flowchat_store::Store;
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_upstash::{
    ReqwestTransport, TokioSleeper, UpstashClient, UpstashConfig, UpstashError,
};

use crate::{StartupError, ensure_data_dir};

/// Opens the configured store. For Upstash it checks the credentials with
/// one `PING`: a wrong token stops start-up with a clear message, while an
/// unreachable server only logs a warning (it may come back; readiness and
/// every request report it meanwhile with a 503). `upstash` is where the
/// database is (`flowchat_config::upstash_config`); required with
/// `FLOWCHAT_STORE=upstash`.
pub async fn open_store(
    config: &Config,
    upstash: Option<UpstashConfig>,
) -> Result<Arc<dyn Store>, StartupError> {
    match config.store {
        StoreKind::Sqlite => {
            ensure_data_dir(config)?;
            Ok(Arc::new(SqliteStore::open(config.store_file())?))
        }
        StoreKind::Upstash => {
            let store = upstash_store(config, upstash)?;
            match store.client().ping().await {
                Ok(_) => {}
                Err(UpstashError::Unauthorized) => return Err(StartupError::UpstashUnauthorized),
                Err(e) => {
                    tracing::warn!(error = %e, "Upstash did not answer at start-up; requests get 503 until it does")
                }
            }
            Ok(Arc::new(store))
        }
    }
}

/// The Upstash store for `config`'s namespace.
pub fn upstash_store(
    config: &Config,
    upstash: Option<UpstashConfig>,
) -> Result<UpstashStore, StartupError> {
    let upstash =
        upstash.ok_or_else(|| flowchat_config::upstash_required(" when FLOWCHAT_STORE=upstash"))?;
    let transport = ReqwestTransport::new().map_err(|e| StartupError::Upstash(e.to_string()))?;
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
