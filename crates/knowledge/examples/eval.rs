//! Retrieval and extractive quotes measured on real documentation (issue 15):
//! the labelled questions of `eval/questions.json` over a documentation
//! corpus installed from a Debian package (Git's HTML manual, `git-doc`),
//! for FlowChat's pipeline and, in the same run, a baseline that
//! reimplements the original system's (LangChain-style recursive 800/200
//! character chunks, plain BM25).
//!
//! `cargo run --release -p flowchat-knowledge --example eval -- <corpus root> [--questions PATH] [--dump DIR]`
//!
//! - FlowChat: every corpus file read by [`flowchat_knowledge::load`] (the
//!   HTML loader), cut by [`chunk_document`] with the default
//!   [`ChunkSettings`], indexed in a temporary [`SqliteIndex`] without
//!   vectors (no embedding model is available offline, so this is the
//!   lexical path: BM25 over FTS5), searched through
//!   [`KnowledgeIndex::search`] as the drain searches (the default
//!   `RETRIEVAL_TOP_K`, [`DRAIN_TOP_K`], for the answer), and answered by
//!   [`extractive_answer`].
//! - Baseline: the same loaded text cut by a reimplementation of LangChain's
//!   `RecursiveCharacterTextSplitter` (separators `"\n\n"`, `"\n"`, `" "`,
//!   `""`; 800 characters, overlap 200), indexed in a plain FTS5 table
//!   (default `unicode61` tokenizer), searched with every word of the
//!   question OR-ed and ranked by `bm25()`; its "answer" is the top chunk's
//!   first 300 characters, what the original system showed.
//!
//! A passage is relevant when it comes from the question's file and
//! contains the evidence (whitespace collapsed on both sides). R@k: the
//! share of questions with a relevant passage among the first k; MRR over
//! the first 10. A quote "contains the evidence" when one of the answer's
//! citation excerpts does (a leading or trailing "…" ignored), whichever
//! file it quotes.
//!
//! Every evidence string must occur in the loaded text of its file, and a
//! hard question's evidence must sit deep in a long section (see
//! [`HARD_MIN_SECTION_CHARS`]): the run fails (exit code 1) listing the
//! questions that break a rule, before measuring anything. `--dump DIR` writes each
//! file's loaded text to `DIR/<file>.txt` and the baseline's chunks of it to
//! `DIR/<file>.baseline.json`, and stops: for writing questions, and for
//! checking the splitter against LangChain's.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowchat_domain::DocumentId;
use flowchat_domain::model::{ChatAnswer, DocumentOwner};
use flowchat_knowledge::{
    Chunk, ChunkSettings, IndexedDocument, KnowledgeIndex, LoadedDocument, Passage, SearchQuery,
    SqliteIndex, chunk_document, extractive_answer, load,
};
use serde::Deserialize;

/// `RETRIEVAL_TOP_K`'s default (`flowchat-config`, `app.rs`): the passages
/// the drain hands to the answer.
const DRAIN_TOP_K: usize = 5;
/// Depth of the rankings read for MRR.
const MRR_DEPTH: usize = 10;
/// The baseline's splitter (LangChain's `RecursiveCharacterTextSplitter`).
const BASELINE_CHUNK_CHARS: usize = 800;
const BASELINE_OVERLAP_CHARS: usize = 200;
const BASELINE_SEPARATORS: &[&str] = &["\n\n", "\n", " ", ""];
/// What the original system showed of its top chunk.
const BASELINE_ANSWER_CHARS: usize = 300;
const BANDS: &[&str] = &["verbatim", "paraphrased", "hard"];
const MIN_PER_BAND: usize = 35;
const MIN_QUESTIONS: usize = 120;
/// What "a detail deep in a long section" means for the hard band, in
/// characters of whitespace-collapsed text: the evidence's section (the
/// text under one Markdown heading of the loaded text, up to the next) is at
/// least this long...
const HARD_MIN_SECTION_CHARS: usize = 2_000;
/// ...and the evidence starts at least this far into it (past what one
/// chunk from the heading would hold).
const HARD_MIN_OFFSET_CHARS: usize = 1_000;

