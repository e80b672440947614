//! Everything a drain is assembled from: the application's settings plus
//! the language models and the Chroma server the application settings
//! choose (`LLM_PROVIDER`, `EMBEDDINGS_PROVIDER`, `VECTOR_STORE`).

use flowchat_domain::ConfigError;
use flowchat_domain::config::{
    BackupSettings, Config, EmbeddingsProvider, LlmProvider, StoreKind, VectorStore,
};
use flowchat_knowledge::ChromaSettings;
use flowchat_knowledge::extract::ExtractSettings;
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
    /// How documents are read (`EXTRACT_*`): hand to
    /// `flowchat_knowledge::extract::configure` at start.
    pub extract: ExtractSettings,
    /// The namespaces whose jobs this drain answers. `app.namespace` is the
    /// first of them (or, serving all, the one commands like `stats` read).
    pub namespaces: DrainNamespaces,
}

impl DrainConfig {
    /// The same settings for one namespace of the several this drain
    /// serves: its store keys, its index file or Chroma collection.
    pub fn for_namespace(&self, namespace: &str) -> DrainConfig {
        let mut config = self.clone();
        config.app.namespace = namespace.to_owned();
        if let Some(chroma) = &mut config.chroma {
            chroma.namespace = namespace.to_owned();
        }
        config.namespaces = DrainNamespaces::Only(vec![namespace.to_owned()]);
        config
    }
}

/// Which namespaces a drain serves (`FLOWCHAT_NAMESPACE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainNamespaces {
    /// Every namespace with queued work, found in the Upstash store's
    /// registry: production and each preview branch alike. What a drain on
    /// the Upstash store serves when `FLOWCHAT_NAMESPACE` is unset (outside
    /// Vercel) or `*`.
    All,
    /// These, in order: one name, or a comma-separated list.
    Only(Vec<String>),
}

impl DrainNamespaces {
    /// The one namespace served, when it is one.
    pub fn single(&self) -> Option<&str> {
        match self {
            DrainNamespaces::Only(names) if names.len() == 1 => Some(&names[0]),
            _ => None,
        }
    }
}

/// Reads the application's settings and, as they choose, the store's, the
/// language models' and Chroma's.
pub fn drain_config(lookup: impl Fn(&str) -> Option<String>) -> Result<DrainConfig, ConfigError> {
    let listed = listed_namespaces(&Env::new(&lookup))?;
    // The application's settings read the first listed namespace (none for
    // `*`), so a list never reaches the single-namespace check.
    let first = listed.as_ref().map(|names| names.first().cloned());
    let lookup = |name: &str| match (name, &first) {
        ("FLOWCHAT_NAMESPACE", Some(first)) => first.clone(),
        _ => lookup(name),
    };
    let app = crate::app_config(lookup)?;
    let namespaces = served_namespaces(listed, &app, &Env::new(&lookup))?;
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
        |kind: Option<ProviderKind>| kind.map(|k| crate::llm_settings(k, lookup)).transpose();
    let chroma = match app.vector_store {
        VectorStore::Sqlite => None,
        VectorStore::Chroma => Some(crate::chroma_settings(&app.namespace, lookup)?.ok_or_else(
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
        extract: crate::extract_settings(lookup)?,
        backups,
        upstash: crate::upstash_config(lookup)?,
        chat: read(chat)?,
        embeddings: read(embeddings)?,
        chroma,
        namespaces,
        app,
    })
}

/// `FLOWCHAT_NAMESPACE` when it is `*` (`Some(vec![])`) or a list
/// (`Some(names)`); `None` when it is unset or one name, which the
/// application's settings read.
fn listed_namespaces<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(raw) = env.get("FLOWCHAT_NAMESPACE") else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(Some(Vec::new()));
    }
    if !raw.contains(',') {
        return Ok(None);
    }
    let mut names = Vec::new();
    for name in raw.split(',').map(str::trim) {
        let name = crate::app::checked_namespace(name.to_owned())?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(Some(names))
}

fn served_namespaces<F: Fn(&str) -> Option<String>>(
    listed: Option<Vec<String>>,
    app: &Config,
    env: &Env<F>,
) -> Result<DrainNamespaces, ConfigError> {
    let several = match listed {
        Some(names) if names.is_empty() => DrainNamespaces::All,
        Some(names) => DrainNamespaces::Only(names),
        // Unset outside Vercel: every namespace, where there can be several.
        None if env.get("FLOWCHAT_NAMESPACE").is_none()
            && env.get("VERCEL_ENV").is_none()
            && app.store == StoreKind::Upstash =>
        {
            DrainNamespaces::All
        }
        None => return Ok(DrainNamespaces::Only(vec![app.namespace.clone()])),
    };
    if app.store != StoreKind::Upstash {
        return Err(error(
            "FLOWCHAT_NAMESPACE",
            "several namespaces (a list or *) need the shared store, FLOWCHAT_STORE=upstash; \
             the embedded store holds one namespace",
        ));
    }
    Ok(several)
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

    const UPSTASH: [(&str, &str); 3] = [
        ("FLOWCHAT_STORE", "upstash"),
        ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:8079"),
        ("UPSTASH_REDIS_REST_TOKEN", "a-token-of-some-length"),
    ];

    fn served(extra: &[(&'static str, &'static str)]) -> Result<DrainConfig, ConfigError> {
        let vars: Vec<_> = UPSTASH.iter().chain(extra).copied().collect();
        drain_config(map(&vars))
    }

    #[test]
    fn an_upstash_drain_serves_every_namespace_unless_told_otherwise() {
        let all = served(&[]).unwrap();
        assert_eq!(all.namespaces, DrainNamespaces::All);
        assert_eq!(all.app.namespace, "dev");
        assert_eq!(
            served(&[("FLOWCHAT_NAMESPACE", "*")]).unwrap().namespaces,
            DrainNamespaces::All
        );

        let one = served(&[("FLOWCHAT_NAMESPACE", "production")]).unwrap();
        assert_eq!(one.namespaces.single(), Some("production"));
        let vercel = served(&[
            ("VERCEL_ENV", "preview"),
            ("VERCEL_GIT_COMMIT_REF", "feat/x"),
        ])
        .unwrap();
        assert_eq!(vercel.namespaces.single(), Some("preview-feat-x"));

        let list = served(&[("FLOWCHAT_NAMESPACE", "production, preview-a,production")]).unwrap();
        assert_eq!(
            list.namespaces,
            DrainNamespaces::Only(vec!["production".into(), "preview-a".into()])
        );
        assert_eq!(list.app.namespace, "production");
    }

    #[test]
    fn a_bad_list_or_a_list_on_the_embedded_store_is_refused_by_name() {
        let e = served(&[("FLOWCHAT_NAMESPACE", "production,a/b")]).unwrap_err();
        assert_eq!(e.variable, "FLOWCHAT_NAMESPACE");
        let e = served(&[("FLOWCHAT_NAMESPACE", "production,,x")]).unwrap_err();
        assert_eq!(e.variable, "FLOWCHAT_NAMESPACE");
        let e = drain_config(map(&[("FLOWCHAT_NAMESPACE", "a,b")])).unwrap_err();
        assert_eq!(e.variable, "FLOWCHAT_NAMESPACE");
        assert!(e.to_string().contains("FLOWCHAT_STORE=upstash"), "{e}");
        // The embedded store serves its one namespace.
        let c = drain_config(map(&[])).unwrap();
        assert_eq!(c.namespaces.single(), Some("dev"));
    }
}
