//! The document catalog: visibility by owner, what a record keeps, and
//! deletion with its job.

use flowchat_domain::DocumentId;
use flowchat_domain::model::{
    DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, JobKind, JobPayload, JobStatus,
};

use super::Harness;
use super::support::*;
use crate::{QueueStats, Store};

/// The catalog shows shared documents to everyone and a session's uploads
/// only to that session, ordered by name.
pub async fn documents_are_visible_to_everyone_when_shared_else_to_their_owner<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let record = |name: &str, owner: DocumentOwner| DocumentRecord {
        id: DocumentId::for_content(format!("{name} {}", owner.as_key()).as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: 1_234,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Folder,
        error: None,
        updated_at: at(0),
    };
    let zeta = record("zeta.md", DocumentOwner::Shared);
    let alpha = record("alpha.pdf", DocumentOwner::Shared);
    let mine = record("mine.txt", DocumentOwner::Session(alice.clone()));
    let theirs = record("theirs.txt", DocumentOwner::Session(bob.clone()));
    for doc in [&zeta, &alpha, &mine, &theirs] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    let names = |docs: Vec<DocumentRecord>| docs.into_iter().map(|d| d.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_documents(None).await.expect("list")),
        vec!["alpha.pdf", "zeta.md"]
    );
    assert_eq!(
        names(store.list_documents(Some(&alice)).await.expect("list")),
        vec!["alpha.pdf", "mine.txt", "zeta.md"]
    );
    assert_eq!(
        names(store.list_documents(Some(&bob)).await.expect("list")),
        vec!["alpha.pdf", "theirs.txt", "zeta.md"]
    );

    let indexed = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 12,
        size_bytes: u64::from(u32::MAX) + 5,
        error: Some("2 pages without text".to_owned()),
        updated_at: at(50),
        ..mine.clone()
    };
    store
        .upsert_document(&indexed)
        .await
        .expect("upsert_document");
    let alices = store.list_documents(Some(&alice)).await.expect("list");
    assert_eq!(alices.len(), 3, "an upsert replaces, never duplicates");
    assert_eq!(alices[1], indexed);
    assert_eq!(alices[0], alpha);

    assert!(store.remove_document(&mine.id).await.expect("remove"));
    assert!(
        !store.remove_document(&mine.id).await.expect("remove"),
        "already removed"
    );
    assert_eq!(
        names(store.list_documents(Some(&alice)).await.expect("list")),
        vec!["alpha.pdf", "zeta.md"]
    );
}

/// A PDF's page count and a document's origin are stored and read back with
/// its record and replaced by an upsert like any other field; formats
/// without pages have none.
pub async fn documents_keep_their_page_count_and_origin<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let pdf = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 40,
        pages: Some(12),
        origin: DocumentOrigin::Folder,
        ..document("handbook.pdf", DocumentOwner::Shared, at(0))
    };
    let notes = document("notes.md", DocumentOwner::Shared, at(0));
    for doc in [&pdf, &notes] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    assert_eq!(
        store.list_documents(None).await.expect("list"),
        vec![pdf.clone(), notes.clone()]
    );
    assert_eq!(get_document(&store, &pdf.id).await, Some(pdf.clone()));
    let notes_read = get_document(&store, &notes.id).await.expect("notes");
    assert_eq!(
        (notes_read.pages, notes_read.origin),
        (None, DocumentOrigin::Upload)
    );

    for (pages, origin) in [
        (Some(u32::MAX), DocumentOrigin::Folder),
        (Some(0), DocumentOrigin::Upload),
        (None, DocumentOrigin::Upload),
        (Some(1), DocumentOrigin::Folder),
    ] {
        let changed = DocumentRecord {
            pages,
            origin,
            updated_at: at(10),
            ..pdf.clone()
        };
        store
            .upsert_document(&changed)
            .await
            .expect("upsert_document");
        assert_eq!(get_document(&store, &pdf.id).await, Some(changed.clone()));
        let reader = h.second_handle(&store).await;
        assert_eq!(
            reader.list_documents(None).await.expect("list")[0],
            changed,
            "pages {pages:?}"
        );
    }
}

