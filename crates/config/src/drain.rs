//! Everything a drain is assembled from: the application's settings plus
//! the language models and the Chroma server the application settings
//! choose (`LLM_PROVIDER`, `EMBEDDINGS_PROVIDER`, `VECTOR_STORE`).

use flowchat_domain::ConfigError;
use flowchat_domain::config::{
    BackupSettings, Config, EmbeddingsProvider, LlmProvider, VectorStore,
};
use flowchat_knowledge::ChromaSettings;
use flowchat_llm::{LlmSettings, ProviderKind};
use flowchat_upstash::UpstashConfig;

use crate::env::{Env, error};

#[derive(Debug, Clone)]
pub struct DrainConfig {
    pub app: Config,
    /// The Upstash database, when set (required with `FLOWCHAT_STORE=upstash`).
    pub upstash: Option<UpstashConfig>,
    /// The model that writes answers; `None` quotes passages (extractive).
    pub chat: Option<LlmSettings>,
    /// The model that embeds text; `None` retrieves by words only.
    pub embeddings: Option<LlmSettings>,
    /// With `VECTOR_STORE=chroma`, the server; else the embedded index file.
    pub chroma: Option<ChromaSettings>,
    /// Scheduled backups of the embedded index (`flowchat-drain --follow`).
    pub backups: BackupSettings,
}

/// Reads the application's settings and, as they choose, the store's, the
/// language models' and Chroma's.
pub fn drain_config(lookup: impl Fn(&str) -> Option<String>) -> Result<DrainConfig, ConfigError> {
    let app = crate::app_config(&lookup)?;
    let chat = match app.llm_provider {
        LlmProvider::Extractive => None,
        LlmProvider::Flow => Some(ProviderKind::Flow),
        LlmProvider::OpenAi => Some(ProviderKind::OpenAi),
    };
    let embeddings = match app.embeddings_provider {
        EmbeddingsProvider::None => None,
        EmbeddingsProvider::Flow => Some(ProviderKind::Flow),
        EmbeddingsProvider::OpenAi => Some(ProviderKind::OpenAi),
    };
    let read =
        |kind: Option<ProviderKind>| kind.map(|k| crate::llm_settings(k, &lookup)).transpose();
    let chroma = match app.vector_store {
        VectorStore::Sqlite => None,
        VectorStore::Chroma => Some(crate::chroma_settings(&app.namespace, &lookup)?.ok_or_else(
            || {
                error(
                    "CHROMA_URL",
                    "VECTOR_STORE=chroma needs the Chroma server's URL",
                )
            },
        )?),
    };
    let backups = backup_settings(&Env::new(&lookup), &app)?;
    Ok(DrainConfig {
        backups,
        upstash: crate::upstash_config(&lookup)?,
        chat: read(chat)?,
        embeddings: read(embeddings)?,
        chroma,
        app,
    })
}

/// `BACKUP_EVERY_HOURS`, `BACKUP_KEEP`, `BACKUP_DIR`: read (and checked)
/// whether or not backups are on, so a mistake shows before it matters.
fn backup_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    app: &Config,
) -> Result<BackupSettings, ConfigError> {
    let every_hours = match env.get("BACKUP_EVERY_HOURS") {
        None => None,
        Some(_) => Some(env.number("BACKUP_EVERY_HOURS", 24, 1..=720)?),
    };
    Ok(BackupSettings {
        every_hours,
        keep: env.number("BACKUP_KEEP", 7, 1..=1000)?,
        dir: env
            .get("BACKUP_DIR")
            .unwrap_or_else(|| format!("{}/backups", app.data_dir.trim_end_matches('/'))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map;

    #[test]
    fn extractive_by_default_with_the_embedded_index() {
        let c = drain_config(map(&[])).unwrap();
        assert!(c.chat.is_none() && c.embeddings.is_none() && c.chroma.is_none());
    }

    #[test]
    fn the_providers_chosen_are_read_and_named_when_incomplete() {
        let flow = [
            ("FLOW_CLIENT_ID", "id"),
            ("FLOW_CLIENT_SECRET", "a-secret-value"),
            ("FLOW_TENANT", "tenant"),
        ];
        let c = drain_config(map(&flow)).unwrap();
        assert_eq!(c.chat.unwrap().provider_name(), "flow");
        assert_eq!(c.embeddings.unwrap().provider_name(), "flow");
        let e = drain_config(map(&flow[..2])).unwrap_err();
        assert_eq!(e.variable, "FLOW_TENANT");
        assert!(!e.to_string().contains("a-secret-value"));
        let e = drain_config(map(&[
            flow[0],
            flow[1],
            flow[2],
            ("LLM_TEMPERATURE", "hot"),
        ]))
        .unwrap_err();
        assert_eq!(e.variable, "LLM_TEMPERATURE");
    }

    #[test]
    fn chroma_needs_its_url() {
        let vars = [
            ("VECTOR_STORE", "chroma"),
            ("EMBEDDINGS_PROVIDER", "openai"),
        ];
        assert_eq!(drain_config(map(&vars)).unwrap_err().variable, "CHROMA_URL");
        let with_url = [vars[0], vars[1], ("CHROMA_URL", "http://127.0.0.1:8000")];
        let c = drain_config(map(&with_url)).unwrap();
        assert_eq!(c.chroma.unwrap().collection_name(), "flowchat-dev");
    }

    #[test]
    fn scheduled_backups_are_off_unless_an_interval_is_set() {
        let c = drain_config(map(&[("FLOWCHAT_DATA_DIR", "/var/data/")])).unwrap();
        assert_eq!(
            c.backups,
            BackupSettings {
                every_hours: None,
                keep: 7,
                dir: "/var/data/backups".into()
            }
        );
        let c = drain_config(map(&[
            ("BACKUP_EVERY_HOURS", "6"),
            ("BACKUP_KEEP", "30"),
            ("BACKUP_DIR", "/mnt/backups"),
        ]))
        .unwrap();
        assert_eq!(c.backups.every_hours, Some(6));
        assert_eq!(c.backups.keep, 30);
        assert_eq!(c.backups.dir, "/mnt/backups");
        for (name, bad) in [
            ("BACKUP_EVERY_HOURS", "0"),
            ("BACKUP_EVERY_HOURS", "721"),
            ("BACKUP_EVERY_HOURS", "0.5"),
            ("BACKUP_KEEP", "0"),
            ("BACKUP_KEEP", "1001"),
        ] {
            let e = drain_config(map(&[(name, bad)])).unwrap_err();
            assert_eq!(e.variable, name, "{bad}");
        }
    }
}