#[derive(Deserialize)]
struct QuestionSet {
    corpus: CorpusSpec,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct CorpusSpec {
    /// The Debian package (for messages; `scripts/eval` installs it).
    package: String,
    /// File name endings indexed, e.g. ".html".
    extensions: Vec<String>,
}

#[derive(Deserialize)]
struct Question {
    id: String,
    band: String,
    /// Relative to the corpus root, `/`-separated.
    file: String,
    evidence: String,
    question: String,
}

/// One corpus file, loaded and chunked.
struct CorpusFile {
    name: String,
    bytes: Vec<u8>,
    doc: LoadedDocument,
    chunks: Vec<Chunk>,
}

/// What one system did with one question.
#[derive(Default, Clone, Copy)]
struct Outcome {
    /// 1-based rank of the first relevant passage within the first 10.
    rank: Option<usize>,
    /// Rank within the answer's retrieval (FlowChat: the `DRAIN_TOP_K`
    /// search; the baseline: the same ranking).
    answer_rank: Option<usize>,
    /// One of the answer's quotes holds the evidence.
    quote_has_evidence: bool,
    /// The first quote does (the baseline shows one).
    first_quote_has_evidence: bool,
}

#[derive(Default)]
struct Tally {
    n: usize,
    at1: usize,
    at5: usize,
    rr: f64,
    quotes: usize,
    first_quotes: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        self.n += 1;
        self.at1 += usize::from(o.answer_rank == Some(1));
        self.at5 += usize::from(o.answer_rank.is_some_and(|r| r <= 5));
        self.rr += o.rank.map_or(0.0, |r| 1.0 / r as f64);
        self.quotes += usize::from(o.quote_has_evidence);
        self.first_quotes += usize::from(o.first_quote_has_evidence);
    }
    fn pct(&self, x: usize) -> String {
        format!("{:.1} %", 100.0 * x as f64 / self.n.max(1) as f64)
    }
    fn mrr(&self) -> String {
        format!("{:.3}", self.rr / self.n.max(1) as f64)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("eval: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    root: PathBuf,
    questions: PathBuf,
    dump: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let usage = "usage: eval <corpus root> [--questions PATH] [--dump DIR]";
    let mut root = None;
    let mut questions = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/questions.json");
    let mut dump = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--questions" => questions = it.next().ok_or(usage)?.into(),
            "--dump" => dump = Some(it.next().ok_or(usage)?.into()),
            "-h" | "--help" => return Err(usage.into()),
            _ if root.is_none() && !arg.starts_with("--") => root = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}; {usage}")),
        }
    }
    Ok(Args {
        root: root.ok_or(usage)?,
        questions,
        dump,
    })
}

