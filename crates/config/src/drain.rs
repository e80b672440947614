//! Everything a drain is assembled from: the application's settings plus
//! the language models and the Chroma server the application settings
//! choose (`LLM_PROVIDER`, `EMBEDDINGS_PROVIDER`, `VECTOR_STORE`).

use flowchat_domain::ConfigError;
use flowchat_domain::config::{Config, EmbeddingsProvider, LlmProvider, VectorStore};
use flowchat_knowledge::ChromaSettings;
use flowchat_llm::{LlmSettings, ProviderKind};
use flowchat_upstash::UpstashConfig;

use crate::env::error;

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
    Ok(DrainConfig {
        upstash: crate::upstash_config(&lookup)?,
        chat: read(chat)?,
        embeddings: read(embeddings)?,
        chroma,
        app,
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
}
