//! The Chroma knowledge index against a real Chroma server (chromadb 1.x),
//! started per test on a free port with its data in a temporary folder.
//!
//! The server binary is `$CHROMA_BIN`, else `chroma` on the PATH, else
//! `.venv-chroma/bin/chroma` in the workspace root (`scripts/test` installs
//! it there). Without one the tests fail: they never skip silently.

#![cfg(feature = "chroma")]

use std::net::TcpListener;

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_fake_flow::embedding;
use flowchat_knowledge::testing::ChromaServer;
use flowchat_knowledge::{
    ChromaIndex, ChromaSettings, Chunk, ChunkEmbeddings, IndexedDocument, KnowledgeIndex, Passage,
    SearchQuery,
};

const MODEL: &str = "fake-embedding";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The test server as this file uses it: a namespace's settings and index.
trait ChromaForTests {
    fn settings(&self, namespace: &str) -> ChromaSettings;
    async fn index(&self, namespace: &str) -> ChromaIndex;
}

impl ChromaForTests for ChromaServer {
    fn settings(&self, namespace: &str) -> ChromaSettings {
        ChromaSettings::new(self.url(), namespace)
    }

    async fn index(&self, namespace: &str) -> ChromaIndex {
        ChromaIndex::connect(self.settings(namespace))
            .await
            .expect("connect to the test Chroma server")
    }
}

fn chunk(position: u32, text: &str, page: Option<u32>, heading: Option<&str>) -> Chunk {
    Chunk {
        position,
        text: text.to_owned(),
        heading: heading.map(str::to_owned),
        page,
        token_count: text.split_whitespace().count() as u32,
    }
}

/// A document with the fake model's vectors for its chunks.
fn document(key: &str, name: &str, owner: DocumentOwner, chunks: Vec<Chunk>) -> IndexedDocument {
    let vectors = chunks.iter().map(|c| embedding(&c.text)).collect();
    IndexedDocument {
        id: DocumentId::for_content(key.as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: chunks.iter().map(|c| c.text.len() as u64).sum(),
        chunks,
        embeddings: Some(ChunkEmbeddings {
            model: MODEL.to_owned(),
            vectors,
        }),
    }
}

fn texts(chunks: &[&str]) -> Vec<Chunk> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, t)| chunk(i as u32, t, None, None))
        .collect()
}

fn session(raw: &str) -> SessionId {
    SessionId::from_trusted(raw)
}

async fn search(
    index: &ChromaIndex,
    text: &str,
    viewer: Option<&SessionId>,
    top_k: usize,
) -> Vec<Passage> {
    let vector = embedding(text);
    index
        .search(SearchQuery {
            text,
            viewer,
            top_k,
            embedding: Some(&vector),
        })
        .await
        .expect("search")
}

