//! Uploads: parts round-trip any bytes, a missing part means no upload,
//! and a submission is accepted once, retried when failed, refused whole
//! when rate-limited.

use std::sync::Arc;

use flowchat_domain::DocumentId;
use flowchat_domain::model::{
    DocumentOwner, DocumentRecord, DocumentStatus, IngestReport, JobKind, JobPayload, JobResult,
    JobStatus,
};

use super::Harness;
use super::support::*;
use crate::{Completion, QueueStats, Store, UPLOAD_PART_BYTES, UploadOutcome};

/// Upload parts hold any bytes — every byte value, NULs, invalid UTF-8, a
/// full part, an empty one — and are joined in index order whatever order
/// they were stored in. Rewriting a part is harmless; uploads are separate;
/// deleting one removes its parts only; a part above the limit is refused.
pub async fn upload_parts_round_trip_any_bytes<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let reader = h.second_handle(&store).await;

    let every_byte: Vec<u8> = (0..=255u8).collect();
    let small = DocumentId::for_content(&unique_bytes());
    put_part(&store, &small, 0, &every_byte).await;
    assert_eq!(
        get_upload(&reader, &small, 1).await,
        Some(every_byte.clone())
    );

    let big = DocumentId::for_content(&unique_bytes());
    let parts = [
        noise(UPLOAD_PART_BYTES, 1),
        [0xFF, 0xFE, 0x00, 0xC0, 0x80, 0xED, 0xA0, 0x80].repeat(UPLOAD_PART_BYTES / 8),
        noise(1_000, 3),
    ];
    for part in &parts[..2] {
        assert_eq!(part.len(), UPLOAD_PART_BYTES);
        assert!(std::str::from_utf8(part).is_err());
        assert!(part.contains(&0));
    }
    assert!((0..=255u8).all(|b| parts[0].contains(&b)));
    for index in [2u32, 0, 1] {
        put_part(&store, &big, index, &parts[index as usize]).await;
    }
    let whole = parts.concat();
    assert_eq!(get_upload(&store, &big, 3).await, Some(whole.clone()));
    assert_eq!(get_upload(&reader, &big, 3).await, Some(whole.clone()));
    assert_eq!(
        get_upload(&store, &big, 2).await,
        Some(parts[..2].concat()),
        "the first parts, joined"
    );

    // Rewriting a part (a retried request) changes nothing.
    put_part(&reader, &big, 1, &parts[1]).await;
    assert_eq!(get_upload(&store, &big, 3).await, Some(whole.clone()));

    let empty = DocumentId::for_content(&unique_bytes());
    put_part(&store, &empty, 0, &[]).await;
    assert_eq!(get_upload(&store, &empty, 1).await, Some(Vec::new()));

    store.delete_upload(&big, 3).await.expect("delete_upload");
    assert_eq!(get_upload(&store, &big, 3).await, None);
    assert_eq!(get_upload(&store, &big, 1).await, None);
    assert_eq!(get_upload(&store, &small, 1).await, Some(every_byte));
    store
        .delete_upload(&big, 3)
        .await
        .expect("deleting again is no error");

    let oversized = DocumentId::for_content(&unique_bytes());
    assert!(
        store
            .put_upload_part(&oversized, 0, &noise(UPLOAD_PART_BYTES + 1, 4), at(0))
            .await
            .is_err(),
        "a part above UPLOAD_PART_BYTES is refused"
    );
    assert_eq!(get_upload(&store, &oversized, 1).await, None);
}

/// One missing part — never stored, or beyond those stored — and there is
/// no upload; storing it completes the upload.
pub async fn upload_with_a_missing_part_is_none<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let id = DocumentId::for_content(&unique_bytes());
    assert_eq!(get_upload(&store, &id, 1).await, None, "never stored");
    put_part(&store, &id, 0, b"first ").await;
    put_part(&store, &id, 2, b"third").await;
    assert_eq!(get_upload(&store, &id, 3).await, None, "part 1 is missing");
    put_part(&store, &id, 1, b"second ").await;
    assert_eq!(
        get_upload(&store, &id, 3).await.as_deref(),
        Some(&b"first second third"[..])
    );
    assert_eq!(
        get_upload(&store, &id, 4).await,
        None,
        "part 3 was never stored"
    );
    // Another id's parts do not fill the gap.
    let other = DocumentId::for_content(&unique_bytes());
    put_part(&store, &other, 1, b"second ").await;
    assert_eq!(get_upload(&store, &other, 2).await, None);
}

