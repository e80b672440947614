//! Prints recall@5 of BM25 alone and of hybrid search (BM25 + vectors, fused
//! by reciprocal rank) on the labelled evaluation set of
//! `tests/support/recall.rs`: 34 workplace documents, 30 questions, many of
//! them worded with synonyms of their document's words. Vectors come from the
//! fake Flow embedding model (hashed words plus a small synonym table).
//!
//! `cargo run -p flowchat-knowledge --example recall_eval`

#[path = "../tests/support/recall.rs"]
mod recall;

use flowchat_knowledge::SqliteIndex;

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("flowchat-recall-eval-{}", std::process::id()));
    let index = SqliteIndex::open(dir.join("index.sqlite")).expect("open index");
    recall::index_corpus(&index).await;
    let k = 5;
    let (bm25, bm25_missed) = recall::recall_at(&index, k, false).await;
    let (hybrid, hybrid_missed) = recall::recall_at(&index, k, true).await;
    let n = recall::QUESTIONS.len();
    println!(
        "{} documents, {n} labelled questions",
        recall::DOCUMENTS.len()
    );
    println!(
        "recall@{k}: BM25 {:.1}% ({}/{n})  hybrid {:.1}% ({}/{n})",
        bm25 * 100.0,
        n - bm25_missed.len(),
        hybrid * 100.0,
        n - hybrid_missed.len()
    );
    println!("missed by hybrid search: {hybrid_missed:?}");
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}
