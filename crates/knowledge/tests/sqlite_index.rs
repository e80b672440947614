//! The SQLite index on a real file: replace, remove, owner filtering, ranking
//! and hostile queries.

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_knowledge::{
    Chunk, IndexedDocument, KnowledgeIndex, Passage, SearchQuery, SqliteIndex,
};

fn chunk(position: u32, heading: Option<&str>, text: &str) -> Chunk {
    Chunk {
        position,
        text: text.to_owned(),
        heading: heading.map(str::to_owned),
        page: None,
        token_count: text.split_whitespace().count() as u32,
    }
}

fn doc(name: &str, owner: DocumentOwner, chunks: &[&str]) -> IndexedDocument {
    IndexedDocument {
        id: DocumentId::for_content(format!("{name}:{}", chunks.join("|")).as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: chunks.iter().map(|c| c.len() as u64).sum(),
        chunks: chunks
            .iter()
            .enumerate()
            .map(|(i, t)| chunk(i as u32, None, t))
            .collect(),
        embeddings: None,
    }
}

fn session(n: u8) -> SessionId {
    SessionId::from_random([n; 16])
}

async fn search(index: &SqliteIndex, text: &str, viewer: Option<&SessionId>) -> Vec<Passage> {
    index
        .search(SearchQuery {
            text,
            viewer,
            top_k: 10,
            embedding: None,
        })
        .await
        .unwrap()
}

fn open() -> (tempfile::TempDir, SqliteIndex) {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteIndex::open(dir.path().join("nested/index.sqlite")).unwrap();
    (dir, index)
}

#[tokio::test]
async fn replace_search_and_remove() {
    let (_dir, index) = open();
    let mut d = doc(
        "vpn.md",
        DocumentOwner::Shared,
        &[
            "Connect to the VPN before opening the intranet.",
            "Reset your password at the portal.",
        ],
    );
    d.chunks[1].heading = Some("Accounts > Passwords".into());
    d.chunks[1].page = Some(7);
    index.replace_document(d.clone()).await.unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 2);

    let hits = search(&index, "password reset", None).await;
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.document_id, d.id);
    assert_eq!(hit.source, "vpn.md");
    assert_eq!(hit.chunk, 1);
    assert_eq!(hit.page, Some(7));
    assert_eq!(hit.heading.as_deref(), Some("Accounts > Passwords"));
    assert!(hit.score > 0.0);

    // Replacing swaps every chunk at once; the old text is gone from search.
    let mut newer = d.clone();
    newer.name = "network/vpn.md".into();
    newer.chunks = vec![chunk(
        0,
        None,
        "The VPN was retired; use zero trust access.",
    )];
    index.replace_document(newer).await.unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 1);
    assert!(search(&index, "password", None).await.is_empty());
    let hits = search(&index, "vpn", None).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].source, "network/vpn.md");

    let docs = index.documents(&DocumentOwner::Shared).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].chunks, 1);
    assert_eq!(docs[0].name, "network/vpn.md");

    assert!(index.remove_document(&d.id).await.unwrap());
    assert!(!index.remove_document(&d.id).await.unwrap());
    assert_eq!(index.chunk_count().await.unwrap(), 0);
    assert!(search(&index, "vpn", None).await.is_empty());
    assert!(
        index
            .documents(&DocumentOwner::Shared)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn private_documents_are_visible_to_their_owner_only() {
    let (_dir, index) = open();
    let (a, b) = (session(1), session(2));
    let shared = doc(
        "handbook.md",
        DocumentOwner::Shared,
        &["Holiday budget rules for everyone."],
    );
    let mine = doc(
        "a-notes.md",
        DocumentOwner::Session(a.clone()),
        &["Secret holiday budget of team A is 5000."],
    );
    index.replace_document(shared.clone()).await.unwrap();
    index.replace_document(mine.clone()).await.unwrap();

    let ids = |hits: Vec<Passage>| hits.into_iter().map(|p| p.document_id).collect::<Vec<_>>();
    let for_a = ids(search(&index, "holiday budget", Some(&a)).await);
    assert_eq!(for_a.len(), 2);
    assert!(for_a.contains(&mine.id) && for_a.contains(&shared.id));
    assert_eq!(
        ids(search(&index, "holiday budget", Some(&b)).await),
        std::slice::from_ref(&shared.id)
    );
    assert_eq!(
        ids(search(&index, "holiday budget", None).await),
        std::slice::from_ref(&shared.id)
    );
    assert!(search(&index, "secret 5000", Some(&b)).await.is_empty());

    let a_docs = index
        .documents(&DocumentOwner::Session(a.clone()))
        .await
        .unwrap();
    assert_eq!(a_docs.len(), 1);
    assert_eq!(a_docs[0].owner, DocumentOwner::Session(a));
    assert!(
        index
            .documents(&DocumentOwner::Session(b))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn hostile_queries_never_error() {
    let (_dir, index) = open();
    index
        .replace_document(doc(
            "x.md",
            DocumentOwner::Shared,
            &["This text mentions NEAR and AND and x."],
        ))
        .await
        .unwrap();
    for q in [
        r#"what's "this" AND (NOT x"#,
        "\"",
        "NEAR(a b, 3)",
        "text:*",
        "^col OR -",
        "''; DROP TABLE chunks; --",
        "{text heading}: near",
        "🦀 ∑ ℵ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "",
        "   ",
        "mentions*",
        &"a".repeat(10_000),
        "\u{0}\u{1}control",
    ] {
        let result = index
            .search(SearchQuery {
                text: q,
                viewer: None,
                top_k: 5,
                embedding: None,
            })
            .await;
        assert!(result.is_ok(), "{q:?} -> {result:?}");
    }
    assert!(search(&index, "the and of", None).await.is_empty());
    // Operators are just words: "near" finds the chunk that says it.
    assert_eq!(search(&index, "NEAR", None).await.len(), 1);
    assert_eq!(
        index
            .search(SearchQuery {
                text: "mentions",
                viewer: None,
                top_k: 0,
                embedding: None,
            })
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn bm25_ranks_the_relevant_document_first() {
    let (_dir, index) = open();
    let docs = [
        doc(
            "kitchen.md",
            DocumentOwner::Shared,
            &["The kitchen closes at six. Clean your mugs."],
        ),
        doc(
            "expenses.md",
            DocumentOwner::Shared,
            &[
                "Expense reports: submit expense reports with receipts within 30 days. Late expense reports are rejected.",
            ],
        ),
        doc(
            "travel.md",
            DocumentOwner::Shared,
            &["Book travel through the portal; keep receipts for the report."],
        ),
        doc(
            "misc.md",
            DocumentOwner::Shared,
            &["Misc notes about the office plants and report cards."],
        ),
    ];
    for d in &docs {
        index.replace_document(d.clone()).await.unwrap();
    }
    let hits = search(
        &index,
        "How do I submit an expense report with receipts?",
        None,
    )
    .await;
    assert!(hits.len() >= 2);
    assert_eq!(hits[0].source, "expenses.md");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    // Diacritics fold both ways.
    index
        .replace_document(doc(
            "ferias.md",
            DocumentOwner::Shared,
            &["Política de férias e licença."],
        ))
        .await
        .unwrap();
    assert_eq!(
        search(&index, "ferias licenca", None).await[0].source,
        "ferias.md"
    );
    assert_eq!(search(&index, "FÉRIAS", None).await[0].source, "ferias.md");

    // The heading column is searched too.
    let mut headed = doc("headed.md", DocumentOwner::Shared, &["Ask the front desk."]);
    headed.chunks[0].heading = Some("Parking garage".into());
    index.replace_document(headed).await.unwrap();
    assert_eq!(search(&index, "parking", None).await[0].source, "headed.md");
}

#[tokio::test]
async fn reopening_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    {
        let index = SqliteIndex::open(&path).unwrap();
        index
            .replace_document(doc("a.md", DocumentOwner::Shared, &["persistent words"]))
            .await
            .unwrap();
    }
    let index = SqliteIndex::open(&path).unwrap();
    assert_eq!(index.chunk_count().await.unwrap(), 1);
    assert_eq!(search(&index, "persistent", None).await.len(), 1);
}
