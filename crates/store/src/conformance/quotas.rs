//! Per-session quotas, checked atomically with an upload's submission, and
//! the clean-up of documents whose session is over.

use flowchat_domain::Timestamp;
use flowchat_domain::model::{DocumentOwner, DocumentRecord, DocumentStatus, JobPayload};
use flowchat_domain::token::SESSION_LIFETIME_SECS;

use super::Harness;
use super::support::*;
use crate::cleanup::{CleanupReport, SESSION_END_GRACE_MS, remove_expired_sessions_documents};
use crate::{
    DocumentQuota, QuotaExceeded, SessionTerms, Store, UploadOutcome, UploadSubmission,
    upload_parts,
};

fn sized(name: &str, owner: DocumentOwner, size_bytes: u64, now: Timestamp) -> DocumentRecord {
    DocumentRecord {
        size_bytes,
        ..document(name, owner, now)
    }
}

fn with_terms(
    record: &DocumentRecord,
    quota: DocumentQuota,
    expires_at: Timestamp,
    now: Timestamp,
) -> UploadSubmission {
    UploadSubmission {
        session: Some(SessionTerms { quota, expires_at }),
        ..upload(record, Vec::new(), now)
    }
}

/// A session's documents — pending ones included — count against its quota:
/// past the document count or the bytes, the upload is refused with the
/// limit it broke, and nothing is written or counted. A failed record
/// uploaded again replaces itself rather than counting twice; other
/// sessions and shared documents are not affected.
pub async fn upload_quotas_count_what_a_session_holds<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let owner = DocumentOwner::Session(alice.clone());
    let quota = DocumentQuota {
        max_documents: 2,
        max_bytes: 1000,
    };
    let ends = at(SESSION_LIFETIME_SECS * 1000);
    let first = sized("one.md", owner.clone(), 400, at(0));
    let second = sized("two.md", owner.clone(), 400, at(1));
    submit_upload(&store, with_terms(&first, quota, ends, at(0))).await;
    submit_upload(&store, with_terms(&second, quota, ends, at(1))).await;

    let rule = check(&unique_key("write:ip"), 5, 60_000);
    let third = sized("three.md", owner.clone(), 1, at(2));
    let sub = UploadSubmission {
        rate_checks: vec![rule.clone()],
        ..with_terms(&third, quota, ends, at(2))
    };
    let refused_job = sub.job.id.clone();
    match store.submit_upload(sub).await.expect("submit_upload") {
        UploadOutcome::QuotaExceeded(QuotaExceeded::Documents { limit }) => assert_eq!(limit, 2),
        other => panic!("expected the document quota, got {other:?}"),
    }
    assert_eq!(get_document(&store, &third.id).await, None);
    assert_eq!(store.get_job(&refused_job).await.expect("get_job"), None);
    assert_eq!(store.queue_stats(at(3)).await.expect("stats").queued, 2);
    assert_eq!(
        hit(&store, std::slice::from_ref(&rule), at(3))
            .await
            .remaining,
        4,
        "a refused upload is not counted"
    );
    let mut held = store.owned_documents(&alice).await.expect("owned");
    held.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(held, vec![first.clone(), second.clone()]);

    // Bytes: 800 held, 201 more is one too many; 200 fits.
    let roomy = DocumentQuota {
        max_documents: 10,
        ..quota
    };
    let big = sized("big.md", owner.clone(), 201, at(4));
    match store
        .submit_upload(with_terms(&big, roomy, ends, at(4)))
        .await
        .expect("submit_upload")
    {
        UploadOutcome::QuotaExceeded(QuotaExceeded::Bytes { limit, held }) => {
            assert_eq!((limit, held), (1000, 800))
        }
        other => panic!("expected the byte quota, got {other:?}"),
    }
    assert_eq!(get_document(&store, &big.id).await, None);

    // A failed document uploaded again replaces itself.
    store
        .upsert_document(&DocumentRecord {
            status: DocumentStatus::Failed,
            error: Some("unreadable".to_owned()),
            ..second.clone()
        })
        .await
        .expect("upsert_document");
    let retry = DocumentRecord {
        updated_at: at(5),
        ..second.clone()
    };
    submit_upload(&store, with_terms(&retry, quota, ends, at(5))).await;
    assert_eq!(get_document(&store, &second.id).await, Some(retry));

    // Another session, and a shared upload, have their own room.
    let bob = DocumentOwner::Session(session_id());
    let theirs = sized("bob.md", bob, 1000, at(6));
    submit_upload(&store, with_terms(&theirs, quota, ends, at(6))).await;
    let shared = sized("shared.md", DocumentOwner::Shared, 5000, at(7));
    submit_upload(&store, upload(&shared, Vec::new(), at(7))).await;
    assert_eq!(store.owned_documents(&alice).await.expect("owned").len(), 2);
}

