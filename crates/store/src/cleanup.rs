//! Removing what sessions that are over left behind: their private
//! documents' catalog entries, upload parts and (through a `delete` job per
//! document, as `DELETE /api/documents/{id}` queues) index chunks.
//!
//! A session's end is recorded with each of its uploads
//! ([`SessionTerms::expires_at`](crate::SessionTerms)); after it the token is
//! refused everywhere, so nobody can read or add to those documents again.
//! Built from [`Store`] calls only, so both back ends clean up the same way
//! and a run that stops half way is finished by the next one (an owner is
//! forgotten only once it owns nothing).

use flowchat_domain::model::JobPayload;
use flowchat_domain::{JobId, Timestamp};
use serde::Serialize;

use crate::{NewJob, Store, StoreError, upload_parts};

/// How long after a session's end its documents are kept: the API's clock
/// and the drain's may disagree a little, and an upload accepted just before
/// the end must not be missed by a clean-up that ran just after it.
pub const SESSION_END_GRACE_MS: i64 = 60 * 60 * 1000;

/// Sessions handled per batch.
const BATCH: u32 = 100;

/// What one clean-up removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Sessions whose documents are all gone (and which are forgotten).
    pub sessions: u32,
    /// Catalog entries removed, each with a `delete` job queued.
    pub documents: u32,
    /// Their size.
    pub bytes: u64,
}

/// Removes the private documents of every session that ended more than
/// [`SESSION_END_GRACE_MS`] before `now`, at most `max_sessions` of them;
/// `new_job_id` names the `delete` jobs (operator jobs: no owner).
pub async fn remove_expired_sessions_documents(
    store: &dyn Store,
    now: Timestamp,
    max_sessions: u32,
    mut new_job_id: impl FnMut() -> JobId + Send,
) -> Result<CleanupReport, StoreError> {
    let before = now.plus_millis(-SESSION_END_GRACE_MS);
    let mut report = CleanupReport::default();
    let mut left = max_sessions;
    while left > 0 {
        let owners = store
            .expired_document_owners(before, left.min(BATCH))
            .await?;
        if owners.is_empty() {
            break;
        }
        let mut progressed = false;
        for owner in owners {
            left -= 1;
            for doc in store.owned_documents(&owner).await? {
                let job = NewJob {
                    id: new_job_id(),
                    owner: None,
                    payload: JobPayload::DeleteDocument {
                        document_id: doc.id.clone(),
                    },
                    now,
                };
                if store.delete_document(&doc.id, job).await? {
                    report.documents += 1;
                    report.bytes += doc.size_bytes;
                }
                store
                    .delete_upload(&doc.id, upload_parts(doc.size_bytes))
                    .await?;
            }
            if store.forget_document_owner(&owner).await? {
                report.sessions += 1;
                progressed = true;
            }
        }
        // An owner that keeps a document (written concurrently) stays
        // listed: stop rather than loop on it; the next run retries.
        if !progressed {
            break;
        }
    }
    Ok(report)
}
