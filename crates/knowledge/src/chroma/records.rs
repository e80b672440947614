//! Records: one per chunk, with the metadata that makes a passage of it
//! (see "Layout" in the module documentation of `chroma`), read page by
//! page and checked before they are trusted.

use flowchat_domain::DocumentId;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Inner;
use crate::chunking::Chunk;
use crate::error::KnowledgeError;
use crate::index::{ChunkEmbeddings, IndexedDocument};

/// Records per page when reading metadata (`get` with `limit`/`offset`).
pub(super) const READ_PAGE: usize = 500;

/// A record's metadata as Chroma sends it.
pub(super) type Metadata = Map<String, Value>;

/// The answer to `/get`: parallel arrays, present as `include` asked.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GetAnswer {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    metadatas: Option<Vec<Option<Metadata>>>,
}

/// One record as read back.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) document: Option<String>,
    pub(super) metadata: Option<Metadata>,
}

impl GetAnswer {
    fn into_rows(self) -> Vec<Row> {
        let mut documents = self.documents.unwrap_or_default().into_iter();
        let mut metadatas = self.metadatas.unwrap_or_default().into_iter();
        self.ids
            .into_iter()
            .map(|id| Row {
                id,
                document: documents.next().flatten(),
                metadata: metadatas.next().flatten(),
            })
            .collect()
    }
}

/// A record's metadata, read back.
#[derive(Debug)]
pub(super) struct ChunkMeta {
    pub(super) document_id: String,
    pub(super) name: String,
    pub(super) owner: String,
    pub(super) size_bytes: u64,
    pub(super) position: u32,
    pub(super) page: Option<u32>,
    pub(super) heading: Option<String>,
    pub(super) token_count: u32,
}

impl ChunkMeta {
    pub(super) fn parse(row: &Row) -> Result<Self, String> {
        let meta = row
            .metadata
            .as_ref()
            .ok_or_else(|| format!("record {} has no metadata", row.id))?;
        let string = |key: &str| -> Result<String, String> {
            meta.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("record {} has no text {key:?} in its metadata", row.id))
        };
        let number = |key: &str| -> Result<u64, String> {
            meta.get(key).and_then(Value::as_u64).ok_or_else(|| {
                format!(
                    "record {} has no whole number {key:?} in its metadata",
                    row.id
                )
            })
        };
        let small = |key: &str| -> Result<u32, String> {
            u32::try_from(number(key)?)
                .map_err(|_| format!("record {} has an out-of-range {key:?}", row.id))
        };
        Ok(ChunkMeta {
            document_id: string("document_id")?,
            name: string("name")?,
            owner: string("owner")?,
            size_bytes: number("size_bytes")?,
            position: small("position")?,
            page: match meta.get("page") {
                None | Some(Value::Null) => None,
                Some(_) => Some(small("page")?),
            },
            heading: meta
                .get("heading")
                .and_then(Value::as_str)
                .map(str::to_owned),
            token_count: small("token_count")?,
        })
    }
}

pub(super) fn record_id(id: &DocumentId, position: u32) -> String {
    format!("{}:{position}", id.as_str())
}

pub(super) fn record_metadata(doc: &IndexedDocument, chunk: &Chunk, model: &str) -> Value {
    let mut meta = Map::new();
    meta.insert("document_id".into(), json!(doc.id.as_str()));
    meta.insert("name".into(), json!(doc.name));
    meta.insert("owner".into(), json!(doc.owner.as_key()));
    // Chroma integers are signed 64-bit.
    meta.insert(
        "size_bytes".into(),
        json!(i64::try_from(doc.size_bytes).unwrap_or(i64::MAX)),
    );
    meta.insert("position".into(), json!(chunk.position));
    if let Some(page) = chunk.page {
        meta.insert("page".into(), json!(page));
    }
    if let Some(heading) = &chunk.heading {
        meta.insert("heading".into(), json!(heading));
    }
    meta.insert("token_count".into(), json!(chunk.token_count));
    meta.insert("model".into(), json!(model));
    Value::Object(meta)
}

