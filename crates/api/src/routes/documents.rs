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
use flowchat_store::{NewJob, UPLOAD_PART_BYTES, UploadOutcome, UploadSubmission, upload_parts};
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::auth::{is_admin, optional_session, require_admin, require_session};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::request::{content_type, unsupported_content_type};
use crate::response::json;
use crate::routes::chat::ip_write_check;
use crate::upload;

/// Whether `path` is one of the upload routes (for [`crate::body_limit`]).
pub(crate) fn is_upload_path(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/api/documents" | "/api/documents/upload"
    )
}

fn document_view(doc: &DocumentRecord) -> Value {
    json!({
        "id": doc.id,
        "name": doc.name,
        "scope": match doc.owner { DocumentOwner::Shared => "shared", DocumentOwner::Session(_) => "private" },
        "status": doc.status,
        "chunks": doc.chunks,
        "pages": doc.pages,
        "origin": doc.origin,
        "size_bytes": doc.size_bytes,
        "error": doc.error,
        "updated_at": doc.updated_at,
    })
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such document".to_owned())
}

fn with_location(mut response: Response<Bytes>, location: String) -> Response<Bytes> {
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `GET /api/documents`: without a token, the shared set only.
pub(crate) async fn list(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
    let claims = optional_session(ctx, req)?;
    let documents = ctx
        .store
        .list_documents(claims.as_ref().map(|c| &c.session_id))
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "documents": documents.iter().map(document_view).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/documents/ingest` (operator): queue a re-scan of the shared
/// documents folder. The drain does the work; follow the job for its report.
pub(crate) async fn ingest(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
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
        &json!({"job_id": job.id, "status": job.status}),
    );
    Ok(with_location(response, format!("/api/chat/{}", job.id)))
}

/// Who is acting on documents: an operator (admin token) or a session.
enum Actor {
    Admin,
    Session(flowchat_domain::SessionId),
}

impl Actor {
    fn job_owner(&self) -> Option<flowchat_domain::SessionId> {
        match self {
            Actor::Admin => None,
            Actor::Session(id) => Some(id.clone()),
        }
    }
}

/// The admin token, else a session token (required).
fn require_actor(ctx: &AppContext, req: &Request<Bytes>) -> Result<Actor, ApiError> {
    if is_admin(ctx, req) {
        Ok(Actor::Admin)
    } else {
        Ok(Actor::Session(require_session(ctx, req)?.session_id))
    }
}

/// The answer for an upload whose document already exists: nothing new
/// was stored or queued.
fn existing(doc: &DocumentRecord) -> Response<Bytes> {
    json(
        StatusCode::OK,
        &json!({
            "document_id": doc.id,
            "job_id": null,
            "status": doc.status,
            "document": document_view(doc),
        }),
    )
}

/// `POST /api/documents` (and `/api/documents/upload`): one file in the
/// multipart field `file`. With a session token it becomes that session's
/// private document; with the admin token, a shared one.
///
/// The same bytes uploaded again by the same owner are the same document:
/// unless its earlier ingest failed, the answer is `200` with the existing
/// record and nothing is stored. Otherwise the bytes are stored in parts,
/// then the pending record and the ingest job are written atomically with
/// the rate-limit check: `202`, and the drain indexes the file.
pub(crate) async fn upload(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Bytes>, ApiError> {
    let actor = require_actor(ctx, req)?;
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
    if req.body().len() > limit + crate::MULTIPART_OVERHEAD_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: limit + crate::MULTIPART_OVERHEAD_BYTES,
        });
    }
    let part = upload::read_file_part(sent, req.body().clone(), limit).await?;
    let (name, format) = upload::sanitise_filename(part.filename.as_deref())?;
    upload::check_content(&name, format, &part.bytes)?;

    let owner = match &actor {
        Actor::Admin => DocumentOwner::Shared,
        Actor::Session(id) => DocumentOwner::Session(id.clone()),
    };
    let id = DocumentId::for_upload(&owner, &part.bytes);
    if let Some(doc) = ctx.store.get_document(&id).await?
        && doc.status != DocumentStatus::Failed
    {
        tracing::info!(document_id = %id, "upload of an existing document: nothing to do");
        return Ok(existing(&doc));
    }

    let now = ctx.platform.now();
    for (index, chunk) in part.bytes.chunks(UPLOAD_PART_BYTES).enumerate() {
        ctx.store
            .put_upload_part(&id, index as u32, chunk, now)
            .await?;
    }
    let size_bytes = part.bytes.len() as u64;
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
        rate_checks: vec![ip_write_check(ctx, req)],
    };
    match ctx.store.submit_upload(submission).await? {
        UploadOutcome::Accepted { job, record } => {
            tracing::info!(document_id = %record.id, job_id = %job.id, size_bytes, "upload queued for indexing");
            let response = json(
                StatusCode::ACCEPTED,
                &json!({
                    "document_id": record.id,
                    "job_id": job.id,
                    "status": record.status,
                    "document": document_view(&record),
                }),
            );
            Ok(with_location(
                response,
                format!("/api/documents/{}", record.id),
            ))
        }
        // Someone uploaded the same bytes meanwhile: their job reads the
        // (identical) parts just stored.
        UploadOutcome::Existing(doc) => Ok(existing(&doc)),
        UploadOutcome::RateLimited(decision) => {
            discard_parts(ctx, &id, size_bytes).await;
            Err(ApiError::rate_limited(decision, now))
        }
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

/// The document `raw_id` if `actor` may see it: shared documents are
/// visible to everyone, private ones to their session (and operators).
async fn visible_document(
    ctx: &AppContext,
    raw_id: &str,
    viewer: Option<&Actor>,
) -> Result<DocumentRecord, ApiError> {
    let id = DocumentId::parse(raw_id, "document_id")?;
    let doc = ctx.store.get_document(&id).await?.ok_or_else(not_found)?;
    let visible = match (&doc.owner, viewer) {
        (DocumentOwner::Shared, _) | (_, Some(Actor::Admin)) => true,
        (DocumentOwner::Session(owner), Some(Actor::Session(viewer))) => owner == viewer,
        (DocumentOwner::Session(_), None) => false,
    };
    if visible { Ok(doc) } else { Err(not_found()) }
}

/// `GET /api/documents/{id}` (session optional).
pub(crate) async fn get(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Bytes>, ApiError> {
    let viewer = if is_admin(ctx, req) {
        Some(Actor::Admin)
    } else {
        optional_session(ctx, req)?.map(|c| Actor::Session(c.session_id))
    };
    let doc = visible_document(ctx, raw_id, viewer.as_ref()).await?;
    let mut response = json(StatusCode::OK, &document_view(&doc));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `DELETE /api/documents/{id}`: a session deletes its own private
/// documents; shared ones need the admin token. The record goes at once;
/// a `delete` job removes the chunks from the index.
pub(crate) async fn delete(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Bytes>, ApiError> {
    let actor = require_actor(ctx, req)?;
    let doc = visible_document(ctx, raw_id, Some(&actor)).await?;
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
        return Err(not_found());
    }
    tracing::info!(document_id = %doc.id, job_id = %job_id, "document deleted; index clean-up queued");
    let response = json(
        StatusCode::ACCEPTED,
        &json!({"document_id": doc.id, "job_id": job_id, "status": "deleting"}),
    );
    Ok(with_location(response, format!("/api/chat/{job_id}")))
}
