//! The document catalog: the shared set plus the caller's own uploads;
//! uploading, reading and deleting one document.
//!
//! A private document is visible to its session only: to anyone else it is
//! a 404, exactly like a missing one, so ids cannot be probed.

use bytes::Bytes;
use flowchat_domain::model::{
    DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, JobPayload,
};
use flowchat_domain::{DocumentId, JobId};
use flowchat_store::{
    DocumentUsage, NewJob, QuotaExceeded, SessionTerms, UPLOAD_PART_BYTES, UploadOutcome,
    UploadSubmission, upload_parts,
};
use http::{Request, Response, StatusCode};

use crate::auth::{
    Actor, optional_actor, optional_session, require_actor, require_admin, require_session,
};
use crate::body::MULTIPART_OVERHEAD_BYTES;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::{count_ip_write, document_not_found, visible_document};
use crate::request::{content_type, unsupported_content_type};
use crate::response::{Body, json, no_store, with_location};
use crate::upload;
use crate::views::{DeletedDocument, DocumentList, DocumentView, QueuedJob, UploadResult};

/// `GET /api/documents`: without a token, the shared set only.
pub(crate) async fn list(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let claims = optional_session(ctx, req)?;
    let documents = ctx
        .store
        .list_documents(claims.as_ref().map(|c| &c.session_id))
        .await?;
    Ok(json(
        StatusCode::OK,
        &DocumentList {
            documents: documents.iter().map(DocumentView::from).collect(),
        },
    ))
}

/// `POST /api/documents/ingest` (operator): queue a re-scan of the shared
/// documents folder. The drain does the work; follow the job for its report.
pub(crate) async fn ingest(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    require_admin(ctx, req)?;
    let job = ctx
        .store
        .enqueue(NewJob {
            id: JobId::from_random(ctx.platform.random_bytes()),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: ctx.platform.now(),
        })
        .await?;
    tracing::info!(job_id = %job.id, "shared folder re-scan queued");
    let response = json(
        StatusCode::ACCEPTED,
        &QueuedJob {
            job_id: &job.id,
            status: job.status,
        },
    );
    Ok(with_location(response, format!("/api/chat/{}", job.id)))
}

/// The answer for an upload whose document already exists: nothing new
/// was stored or queued.
fn existing(doc: &DocumentRecord) -> Response<Body> {
    json(StatusCode::OK, &UploadResult::new(doc, None))
}

/// `POST /api/documents` (and `/api/documents/upload`): one file in the
/// multipart field `file`. With a session token it becomes that session's
/// private document; with the admin token, a shared one.
///
/// The request is counted against the client IP's write limit first,
/// before its body is looked at: every attempt costs the caller one hit,
/// whether it is then refused (400, 413, 415, quota) or taken, so hostile
/// bodies cannot be sent without limit, and nothing is stored for a
/// refused one.
///
/// The same bytes uploaded again by the same owner are the same document:
/// unless its earlier ingest failed, the answer is `200` with the existing
/// record and nothing is stored. Otherwise a session's quota is checked,
/// the bytes are stored in parts, then the pending record and the ingest
/// job are written atomically with the quota check again (a concurrent
/// upload may have used the room): `202`, and the drain indexes the file.
pub(crate) async fn upload(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let actor = require_actor(ctx, req)?;
    let session_end = match &actor {
        Actor::Session(_) => Some(require_session(ctx, req)?.expires_at()),
        Actor::Admin => None,
    };
    let now = ctx.platform.now();
    count_ip_write(ctx, req, now).await?;

    let (sent, essence) = content_type(req);
    if essence != "multipart/form-data" {
        return Err(unsupported_content_type(
            "multipart/form-data with the document in a field named `file`",
            sent,
        ));
    }
    let limit = ctx.config.max_upload_bytes;
    // An adapter already capped the body; a runtime that did not is still
    // refused here.
    if req.body().len() > limit + MULTIPART_OVERHEAD_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: limit + MULTIPART_OVERHEAD_BYTES,
        });
    }
    let part = upload::read_file_part(sent, req.body().clone(), limit).await?;
    let (name, format) = upload::sanitise_filename(part.filename.as_deref())?;
    upload::check_content(&name, format, &part.bytes)?;

    let owner = actor.document_owner();
    let id = DocumentId::for_upload(&owner, &part.bytes);
    // A session's documents, read once: the id is its owner's content hash,
    // so an existing record with it is among them.
    let held = match &actor {
        Actor::Session(session_id) => Some(ctx.store.owned_documents(session_id).await?),
        Actor::Admin => None,
    };
    let found = match &held {
        Some(held) => held.iter().find(|doc| doc.id == id).cloned(),
        None => ctx.store.get_document(&id).await?,
    };
    if let Some(doc) = found
        && doc.status != DocumentStatus::Failed
    {
        tracing::info!(document_id = %id, "upload of an existing document: nothing to do");
        return Ok(existing(&doc));
    }

    let size_bytes = part.bytes.len() as u64;
    let session = match (held, session_end) {
        (Some(held), Some(expires_at)) => {
            let terms = SessionTerms {
                quota: ctx.config.document_quota,
                expires_at,
            };
            DocumentUsage::of(&held, &id)
                .admits(&terms.quota, size_bytes)
                .map_err(|exceeded| quota_error(exceeded, size_bytes))?;
            Some(terms)
        }
        _ => None,
    };

    for (index, chunk) in part.bytes.chunks(UPLOAD_PART_BYTES).enumerate() {
        ctx.store
            .put_upload_part(&id, index as u32, chunk, now)
            .await?;
    }
    let record = DocumentRecord {
        id: id.clone(),
        name: name.clone(),
        owner: owner.clone(),
        size_bytes,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Upload,
        error: None,
        updated_at: now,
    };
    let submission = UploadSubmission {
        record,
        job: NewJob {
            id: JobId::from_random(ctx.platform.random_bytes()),
            owner: actor.job_owner(),
            payload: JobPayload::IngestUpload {
                document_id: id.clone(),
                name,
                owner,
            },
            now,
        },
        // Counted above, once per request.
        rate_checks: Vec::new(),
        session,
    };
    match ctx.store.submit_upload(submission).await? {
        UploadOutcome::Accepted { job, record } => {
            tracing::info!(document_id = %record.id, job_id = %job.id, size_bytes, "upload queued for indexing");
            let response = json(
                StatusCode::ACCEPTED,
                &UploadResult::new(&record, Some(&job.id)),
            );
            Ok(with_location(
                response,
                format!("/api/documents/{}", record.id),
            ))
        }
        // Someone uploaded the same bytes meanwhile: their job reads the
        // (identical) parts just stored.
        UploadOutcome::Existing(doc) => Ok(existing(&doc)),
        UploadOutcome::QuotaExceeded(exceeded) => {
            discard_parts(ctx, &id, size_bytes).await;
            Err(quota_error(exceeded, size_bytes))
        }
        UploadOutcome::RateLimited(decision) => {
            discard_parts(ctx, &id, size_bytes).await;
            Err(ApiError::rate_limited(decision, now))
        }
    }
}

