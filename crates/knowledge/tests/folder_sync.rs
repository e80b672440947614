//! Folder sync against a real folder and a real SQLite index.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowchat_domain::model::{DocumentOwner, DocumentStatus};
use flowchat_domain::{DocumentId, Timestamp};
use flowchat_knowledge::{
    Chunk, ChunkEmbeddings, ChunkSettings, FolderSync, IndexedDocument, IndexedSummary,
    KnowledgeError, KnowledgeIndex, Passage, SearchQuery, SqliteIndex, sync_shared_folder,
};

/// Counts the writes reaching the real index, to prove a no-change run writes nothing.
struct Counting {
    inner: SqliteIndex,
    writes: AtomicUsize,
}

#[async_trait::async_trait]
impl KnowledgeIndex for Counting {
    async fn replace_document(&self, doc: IndexedDocument) -> Result<(), KnowledgeError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.replace_document(doc).await
    }
    async fn remove_document(&self, id: &DocumentId) -> Result<bool, KnowledgeError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.remove_document(id).await
    }
    async fn documents(
        &self,
        owner: &DocumentOwner,
    ) -> Result<Vec<IndexedSummary>, KnowledgeError> {
        self.inner.documents(owner).await
    }
    async fn search(&self, query: SearchQuery<'_>) -> Result<Vec<Passage>, KnowledgeError> {
        self.inner.search(query).await
    }
    async fn chunk_count(&self) -> Result<u64, KnowledgeError> {
        self.inner.chunk_count().await
    }
    async fn embedding_model(&self) -> Result<Option<String>, KnowledgeError> {
        self.inner.embedding_model().await
    }
    async fn documents_needing_embeddings(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DocumentId>, KnowledgeError> {
        self.inner.documents_needing_embeddings(model, limit).await
    }
    async fn chunks(&self, id: &DocumentId) -> Result<Vec<Chunk>, KnowledgeError> {
        self.inner.chunks(id).await
    }
    async fn set_embeddings(
        &self,
        id: &DocumentId,
        embeddings: ChunkEmbeddings,
    ) -> Result<(), KnowledgeError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.set_embeddings(id, embeddings).await
    }
}

fn write(root: &Path, name: &str, bytes: &[u8]) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Counting) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("docs");
    std::fs::create_dir_all(&root).unwrap();
    let index = Counting {
        inner: SqliteIndex::open(dir.path().join("index.sqlite")).unwrap(),
        writes: AtomicUsize::new(0),
    };
    (dir, root, index)
}

async fn run(index: &Counting, root: &Path, at: i64) -> FolderSync {
    sync_shared_folder(
        index,
        root,
        &ChunkSettings::default(),
        Timestamp::from_millis(at),
    )
    .await
    .unwrap()
}

