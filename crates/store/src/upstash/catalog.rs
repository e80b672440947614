//! The document catalog: one hash of record JSON by id, one of owners by
//! id, and a set of ids per owner.

use flowchat_domain::model::{DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus};
use flowchat_domain::{DocumentId, SessionId, Timestamp};
use flowchat_upstash::{Arg, Command, Value};
use serde::{Deserialize, Serialize};

use super::jobs::already_exists;
use super::replies::{array, count, required_text, text, unexpected};
use super::{UpstashStore, scripts, store_error};
use crate::codec::{from_json, to_json};
use crate::{NewJob, StoreError};

/// What a stored failed document's JSON holds, and no other record's JSON
/// does: serde writes [`StoredDocument`]'s fields in order, without spaces,
/// and escapes every quote inside a string, so this text can only be the
/// status field itself (a test pins it).
pub(super) const FAILED_MARKER: &str = ",\"status\":\"failed\",";

/// A catalog entry as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredDocument {
    id: DocumentId,
    name: String,
    /// `shared` or a session id.
    owner: String,
    size_bytes: u64,
    status: DocumentStatus,
    chunks: u32,
    #[serde(default)]
    error: Option<String>,
    /// Milliseconds since the epoch.
    updated_at: i64,
    /// This and `origin` come last: records written before they existed
    /// read the same, with none and from the folder (there were no uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pages: Option<u32>,
    #[serde(default)]
    origin: DocumentOrigin,
}

impl StoredDocument {
    pub(super) fn from_record(record: &DocumentRecord) -> Self {
        StoredDocument {
            id: record.id.clone(),
            name: record.name.clone(),
            owner: record.owner.as_key().to_owned(),
            size_bytes: record.size_bytes,
            status: record.status,
            chunks: record.chunks,
            error: record.error.clone(),
            updated_at: record.updated_at.as_millis(),
            pages: record.pages,
            origin: record.origin,
        }
    }