fn quota_error(exceeded: QuotaExceeded, file_bytes: u64) -> ApiError {
    match exceeded {
        QuotaExceeded::Documents { limit } => ApiError::DocumentQuota { limit },
        QuotaExceeded::Bytes { limit, held } => ApiError::StorageQuota {
            limit,
            held,
            file_bytes,
        },
    }
}

/// Removes the parts of a refused upload, unless a record for the same id
/// appeared meanwhile (an identical upload accepted concurrently, whose job
/// needs them). Best effort: the parts expire with the upload TTL anyway.
async fn discard_parts(ctx: &AppContext, id: &DocumentId, size_bytes: u64) {
    let result = match ctx.store.get_document(id).await {
        Ok(Some(_)) => return,
        Ok(None) => ctx.store.delete_upload(id, upload_parts(size_bytes)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(document_id = %id, error = %e, "could not discard a refused upload's parts; they expire on their own");
    }
}

/// `GET /api/documents/{id}` (session optional).
pub(crate) async fn get(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let viewer = optional_actor(ctx, req)?;
    let id = DocumentId::parse(raw_id, "document_id")?;
    let doc = visible_document(ctx, &id, viewer.as_ref()).await?;
    Ok(no_store(json(StatusCode::OK, &DocumentView::from(&doc))))
}

/// `DELETE /api/documents/{id}`: a session deletes its own private
/// documents; shared ones need the admin token. The record goes at once;
/// a `delete` job removes the chunks from the index.
pub(crate) async fn delete(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let actor = require_actor(ctx, req)?;
    let id = DocumentId::parse(raw_id, "document_id")?;
    let doc = visible_document(ctx, &id, Some(&actor)).await?;
    if doc.owner == DocumentOwner::Shared && !matches!(actor, Actor::Admin) {
        return Err(ApiError::Forbidden(
            "shared documents can only be deleted with the admin token".to_owned(),
        ));
    }
    let job = NewJob {
        id: JobId::from_random(ctx.platform.random_bytes()),
        owner: actor.job_owner(),
        payload: JobPayload::DeleteDocument {
            document_id: doc.id.clone(),
        },
        now: ctx.platform.now(),
    };
    let job_id = job.id.clone();
    if !ctx.store.delete_document(&doc.id, job).await? {
        // Deleted by someone else meanwhile.
        return Err(document_not_found());
    }
    tracing::info!(document_id = %doc.id, job_id = %job_id, "document deleted; index clean-up queued");
    let response = json(
        StatusCode::ACCEPTED,
        &DeletedDocument {
            document_id: &doc.id,
            job_id: &job_id,
            status: "deleting",
        },
    );
    Ok(with_location(response, format!("/api/chat/{job_id}")))
}