fn run() -> Result<ExitCode, String> {
    let args = args()?;
    let set: QuestionSet = serde_json::from_slice(
        &std::fs::read(&args.questions)
            .map_err(|e| format!("{}: {e}", args.questions.display()))?,
    )
    .map_err(|e| format!("{}: {e}", args.questions.display()))?;
    if !args.root.is_dir() {
        return Err(format!(
            "corpus root {} is not a folder (install the Debian package {})",
            args.root.display(),
            set.corpus.package
        ));
    }

    let started = Instant::now();
    let names = list_files(&args.root, &set.corpus.extensions)?;
    let files = load_and_chunk(&args.root, names)?;
    let load_time = started.elapsed();

    if let Some(dir) = &args.dump {
        for f in &files {
            let path = dir.join(format!("{}.txt", f.name));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&path, &f.doc.text).map_err(|e| e.to_string())?;
            let chunks =
                serde_json::to_string(&recursive_split(&f.doc.text)).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("{}.baseline.json", f.name)), chunks)
                .map_err(|e| e.to_string())?;
        }
        eprintln!("wrote {} loaded texts under {}", files.len(), dir.display());
        return Ok(ExitCode::SUCCESS);
    }

    // Evidence checks first: a label that is not in its file is a broken
    // evaluation, not a miss.
    let by_name: HashMap<&str, &CorpusFile> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let normalised: HashMap<&str, String> = files
        .iter()
        .map(|f| (f.name.as_str(), collapse(&f.doc.text)))
        .collect();
    let mut errors = Vec::new();
    let mut ids = HashSet::new();
    let mut shared_evidence = Vec::new();
    // (band, section length, offset) of every question's evidence.
    let mut depths: Vec<(&str, usize, usize)> = Vec::new();
    for q in &set.questions {
        if !ids.insert(q.id.as_str()) {
            errors.push(format!("{}: duplicate id", q.id));
        }
        if !BANDS.contains(&q.band.as_str()) {
            errors.push(format!("{}: unknown band {:?}", q.id, q.band));
        }
        let evidence = collapse(&q.evidence);
        if evidence.is_empty() {
            errors.push(format!("{}: empty evidence", q.id));
            continue;
        }
        match normalised.get(q.file.as_str()) {
            None => errors.push(format!("{}: file {} is not in the corpus", q.id, q.file)),
            Some(text) if !text.contains(&evidence) => errors.push(format!(
                "{}: evidence {:?} is not in the loaded text of {}",
                q.id, q.evidence, q.file
            )),
            Some(_) => {
                let doc = &by_name[q.file.as_str()].doc.text;
                match evidence_depth(doc, &evidence) {
                    None => errors.push(format!(
                        "{}: evidence {:?} spans a heading in {}",
                        q.id, q.evidence, q.file
                    )),
                    Some((section, offset)) => {
                        depths.push((q.band.as_str(), section, offset));
                        if q.band == "hard"
                            && (section < HARD_MIN_SECTION_CHARS || offset < HARD_MIN_OFFSET_CHARS)
                        {
                            errors.push(format!(
                                "{}: a hard question's evidence must be at least \
                                 {HARD_MIN_OFFSET_CHARS} characters into a section of at least \
                                 {HARD_MIN_SECTION_CHARS}; it is {offset} characters into {section}",
                                q.id
                            ));
                        }
                    }
                }
                let elsewhere = normalised
                    .iter()
                    .filter(|(name, text)| **name != q.file && text.contains(&evidence))
                    .count();
                if elsewhere > 0 {
                    shared_evidence.push(format!("{} ({elsewhere})", q.id));
                }
            }
        }
    }
    if set.questions.len() < MIN_QUESTIONS {
        errors.push(format!(
            "{} questions, fewer than {MIN_QUESTIONS}",
            set.questions.len()
        ));
    }
    for band in BANDS {
        let n = set.questions.iter().filter(|q| q.band == *band).count();
        if n < MIN_PER_BAND {
            errors.push(format!(
                "band {band} has {n} questions, fewer than {MIN_PER_BAND}"
            ));
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("eval: {e}");
        }
        return Err(format!(
            "{} problem(s) in {}",
            errors.len(),
            args.questions.display()
        ));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("flowchat-eval-{}", std::process::id()));
    let result = runtime.block_on(evaluate(&set, &files, &dir, load_time));
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!(
        "\nWhere the evidence sits (median, characters of collapsed text): {}.",
        BANDS
            .iter()
            .map(|band| {
                let mut sections: Vec<usize> = depths
                    .iter()
                    .filter(|d| d.0 == *band)
                    .map(|d| d.1)
                    .collect();
                let mut offsets: Vec<usize> = depths
                    .iter()
                    .filter(|d| d.0 == *band)
                    .map(|d| d.2)
                    .collect();
                format!(
                    "{band}: {} into a section of {}",
                    median(&mut offsets),
                    median(&mut sections)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !shared_evidence.is_empty() {
        println!(
            "\nEvidence also found verbatim in other files (count of other files): {}",
            shared_evidence.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn evaluate(
    set: &QuestionSet,
    files: &[CorpusFile],
    dir: &Path,
    load_time: Duration,
) -> Result<(), String> {
    let err = |e: flowchat_knowledge::KnowledgeError| e.to_string();

    // FlowChat's index.
    let started = Instant::now();
    let index = SqliteIndex::open(dir.join("index.sqlite")).map_err(err)?;
    let mut chunks = 0;
    for f in files {
        chunks += f.chunks.len();
        index
            .replace_document(IndexedDocument {
                id: DocumentId::for_content(&f.bytes),
                name: f.name.clone(),
                owner: DocumentOwner::Shared,
                size_bytes: f.bytes.len() as u64,
                chunks: f.chunks.clone(),
                embeddings: None,
            })
            .await
            .map_err(err)?;
    }
    let index_time = started.elapsed();

    // The baseline's index.
    let started = Instant::now();
    let baseline = Baseline::build(files).map_err(|e| e.to_string())?;
    let baseline_time = started.elapsed();

    let started = Instant::now();
    let mut flowchat_outcomes = Vec::new();
    let mut baseline_outcomes = Vec::new();
    let mut misses = Vec::new();
    for q in &set.questions {
        let evidence = collapse(&q.evidence);
        let relevant =
            |source: &str, text: &str| source == q.file && collapse(text).contains(&evidence);

        let search = |top_k| {
            index.search(SearchQuery {
                text: &q.question,
                viewer: None,
                top_k,
                embedding: None,
            })
        };
        let deep = search(MRR_DEPTH).await.map_err(err)?;
        let passages: Vec<Passage> = search(DRAIN_TOP_K).await.map_err(err)?;
        let answer = extractive_answer(&q.question, &passages);
        let holds = |excerpt: &str| quote_text(excerpt).contains(&evidence);
        let quote_has_evidence = answer.citations.iter().any(|c| holds(&c.excerpt));
        let flowchat = Outcome {
            rank: first_rank(deep.iter().map(|p| relevant(&p.source, &p.text))),
            answer_rank: first_rank(passages.iter().map(|p| relevant(&p.source, &p.text))),
            quote_has_evidence,
            first_quote_has_evidence: answer.citations.first().is_some_and(|c| holds(&c.excerpt)),
        };
        if !quote_has_evidence {
            misses.push((q, flowchat, answer));
        }
        flowchat_outcomes.push(flowchat);

        let hits = baseline
            .search(&q.question, MRR_DEPTH)
            .map_err(|e| e.to_string())?;
        let rank = first_rank(hits.iter().map(|(file, text)| relevant(file, text)));
        let shown: String = hits
            .first()
            .map(|(_, text)| text.chars().take(BASELINE_ANSWER_CHARS).collect())
            .unwrap_or_default();
        let shown_has_evidence = collapse(&shown).contains(&evidence);
        baseline_outcomes.push(Outcome {
            rank,
            answer_rank: rank,
            quote_has_evidence: shown_has_evidence,
            first_quote_has_evidence: shown_has_evidence,
        });
    }
    let question_time = started.elapsed();
    drop(index);

    // The report.
    let corpus_bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
    let text_bytes: usize = files.iter().map(|f| f.doc.text.len()).sum();
    println!(
        "## Retrieval and extractive quotes on `{}`\n",
        set.corpus.package
    );
    println!(
        "{} files ({:.1} MB, {:.1} MB of loaded text); FlowChat: {} chunks (default ChunkSettings), \
         lexical search (BM25, no vectors), top {DRAIN_TOP_K} to the extractive answer; baseline: \
         {} chunks (recursive {BASELINE_CHUNK_CHARS}/{BASELINE_OVERLAP_CHARS} characters), BM25 over \
         the question's words OR-ed, answer = top chunk's first {BASELINE_ANSWER_CHARS} characters. \
         {} questions.\n",
        files.len(),
        corpus_bytes as f64 / 1e6,
        text_bytes as f64 / 1e6,
        chunks,
        baseline.chunks,
        set.questions.len()
    );
    println!(
        "| band | n | R@1 FlowChat | R@1 baseline | R@5 FlowChat | R@5 baseline | MRR@10 FlowChat | MRR@10 baseline | quotes hold evidence FlowChat | first quote FlowChat | answer holds evidence baseline |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for band in BANDS.iter().copied().map(Some).chain([None]) {
        let mut fc = Tally::default();
        let mut bl = Tally::default();
        for ((q, f), b) in set
            .questions
            .iter()
            .zip(&flowchat_outcomes)
            .zip(&baseline_outcomes)
        {
            if band.is_none_or(|band| q.band == band) {
                fc.add(f);
                bl.add(b);
            }
        }
        let name = band.map_or("**all**".to_owned(), str::to_owned);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fc.n,
            fc.pct(fc.at1),
            bl.pct(bl.at1),
            fc.pct(fc.at5),
            bl.pct(bl.at5),
            fc.mrr(),
            bl.mrr(),
            fc.pct(fc.quotes),
            fc.pct(fc.first_quotes),
            bl.pct(bl.quotes),
        );
    }
    let reached: Vec<&Outcome> = flowchat_outcomes
        .iter()
        .filter(|o| o.answer_rank.is_some())
        .collect();
    let quoted = reached.iter().filter(|o| o.quote_has_evidence).count();
    println!(
        "\nOf the {} questions whose relevant passage reached FlowChat's extractive answer \
         (top {DRAIN_TOP_K}), its quotes hold the evidence for {quoted} ({:.1} %).",
        reached.len(),
        100.0 * quoted as f64 / reached.len().max(1) as f64
    );
    println!(
        "\nTimes: load + chunk {:.1} s (FlowChat's chunker, 2 threads), FlowChat index {:.1} s, \
         baseline split + index {:.1} s, {} questions (two searches and an extractive answer, plus \
         a baseline search, each) {:.2} s.",
        load_time.as_secs_f64(),
        index_time.as_secs_f64(),
        baseline_time.as_secs_f64(),
        set.questions.len(),
        question_time.as_secs_f64()
    );

    println!(
        "\n### Questions whose FlowChat quotes miss the evidence ({})\n",
        misses.len()
    );
    for (q, outcome, answer) in &misses {
        let rank = outcome
            .answer_rank
            .map_or("not in the top 5".to_owned(), |r| {
                format!("relevant passage at rank {r}")
            });
        println!(
            "- `{}` ({}, {}; {rank}): {} — evidence: {:?}",
            q.id, q.band, q.file, q.question, q.evidence
        );
        print_quotes(answer);
    }
    Ok(())
}

fn print_quotes(answer: &ChatAnswer) {
    if answer.citations.is_empty() {
        println!("  - (no quote: nothing matched)");
    }
    for c in &answer.citations {
        println!("  - [{}] {}: {:?}", c.index, c.source, c.excerpt);
    }
}

/// 1-based position of the first `true`.
fn first_rank(relevant: impl Iterator<Item = bool>) -> Option<usize> {
    relevant.enumerate().find(|(_, r)| *r).map(|(i, _)| i + 1)
}

/// Whitespace runs as one space, ends trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn median(values: &mut [usize]) -> usize {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Where `evidence` (collapsed) first occurs in `text`, as (length of its
/// section, offset within it), in characters of collapsed text. A section
/// is the text under one Markdown heading line (outside code fences) up to
/// the next; the text before the first heading is a section too. `None`
/// when no single section holds the evidence.
fn evidence_depth(text: &str, evidence: &str) -> Option<(usize, usize)> {
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence && is_heading(line) {
            sections.push(Vec::new());
            continue;
        }
        sections.last_mut().expect("one section").push(line);
    }
    sections.iter().find_map(|lines| {
        let section = collapse(&lines.join(" "));
        let at = section.find(evidence)?;
        Some((section.chars().count(), section[..at].chars().count()))
    })
}

/// A Markdown ATX heading line: one to six `#` and a space.
fn is_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with(' ')
}

/// A citation excerpt as text to search: the "…" marking a cut at either
/// end dropped, whitespace collapsed.
fn quote_text(excerpt: &str) -> String {
    let t = excerpt.trim();
    let t = t.strip_prefix('…').unwrap_or(t);
    let t = t.strip_suffix('…').unwrap_or(t);
    collapse(t)
}

/// The corpus files under `root` whose names end with one of `extensions`,
/// as sorted `/`-separated relative paths; hidden entries skipped.
fn list_files(root: &Path, extensions: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = rel.join(&name);
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            if kind.is_dir() {
                stack.push(path);
            } else if extensions.iter().any(|ext| name.ends_with(ext.as_str())) {
                out.push(path.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and chunks `names` on two threads (chunking is the slow part).
/// Files of identical content are kept once, under the first name, as the
/// folder sync does.
fn load_and_chunk(root: &Path, names: Vec<String>) -> Result<Vec<CorpusFile>, String> {
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<CorpusFile, String>>> = Mutex::default();
    let settings = ChunkSettings::default();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let result = std::fs::read(root.join(name))
                        .map_err(|e| format!("{name}: {e}"))
                        .and_then(|bytes| {
                            let doc = load(name, &bytes).map_err(|e| format!("{name}: {e}"))?;
                            let chunks = chunk_document(&doc, &settings)
                                .map_err(|e| format!("{name}: {e}"))?;
                            Ok(CorpusFile {
                                name: name.clone(),
                                bytes,
                                doc,
                                chunks,
                            })
                        });
                    results.lock().expect("results").insert(i, result);
                }
            });
        }
    });
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for (_, result) in results.into_inner().expect("results") {
        match result {
            Ok(f) => {
                if seen.insert(DocumentId::for_content(&f.bytes)) {
                    files.push(f);
                } else {
                    eprintln!("eval: {} repeats an earlier file; skipped", f.name);
                }
            }
            // A file the loader refuses is a finding, not a reason to stop;
            // a question on it fails the evidence check.
            Err(e) => eprintln!("eval: could not load {e}"),
        }
    }
    if files.is_empty() {
        return Err("no corpus file could be loaded".into());
    }
    Ok(files)
}

