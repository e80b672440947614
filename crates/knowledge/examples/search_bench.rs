//! Measures search latency on a synthetic index (the target: p95 under 25 ms
//! at 100,000 chunks). Reports numbers; asserts nothing.
//!
//! `cargo run --release -p flowchat-knowledge --example search_bench -- [chunks] [index path]`
//!
//! The corpus is Zipf-distributed words (a few very common, most rare), a tenth
//! of it private to sessions, so BM25 and the owner filter do realistic work.
//! The index file is reused when it already holds the requested chunks.

use std::time::{Duration, Instant};

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_knowledge::{Chunk, IndexedDocument, KnowledgeIndex, SearchQuery, SqliteIndex};

const VOCABULARY: usize = 20_000;
const WORDS_PER_CHUNK: usize = 220;
const CHUNKS_PER_DOC: usize = 50;
const QUERIES: usize = 300;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Word ranks drawn from Zipf(1) via the inverse of the cumulative harmonic sums.
struct Zipf(Vec<f64>);
impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += 1.0 / r as f64;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Zipf(cdf)
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u)
    }
}

fn word(rank: usize) -> String {
    // Pronounceable, distinct, never a stopword: "kalo", "mibeta", ...
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "be", "ta", "ru", "se", "vo", "ne", "di", "pa", "gu", "fe", "zo", "ti",
        "ha",
    ];
    let mut n = rank + 16;
    let mut w = String::new();
    while n > 0 {
        w.push_str(SYL[n % 16]);
        n /= 16;
    }
    w
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let target: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("chunk count"));
    let path = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("flowchat-search-bench.sqlite")
            .display()
            .to_string()
    });
    let index = SqliteIndex::open(&path).expect("open index");
    let sessions: Vec<SessionId> = (1..=10u8)
        .map(|i| SessionId::from_random([i; 16]))
        .collect();
    let zipf = Zipf::new(VOCABULARY);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let have = index.chunk_count().await.unwrap() as usize;
    if have != target {
        println!("building {target} chunks in {path} (had {have}) ...");
        for d in index.documents(&DocumentOwner::Shared).await.unwrap() {
            index.remove_document(&d.id).await.unwrap();
        }
        for s in &sessions {
            for d in index
                .documents(&DocumentOwner::Session(s.clone()))
                .await
                .unwrap()
            {
                index.remove_document(&d.id).await.unwrap();
            }
        }
        let started = Instant::now();
        let docs = target.div_ceil(CHUNKS_PER_DOC);
        for d in 0..docs {
            let n = CHUNKS_PER_DOC.min(target - d * CHUNKS_PER_DOC);
            let chunks: Vec<Chunk> = (0..n)
                .map(|p| {
                    let text = (0..WORDS_PER_CHUNK)
                        .map(|_| word(zipf.sample(&mut rng)))
                        .collect::<Vec<_>>()
                        .join(" ");
                    Chunk {
                        position: p as u32,
                        heading: Some(format!("{} > {}", word(d % 500), word(p))),
                        page: None,
                        token_count: WORDS_PER_CHUNK as u32,
                        text,
                    }
                })
                .collect();
            let owner = if d % 10 == 9 {
                DocumentOwner::Session(sessions[d % sessions.len()].clone())
            } else {
                DocumentOwner::Shared
            };
            index
                .replace_document(IndexedDocument {
                    id: DocumentId::for_content(format!("bench-doc-{d}").as_bytes()),
                    name: format!("doc-{d}.md"),
                    owner,
                    size_bytes: 0,
                    chunks,
                })
                .await
                .unwrap();
        }
        println!("indexed in {:.1?}", started.elapsed());
    }

    // Questions of 3–8 words drawn from the same distribution: common words
    // make long posting lists, which is the slow case.
    let mut timings: Vec<Duration> = Vec::with_capacity(QUERIES);
    let mut total_hits = 0;
    for q in 0..QUERIES {
        let len = 3 + (rng.next() % 6) as usize;
        let text = (0..len)
            .map(|_| word(zipf.sample(&mut rng) % 3_000))
            .collect::<Vec<_>>()
            .join(" ");
        let viewer = (q % 2 == 0).then(|| &sessions[q % sessions.len()]);
        let started = Instant::now();
        let hits = index
            .search(SearchQuery {
                text: &format!("how does {text} work?"),
                viewer,
                top_k: 8,
            })
            .await
            .unwrap();
        timings.push(started.elapsed());
        total_hits += hits.len();
    }
    timings.sort();
    let pct = |p: f64| timings[((timings.len() as f64 * p) as usize).min(timings.len() - 1)];
    println!(
        "{} chunks, {QUERIES} queries ({} hits): p50 {:.2?}  p95 {:.2?}  p99 {:.2?}  max {:.2?}",
        index.chunk_count().await.unwrap(),
        total_hits,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        timings[timings.len() - 1]
    );
}