/// `get_document` finds one record by id, whoever owns it (the caller
/// checks ownership), and nothing for an unknown or removed id.
pub async fn get_document_reads_one_record<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    assert_eq!(
        get_document(&store, &DocumentId::for_content(&unique_bytes())).await,
        None
    );
    let shared = document("policy.pdf", DocumentOwner::Shared, at(0));
    let private = DocumentRecord {
        status: DocumentStatus::Failed,
        size_bytes: u64::from(u32::MAX) + 7,
        error: Some("no text in «scan.pdf» — OCR it first".to_owned()),
        pages: Some(3),
        updated_at: at(-5),
        ..document("scan.pdf", DocumentOwner::Session(alice.clone()), at(0))
    };
    for doc in [&shared, &private] {
        store.upsert_document(doc).await.expect("upsert_document");
    }
    assert_eq!(get_document(&store, &shared.id).await, Some(shared.clone()));
    let reader = h.second_handle(&store).await;
    assert_eq!(
        get_document(&reader, &private.id).await,
        Some(private.clone())
    );
    assert!(store.remove_document(&private.id).await.expect("remove"));
    assert_eq!(get_document(&store, &private.id).await, None);
    assert_eq!(get_document(&store, &shared.id).await, Some(shared));
}

/// Deleting a document removes its record (from every listing) and queues
/// the job that removes its chunks, claimable with its payload; deleting it
/// again queues nothing, and uploading it again is a new upload.
pub async fn delete_document_removes_the_record_and_queues_the_job<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let record = DocumentRecord {
        status: DocumentStatus::Indexed,
        chunks: 7,
        pages: Some(2),
        ..document("old.pdf", DocumentOwner::Session(alice.clone()), at(0))
    };
    store
        .upsert_document(&record)
        .await
        .expect("upsert_document");
    let delete = delete_job(&record.id, at(1));
    assert!(
        store
            .delete_document(&record.id, delete.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(get_document(&store, &record.id).await, None);
    assert!(
        store
            .list_documents(Some(&alice))
            .await
            .expect("list")
            .is_empty()
    );
    let queued = job(&store, &delete.id).await;
    assert_eq!(queued.kind, JobKind::Delete);
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.created_at, at(1));
    assert_eq!(store.queue_stats(at(2)).await.expect("stats").queued, 1);

    let claimed = claim_one(&store, at(3)).await;
    assert_eq!(claimed.job.id, delete.id);
    assert_eq!(claimed.job.kind, JobKind::Delete);
    assert_eq!(
        claimed.job.payload,
        JobPayload::DeleteDocument {
            document_id: record.id.clone()
        }
    );

    let again = delete_job(&record.id, at(4));
    assert!(
        !store
            .delete_document(&record.id, again.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(store.get_job(&again.id).await.expect("get_job"), None);
    let stats = store.queue_stats(at(5)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (0, 1));

    let pending = DocumentRecord {
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        updated_at: at(6),
        ..record.clone()
    };
    submit_upload(&store, upload(&pending, Vec::new(), at(6))).await;
    assert_eq!(get_document(&store, &record.id).await, Some(pending));
}

/// Deleting a document that is not in the catalog is `false` and queues nothing.
pub async fn deleting_an_unknown_document_queues_nothing<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let id = DocumentId::for_content(&unique_bytes());
    let delete = delete_job(&id, at(0));
    assert!(
        !store
            .delete_document(&id, delete.clone())
            .await
            .expect("delete_document")
    );
    assert_eq!(store.get_job(&delete.id).await.expect("get_job"), None);
    assert_eq!(
        store.queue_stats(at(1)).await.expect("stats"),
        QueueStats::default()
    );
}