/// An upload is accepted once: its pending record (private to its session)
/// and queued ingest job are written and its rate limits counted. The same
/// document again, pending or indexed, is `Existing` with nothing written
/// or counted.
pub async fn submit_upload_accepts_once_then_reports_the_existing_record<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let rule = check(&unique_key("write:session"), 5, 60_000);
    let record = document("contract.pdf", DocumentOwner::Session(alice.clone()), at(0));
    let sub = upload(&record, vec![rule.clone()], at(0));
    let job_new = sub.job.clone();
    let (job, accepted) = match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::Accepted { job, record } => (job, record),
        other => panic!("expected the upload to be accepted, got {other:?}"),
    };
    assert_eq!(accepted, record);
    assert_eq!(job.id, job_new.id);
    assert_eq!(job.kind, JobKind::Ingest);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.owner, Some(alice.clone()));
    assert_eq!(job.payload, ingest_upload(&record));
    assert_eq!(job.attempts, 0);
    assert_eq!((job.created_at, job.updated_at), (at(0), at(0)));
    assert_eq!(
        store.get_job(&job.id).await.expect("get_job"),
        Some(job.clone())
    );
    assert_eq!(get_document(&store, &record.id).await, Some(record.clone()));
    let queued = |n| QueueStats {
        queued: n,
        ..QueueStats::default()
    };
    assert_eq!(store.queue_stats(at(1)).await.expect("stats"), queued(1));

    // The record keeps its owner's scope, as any catalog entry.
    let listed = |docs: Vec<DocumentRecord>| docs.iter().any(|d| d.id == record.id);
    assert!(listed(
        store.list_documents(Some(&alice)).await.expect("list")
    ));
    assert!(!listed(
        store.list_documents(Some(&bob)).await.expect("list")
    ));
    assert!(!listed(store.list_documents(None).await.expect("list")));

    // Again while pending, then once indexed: nothing written or counted.
    let indexed = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 9,
        pages: Some(4),
        updated_at: at(20),
        ..record.clone()
    };
    for (existing, now) in [(&record, 10), (&record, 11), (&indexed, 30)] {
        if existing.status == DocumentStatus::Indexed {
            store
                .upsert_document(existing)
                .await
                .expect("upsert_document");
        }
        let again = upload(
            &DocumentRecord {
                name: "renamed.pdf".to_owned(),
                updated_at: at(now),
                ..record.clone()
            },
            vec![rule.clone()],
            at(now),
        );
        let again_job = again.job.id.clone();
        match store.submit_upload(again).await.expect("submit_upload") {
            UploadOutcome::Existing(found) => assert_eq!(&found, existing),
            other => panic!("expected Existing, got {other:?}"),
        }
        assert_eq!(store.get_job(&again_job).await.expect("get_job"), None);
        assert_eq!(
            get_document(&store, &record.id).await.as_ref(),
            Some(existing)
        );
        assert_eq!(store.queue_stats(at(now)).await.expect("stats"), queued(1));
    }
    let d = hit(&store, std::slice::from_ref(&rule), at(40)).await;
    assert_eq!(
        d.remaining, 3,
        "counted once by the accepted upload, now once more"
    );
}

/// A document whose ingestion failed is not `Existing`: uploading it again
/// replaces the failed record with a pending one and queues a new job.
pub async fn submit_upload_retries_a_failed_document<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let rule = check(&unique_key("write:ip"), 5, 60_000);
    let record = document("scan.pdf", DocumentOwner::Shared, at(0));
    let first = submit_upload(&store, upload(&record, vec![rule.clone()], at(0))).await;
    assert_eq!(first.owner, None, "a shared upload's job has no owner");
    let failed = DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some("no text layer".to_owned()),
        pages: Some(2),
        updated_at: at(5),
        ..record.clone()
    };
    store
        .upsert_document(&failed)
        .await
        .expect("upsert_document");

    let retry = DocumentRecord {
        updated_at: at(10),
        ..record.clone()
    };
    let second = submit_upload(&store, upload(&retry, vec![rule.clone()], at(10))).await;
    assert_ne!(second.id, first.id);
    assert_eq!(get_document(&store, &record.id).await, Some(retry.clone()));
    assert_eq!(
        store.list_documents(None).await.expect("list"),
        vec![retry.clone()],
        "replaced, not duplicated"
    );
    assert_eq!(store.queue_stats(at(11)).await.expect("stats").queued, 2);
    assert_eq!(
        hit(&store, std::slice::from_ref(&rule), at(12))
            .await
            .remaining,
        2,
        "both accepted uploads counted"
    );
    // Pending again: a third upload is `Existing`.
    assert!(matches!(
        store
            .submit_upload(upload(&retry, vec![rule], at(13)))
            .await
            .expect("submit_upload"),
        UploadOutcome::Existing(found) if found == retry
    ));
}