/// The original system's retrieval: recursive character chunks, plain BM25.
struct Baseline {
    conn: rusqlite::Connection,
    chunks: usize,
}

impl Baseline {
    fn build(files: &[CorpusFile]) -> rusqlite::Result<Baseline> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch("CREATE VIRTUAL TABLE base USING fts5(text, file UNINDEXED);")?;
        let mut chunks = 0;
        {
            let mut insert = conn.prepare("INSERT INTO base (text, file) VALUES (?1, ?2)")?;
            conn.execute_batch("BEGIN")?;
            for f in files {
                for chunk in recursive_split(&f.doc.text) {
                    insert.execute(rusqlite::params![chunk, f.name])?;
                    chunks += 1;
                }
            }
            conn.execute_batch("COMMIT")?;
        }
        Ok(Baseline { conn, chunks })
    }

    /// The best `k` chunks (file, text) for every word of `question`,
    /// OR-ed (words as `unicode61` splits them; stopwords kept, as
    /// LangChain's BM25 retriever keeps them).
    fn search(&self, question: &str, k: usize) -> rusqlite::Result<Vec<(String, String)>> {
        let mut seen = HashSet::new();
        let words: Vec<String> = question
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .filter(|w| seen.insert(w.clone()))
            .map(|w| format!("\"{w}\""))
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT file, text FROM base WHERE base MATCH ?1 ORDER BY bm25(base) LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![words.join(" OR "), k as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        rows.collect()
    }
}

