//! Measures ingest throughput, load + chunk, in MB/s of input, for a
//! generated Markdown corpus and a generated multi-page PDF. Reports
//! numbers; asserts nothing.
//!
//! `cargo run --release -p flowchat-knowledge --example ingest_bench -- [markdown MB] [pdf pages] [folder]`
//!
//! With a folder (e.g. `/usr/share/doc/nodejs/api`, Debian's `nodejs-doc`),
//! also ingests each Markdown file in it the way the drain does — load,
//! chunk, then index in a fresh SQLite index (words only, no vectors) — and
//! reports load + chunk + index in MB/s of input, on one thread.
//!
//! Defaults: 5 MB of Markdown, a 300-page PDF (about 2 MB, uncompressed
//! content streams, 12 pt Helvetica). The PDF is built with
//! `flowchat_knowledge::testing` (the `testing` feature, on for examples
//! through this crate's dev-dependencies).

use std::time::{Duration, Instant};

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use flowchat_knowledge::testing::pdf_with_pages;
use flowchat_knowledge::{
    ChunkSettings, IndexedDocument, KnowledgeIndex, SqliteIndex, chunk_document, load,
};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "be", "ta", "ru", "se", "vo", "ne", "di", "pa", "gu", "fe", "zo", "ti", "ha",
];

/// A pronounceable pseudo-word; small ranks (common words) are short.
fn word(rng: &mut Rng) -> String {
    let rank = rng.below(64).pow(2) + rng.below(16);
    let mut n = rank + 1;
    let mut w = String::new();
    while n > 0 {
        w.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    w
}

fn sentence(rng: &mut Rng) -> String {
    let words = 6 + rng.below(14);
    let mut s: String = (0..words).map(|_| word(rng)).collect::<Vec<_>>().join(" ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s.push('.');
    s
}

fn markdown_corpus(target_bytes: usize) -> String {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut md = String::with_capacity(target_bytes + 4096);
    let (mut h1, mut h2) = (0, 0);
    while md.len() < target_bytes {
        if rng.below(12) == 0 {
            h1 += 1;
            md.push_str(&format!("# Chapter {h1}: {}\n\n", word(&mut rng)));
        }
        h2 += 1;
        md.push_str(&format!("## Section {h2} {}\n\n", word(&mut rng)));
        for _ in 0..1 + rng.below(4) {
            let para: Vec<String> = (0..2 + rng.below(6)).map(|_| sentence(&mut rng)).collect();
            md.push_str(&para.join(" "));
            md.push_str("\n\n");
        }
        if rng.below(3) == 0 {
            for _ in 0..3 {
                md.push_str(&format!("- {}\n", sentence(&mut rng)));
            }
            md.push('\n');
        }
    }
    md
}

fn pdf_pages(pages: usize) -> Vec<String> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    (0..pages)
        .map(|p| {
            let mut lines = vec![format!("Page {} heading", p + 1), String::new()];
            while lines.len() < 62 {
                let mut line = String::new();
                while line.len() < 95 {
                    line.push_str(&word(&mut rng));
                    line.push(' ');
                }
                lines.push(line.trim_end().to_owned());
                if rng.below(8) == 0 {
                    lines.push(String::new());
                }
            }
            lines.join("\n")
        })
        .collect()
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(label: &str, input: usize, text: usize, load: Duration, chunk: Duration, chunks: usize) {
    let total = load + chunk;
    println!(
        "{label:<9} input {:>6.2} MB, text {:>6.2} MB, {chunks:>6} chunks | \
         load {:>7.2?} ({:>7.2} MB/s) | chunk {:>7.2?} ({:>6.2} MB/s) | \
         load+chunk {:>7.2?} = {:>6.2} MB/s of input",
        mb(input),
        mb(text),
        load,
        mb(input) / load.as_secs_f64(),
        chunk,
        mb(text) / chunk.as_secs_f64(),
        total,
        mb(input) / total.as_secs_f64(),
    );
}

/// Load, chunk and index every `.md` file of `folder`, timing each stage.
async fn ingest_folder(folder: &str, settings: &ChunkSettings) {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .expect("read the folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    let dir = std::env::temp_dir().join(format!("flowchat-ingest-bench-{}", std::process::id()));
    let index = SqliteIndex::open(dir.join("index.sqlite")).expect("open index");
    let (mut input, mut chunks) = (0usize, 0usize);
    let (mut loading, mut chunking, mut indexing) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for path in &files {
        let bytes = std::fs::read(path).expect("read a file");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        input += bytes.len();
        let started = Instant::now();
        let doc = load(&name, &bytes).expect("load");
        loading += started.elapsed();
        let started = Instant::now();
        let pieces = chunk_document(&doc, settings).expect("chunk");
        chunking += started.elapsed();
        chunks += pieces.len();
        let started = Instant::now();
        index
            .replace_document(IndexedDocument {
                id: DocumentId::for_content(&bytes),
                name,
                owner: DocumentOwner::Shared,
                size_bytes: bytes.len() as u64,
                chunks: pieces,
                embeddings: None,
            })
            .await
            .expect("index");
        indexing += started.elapsed();
    }
    let total = loading + chunking + indexing;
    println!(
        "folder    {} files, {:.2} MB, {chunks} chunks | load {loading:.2?} | chunk {chunking:.2?} | \
         index {indexing:.2?} | load+chunk+index {total:.2?} = {:.2} MB/s of input",
        files.len(),
        mb(input),
        mb(input) / total.as_secs_f64(),
    );
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let markdown_mb: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let pdf_page_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let folder = args.next();
    let settings = ChunkSettings::default();
    println!(
        "chunk settings: {} tokens, {} overlap",
        settings.max_tokens, settings.overlap_tokens
    );
    // Build the tokenizer outside the timings.
    flowchat_knowledge::count_tokens("warm up");

    let md = markdown_corpus((markdown_mb * 1024.0 * 1024.0) as usize);
    let started = Instant::now();
    let doc = load("corpus.md", md.as_bytes()).expect("load markdown");
    let loaded = started.elapsed();
    let started = Instant::now();
    let chunks = chunk_document(&doc, &settings).expect("chunk markdown");
    let chunked = started.elapsed();
    report(
        "markdown",
        md.len(),
        doc.text.len(),
        loaded,
        chunked,
        chunks.len(),
    );

    let texts = pdf_pages(pdf_page_count);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pdf = pdf_with_pages(&refs);
    let started = Instant::now();
    let doc = load("corpus.pdf", &pdf).expect("load pdf");
    let loaded = started.elapsed();
    let started = Instant::now();
    let chunks = chunk_document(&doc, &settings).expect("chunk pdf");
    let chunked = started.elapsed();
    assert_eq!(doc.page_starts.len(), pdf_page_count);
    report(
        "pdf",
        pdf.len(),
        doc.text.len(),
        loaded,
        chunked,
        chunks.len(),
    );
    println!(
        "pdf: {pdf_page_count} pages, {:.1} pages/s extracted",
        pdf_page_count as f64 / loaded.as_secs_f64()
    );
    if let Some(folder) = folder {
        ingest_folder(&folder, &settings).await;
    }
}
