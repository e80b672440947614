//! `flowchat-drain cleanup` on a real store file: the documents of a session
//! that ended go (catalog entry, upload parts, a `delete` job queued for
//! the index), a live session's stay.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use flowchat_domain::model::{
    DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, JobPayload,
};
use flowchat_domain::{DocumentId, JobId, SessionId, Timestamp};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::{
    ClaimRequest, DocumentQuota, NewJob, SessionTerms, Store, UploadOutcome, UploadSubmission,
};

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(ms as i64)
}

/// A pending upload of `bytes` by `session`, whose session ends at `ends`.
async fn upload(store: &SqliteStore, session: &SessionId, bytes: &[u8], ends: Timestamp, n: u8) {
    let owner = DocumentOwner::Session(session.clone());
    let id = DocumentId::for_upload(&owner, bytes);
    store.put_upload_part(&id, 0, bytes, now()).await.unwrap();
    let record = DocumentRecord {
        id: id.clone(),
        name: format!("doc-{n}.md"),
        owner: owner.clone(),
        size_bytes: bytes.len() as u64,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Upload,
        error: None,
        updated_at: now(),
    };
    let submission = UploadSubmission {
        job: NewJob {
            id: JobId::from_random([n; 16]),
            owner: Some(session.clone()),
            payload: JobPayload::IngestUpload {
                document_id: id,
                name: record.name.clone(),
                owner,
            },
            now: now(),
        },
        record,
        rate_checks: Vec::new(),
        session: Some(SessionTerms {
            quota: DocumentQuota {
                max_documents: 50,
                max_bytes: 1 << 20,
            },
            expires_at: ends,
        }),
    };
    assert!(matches!(
        store.submit_upload(submission).await.unwrap(),
        UploadOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn cleanup_removes_the_documents_of_ended_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flowchat-cleanup.db");
    let store = SqliteStore::open(&path).unwrap();
    let (ended, live) = (
        SessionId::from_random([1; 16]),
        SessionId::from_random([2; 16]),
    );
    // Ended two hours ago: past the one-hour grace.
    upload(
        &store,
        &ended,
        b"# ended session",
        now().plus_secs(-7200),
        3,
    )
    .await;
    upload(&store, &live, b"# live session", now().plus_secs(86_400), 4).await;
    let gone = DocumentId::for_upload(&DocumentOwner::Session(ended.clone()), b"# ended session");

    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .args(["cleanup", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWCHAT_DATA_DIR", dir.path())
        .env("FLOWCHAT_NAMESPACE", "cleanup")
        .env("LOG_FORMAT", "json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"sessions": 1, "documents": 1, "bytes": 15})
    );

    assert_eq!(store.get_document(&gone).await.unwrap(), None);
    assert_eq!(store.get_upload(&gone, 1).await.unwrap(), None);
    assert!(store.owned_documents(&ended).await.unwrap().is_empty());
    assert_eq!(store.owned_documents(&live).await.unwrap().len(), 1);
    let claimed = store
        .claim(&ClaimRequest {
            worker: "test".to_owned(),
            max_jobs: 10,
            lease_ms: 60_000,
            max_attempts: 3,
            now: now(),
        })
        .await
        .unwrap();
    let deletes: Vec<_> = claimed
        .iter()
        .filter_map(|c| match &c.job.payload {
            JobPayload::DeleteDocument { document_id } => Some(document_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deletes, vec![gone]);
}