#[tokio::test]
async fn search_finds_the_closest_chunk_with_its_citation() {
    let server = ChromaServer::start().await;
    let index = server.index("cite").await;
    assert_eq!(index.collection_name(), "flowchat-cite");
    assert_eq!(index.embedding_model().await.unwrap(), None);
    assert!(
        search(&index, "install linux", None, 3).await.is_empty(),
        "an empty index finds nothing"
    );

    let manual = document(
        "manual",
        "guide/manual.pdf",
        DocumentOwner::Shared,
        vec![
            chunk(
                0,
                "Welcome to the product manual and its overview.",
                Some(1),
                None,
            ),
            chunk(
                1,
                "To install on Linux run the installer script as root.",
                Some(4),
                Some("Guide > Install > Linux"),
            ),
            chunk(
                2,
                "Billing questions go to the finance team by email.",
                Some(9),
                Some("Guide > Billing"),
            ),
        ],
    );
    index.replace_document(manual.clone()).await.unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 3);
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some(MODEL)
    );

    let hits = search(&index, "how do I install on Linux", None, 2).await;
    assert_eq!(hits.len(), 2);
    let best = &hits[0];
    assert_eq!(best.document_id, manual.id);
    assert_eq!(best.source, "guide/manual.pdf");
    assert_eq!(best.chunk, 1);
    assert_eq!(best.page, Some(4));
    assert_eq!(best.heading.as_deref(), Some("Guide > Install > Linux"));
    assert_eq!(best.text, manual.chunks[1].text);
    assert!(
        best.score > 0.0 && best.score <= 1.0 + 1e-6,
        "{}",
        best.score
    );
    assert!(hits[1].score <= best.score && hits[1].score > 0.0);

    // The chunk without a heading comes back without one.
    let hits = search(&index, "welcome manual overview", None, 1).await;
    assert_eq!(
        (hits[0].chunk, hits[0].page, hits[0].heading.clone()),
        (0, Some(1), None)
    );

    // No searchable words, no question vector, or top_k 0: nothing.
    assert!(search(&index, "what is it?", None, 3).await.is_empty());
    assert!(search(&index, "install linux", None, 0).await.is_empty());
    let no_vector = index
        .search(SearchQuery {
            text: "install linux",
            viewer: None,
            top_k: 3,
            embedding: None,
        })
        .await
        .unwrap();
    assert!(no_vector.is_empty());
}

#[tokio::test]
async fn identical_texts_collapse_into_one_passage() {
    let server = ChromaServer::start().await;
    let index = server.index("dupes").await;
    let text = "Reset the router by holding the button for ten seconds.";
    for key in ["copy-a", "copy-b"] {
        let doc = document(
            key,
            &format!("{key}.md"),
            DocumentOwner::Shared,
            texts(&[text]),
        );
        index.replace_document(doc).await.unwrap();
    }
    let other = document(
        "other",
        "other.md",
        DocumentOwner::Shared,
        texts(&["The router needs a firmware update every year."]),
    );
    index.replace_document(other).await.unwrap();
    let hits = search(&index, "reset the router button", None, 5).await;
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].text, text);
}

#[tokio::test]
async fn sessions_see_shared_documents_and_their_own_only() {
    let server = ChromaServer::start().await;
    let index = server.index("owners").await;
    let alice = session("sess_alice");
    let bob = session("sess_bob");
    let word = "quarterly revenue report figures";
    let shared = document(
        "shared",
        "handbook.md",
        DocumentOwner::Shared,
        texts(&["Shared handbook: quarterly revenue report figures are public."]),
    );
    let private_a = document(
        "alice",
        "alice.txt",
        DocumentOwner::Session(alice.clone()),
        texts(&["Alice private notes: quarterly revenue report figures draft."]),
    );
    let private_b = document(
        "bob",
        "bob.txt",
        DocumentOwner::Session(bob.clone()),
        texts(&["Bob private notes: quarterly revenue report figures summary."]),
    );
    for doc in [&shared, &private_a, &private_b] {
        index.replace_document(doc.clone()).await.unwrap();
    }

    let ids = |hits: Vec<Passage>| {
        let mut ids: Vec<DocumentId> = hits.into_iter().map(|p| p.document_id).collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    };
    let sorted = |mut v: Vec<DocumentId>| {
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v
    };
    assert_eq!(
        ids(search(&index, word, Some(&alice), 10).await),
        sorted(vec![shared.id.clone(), private_a.id.clone()])
    );
    assert_eq!(
        ids(search(&index, word, Some(&bob), 10).await),
        sorted(vec![shared.id.clone(), private_b.id.clone()])
    );
    assert_eq!(
        ids(search(&index, word, None, 10).await),
        vec![shared.id.clone()]
    );
    let stranger = session("sess_carol");
    assert_eq!(
        ids(search(&index, word, Some(&stranger), 10).await),
        vec![shared.id.clone()]
    );
}

