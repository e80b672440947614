//! The document catalog: the shared set plus the caller's own uploads.

use bytes::Bytes;
use flowchat_domain::JobId;
use flowchat_domain::model::{DocumentOwner, DocumentRecord, JobPayload};
use flowchat_store::NewJob;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::auth::{optional_session, require_admin};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::response::json;

fn document_view(doc: &DocumentRecord) -> Value {
    json!({
        "id": doc.id,
        "name": doc.name,
        "scope": match doc.owner { DocumentOwner::Shared => "shared", DocumentOwner::Session(_) => "private" },
        "status": doc.status,
        "chunks": doc.chunks,
        "size_bytes": doc.size_bytes,
        "error": doc.error,
        "updated_at": doc.updated_at,
    })
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
    let mut response = json(
        StatusCode::ACCEPTED,
        &json!({"job_id": job.id, "status": job.status}),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/api/chat/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
