//! The collection: what the server says about it, and its current
//! embedding model (cached for [`MODEL_CACHE_TTL`], switched when vectors of
//! another model are stored).

use std::sync::PoisonError;
use std::time::Instant;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Inner, MODEL_CACHE_TTL, MODEL_KEY};
use crate::error::KnowledgeError;

/// A collection as the server describes it (only what we read).
#[derive(Debug, Deserialize)]
pub(super) struct CollectionInfo {
    pub(super) id: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    dimension: Option<i64>,
    #[serde(default)]
    configuration_json: Option<Value>,
}

impl CollectionInfo {
    pub(super) fn model(&self) -> Option<String> {
        self.metadata
            .as_ref()?
            .get(MODEL_KEY)?
            .as_str()
            .map(str::to_owned)
    }

    /// The distance the collection was created with, when the server says.
    pub(super) fn space(&self) -> Option<&str> {
        let config = self.configuration_json.as_ref()?;
        ["hnsw", "spann"]
            .iter()
            .find_map(|index| config.get(index)?.get("space")?.as_str())
    }
}

impl Inner {
    /// The collection as the server has it now (by name), checked to be the
    /// one connected to.
    pub(super) async fn collection_info(&self) -> Result<CollectionInfo, KnowledgeError> {
        let path = format!("{}/{}", self.collections_path(), self.collection_name);
        let info: CollectionInfo = self.call(Method::GET, &path, None).await?;
        if info.id != self.collection_id {
            return Err(KnowledgeError::Index(format!(
                "the Chroma collection {} was deleted and created again since FlowChat \
                 connected: restart FlowChat",
                self.collection_name
            )));
        }
        self.cache_model(info.model());
        Ok(info)
    }

    fn cache_model(&self, model: Option<String>) {
        *self.model.lock().unwrap_or_else(PoisonError::into_inner) = (model, Instant::now());
    }

    /// The current model, from the cache when fresh enough.
    pub(super) async fn current_model(&self) -> Result<Option<String>, KnowledgeError> {
        {
            let cached = self.model.lock().unwrap_or_else(PoisonError::into_inner);
            if cached.1.elapsed() < MODEL_CACHE_TTL {
                return Ok(cached.0.clone());
            }
        }
        Ok(self.collection_info().await?.model())
    }

    /// Makes `model` (making `dims`-dimensional vectors) the current model,
    /// after checking the collection can hold its vectors.
    pub(super) async fn use_model(&self, model: &str, dims: usize) -> Result<(), KnowledgeError> {
        let info = self.collection_info().await?;
        if let Some(existing) = info.dimension
            && usize::try_from(existing).ok() != Some(dims)
        {
            return Err(KnowledgeError::Index(format!(
                "the Chroma collection {} holds {existing}-dimensional vectors but the \
                 embedding model {model} makes {dims}-dimensional ones; a collection's \
                 dimension is fixed by its first vectors, so set CHROMA_COLLECTION to a new \
                 name for this model and ingest the documents again",
                self.collection_name
            )));
        }
        let current = info.model();
        if current.as_deref() == Some(model) {
            return Ok(());
        }
        if let Some(old) = &current {
            tracing::warn!(
                from = %old,
                to = %model,
                collection = %self.collection_name,
                "the Chroma index switches embedding model: documents embedded by the old model \
                 are not searched until they are embedded again"
            );
        }
        // Updating collection metadata replaces all of it: keep the rest.
        let mut metadata = info.metadata.unwrap_or_default();
        metadata.insert(MODEL_KEY.into(), json!(model));
        let path = format!("{}/{}", self.collections_path(), self.collection_id);
        let _: Value = self
            .call(Method::PUT, &path, Some(json!({"new_metadata": metadata})))
            .await?;
        self.cache_model(Some(model.to_owned()));
        Ok(())
    }
}