/// Checks the vectors can be stored: one per chunk, all of one non-zero
/// dimension, finite. Returns the dimension (0 when there are none).
pub(super) fn check_vectors(
    what: &str,
    embeddings: &ChunkEmbeddings,
    chunks: usize,
) -> Result<usize, KnowledgeError> {
    if embeddings.model.is_empty() {
        return Err(KnowledgeError::Index(format!(
            "{what}: the embedding model has no name"
        )));
    }
    if embeddings.vectors.len() != chunks {
        return Err(KnowledgeError::Index(format!(
            "{what}: {} vectors for {chunks} chunks",
            embeddings.vectors.len()
        )));
    }
    let dims = embeddings.vectors.first().map_or(0, Vec::len);
    if chunks > 0 && dims == 0 {
        return Err(KnowledgeError::Index(format!("{what}: empty vectors")));
    }
    for (i, v) in embeddings.vectors.iter().enumerate() {
        if v.len() != dims {
            return Err(KnowledgeError::Index(format!(
                "{what}: vector {i} has {} dimensions, the first has {dims}",
                v.len()
            )));
        }
        if !v.iter().all(|x| x.is_finite()) {
            return Err(KnowledgeError::Index(format!(
                "{what}: vector {i} holds a value that is not a finite number"
            )));
        }
    }
    Ok(dims)
}

impl Inner {
    /// One page of records matching `filter`.
    pub(super) async fn get_page(
        &self,
        filter: &Value,
        include: &[&str],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Row>, KnowledgeError> {
        let answer: GetAnswer = self
            .call(
                Method::POST,
                &self.records_path("get"),
                Some(json!({
                    "where": filter,
                    "include": include,
                    "limit": limit,
                    "offset": offset,
                })),
            )
            .await?;
        Ok(answer.into_rows())
    }

    /// Every record matching `filter`, page by page.
    pub(super) async fn get_all(
        &self,
        filter: &Value,
        include: &[&str],
    ) -> Result<Vec<Row>, KnowledgeError> {
        let mut rows = Vec::new();
        loop {
            let page = self
                .get_page(filter, include, READ_PAGE, rows.len())
                .await?;
            let done = page.len() < READ_PAGE;
            rows.extend(page);
            if done {
                return Ok(rows);
            }
        }
    }

    pub(super) async fn delete_where(&self, filter: Value) -> Result<(), KnowledgeError> {
        let _: Value = self
            .call(
                Method::POST,
                &self.records_path("delete"),
                Some(json!({"where": filter})),
            )
            .await?;
        Ok(())
    }

    /// The parsed records of one document, by position.
    pub(super) async fn document_records(
        &self,
        id: &DocumentId,
        include: &[&str],
    ) -> Result<Vec<(Row, ChunkMeta)>, KnowledgeError> {
        let rows = self
            .get_all(&json!({"document_id": id.as_str()}), include)
            .await?;
        let mut records = rows
            .into_iter()
            .map(|row| match ChunkMeta::parse(&row) {
                Ok(meta) => Ok((row, meta)),
                Err(problem) => Err(self.unreadable(&problem)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|(_, meta)| meta.position);
        Ok(records)
    }

    pub(super) fn unreadable(&self, problem: &str) -> KnowledgeError {
        KnowledgeError::Index(format!(
            "the Chroma collection {} holds a record FlowChat cannot read: {problem}",
            self.collection_name
        ))
    }
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::DocumentOwner;

    use super::*;

    #[test]
    fn records_without_page_or_heading_leave_them_out() {
        let doc = IndexedDocument {
            id: DocumentId::from_trusted("d1"),
            name: "a.md".into(),
            owner: DocumentOwner::Shared,
            size_bytes: 10,
            chunks: Vec::new(),
            embeddings: None,
        };
        let chunk = Chunk {
            position: 2,
            text: "t".into(),
            heading: None,
            page: None,
            token_count: 1,
        };
        let meta = record_metadata(&doc, &chunk, "m");
        assert!(meta.get("page").is_none() && meta.get("heading").is_none());
        let row = Row {
            id: record_id(&doc.id, 2),
            document: Some("t".into()),
            metadata: meta.as_object().cloned(),
        };
        let parsed = ChunkMeta::parse(&row).unwrap();
        assert_eq!(
            (parsed.position, parsed.page, parsed.heading),
            (2, None, None)
        );
        assert_eq!(row.id, "d1:2");
    }
}