/// LangChain's `RecursiveCharacterTextSplitter` with its defaults
/// (`keep_separator=True`, i.e. a separator starts the piece after it;
/// `strip_whitespace=True`; length = characters), [`BASELINE_SEPARATORS`],
/// [`BASELINE_CHUNK_CHARS`] and [`BASELINE_OVERLAP_CHARS`].
fn recursive_split(text: &str) -> Vec<String> {
    split_recursive(text, BASELINE_SEPARATORS)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn split_recursive(text: &str, separators: &[&str]) -> Vec<String> {
    // The first separator that occurs (the empty one always does).
    let mut separator = "";
    let mut rest: &[&str] = &[];
    for (i, s) in separators.iter().enumerate() {
        if s.is_empty() {
            break;
        }
        if text.contains(s) {
            separator = s;
            rest = &separators[i + 1..];
            break;
        }
    }
    let splits = split_keeping_separator(text, separator);
    let mut out = Vec::new();
    let mut good: Vec<&str> = Vec::new();
    for s in splits {
        if chars(s) < BASELINE_CHUNK_CHARS {
            good.push(s);
        } else {
            if !good.is_empty() {
                out.extend(merge_splits(&good));
                good.clear();
            }
            if rest.is_empty() {
                out.push(s.to_owned());
            } else {
                out.extend(split_recursive(s, rest));
            }
        }
    }
    if !good.is_empty() {
        out.extend(merge_splits(&good));
    }
    out
}

/// Python's `re.split(f"({sep})", text)` with the separator glued to the
/// start of the piece after it, empty pieces dropped; an empty separator
/// splits into characters.
fn split_keeping_separator<'t>(text: &'t str, separator: &str) -> Vec<&'t str> {
    if separator.is_empty() {
        return text
            .char_indices()
            .map(|(i, c)| &text[i..i + c.len_utf8()])
            .collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (at, _) in text.match_indices(separator) {
        out.push(&text[start..at]);
        start = at;
    }
    out.push(&text[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// LangChain's `_merge_splits` with an empty join separator (the pieces
/// keep theirs): pieces packed up to the chunk size, and each next chunk
/// starting with the last pieces of the previous one, up to the overlap.
fn merge_splits(splits: &[&str]) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current: VecDeque<&str> = VecDeque::new();
    let mut total = 0;
    for &d in splits {
        let len = chars(d);
        if total + len > BASELINE_CHUNK_CHARS && !current.is_empty() {
            if let Some(doc) = join_docs(&current) {
                docs.push(doc);
            }
            // Drop pieces from the front until what is left is at most the
            // overlap and the next piece fits.
            while total > BASELINE_OVERLAP_CHARS
                || (total + len > BASELINE_CHUNK_CHARS && total > 0)
            {
                let Some(first) = current.pop_front() else {
                    break;
                };
                total -= chars(first);
            }
        }
        current.push_back(d);
        total += len;
    }
    if let Some(doc) = join_docs(&current) {
        docs.push(doc);
    }
    docs
}

fn join_docs(pieces: &VecDeque<&str>) -> Option<String> {
    let text: String = pieces.iter().copied().collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_langchain() {
        assert_eq!(
            split_keeping_separator("a\n\nb\n\nc", "\n\n"),
            ["a", "\n\nb", "\n\nc"]
        );
        assert_eq!(split_keeping_separator("\n\na", "\n\n"), ["\n\na"]);
        let text = "word ".repeat(400);
        let chunks = recursive_split(&text);
        assert!(chunks.iter().all(|c| chars(c) <= BASELINE_CHUNK_CHARS));
        assert!(chunks.len() >= 3);
    }
}
