//! Vectors in the SQLite index: storing and replacing them, switching model,
//! owner filtering of vector search, rank fusion, duplicate collapse, schema
//! migration, and a labelled recall evaluation of hybrid search against BM25.

#[path = "support/recall.rs"]
mod recall;

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_knowledge::{
    Chunk, ChunkEmbeddings, IndexedDocument, KnowledgeIndex, Passage, SearchQuery, SqliteIndex,
};

fn chunk(position: u32, text: &str) -> Chunk {
    Chunk {
        position,
        text: text.to_owned(),
        heading: None,
        page: None,
        token_count: text.split_whitespace().count() as u32,
    }
}

/// A document whose chunks carry the given vectors (`None`: no embeddings).
fn doc(
    name: &str,
    owner: DocumentOwner,
    chunks: &[&str],
    vectors: Option<(&str, Vec<Vec<f32>>)>,
) -> IndexedDocument {
    IndexedDocument {
        id: DocumentId::for_content(format!("{name}:{}", chunks.join("|")).as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: 1,
        chunks: chunks
            .iter()
            .enumerate()
            .map(|(i, t)| chunk(i as u32, t))
            .collect(),
        embeddings: vectors.map(|(model, vectors)| ChunkEmbeddings {
            model: model.to_owned(),
            vectors,
        }),
    }
}

/// The fake model's vectors for `chunks`.
fn fake(chunks: &[&str]) -> Option<(&'static str, Vec<Vec<f32>>)> {
    Some((
        "fake",
        chunks
            .iter()
            .map(|t| flowchat_fake_flow::embedding(t))
            .collect(),
    ))
}

/// A unit vector along axis `i` of `dims`, nudged towards axis `j` by `t`.
fn axis(dims: usize, i: usize, j: usize, t: f32) -> Vec<f32> {
    let mut v = vec![0.0; dims];
    v[i] = 1.0;
    v[j] += t;
    v
}

fn session(n: u8) -> SessionId {
    SessionId::from_random([n; 16])
}

fn open() -> (tempfile::TempDir, SqliteIndex) {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteIndex::open(dir.path().join("index.sqlite")).unwrap();
    (dir, index)
}

async fn search(
    index: &SqliteIndex,
    text: &str,
    viewer: Option<&SessionId>,
    embedding: Option<&[f32]>,
    top_k: usize,
) -> Vec<Passage> {
    index
        .search(SearchQuery {
            text,
            viewer,
            top_k,
            embedding,
        })
        .await
        .unwrap()
}

fn sources(hits: &[Passage]) -> Vec<&str> {
    hits.iter().map(|p| p.source.as_str()).collect()
}

#[tokio::test]
async fn vectors_round_trip_and_are_replaced_with_their_document() {
    let (_dir, index) = open();
    assert_eq!(index.embedding_model().await.unwrap(), None);
    let a = doc(
        "a.md",
        DocumentOwner::Shared,
        &["alpha one", "alpha two"],
        Some(("m", vec![axis(4, 0, 1, 0.0), axis(4, 1, 0, 0.0)])),
    );
    let b = doc(
        "b.md",
        DocumentOwner::Shared,
        &["beta"],
        Some(("m", vec![axis(4, 2, 0, 0.0)])),
    );
    index.replace_document(a.clone()).await.unwrap();
    index.replace_document(b.clone()).await.unwrap();
    assert_eq!(index.embedding_model().await.unwrap().as_deref(), Some("m"));
    assert!(
        index
            .documents_needing_embeddings("m", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(index.chunks(&a.id).await.unwrap(), a.chunks);
    assert!(
        index
            .chunks(&DocumentId::for_content(b"nope"))
            .await
            .unwrap()
            .is_empty()
    );

    // No searchable words: vector search alone, nearest first, scores > 0.
    let q = axis(4, 1, 0, 0.1);
    let hits = search(&index, "the", None, Some(&q), 10).await;
    assert_eq!(hits.len(), 3);
    assert_eq!((hits[0].source.as_str(), hits[0].chunk), ("a.md", 1));
    assert_eq!((hits[1].source.as_str(), hits[1].chunk), ("a.md", 0));
    assert!(hits.windows(2).all(|w| w[0].score > w[1].score));
    assert!(hits.iter().all(|p| p.score > 0.0));
    // Without a vector such a question finds nothing, as before.
    assert!(search(&index, "the", None, None, 10).await.is_empty());

    // set_embeddings replaces the vectors.
    index
        .set_embeddings(
            &a.id,
            ChunkEmbeddings {
                model: "m".into(),
                vectors: vec![axis(4, 3, 0, 0.0), axis(4, 3, 1, 0.5)],
            },
        )
        .await
        .unwrap();
    let hits = search(&index, "", None, Some(&axis(4, 3, 0, 0.0)), 1).await;
    assert_eq!((hits[0].source.as_str(), hits[0].chunk), ("a.md", 0));
    // A wrong count is refused and changes nothing.
    let err = index
        .set_embeddings(
            &a.id,
            ChunkEmbeddings {
                model: "m".into(),
                vectors: vec![axis(4, 0, 1, 0.0)],
            },
        )
        .await;
    assert!(err.is_err());
    let hits = search(&index, "", None, Some(&axis(4, 3, 0, 0.0)), 1).await;
    assert_eq!((hits[0].source.as_str(), hits[0].chunk), ("a.md", 0));
    // Unknown documents are left alone.
    index
        .set_embeddings(
            &DocumentId::for_content(b"gone"),
            ChunkEmbeddings {
                model: "m".into(),
                vectors: vec![],
            },
        )
        .await
        .unwrap();

    // A replace with mismatched vectors is refused: the old version stays.
    let mut bad = a.clone();
    bad.chunks.push(chunk(2, "alpha three"));
    assert!(index.replace_document(bad).await.is_err());
    assert_eq!(index.chunks(&a.id).await.unwrap(), a.chunks);
    let mut zero = b.clone();
    zero.embeddings = Some(ChunkEmbeddings {
        model: "m".into(),
        vectors: vec![vec![0.0; 4]],
    });
    assert!(index.replace_document(zero).await.is_err());
    let mut other_dims = b.clone();
    other_dims.embeddings = Some(ChunkEmbeddings {
        model: "m".into(),
        vectors: vec![vec![1.0; 5]],
    });
    assert!(index.replace_document(other_dims).await.is_err());
    assert_eq!(search(&index, "beta", None, None, 5).await.len(), 1);

    // Replaced without embeddings: no vectors, and listed as needing them.
    let mut plain = b.clone();
    plain.embeddings = None;
    index.replace_document(plain).await.unwrap();
    assert_eq!(
        index.documents_needing_embeddings("m", 10).await.unwrap(),
        std::slice::from_ref(&b.id)
    );
    let hits = search(&index, "", None, Some(&axis(4, 2, 0, 0.0)), 10).await;
    assert!(hits.iter().all(|p| p.source == "a.md"));

    // Removing a document removes its vectors.
    assert!(index.remove_document(&a.id).await.unwrap());
    assert!(
        search(&index, "", None, Some(&axis(4, 3, 0, 0.0)), 10)
            .await
            .is_empty()
    );
    // A question vector of another dimension: words only.
    assert_eq!(
        search(&index, "beta", None, Some(&[1.0, 0.0]), 10)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn switching_model_drops_old_vectors_and_lists_every_document() {
    let (_dir, index) = open();
    let docs: Vec<IndexedDocument> = (0..3)
        .map(|i| {
            let text = format!("document number {i}");
            let vectors = (i < 2).then(|| ("old", vec![axis(3, i, 2, 0.0)]));
            doc(
                &format!("d{i}.md"),
                DocumentOwner::Shared,
                &[&text],
                vectors,
            )
        })
        .collect();
    for d in &docs {
        index.replace_document(d.clone()).await.unwrap();
    }
    let empty = doc("empty.md", DocumentOwner::Shared, &[], None);
    index.replace_document(empty).await.unwrap();
    let ids = |range: std::ops::Range<usize>| {
        docs[range].iter().map(|d| d.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some("old")
    );
    assert_eq!(
        index.documents_needing_embeddings("old", 10).await.unwrap(),
        ids(2..3)
    );
    // Another model: every document with chunks (oldest first), up to the limit.
    assert_eq!(
        index.documents_needing_embeddings("new", 10).await.unwrap(),
        ids(0..3)
    );
    assert_eq!(
        index.documents_needing_embeddings("new", 2).await.unwrap(),
        ids(0..2)
    );

    // The same model with another dimension is a mistake, not a switch.
    let wrong = ChunkEmbeddings {
        model: "old".into(),
        vectors: vec![vec![1.0; 5]],
    };
    assert!(index.set_embeddings(&docs[2].id, wrong).await.is_err());
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some("old")
    );

    // The first vectors of the new model (another dimension) drop the old ones.
    index
        .set_embeddings(
            &docs[1].id,
            ChunkEmbeddings {
                model: "new".into(),
                vectors: vec![axis(5, 4, 0, 0.0)],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        index.embedding_model().await.unwrap().as_deref(),
        Some("new")
    );
    let mut expected = ids(0..3);
    expected.remove(1);
    assert_eq!(
        index.documents_needing_embeddings("new", 10).await.unwrap(),
        expected
    );
    assert_eq!(
        index.documents_needing_embeddings("old", 10).await.unwrap(),
        ids(0..3)
    );
    // Vector search now knows only the new vector; old-dimension questions
    // fall back to words.
    let hits = search(&index, "", None, Some(&axis(5, 0, 1, 0.0)), 10).await;
    assert_eq!(sources(&hits), ["d1.md"]);
    assert!(
        search(&index, "", None, Some(&axis(3, 0, 1, 0.0)), 10)
            .await
            .is_empty()
    );
    assert_eq!(
        search(&index, "number", None, Some(&axis(3, 0, 1, 0.0)), 10)
            .await
            .len(),
        3
    );

    // Embedding the rest with the new model empties the list.
    for d in [&docs[0], &docs[2]] {
        index
            .set_embeddings(
                &d.id,
                ChunkEmbeddings {
                    model: "new".into(),
                    vectors: vec![axis(5, 0, 1, 0.0)],
                },
            )
            .await
            .unwrap();
    }
    assert!(
        index
            .documents_needing_embeddings("new", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let hits = search(&index, "", None, Some(&axis(5, 0, 1, 0.0)), 10).await;
    assert_eq!(hits.len(), 3);
}

/// The nearest vectors belong to another session's private documents; they
/// must never come back, and the viewer still gets `top_k` results. Checked
/// with few vectors (exact search) and with enough vectors that the index
/// searches sign bits first and re-ranks (see `vectors.rs`).
#[tokio::test]
async fn vector_search_never_returns_another_sessions_private_chunks() {
    for (dims, private_chunks, shared_chunks) in [(8, 30, 12), (512, 3_000, 1_000)] {
        let (_dir, index) = open();
        let (a, b) = (session(1), session(2));
        let query = axis(dims, 0, 1, 0.0);
        // B's chunks point almost exactly where the question points.
        let texts: Vec<String> = (0..private_chunks)
            .map(|i| format!("secret plan {i}"))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = (0..private_chunks)
            .map(|i| axis(dims, 0, 1 + i % (dims - 1), 0.01))
            .collect();
        let secret = doc(
            "b-secret.md",
            DocumentOwner::Session(b.clone()),
            &refs,
            Some(("m", vectors)),
        );
        index.replace_document(secret).await.unwrap();
        // Shared chunks point elsewhere (further and further away); A's are
        // closer than those, B's closer still.
        let shared_vectors = (0..shared_chunks)
            .map(|i| axis(dims, 1 + i % (dims - 1), 0, 0.5 / (1.0 + i as f32)))
            .collect();
        let a_vectors = (0..3).map(|i| axis(dims, 0, 1 + i, -0.9)).collect();
        for (owner, name, n, vectors) in [
            (
                DocumentOwner::Shared,
                "shared.md",
                shared_chunks,
                shared_vectors,
            ),
            (
                DocumentOwner::Session(a.clone()),
                "a-notes.md",
                3,
                a_vectors,
            ),
        ] {
            let texts: Vec<String> = (0..n).map(|i| format!("{name} plan {i}")).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            index
                .replace_document(doc(name, owner, &refs, Some(("m", vectors))))
                .await
                .unwrap();
        }

        for (viewer, text) in [
            (Some(&a), "plan secret"),
            (Some(&a), ""),
            (None, "secret"),
            (None, ""),
        ] {
            let hits = search(&index, text, viewer, Some(&query), 10).await;
            assert_eq!(hits.len(), 10, "{dims} {viewer:?} {text:?}");
            assert!(
                hits.iter().all(|p| p.source != "b-secret.md"),
                "{dims} {viewer:?} {text:?}: {:?}",
                sources(&hits)
            );
            if viewer.is_none() {
                assert!(hits.iter().all(|p| p.source == "shared.md"));
            }
        }
        // A sees their own notes too; B sees the secret chunks first.
        let hits = search(&index, "", Some(&a), Some(&query), 10).await;
        assert_eq!(sources(&hits[..3]), ["a-notes.md"; 3], "{dims}");
        let hits = search(&index, "", Some(&b), Some(&query), 10).await;
        assert!(hits.iter().all(|p| p.source == "b-secret.md"));
    }
}

#[tokio::test]
async fn rank_fusion_prefers_chunks_both_methods_find() {
    let (_dir, index) = open();
    let dims = 6;
    let q = axis(dims, 0, 1, 0.0);
    // Words: words.md first, both.md second. Vectors: vector.md, both.md,
    // neither.md, words.md.
    let docs = [
        doc(
            "words.md",
            DocumentOwner::Shared,
            &["gamma gamma gamma rays"],
            Some(("m", vec![axis(dims, 3, 0, 0.0)])),
        ),
        doc(
            "both.md",
            DocumentOwner::Shared,
            &["gamma and other things in a longer chunk of text"],
            Some(("m", vec![axis(dims, 0, 1, 0.3)])),
        ),
        doc(
            "vector.md",
            DocumentOwner::Shared,
            &["unrelated words"],
            Some(("m", vec![axis(dims, 0, 1, 0.1)])),
        ),
        doc(
            "neither.md",
            DocumentOwner::Shared,
            &["nothing here"],
            Some(("m", vec![axis(dims, 4, 0, 0.2)])),
        ),
    ];
    for d in &docs {
        index.replace_document(d.clone()).await.unwrap();
    }
    let lexical = search(&index, "gamma", None, None, 10).await;
    assert_eq!(sources(&lexical), ["words.md", "both.md"]);
    let hybrid = search(&index, "gamma", None, Some(&q), 10).await;
    // both.md: 1/(60+2) + 1/(60+2); words.md: 1/61 (+ 1/64 as 4th by
    // vector); vector.md: 1/61.
    assert_eq!(
        sources(&hybrid),
        ["both.md", "words.md", "vector.md", "neither.md"]
    );
    assert!((hybrid[0].score - 2.0 / 62.0).abs() < 1e-9);
    assert!((hybrid[1].score - (1.0 / 61.0 + 1.0 / 64.0)).abs() < 1e-9);
    assert!((hybrid[2].score - 1.0 / 61.0).abs() < 1e-9);
    assert!(hybrid.windows(2).all(|w| w[0].score >= w[1].score));
    // BM25 scores are another scale: lexical-only scores are unchanged BM25.
    assert!(lexical[0].score > lexical[1].score && lexical[1].score > 0.0);
    assert!(hybrid.len() == 4 && hybrid[3].score > 0.0);
}

#[tokio::test]
async fn duplicate_passages_collapse_to_the_best_ranked_copy() {
    let (_dir, index) = open();
    let policy = "Expense reports must be submitted with receipts within thirty days \
                  of the purchase, or they are rejected by finance.";
    let docs = [
        doc(
            "finance/expenses.md",
            DocumentOwner::Shared,
            &[policy],
            fake(&[policy]),
        ),
        // The same page uploaded again under another name, lightly edited.
        doc(
            "copy of expenses.md",
            DocumentOwner::Shared,
            &[&policy.replace("finance", "accounting")],
            fake(&[&policy.replace("finance", "accounting")]),
        ),
        // A paragraph repeated in another document.
        doc(
            "handbook.md",
            DocumentOwner::Shared,
            &[
                "Welcome to the handbook.",
                &format!("{policy} Ask finance if in doubt."),
            ],
            fake(&[
                "Welcome to the handbook.",
                &format!("{policy} Ask finance if in doubt."),
            ]),
        ),
        doc(
            "travel.md",
            DocumentOwner::Shared,
            &["Travel expense receipts go to the travel desk."],
            fake(&["Travel expense receipts go to the travel desk."]),
        ),
        doc(
            "cards.md",
            DocumentOwner::Shared,
            &["Corporate cards need no expense reports for purchases under ten euros."],
            fake(&["Corporate cards need no expense reports for purchases under ten euros."]),
        ),
    ];
    for d in &docs {
        index.replace_document(d.clone()).await.unwrap();
    }
    let question = "expense reports receipts days";
    let vector = flowchat_fake_flow::embedding(question);
    for embedding in [None, Some(vector.as_slice())] {
        let hits = search(&index, question, None, embedding, 3).await;
        let policy_copies = hits
            .iter()
            .filter(|p| p.text.contains("must be submitted"))
            .count();
        assert_eq!(policy_copies, 1, "{embedding:?}: {:?}", sources(&hits));
        // The other results fill the list.
        assert_eq!(hits.len(), 3, "{:?}", sources(&hits));
        // Deeper lists: still one copy. BM25 finds three distinct passages;
        // vectors add the handbook's other chunk.
        let hits = search(&index, question, None, embedding, 10).await;
        let policy_copies = hits
            .iter()
            .filter(|p| p.text.contains("must be submitted"))
            .count();
        assert_eq!(policy_copies, 1, "{embedding:?}: {:?}", sources(&hits));
        let distinct = if embedding.is_some() { 4 } else { 3 };
        assert_eq!(hits.len(), distinct, "{:?}", sources(&hits));
    }
}

/// Thirty copies of one passage outrank everything else: the search reads
/// deeper until it has `top_k` distinct passages.
#[tokio::test]
async fn searches_read_deeper_when_duplicates_fill_the_first_results() {
    let (_dir, index) = open();
    let copy = "Refund policy for refund requests.";
    for i in 0..30 {
        index
            .replace_document(doc(
                &format!("copy-{i}.md"),
                DocumentOwner::Shared,
                &[copy],
                fake(&[copy]),
            ))
            .await
            .unwrap();
    }
    for i in 0..5 {
        let text = format!("The refund desk opens at nine {i}");
        index
            .replace_document(doc(
                &format!("desk-{i}.md"),
                DocumentOwner::Shared,
                &[&text],
                fake(&[&text]),
            ))
            .await
            .unwrap();
    }
    let vector = flowchat_fake_flow::embedding("refund");
    for embedding in [None, Some(vector.as_slice())] {
        let hits = search(&index, "refund", None, embedding, 5).await;
        assert_eq!(hits.len(), 5, "{:?}", sources(&hits));
        assert_eq!(hits.iter().filter(|p| p.text == copy).count(), 1);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[tokio::test]
async fn version_1_index_files_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE documents (
                key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                owner TEXT NOT NULL, size_bytes INTEGER NOT NULL, chunk_count INTEGER NOT NULL);
            CREATE INDEX documents_by_owner ON documents(owner, name);
            CREATE TABLE chunks (
                id INTEGER PRIMARY KEY,
                doc_key INTEGER NOT NULL REFERENCES documents(key) ON DELETE CASCADE,
                position INTEGER NOT NULL, page INTEGER, token_count INTEGER NOT NULL);
            CREATE UNIQUE INDEX chunks_by_document ON chunks(doc_key, position);
            CREATE TABLE chunk_texts (
                id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
                text TEXT NOT NULL, heading TEXT);
            CREATE VIRTUAL TABLE chunks_fts USING fts5(
                text, heading, content = 'chunk_texts', content_rowid = 'id',
                tokenize = 'unicode61 remove_diacritics 2');
            CREATE TRIGGER chunk_texts_fts_insert AFTER INSERT ON chunk_texts BEGIN
                INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
            END;
            CREATE TRIGGER chunk_texts_fts_delete AFTER DELETE ON chunk_texts BEGIN
                INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
                VALUES ('delete', old.id, old.text, old.heading);
            END;
            INSERT INTO documents VALUES (1, 'doc-one', 'one.md', 'shared', 10, 1);
            INSERT INTO chunks VALUES (1, 1, 0, NULL, 2);
            INSERT INTO chunk_texts VALUES (1, 'migrated words', NULL);
            PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let index = SqliteIndex::open(&path).unwrap();
    let id = DocumentId::from_trusted("doc-one");
    assert_eq!(search(&index, "migrated", None, None, 5).await.len(), 1);
    assert_eq!(
        index.documents_needing_embeddings("m", 5).await.unwrap(),
        std::slice::from_ref(&id)
    );
    index
        .set_embeddings(
            &id,
            ChunkEmbeddings {
                model: "m".into(),
                vectors: vec![vec![0.5, 0.5]],
            },
        )
        .await
        .unwrap();
    assert!(
        index
            .documents_needing_embeddings("m", 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        search(&index, "", None, Some(&[1.0, 1.0]), 5).await[0].source,
        "one.md"
    );
    drop(index);
    // Reopening keeps the vectors and the model.
    let index = SqliteIndex::open(&path).unwrap();
    assert_eq!(index.embedding_model().await.unwrap().as_deref(), Some("m"));
    assert_eq!(
        search(&index, "", None, Some(&[1.0, 0.9]), 5).await.len(),
        1
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

/// The labelled evaluation (see `support/recall.rs`): hybrid search must find
/// more answers in its first five passages than BM25 alone.
#[tokio::test]
async fn hybrid_search_recalls_more_than_bm25_on_paraphrased_questions() {
    let (_dir, index) = open();
    recall::index_corpus(&index).await;
    let (bm25, bm25_missed) = recall::recall_at(&index, 5, false).await;
    let (hybrid, hybrid_missed) = recall::recall_at(&index, 5, true).await;
    println!(
        "recall@5 on {} questions: BM25 {:.1}%, hybrid {:.1}%",
        recall::QUESTIONS.len(),
        bm25 * 100.0,
        hybrid * 100.0
    );
    println!("BM25 missed: {bm25_missed:?}");
    println!("hybrid missed: {hybrid_missed:?}");
    assert!(hybrid > bm25, "hybrid {hybrid} vs BM25 {bm25}");
    // Hybrid search keeps what BM25 found at rank 1 or 2 (rank fusion keeps
    // both lists' heads), so it never loses more than a question or two.
    let lost: Vec<_> = hybrid_missed
        .iter()
        .filter(|q| !bm25_missed.contains(q))
        .collect();
    assert!(lost.len() <= 1, "hybrid lost {lost:?}");
}
