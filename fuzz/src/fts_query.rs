//! `fts_query`: a user's question as retrieval sees it — the term extractor
//! (`query_terms`), the FTS5 queries the SQLite index builds from the terms,
//! BM25 and vector search, and the extractive answer that quotes what was
//! found — over a real index (SQLite, FTS5 and sqlite-vec) with shared and
//! private documents.
//!
//! Input: byte 0 picks `top_k`, the viewer and whether a query vector is
//! sent (bytes 1..33 as eight `f32`s); the rest is the question.
//! Properties: terms are non-empty, folded, unique and at most
//! `MAX_QUERY_TERMS`; a word search never fails (the question is never FTS
//! syntax); at most `top_k` passages, each with a positive score; another
//! session's private document is never returned.

use std::collections::HashSet;
use std::sync::OnceLock;

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_knowledge::query::{MAX_QUERY_TERMS, fold, query_terms};
use flowchat_knowledge::{
    Chunk, ChunkEmbeddings, IndexedDocument, KnowledgeIndex, SearchQuery, SqliteIndex,
    extractive_answer,
};

use crate::runtime::{block_on, scratch_dir};

const DIMENSIONS: usize = 8;
const PRIVATE_NAME: &str = "private-notes.md";

/// Chunk texts with the words and marks FTS5 syntax is made of, accents,
/// scripts without spaces and long tokens.
const SHARED: &[&str] = &[
    "Vacation policy: employees get 30 days of paid vacation per year.",
    "Política de férias: não há ação sem aprovação do gestor. Ação e reação.",
    "Query syntax words AND OR NOT NEAR appear here, with \"quotes\", stars* and ^carets.",
    "column:filter name:value - minus + plus ( parens ) {braces} [brackets]",
    "日本語のテキストと中文文本 mixed with English words and emoji 🎉🚀.",
    "The reimbursement form is at https://intranet.example/forms?id=7&x=y#top.",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
];
const PRIVATE: &[&str] = &["Secret private vacation plan only session one may read: Lisbon."];

fn chunk(position: usize, text: &str) -> Chunk {
    Chunk {
        position: position as u32,
        text: text.to_owned(),
        heading: position
            .is_multiple_of(2)
            .then(|| "Handbook > Policies".to_owned()),
        page: None,
        token_count: text.split_whitespace().count() as u32,
    }
}

fn document(name: &str, owner: DocumentOwner, texts: &[&str]) -> IndexedDocument {
    let vectors = texts
        .iter()
        .enumerate()
        .map(|(i, _)| {
            (0..DIMENSIONS)
                .map(|d| ((i * 7 + d) % 5) as f32 - 2.0)
                .collect()
        })
        .collect();
    IndexedDocument {
        id: DocumentId::for_content(name.as_bytes()),
        name: name.to_owned(),
        owner,
        size_bytes: texts.iter().map(|t| t.len() as u64).sum(),
        chunks: texts.iter().enumerate().map(|(i, t)| chunk(i, t)).collect(),
        embeddings: Some(ChunkEmbeddings {
            model: "fuzz-embedding".to_owned(),
            vectors,
        }),
    }
}

fn session(n: u8) -> SessionId {
    SessionId::from_random([n; 16])
}

struct Fixture {
    _dir: tempfile::TempDir,
    index: SqliteIndex,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch_dir("flowchat-fuzz-fts");
        let index = SqliteIndex::open(dir.path().join("index.sqlite3")).expect("the index opens");
        block_on(async {
            index
                .replace_document(document("handbook.md", DocumentOwner::Shared, SHARED))
                .await
                .expect("index the shared document");
            index
                .replace_document(document(
                    PRIVATE_NAME,
                    DocumentOwner::Session(session(1)),
                    PRIVATE,
                ))
                .await
                .expect("index the private document");
        });
        Fixture { _dir: dir, index }
    })
}

pub fn run(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let top_k = (control & 0x0f) as usize;
    let viewer = match (control >> 4) & 0b11 {
        0 => None,
        1 => Some(session(1)),
        _ => Some(session(2)),
    };
    let with_vector = control & 0x40 != 0 && rest.len() >= DIMENSIONS * 4;
    let (embedding, question) = if with_vector {
        let (head, tail) = rest.split_at(DIMENSIONS * 4);
        let vector: Vec<f32> = head
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (Some(vector), tail)
    } else {
        (None, rest)
    };
    let question = String::from_utf8_lossy(question);

    let index = &fixture().index;
    let result = block_on(index.search(SearchQuery {
        text: &question,
        viewer: viewer.as_ref(),
        top_k,
        embedding: embedding.as_deref(),
    }));
    let passages = match result {
        Ok(passages) => passages,
        // A query vector of non-finite numbers may be refused; words never.
        Err(e) if embedding.is_some() => {
            assert!(
                embedding.iter().flatten().any(|x| !x.is_finite()),
                "a search with a finite vector failed: {e}"
            );
            return;
        }
        Err(e) => panic!("a word search failed: {e}"),
    };
    assert!(
        passages.len() <= top_k,
        "{} passages for top_k {top_k}",
        passages.len()
    );
    for passage in &passages {
        assert!(passage.score > 0.0, "score {}", passage.score);
        if viewer != Some(session(1)) {
            assert_ne!(passage.source, PRIVATE_NAME, "another session's document");
        }
    }
    let terms = query_terms(&question);
    assert!(terms.len() <= MAX_QUERY_TERMS);
    let mut seen = HashSet::new();
    for term in &terms {
        assert!(!term.is_empty());
        assert_eq!(&fold(term), term, "a term is not folded");
        assert!(seen.insert(term), "a repeated term");
    }

    let answer = extractive_answer(&question, &passages);
    for citation in &answer.citations {
        if viewer != Some(session(1)) {
            assert_ne!(citation.source, PRIVATE_NAME);
        }
    }
}