    fn into_record(self) -> DocumentRecord {
        DocumentRecord {
            id: self.id,
            name: self.name,
            owner: DocumentOwner::from_key(&self.owner),
            size_bytes: self.size_bytes,
            status: self.status,
            chunks: self.chunks,
            pages: self.pages,
            origin: self.origin,
            error: self.error,
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }

    pub(super) fn parse(raw: Value) -> Result<DocumentRecord, StoreError> {
        let raw = required_text(raw, "document")?;
        from_json::<StoredDocument>("document", &raw).map(StoredDocument::into_record)
    }
}

pub(super) async fn upsert(
    store: &UpstashStore,
    record: &DocumentRecord,
) -> Result<(), StoreError> {
    let owner = record.owner.as_key();
    store
        .eval(
            &scripts::UPSERT_DOCUMENT,
            vec![
                store.keys.documents(),
                store.keys.document_owners(),
                store.keys.owned_documents(owner),
            ],
            vec![
                Arg::from(record.id.as_str()),
                Arg::from(to_json(&StoredDocument::from_record(record))?),
                Arg::from(owner),
            ],
            true,
        )
        .await
        .map(drop)
}

pub(super) async fn remove(store: &UpstashStore, id: &DocumentId) -> Result<bool, StoreError> {
    let reply = store
        .eval(
            &scripts::REMOVE_DOCUMENT,
            vec![store.keys.documents(), store.keys.document_owners()],
            vec![Arg::from(id.as_str())],
            // Not retried: a repeat after a success would answer `false`.
            false,
        )
        .await?;
    Ok(count(reply, "remove document")? == 1)
}

/// By name, then id.
pub(super) async fn list(
    store: &UpstashStore,
    viewer: Option<&SessionId>,
) -> Result<Vec<DocumentRecord>, StoreError> {
    let shared = DocumentOwner::Shared;
    let mut owners = vec![shared.as_key()];
    if let Some(viewer) = viewer {
        owners.push(viewer.as_str());
    }
    let mut keys = vec![store.keys.documents(), store.keys.document_owners()];
    keys.extend(owners.iter().map(|o| store.keys.owned_documents(o)));
    let reply = store
        .eval(
            &scripts::LIST_DOCUMENTS,
            keys,
            owners.iter().map(|o| Arg::from(*o)).collect(),
            true,
        )
        .await?;
    let mut records = array(reply, "list documents")?
        .into_iter()
        .map(StoredDocument::parse)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    Ok(records)
}

/// The one owner's set through the list script: its records, stale
/// members dropped.
pub(super) async fn owned(
    store: &UpstashStore,
    owner: &SessionId,
) -> Result<Vec<DocumentRecord>, StoreError> {
    let reply = store
        .eval(
            &scripts::LIST_DOCUMENTS,
            vec![
                store.keys.documents(),
                store.keys.document_owners(),
                store.keys.owned_documents(owner.as_str()),
            ],
            vec![Arg::from(owner.as_str())],
            true,
        )
        .await?;
    array(reply, "owned documents")?
        .into_iter()
        .map(StoredDocument::parse)
        .collect()
}

/// One `ZRANGE … BYSCORE` of the session ends below `before`.
pub(super) async fn expired_owners(
    store: &UpstashStore,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<SessionId>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let reply = store
        .client
        .cmd_read(
            Command::new("ZRANGEBYSCORE")
                .arg(store.keys.session_ends())
                .arg("-inf")
                .arg(format!("({}", before.as_millis()))
                .arg("LIMIT")
                .arg(0)
                .arg(limit),
        )
        .await
        .map_err(store_error)?;
    array(reply, "expired document owners")?
        .into_iter()
        .map(|v| text(v, "document owner").map(|o| SessionId::from_trusted(&o)))
        .collect()
}

pub(super) async fn forget_owner(
    store: &UpstashStore,
    owner: &SessionId,
) -> Result<bool, StoreError> {
    let reply = store
        .eval(
            &scripts::FORGET_DOCUMENT_OWNER,
            vec![
                store.keys.document_owners(),
                store.keys.owned_documents(owner.as_str()),
                store.keys.session_ends(),
            ],
            vec![Arg::from(owner.as_str())],
            true,
        )
        .await?;
    Ok(count(reply, "forget document owner")? == 1)
}

pub(super) async fn get(
    store: &UpstashStore,
    id: &DocumentId,
) -> Result<Option<DocumentRecord>, StoreError> {
    let reply = store
        .client
        .cmd_read(
            Command::new("HGET")
                .arg(store.keys.documents())
                .arg(id.as_str()),
        )
        .await
        .map_err(store_error)?;
    if reply.is_nil() {
        return Ok(None);
    }
    StoredDocument::parse(reply).map(Some)
}

/// One script: the record and its owner entry go, the job is queued.
pub(super) async fn delete(
    store: &UpstashStore,
    id: &DocumentId,
    job: NewJob,
) -> Result<bool, StoreError> {
    let job = job.into_queued();
    let mut args = vec![Arg::from(id.as_str())];
    args.extend(store.job_args(&job)?);
    args.push(Arg::from(store.namespace()));
    let reply = store
        .eval(
            &scripts::DELETE_DOCUMENT,
            vec![
                store.keys.documents(),
                store.keys.document_owners(),
                store.keys.job(job.id.as_str()),
                store.keys.queue(),
                store.keys.registry(),
            ],
            args,
            // Not retried: a repeat after a success would answer `false`.
            false,
        )
        .await?;
    match text(reply, "delete document")?.as_str() {
        "ok" => Ok(true),
        "missing" => Ok(false),
        "job_exists" => Err(already_exists(&job.id)),
        other => Err(unexpected("delete document", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    /// The marker `submit_upload.lua` looks for is in a failed record's JSON
    /// and in no other record's, whatever its text fields hold.
    #[test]
    fn the_failed_marker_matches_failed_records_only() {
        let tricky = format!("x{FAILED_MARKER}y\\\"{FAILED_MARKER}");
        for status in [
            DocumentStatus::Pending,
            DocumentStatus::Indexed,
            DocumentStatus::Failed,
        ] {
            for (pages, origin) in [
                (None, DocumentOrigin::Folder),
                (Some(3), DocumentOrigin::Upload),
            ] {
                let record = DocumentRecord {
                    id: DocumentId::for_content(b"marker"),
                    name: tricky.clone(),
                    owner: DocumentOwner::Session(SessionId::from_trusted(&tricky)),
                    size_bytes: 10,
                    status,
                    chunks: 2,
                    pages,
                    origin,
                    error: Some(tricky.clone()),
                    updated_at: Timestamp::from_millis(T0),
                };
                let json = to_json(&StoredDocument::from_record(&record)).unwrap();
                assert_eq!(
                    json.matches(FAILED_MARKER).count(),
                    usize::from(status == DocumentStatus::Failed),
                    "{json}"
                );
                let back = from_json::<StoredDocument>("document", &json)
                    .unwrap()
                    .into_record();
                assert_eq!(back, record);
            }
        }
        // A record stored before `pages` and `origin` existed reads with
        // none, from the folder.
        let old = r#"{"id":"2cf24dba5fb0a30e26e83b2ac5b9e29e","name":"a","owner":"shared","size_bytes":1,"status":"indexed","chunks":1,"error":null,"updated_at":5}"#;
        let record = from_json::<StoredDocument>("document", old)
            .unwrap()
            .into_record();
        assert_eq!(record.pages, None);
        assert_eq!(record.origin, DocumentOrigin::Folder);
    }
}