#[tokio::test]
async fn replacing_a_document_removes_its_old_chunks() {
    let server = ChromaServer::start().await;
    let index = server.index("replace").await;
    let first = document(
        "doc",
        "notes.md",
        DocumentOwner::Shared,
        texts(&[
            "Old chunk about penguins in Antarctica.",
            "Old chunk about glaciers melting.",
            "Old chunk about icebreaker ships.",
            "Old chunk about polar night.",
        ]),
    );
    index.replace_document(first.clone()).await.unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 4);

    // Same id, fewer chunks, and now private.
    let owner = session("sess_owner");
    let mut second = document(
        "doc",
        "notes-v2.md",
        DocumentOwner::Session(owner.clone()),
        texts(&[
            "New chunk about desert cacti.",
            "New chunk about sand dunes.",
        ]),
    );
    second.id = first.id.clone();
    index.replace_document(second.clone()).await.unwrap();

    assert_eq!(index.chunk_count().await.unwrap(), 2);
    assert_eq!(index.chunks(&first.id).await.unwrap(), second.chunks);
    let hits = search(&index, "penguins antarctica glaciers", Some(&owner), 10).await;
    assert!(
        hits.iter().all(|p| p.text.starts_with("New chunk")),
        "{hits:#?}"
    );
    assert!(hits.iter().all(|p| p.source == "notes-v2.md"));
    assert!(
        search(&index, "desert cacti", None, 10).await.is_empty(),
        "the document moved to a private owner"
    );
    assert!(
        index
            .documents(&DocumentOwner::Shared)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        index
            .documents(&DocumentOwner::Session(owner))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn removing_a_document_drops_its_chunks() {
    let server = ChromaServer::start().await;
    let index = server.index("remove").await;
    let keep = document(
        "keep",
        "keep.md",
        DocumentOwner::Shared,
        texts(&["Kept text about apples."]),
    );
    let gone = document(
        "gone",
        "gone.md",
        DocumentOwner::Shared,
        texts(&["Removed text about oranges.", "More about oranges."]),
    );
    index.replace_document(keep.clone()).await.unwrap();
    index.replace_document(gone.clone()).await.unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 3);

    assert!(index.remove_document(&gone.id).await.unwrap());
    assert!(!index.remove_document(&gone.id).await.unwrap());
    assert_eq!(index.chunk_count().await.unwrap(), 1);
    assert!(index.chunks(&gone.id).await.unwrap().is_empty());
    let hits = search(&index, "oranges", None, 5).await;
    assert!(hits.iter().all(|p| p.document_id == keep.id), "{hits:#?}");
    let listed = index.documents(&DocumentOwner::Shared).await.unwrap();
    assert_eq!(listed.iter().map(|d| &d.id).collect::<Vec<_>>(), [&keep.id]);
}

#[tokio::test]
async fn documents_are_listed_per_owner_by_name() {
    let server = ChromaServer::start().await;
    let index = server.index("listing").await;
    let owner = session("sess_lister");
    let b = document(
        "b",
        "b.md",
        DocumentOwner::Shared,
        texts(&["Bee one.", "Bee two.", "Bee three."]),
    );
    let a = document("a", "a.md", DocumentOwner::Shared, texts(&["Ay one."]));
    let mine = document(
        "mine",
        "mine.txt",
        DocumentOwner::Session(owner.clone()),
        texts(&["My own.", "Still mine."]),
    );
    for doc in [&b, &a, &mine] {
        index.replace_document(doc.clone()).await.unwrap();
    }

    let shared = index.documents(&DocumentOwner::Shared).await.unwrap();
    let summary: Vec<(&str, u32, u64)> = shared
        .iter()
        .map(|d| (d.name.as_str(), d.chunks, d.size_bytes))
        .collect();
    assert_eq!(
        summary,
        [("a.md", 1, a.size_bytes), ("b.md", 3, b.size_bytes)]
    );
    assert!(shared.iter().all(|d| d.owner == DocumentOwner::Shared));
    assert_eq!(shared[0].id, a.id);

    let own = index
        .documents(&DocumentOwner::Session(owner.clone()))
        .await
        .unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].id, mine.id);
    assert_eq!(own[0].owner, DocumentOwner::Session(owner));
    assert_eq!(own[0].chunks, 2);
    assert!(
        index
            .documents(&DocumentOwner::Session(session("sess_nobody")))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(index.chunk_count().await.unwrap(), 6);
}