async fn names(index: &Counting) -> Vec<String> {
    index
        .documents(&DocumentOwner::Shared)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

#[tokio::test]
async fn added_unchanged_updated_removed_across_runs() {
    let (_dir, root, index) = setup();
    const GUIDE: &[u8] = b"# Guide\n\nInstall the VPN client first.\n";
    write(&root, "guide.md", GUIDE);
    write(&root, "notes.TXT", b"Parking is behind building B.\r\n");
    write(
        &root,
        "team/onboarding.markdown",
        b"# Onboarding\n\nMeet your buddy on day one.\n",
    );
    write(&root, ".hidden.md", b"hidden file");
    write(&root, ".git/config.md", b"hidden folder");
    write(&root, "logo.png", b"\x89PNG not a document");
    write(&root, "broken.txt", &[0xff, 0xfe, 0x00, 0x41]);

    // Run 1: everything is new.
    let first = run(&index, &root, 1_000).await;
    assert_eq!(first.report.added, 3, "{first:#?}");
    assert_eq!(
        (
            first.report.updated,
            first.report.unchanged,
            first.report.removed
        ),
        (0, 0, 0)
    );
    assert_eq!(first.report.failed.len(), 1);
    assert_eq!(first.report.failed[0].source, "broken.txt");
    assert_eq!(
        first.report.failed[0].error,
        "broken.txt is not valid UTF-8 text"
    );
    assert!(first.removals.is_empty());
    assert_eq!(
        names(&index).await,
        ["guide.md", "notes.TXT", "team/onboarding.markdown"]
    );
    assert_eq!(first.upserts.len(), 4);
    let failed = first
        .upserts
        .iter()
        .find(|r| r.name == "broken.txt")
        .unwrap();
    assert_eq!(failed.status, DocumentStatus::Failed);
    assert_eq!(
        failed.id,
        DocumentId::for_content(&[0xff, 0xfe, 0x00, 0x41])
    );
    assert!(failed.error.as_deref().unwrap().contains("UTF-8"));
    let guide = first.upserts.iter().find(|r| r.name == "guide.md").unwrap();
    assert_eq!(guide.status, DocumentStatus::Indexed);
    assert_eq!(guide.owner, DocumentOwner::Shared);
    assert_eq!(guide.chunks, 1);
    assert_eq!(guide.size_bytes, GUIDE.len() as u64);
    assert_eq!(guide.id, DocumentId::for_content(GUIDE));
    assert_eq!(guide.updated_at, Timestamp::from_millis(1_000));
    assert_eq!(first.present.len(), 4);
    let writes_after_first = index.writes.load(Ordering::SeqCst);
    assert_eq!(writes_after_first, 3);

    // Run 2: nothing changed on disk, so nothing is written to the index.
    let second = run(&index, &root, 2_000).await;
    assert_eq!(second.report.unchanged, 3, "{second:#?}");
    assert_eq!(
        (
            second.report.added,
            second.report.updated,
            second.report.removed
        ),
        (0, 0, 0)
    );
    assert_eq!(
        second.report.failed.len(),
        1,
        "failures are reported every run"
    );
    assert!(
        second
            .upserts
            .iter()
            .all(|r| r.status == DocumentStatus::Failed)
    );
    assert!(second.removals.is_empty());
    assert_eq!(index.writes.load(Ordering::SeqCst), writes_after_first);

    // Run 3: one file edited, one deleted, one fixed, one new.
    let old_guide = guide.id.clone();
    let onboarding = first
        .upserts
        .iter()
        .find(|r| r.name == "team/onboarding.markdown")
        .unwrap()
        .id
        .clone();
    write(
        &root,
        "guide.md",
        b"# Guide\n\nInstall the zero trust agent instead.\n",
    );
    std::fs::remove_file(root.join("team/onboarding.markdown")).unwrap();
    write(&root, "broken.txt", b"Now it is text about printers.");
    write(&root, "faq/new.md", b"# FAQ\n\nPrinters are on floor 2.\n");
    let third = run(&index, &root, 3_000).await;
    assert_eq!(third.report.updated, 1, "{third:#?}");
    assert_eq!(third.report.added, 2);
    assert_eq!(third.report.unchanged, 1);
    assert_eq!(third.report.removed, 1);
    assert!(third.report.failed.is_empty());
    let mut removals = third.removals.clone();
    removals.sort();
    let mut expected = vec![old_guide, onboarding];
    expected.sort();
    assert_eq!(removals, expected, "old guide version and the deleted file");
    assert_eq!(
        names(&index).await,
        ["broken.txt", "faq/new.md", "guide.md", "notes.TXT"]
    );
    let hits = index
        .search(SearchQuery {
            text: "install",
            viewer: None,
            top_k: 5,
            embedding: None,
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].text.contains("zero trust"));
    assert!(
        index
            .search(SearchQuery {
                text: "buddy",
                viewer: None,
                top_k: 5,
                embedding: None,
            })
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn identical_files_become_one_document_named_by_the_first_path() {
    let (_dir, root, index) = setup();
    write(&root, "b/copy.md", b"Same words in two files.");
    write(&root, "a/original.md", b"Same words in two files.");
    let sync = run(&index, &root, 1).await;
    assert_eq!(sync.report.added, 1);
    assert_eq!(sync.upserts.len(), 1);
    assert_eq!(sync.present.len(), 1);
    assert_eq!(names(&index).await, ["a/original.md"]);

    // Deleting the first copy renames the document to the remaining one.
    std::fs::remove_file(root.join("a/original.md")).unwrap();
    let sync = run(&index, &root, 2).await;
    assert_eq!(sync.report.updated, 1, "{sync:#?}");
    assert_eq!(sync.report.removed, 0);
    assert!(sync.removals.is_empty());
    assert_eq!(names(&index).await, ["b/copy.md"]);
}

#[tokio::test]
async fn missing_folder_leaves_the_index_alone() {
    let (_dir, root, index) = setup();
    write(&root, "a.md", b"keep me");
    run(&index, &root, 1).await;
    std::fs::remove_dir_all(&root).unwrap();
    let sync = run(&index, &root, 2).await;
    assert_eq!(sync.report, Default::default());
    assert!(sync.removals.is_empty() && sync.upserts.is_empty());
    assert_eq!(sync.present.len(), 1);
    assert_eq!(names(&index).await, ["a.md"]);
}

#[tokio::test]
async fn emptied_folder_removes_everything() {
    let (_dir, root, index) = setup();
    write(&root, "a.md", b"first");
    write(&root, "b.md", b"second");
    run(&index, &root, 1).await;
    std::fs::remove_file(root.join("a.md")).unwrap();
    std::fs::remove_file(root.join("b.md")).unwrap();
    let sync = run(&index, &root, 2).await;
    assert_eq!(sync.report.removed, 2);
    assert_eq!(sync.removals.len(), 2);
    assert_eq!(index.chunk_count().await.unwrap(), 0);
}