/// A refused upload writes nothing — no record, no job, no queue entry, no
/// hit on the checks that allowed it — and leaves a failed record as it was.
pub async fn rate_limited_upload_writes_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let loose = check(&unique_key("write:ip"), 5, 60_000);
    let tight = check(&unique_key("write:session"), 1, 60_000);
    assert!(
        hit(&store, std::slice::from_ref(&tight), at(0))
            .await
            .allowed
    );

    let record = document("big.pdf", DocumentOwner::Session(session.clone()), at(1));
    let sub = upload(&record, vec![loose.clone(), tight.clone()], at(1));
    let refused_job = sub.job.id.clone();
    match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::RateLimited(d) => {
            assert!(!d.allowed);
            assert_eq!(d.limit, 1);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.reset_at, at(60_000));
            assert!(d.retry_after_ms >= 1_000);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(get_document(&store, &record.id).await, None);
    assert_eq!(store.get_job(&refused_job).await.expect("get_job"), None);
    assert_eq!(
        store.queue_stats(at(2)).await.expect("stats"),
        QueueStats::default()
    );
    assert!(
        store
            .list_documents(Some(&session))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        hit(&store, std::slice::from_ref(&loose), at(3))
            .await
            .remaining,
        4,
        "the allowing check was not counted"
    );

    let failed = DocumentRecord {
        status: DocumentStatus::Failed,
        error: Some("timeout".to_owned()),
        ..record.clone()
    };
    store
        .upsert_document(&failed)
        .await
        .expect("upsert_document");
    assert!(matches!(
        store
            .submit_upload(upload(&record, vec![tight], at(4)))
            .await
            .expect("submit_upload"),
        UploadOutcome::RateLimited(_)
    ));
    assert_eq!(get_document(&store, &record.id).await, Some(failed));
    assert_eq!(store.queue_stats(at(5)).await.expect("stats").queued, 0);
}

/// The same document uploaded many times at once, through two handles:
/// exactly one upload is accepted and one job queued; the others see it.
pub async fn concurrent_uploads_of_one_document_accept_one<H: Harness>(h: &H) {
    let a = Arc::new(h.fresh().await);
    let b = Arc::new(h.second_handle(&a).await);
    let record = document("same.pdf", DocumentOwner::Shared, at(0));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let sub = upload(&record, Vec::new(), at(i));
        tasks.push(tokio::spawn(async move {
            store.submit_upload(sub).await.expect("submit_upload")
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("the task finished") {
            UploadOutcome::Accepted { .. } => accepted += 1,
            UploadOutcome::Existing(found) => assert_eq!(found, record),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(a.queue_stats(at(100)).await.expect("stats").queued, 1);
}

/// The drain claims an accepted upload's job like any other, with the
/// payload that names the document, and completes it.
pub async fn accepted_upload_job_is_claimable_with_its_payload<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let record = document(
        "report.docx",
        DocumentOwner::Session(session.clone()),
        at(0),
    );
    let submitted = submit_upload(&store, upload(&record, Vec::new(), at(0))).await;
    let drain = h.second_handle(&store).await;
    let claimed = claim_one(&drain, at(1)).await;
    assert_eq!(claimed.job.id, submitted.id);
    assert_eq!(claimed.job.kind, JobKind::Ingest);
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.owner, Some(session.clone()));
    assert_eq!(
        claimed.job.payload,
        JobPayload::IngestUpload {
            document_id: record.id.clone(),
            name: "report.docx".to_owned(),
            owner: DocumentOwner::Session(session),
        }
    );
    let report = JobResult::Ingest(IngestReport {
        added: 1,
        ..IngestReport::default()
    });
    assert_eq!(
        drain
            .complete_job(&claimed, &report, at(2))
            .await
            .expect("complete_job"),
        Completion::Stored
    );
    assert_eq!(job(&store, &submitted.id).await.result, Some(report));
}
