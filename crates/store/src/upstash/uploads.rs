//! Upload bytes, kept in parts (`SET ... PX`, base64) until the drain
//! ingests them, and the submission of an upload (one script: its pending
//! catalog record and ingest job).

use flowchat_domain::{DocumentId, Timestamp};
use flowchat_upstash::{Arg, Command, Value};

use super::catalog::{FAILED_MARKER, StoredDocument};
use super::jobs::already_exists;
use super::rate_limits::rate_outcome;
use super::replies::{array, count, tagged, unexpected};
use super::{UpstashStore, scripts, store_error};
use crate::codec::{base64, check_upload_part, corrupt, to_json};
use crate::rate;
use crate::{QuotaExceeded, StoreError, UploadOutcome, UploadSubmission};

impl UpstashStore {
    fn upload_keys(&self, id: &DocumentId, parts: u32) -> Vec<String> {
        (0..parts)
            .map(|index| self.keys.upload(id.as_str(), index))
            .collect()
    }
}

/// `SET ... PX`, base64-encoded; the TTL runs from this write, by
/// Redis's clock (`now` is not needed).
pub(super) async fn put_part(
    store: &UpstashStore,
    id: &DocumentId,
    index: u32,
    bytes: &[u8],
    _now: Timestamp,
) -> Result<(), StoreError> {
    check_upload_part(index, bytes)?;
    store
        .client
        .cmd_read(
            Command::new("SET")
                .arg(store.keys.upload(id.as_str(), index))
                .arg(base64::encode(bytes))
                .arg("PX")
                .arg(store.upload_ttl()),
        )
        .await
        .map_err(store_error)
        .map(drop)
}

/// One `MGET` of every part.
pub(super) async fn get(
    store: &UpstashStore,
    id: &DocumentId,
    parts: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    if parts == 0 {
        return Ok(Some(Vec::new()));
    }
    let reply = store
        .client
        .cmd_read(Command::new("MGET").args(store.upload_keys(id, parts)))
        .await
        .map_err(store_error)?;
    let values = array(reply, "MGET")?;
    if values.len() != store.upload_keys(id, parts).len() {
        return Err(unexpected("MGET", format!("{} values", values.len())));
    }
    let mut joined = Vec::new();
    for value in values {
        match value {
            Value::Nil => return Ok(None),
            Value::Bytes(text) => joined
                .extend(base64::decode(&text).ok_or_else(|| corrupt("upload part", "not base64"))?),
            other => return Err(corrupt("upload part", format!("unexpected {other:?}"))),
        }
    }
    Ok(Some(joined))
}

pub(super) async fn delete(
    store: &UpstashStore,
    id: &DocumentId,
    parts: u32,
) -> Result<(), StoreError> {
    if parts == 0 {
        return Ok(());
    }
    store
        .client
        .cmd_read(Command::new("DEL").args(store.upload_keys(id, parts)))
        .await
        .map_err(store_error)
        .map(drop)
}

/// One script, one request: duplicate check → the session's quota (its
/// records read in the script) → rate checks (the same Lua as
/// `submit_chat`, counted only when accepted) → pending record (with the
/// owner's index, as `upsert_document`) and the session's end → job hash →
/// `XADD`.
pub(super) async fn submit(
    store: &UpstashStore,
    upload: UploadSubmission,
) -> Result<UploadOutcome, StoreError> {
    let UploadSubmission {
        record,
        job,
        rate_checks,
        session,
    } = upload;
    let now = job.now;
    let job = job.into_queued();
    let owner = record.owner.as_key();
    let (rate_keys, rate_args) = store.rate_parts(&rate_checks, now);
    let mut keys = vec![
        store.keys.documents(),
        store.keys.document_owners(),
        store.keys.owned_documents(owner),
        store.keys.job(job.id.as_str()),
        store.keys.queue(),
        store.keys.session_ends(),
    ];
    keys.extend(rate_keys);
    let mut args = vec![
        Arg::from(record.id.as_str()),
        Arg::from(to_json(&StoredDocument::from_record(&record))?),
        Arg::from(owner),
        Arg::from(FAILED_MARKER),
    ];
    args.extend(store.job_args(&job)?);
    args.extend([
        Arg::from(rate::MIN_RETRY_AFTER_MS),
        Arg::from(rate_checks.len()),
    ]);
    args.extend(match session {
        Some(terms) => [
            Arg::from(terms.quota.max_documents),
            Arg::from(terms.quota.max_bytes),
            Arg::from(record.size_bytes),
            Arg::from(terms.expires_at.as_millis()),
        ],
        None => [Arg::from(""), Arg::from(""), Arg::from(""), Arg::from("")],
    });
    args.extend(rate_args);
    keys.push(store.keys.registry());
    args.push(Arg::from(store.namespace()));
    let reply = store
        .eval(&scripts::SUBMIT_UPLOAD, keys, args, false)
        .await?;
    let (status, mut parts) = tagged(reply, "submit upload")?;
    match status.as_str() {
        "ok" | "limited" => match rate_outcome(&mut parts, &status, &rate_checks, now)? {
            Ok(_) => Ok(UploadOutcome::Accepted { job, record }),
            Err(refused) => Ok(UploadOutcome::RateLimited(refused)),
        },
        "exists" => Ok(UploadOutcome::Existing(StoredDocument::parse(
            parts.next().unwrap_or(Value::Nil),
        )?)),
        "quota_documents" => Ok(UploadOutcome::QuotaExceeded(QuotaExceeded::Documents {
            limit: session.map_or(0, |terms| terms.quota.max_documents),
        })),
        "quota_bytes" => Ok(UploadOutcome::QuotaExceeded(QuotaExceeded::Bytes {
            limit: session.map_or(0, |terms| terms.quota.max_bytes),
            held: count(
                parts.next().unwrap_or(Value::Nil),
                "submit upload bytes held",
            )?,
        })),
        "job_exists" => Err(already_exists(&job.id)),
        other => Err(unexpected("submit upload", other)),
    }
}