/// The documents of a session that ended (plus the grace period) are
/// removed — catalog entries, upload parts, and a `delete` job queued for
/// each so the drain takes their chunks out of the index — and the session
/// is forgotten. Live sessions and shared documents are untouched; a second
/// run finds nothing.
pub async fn documents_of_ended_sessions_are_cleaned_up<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let quota = DocumentQuota {
        max_documents: 10,
        max_bytes: 10_000_000,
    };
    let (ended, live) = (session_id(), session_id());
    let ended_at = at(1_000);
    let live_until = at(SESSION_LIFETIME_SECS * 1000);
    let mut gone = Vec::new();
    for (owner, until, n) in [(&ended, ended_at, 2), (&live, live_until, 1)] {
        for i in 0..n {
            let record = sized(
                "doc.md",
                DocumentOwner::Session(owner.clone()),
                10 + i,
                at(0),
            );
            put_part(&store, &record.id, 0, b"bytes").await;
            submit_upload(&store, with_terms(&record, quota, until, at(0))).await;
            if owner == &ended {
                gone.push(record);
            }
        }
    }
    let shared = sized("shared.md", DocumentOwner::Shared, 7, at(0));
    submit_upload(&store, upload(&shared, Vec::new(), at(0))).await;
    assert_eq!(store.queue_stats(at(1)).await.expect("stats").queued, 4);

    // Ends are recorded: listed only once they are past.
    let expired = |before| {
        let store = &store;
        async move {
            store
                .expired_document_owners(before, 10)
                .await
                .expect("expired_document_owners")
        }
    };
    assert!(expired(ended_at).await.is_empty());
    assert_eq!(expired(at(1_001)).await, vec![ended.clone()]);
    assert!(
        !store.forget_document_owner(&ended).await.expect("forget"),
        "an owner with documents is not forgotten"
    );

    // Within the grace period nothing goes.
    let dyn_store: &dyn Store = &store;
    let mut n = 0u8;
    let mut ids = || {
        n += 1;
        job_id()
    };
    let report = remove_expired_sessions_documents(
        dyn_store,
        ended_at.plus_millis(SESSION_END_GRACE_MS),
        100,
        &mut ids,
    )
    .await
    .expect("clean-up");
    assert_eq!(report, CleanupReport::default());

    let now = ended_at.plus_millis(SESSION_END_GRACE_MS + 1);
    let report = remove_expired_sessions_documents(dyn_store, now, 100, &mut ids)
        .await
        .expect("clean-up");
    assert_eq!(
        report,
        CleanupReport {
            sessions: 1,
            documents: 2,
            bytes: 21,
        }
    );
    for record in &gone {
        assert_eq!(get_document(&store, &record.id).await, None);
        assert_eq!(
            get_upload(&store, &record.id, upload_parts(record.size_bytes)).await,
            None,
            "its upload parts are gone"
        );
    }
    assert!(
        store
            .owned_documents(&ended)
            .await
            .expect("owned")
            .is_empty()
    );
    assert_eq!(store.owned_documents(&live).await.expect("owned").len(), 1);
    assert!(get_document(&store, &shared.id).await.is_some());
    assert!(expired(now).await.is_empty(), "the session is forgotten");

    // One delete job per removed document, for the drain.
    let claimed = claim(&store, 10, now).await;
    let mut deleted: Vec<_> = claimed
        .iter()
        .filter_map(|c| match &c.job.payload {
            JobPayload::DeleteDocument { document_id } => Some(document_id.clone()),
            _ => None,
        })
        .collect();
    deleted.sort();
    let mut expected: Vec<_> = gone.iter().map(|r| r.id.clone()).collect();
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(claimed.len(), 6, "four ingests and two deletes");

    let again = remove_expired_sessions_documents(dyn_store, now, 100, &mut ids)
        .await
        .expect("clean-up");
    assert_eq!(again, CleanupReport::default());
}