/// More chunks than one write batch (100) and one read page (500).
///
/// The vectors are pseudo-random, not the fake model's: Chroma's HNSW index
/// finds near neighbours poorly among hundreds of the fake model's sparse
/// vectors (many exactly tied distances), even the exact match, which real
/// (dense) embeddings do not suffer from.
#[tokio::test]
async fn large_documents_come_back_whole_and_in_order() {
    let server = ChromaServer::start().await;
    let index = server.index("large").await;
    let n = 620u32;
    let chunks: Vec<Chunk> = (0..n)
        .map(|i| {
            chunk(
                i,
                &format!(
                    "Paragraph {i} of the long report: topic{i} and theme{}.",
                    i * 7
                ),
                Some(i / 10 + 1),
                (i % 3 == 0).then_some("Report > Part"),
            )
        })
        .collect();
    let vectors: Vec<Vec<f32>> = (0..n).map(pseudo_random_vector).collect();
    let doc = IndexedDocument {
        id: DocumentId::for_content(b"long report"),
        name: "report.pdf".into(),
        owner: DocumentOwner::Shared,
        size_bytes: 123_456,
        chunks: chunks.clone(),
        embeddings: Some(ChunkEmbeddings {
            model: MODEL.into(),
            vectors: vectors.clone(),
        }),
    };
    index.replace_document(doc.clone()).await.unwrap();

    assert_eq!(index.chunk_count().await.unwrap(), u64::from(n));
    assert_eq!(index.chunks(&doc.id).await.unwrap(), chunks);
    let listed = index.documents(&DocumentOwner::Shared).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].chunks, listed[0].size_bytes), (n, 123_456));
    assert!(
        index
            .chunks(&DocumentId::for_content(b"unknown"))
            .await
            .unwrap()
            .is_empty()
    );

    // Chunks of the first and the last batch are found.
    for wanted in [3u32, 611] {
        let hits = index
            .search(SearchQuery {
                text: "paragraph",
                viewer: None,
                top_k: 3,
                embedding: Some(&vectors[wanted as usize]),
            })
            .await
            .unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].chunk, wanted, "{hits:#?}");
        assert_eq!(hits[0].page, Some(wanted / 10 + 1));
    }
}

/// 32 floats in [-1, 1) from `seed` (xorshift64*), the same on every run.
fn pseudo_random_vector(seed: u32) -> Vec<f32> {
    let mut state = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..32)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[tokio::test]
async fn documents_without_embeddings_are_refused_clearly() {
    let server = ChromaServer::start().await;
    let index = server.index("novectors").await;
    let mut doc = document(
        "plain",
        "plain.md",
        DocumentOwner::Shared,
        texts(&["Some text."]),
    );
    doc.embeddings = None;
    let err = index.replace_document(doc).await.unwrap_err().to_string();
    assert!(
        err.contains("an embeddings provider is required for the Chroma index"),
        "{err}"
    );

    let mut doc = document(
        "short",
        "short.md",
        DocumentOwner::Shared,
        texts(&["One.", "Two."]),
    );
    doc.embeddings.as_mut().unwrap().vectors.pop();
    let err = index.replace_document(doc).await.unwrap_err().to_string();
    assert!(err.contains("1 vectors for 2 chunks"), "{err}");
    assert_eq!(index.chunk_count().await.unwrap(), 0);
}

