//! Measures search latency on synthetic indexes at 10,000 and 100,000 chunks
//! (the target: p95 under 25 ms at 100,000 chunks), three ways: lexical (BM25
//! alone), hybrid (BM25 and vector search side by side, fused) and vectors
//! (a question without searchable words: vector search alone). Besides the
//! latency percentiles it prints the CPU time per search (all threads), which
//! depends much less than latency on what else the machine is running.
//! Reports numbers; asserts nothing.
//!
//! `cargo run --release -p flowchat-knowledge --example search_bench -- [chunks ...] [--dims N] [--dir PATH]`
//!
//! The corpus is Zipf-distributed words (a few very common, most rare), a tenth
//! of it private to sessions, so BM25 and the owner filter do realistic work.
//! Every chunk has a random unit vector of `--dims` dimensions (default 1,536,
//! as `text-embedding-3-small`); questions get random unit vectors too, which
//! is as costly to search as a real one (sqlite-vec scans every vector
//! whatever the question). An index file per size and dimension is kept in
//! `--dir` (default: the temporary folder) and reused when it already holds
//! the requested chunks.

use std::time::{Duration, Instant};

use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use flowchat_knowledge::{
    Chunk, ChunkEmbeddings, IndexedDocument, KnowledgeIndex, SearchQuery, SqliteIndex,
};

const VOCABULARY: usize = 20_000;
const WORDS_PER_CHUNK: usize = 220;
const CHUNKS_PER_DOC: usize = 50;
const QUERIES: usize = 300;
const MODEL: &str = "bench-random-vectors";

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
    /// A random direction: components uniform in [-1, 1), normalised.
    fn direction(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims)
            .map(|_| (self.unit() * 2.0 - 1.0) as f32)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
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

struct Args {
    sizes: Vec<usize>,
    dims: usize,
    dir: std::path::PathBuf,
}

fn args() -> Args {
    let mut out = Args {
        sizes: Vec::new(),
        dims: 1536,
        dir: std::env::temp_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dims" => out.dims = args.next().and_then(|d| d.parse().ok()).expect("--dims N"),
            "--dir" => out.dir = args.next().expect("--dir PATH").into(),
            n => out.sizes.push(n.parse().expect("a chunk count")),
        }
    }
    if out.sizes.is_empty() {
        out.sizes = vec![10_000, 100_000];
    }
    out
}

/// Opens the index for `target` chunks, (re)building it unless it holds them.
async fn index_of(target: usize, dims: usize, dir: &std::path::Path) -> SqliteIndex {
    let path = dir.join(format!("flowchat-search-bench-{target}-{dims}.sqlite"));
    let index = SqliteIndex::open(&path).expect("open index");
    let sessions = sessions();
    let have = index.chunk_count().await.unwrap() as usize;
    let embedded = index.embedding_model().await.unwrap().as_deref() == Some(MODEL)
        && index
            .documents_needing_embeddings(MODEL, 1)
            .await
            .unwrap()
            .is_empty();
    if have == target && embedded {
        return index;
    }
    println!(
        "building {target} chunks with {dims}-dimensional vectors in {} ...",
        path.display()
    );
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
    let zipf = Zipf::new(VOCABULARY);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
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
        let vectors = (0..n).map(|_| rng.direction(dims)).collect();
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
                embeddings: Some(ChunkEmbeddings {
                    model: MODEL.into(),
                    vectors,
                }),
            })
            .await
            .unwrap();
    }
    println!("indexed in {:.1?}", started.elapsed());
    index
}

fn sessions() -> Vec<SessionId> {
    (1..=10u8)
        .map(|i| SessionId::from_random([i; 16]))
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// BM25 alone: no question vector.
    Lexical,
    /// BM25 and vectors, fused.
    Hybrid,
    /// Vectors alone: a question vector, no searchable words.
    Vectors,
}

/// CPU time this process has used (all threads), from `/proc/self/stat`
/// (Linux; `None` elsewhere). Wall-clock latency on a shared machine depends
/// on what else runs; CPU time per search does much less.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// Runs [`QUERIES`] searches; returns their latency percentiles.
async fn measure(index: &SqliteIndex, dims: usize, mode: Mode) -> String {
    let sessions = sessions();
    let zipf = Zipf::new(VOCABULARY);
    // The same questions for both modes.
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut timings: Vec<Duration> = Vec::with_capacity(QUERIES);
    let mut total_hits = 0;
    let cpu_before = cpu_time();
    for q in 0..QUERIES {
        // Questions of 3–8 words drawn from the same distribution: common
        // words make long posting lists, which is the slow case.
        let len = 3 + (rng.next() % 6) as usize;
        let text = (0..len)
            .map(|_| word(zipf.sample(&mut rng) % 3_000))
            .collect::<Vec<_>>()
            .join(" ");
        let vector = rng.direction(dims);
        let viewer = (q % 2 == 0).then(|| &sessions[q % sessions.len()]);
        let text = if mode == Mode::Vectors {
            "how does it work?".to_owned()
        } else {
            format!("how does {text} work?")
        };
        let started = Instant::now();
        let hits = index
            .search(SearchQuery {
                text: &text,
                viewer,
                top_k: 8,
                embedding: (mode != Mode::Lexical).then_some(vector.as_slice()),
            })
            .await
            .unwrap();
        timings.push(started.elapsed());
        total_hits += hits.len();
    }
    let cpu = match (cpu_before, cpu_time()) {
        (Some(a), Some(b)) => format!("  cpu/query {:.2?}", (b - a) / QUERIES as u32),
        _ => String::new(),
    };
    timings.sort();
    let pct = |p: f64| timings[((timings.len() as f64 * p) as usize).min(timings.len() - 1)];
    format!(
        "  {:<8} {QUERIES} queries ({total_hits} hits): p50 {:.2?}  p95 {:.2?}  p99 {:.2?}  max {:.2?}{cpu}",
        match mode {
            Mode::Lexical => "lexical",
            Mode::Hybrid => "hybrid",
            Mode::Vectors => "vectors",
        },
        pct(0.50),
        pct(0.95),
        pct(0.99),
        timings[timings.len() - 1]
    )
}

#[tokio::main]
async fn main() {
    let args = args();
    for &size in &args.sizes {
        let index = index_of(size, args.dims, &args.dir).await;
        println!(
            "{} chunks, {}-dimensional vectors:",
            index.chunk_count().await.unwrap(),
            args.dims
        );
        // A warm-up pass first, so both modes run on a warm page cache.
        measure(&index, args.dims, Mode::Hybrid).await;
        for mode in [Mode::Lexical, Mode::Hybrid, Mode::Vectors] {
            println!("{}", measure(&index, args.dims, mode).await);
        }
    }
}