#[tokio::test]
async fn namespaces_use_separate_collections() {
    let server = ChromaServer::start().await;
    let blue = server.index("blue").await;
    let green = server.index("green").await;
    assert_eq!(blue.collection_name(), "flowchat-blue");
    assert_eq!(green.collection_name(), "flowchat-green");
    assert_ne!(blue.collection_id(), green.collection_id());

    let doc = document(
        "blue-doc",
        "blue.md",
        DocumentOwner::Shared,
        texts(&["Blue deployment secret plans."]),
    );
    blue.replace_document(doc.clone()).await.unwrap();
    assert_eq!(blue.chunk_count().await.unwrap(), 1);
    assert_eq!(green.chunk_count().await.unwrap(), 0);
    assert!(search(&green, "secret plans", None, 5).await.is_empty());
    assert!(
        green
            .documents(&DocumentOwner::Shared)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(search(&blue, "secret plans", None, 5).await.len(), 1);

    // Connecting again finds the same collection, with its model.
    let again = server.index("blue").await;
    assert_eq!(again.collection_id(), blue.collection_id());
    assert_eq!(
        again.embedding_model().await.unwrap().as_deref(),
        Some(MODEL)
    );

    // Another database is created on demand.
    let mut settings = server.settings("blue");
    settings.database = "other_db".into();
    let elsewhere = ChromaIndex::connect(settings).await.unwrap();
    assert_eq!(elsewhere.chunk_count().await.unwrap(), 0);
}

#[tokio::test]
async fn switching_models_re_embeds_document_by_document() {
    let server = ChromaServer::start().await;
    let index = server.index("models").await;
    let first = document(
        "first",
        "first.md",
        DocumentOwner::Shared,
        texts(&["Volcanoes erupt lava.", "Lava cools into basalt."]),
    );
    let second = document(
        "second",
        "second.md",
        DocumentOwner::Shared,
        texts(&["Volcanoes also emit ash clouds."]),
    );
    index.replace_document(first.clone()).await.unwrap();
    index.replace_document(second.clone()).await.unwrap();
    assert!(
        index
            .documents_needing_embeddings(MODEL, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut needing = index
        .documents_needing_embeddings("model-2", 10)
        .await
        .unwrap();
    needing.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(needing, both);
    assert_eq!(
        index
            .documents_needing_embeddings("model-2", 1)
            .await
            .unwrap()
            .len(),
        1
    );

    // Re-embed the first document with "model-2" (same dimension).
    let chunks = index.chunks(&first.id).await.unwrap();
    assert_eq!(chunks, first.chunks);
    let vectors = chunks
        .iter()
        .map(|c| embedding(&format!("v2 {}", c.text)))
        .collect();
    index
        .set_embeddings(
            &first.id,
            ChunkEmbeddings {
                model: "model-2".into(),
                vectors,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some("model-2")
    );
    assert_eq!(
        index
            .documents_needing_embeddings("model-2", 10)
            .await
            .unwrap(),
        std::slice::from_ref(&second.id)
    );
    // Only vectors of the current model are searched.
    let hits = search(&index, "v2 volcanoes lava ash", None, 10).await;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|p| p.document_id == first.id), "{hits:#?}");
    // Texts and citations are untouched by re-embedding.
    assert_eq!(index.chunks(&first.id).await.unwrap(), first.chunks);

    // A model of another dimension cannot share the collection.
    let err = index
        .set_embeddings(
            &second.id,
            ChunkEmbeddings {
                model: "small-model".into(),
                vectors: vec![vec![0.5, 0.5]],
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CHROMA_COLLECTION"), "{err}");
    assert!(err.contains("1536"), "{err}");
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some("model-2")
    );
}

#[tokio::test]
async fn an_unreachable_server_is_reported_clearly() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut settings = ChromaSettings::new(&url, "dev");
    settings.timeout_ms = 2_000;
    let err = ChromaIndex::connect(settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("cannot reach Chroma at {url}")),
        "{err}"
    );
}
