//! Splits a loaded document into chunks sized in model tokens.
//!
//! Chunks are what retrieval returns and what a prompt quotes, so they are
//! measured in the unit prompt budgets use: `cl100k_base` tokens. The splitter
//! (`text-splitter`) cuts at the largest structural boundary that fits
//! (Markdown sections, then paragraphs, sentences, words), and consecutive
//! chunks overlap a little so a fact cut in two still appears whole somewhere.
//!
//! Sizing is what costs: the splitter measures many candidate chunks, and
//! tokenizing each one (as it did at first) read the text dozens of times
//! (0.45 MB/s). Now each window is tokenized once, and a candidate's size is
//! read from where those tokens end ([`WindowSizer`]): exact inside the
//! candidate, off by a token or two at its edges, where a word may be
//! tokenized differently on its own. Candidates within
//! [`NEAR_LIMIT_TOKENS`] of the limit, where that matters, are counted
//! exactly, and so is every chunk the estimate puts near the limit, so no
//! chunk is over it.
//!
//! Each chunk remembers the Markdown heading path in force where it starts
//! ("Guide > Install > Linux"): it is shown in citations and indexed, so a
//! question that names a section finds the section's text. HTML is loaded as
//! Markdown-ish text, so it is chunked the same way.
//!
//! Paged documents (PDF) are split one page at a time: a chunk never spans
//! two pages, so its `page` is exact (at the cost of no overlap across a page
//! break). Positions run on across pages.
//!
//! The work is linear in the text, whatever the text: the splitter looks at
//! the rest of the current word or sentence for every chunk, which for a
//! hostile text (a megabyte with no space) is quadratic. So a run of more
//! than [`LONG_RUN_BYTES`] without whitespace is cut by a plain fallback
//! (pieces measured in tokens, no overlap), and the splitter is given at most
//! [`WINDOW_BYTES`] at a time, cut at a paragraph break (else a line break,
//! else a space). Ordinary text has no such runs, and windows only matter for
//! texts longer than one, where a chunk ends at the window's paragraph break.

use std::ops::Range;
use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tiktoken_rs::CoreBPE;

use crate::error::KnowledgeError;
use crate::loader::LoadedDocument;

/// Runs of non-whitespace longer than this (bytes) are cut by the fallback,
/// not the splitter. No word is this long; a base64 blob or a hostile file is.
pub const LONG_RUN_BYTES: usize = 1024;

/// The most text (bytes) the splitter is given at once.
pub const WINDOW_BYTES: usize = 32 * 1024;

/// A candidate whose estimated size is this close to the limit is counted
/// exactly. The estimate is off only at a candidate's two edges, by the
/// tokens of a word there, so a few tokens of margin suffice for text; the
/// exact counts keep any case where it does not from going over the limit.
pub const NEAR_LIMIT_TOKENS: usize = 8;

/// How large chunks are, in `cl100k_base` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSettings {
    /// The most tokens one chunk may hold.
    pub max_tokens: usize,
    /// At most this many tokens from the end of one chunk are repeated at the
    /// start of the next. The splitter overlaps whole units (sentences, then
    /// words), so the overlap is the largest run of units that fits, and can be
    /// none when no unit is small enough. Must be below `max_tokens`.
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            max_tokens: 400,
            overlap_tokens: 60,
        }
    }
}

impl ChunkSettings {
    /// Checks the settings can produce chunks.
    pub fn validate(&self) -> Result<(), KnowledgeError> {
        if self.max_tokens == 0 {
            return Err(KnowledgeError::Settings(
                "max_tokens must be at least 1".into(),
            ));
        }
        if self.overlap_tokens >= self.max_tokens {
            return Err(KnowledgeError::Settings(format!(
                "overlap_tokens ({}) must be less than max_tokens ({})",
                self.overlap_tokens, self.max_tokens
            )));
        }
        Ok(())
    }
}

/// One piece of a document, as indexed and cited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based, in document order, without gaps.
    pub position: u32,
    pub text: String,
    /// The heading path at the chunk's start, outermost first, joined with
    /// " > ". `None` outside any heading and for plain text.
    pub heading: Option<String>,
    /// 1-based page where the chunk starts; `None` for formats without pages.
    pub page: Option<u32>,
    /// `cl100k_base` tokens in `text`: exact within [`NEAR_LIMIT_TOKENS`]
    /// of the limit, else read from the window's tokenization, which may
    /// differ by a token or two at the chunk's edges (see the module doc).
    pub token_count: u32,
}

/// The shared `cl100k_base` tokenizer. Building it takes a noticeable time
/// (hundreds of milliseconds unoptimised), so it is built once per process
/// (`tiktoken_rs` keeps it in a `LazyLock`).
pub fn tokenizer() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// `cl100k_base` tokens in `text`: the unit of chunk sizes and prompt budgets.
pub fn count_tokens(text: &str) -> usize {
    tokenizer().encode_ordinary(text).len()
}

/// Splits `doc` into chunks. CPU-bound (tokenizes the text many times): run it
/// off the async executor, e.g. in `tokio::task::spawn_blocking`.
pub fn chunk_document(
    doc: &LoadedDocument,
    settings: &ChunkSettings,
) -> Result<Vec<Chunk>, KnowledgeError> {
    settings.validate()?;
    let markdown = doc.format.is_markdown_like();
    // Paged documents are split page by page, so no chunk spans two pages
    // and every chunk's page is exact; offsets stay document-wide.
    let text = doc.text.as_str();
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    for span in segments(text, &doc.page_starts)
        .into_iter()
        .flat_map(|range| spans(text, range))
    {
        match span {
            Span::Split(range) => {
                split_window(text, range, markdown, settings, &mut pieces)?;
            }
            Span::Run(range) => pieces.extend(
                cut_run(text, range, settings.max_tokens)
                    .into_iter()
                    .map(|(offset, piece)| (offset, piece, count_tokens(piece))),
            ),
        }
    }
    let headings = if markdown {
        markdown_headings(&doc.text)
    } else {
        Vec::new()
    };

    pieces.retain(|(_, text, _)| !text.trim().is_empty());
    // A piece holding only headings (the splitter leaves one before a section
    // too big to join) has no content to find or quote; its headings live on
    // in the next chunks' heading paths. Kept if nothing else is left.
    if pieces
        .iter()
        .any(|&(offset, text, _)| !only_headings(&headings, offset, text))
    {
        pieces.retain(|&(offset, text, _)| !only_headings(&headings, offset, text));
    }

    let chunks = pieces
        .into_iter()
        .enumerate()
        .map(|(position, (offset, text, tokens))| Chunk {
            position: position as u32,
            text: text.to_owned(),
            heading: heading_path_at(&headings, offset),
            page: page_at(&doc.page_starts, offset),
            token_count: tokens as u32,
        })
        .collect();
    Ok(chunks)
}

/// A chunk before it is numbered: its offset in the document, its text and
/// its size in tokens.
type Piece<'t> = (usize, &'t str, usize);

/// Splits the window `range` of `text` into pieces of at most
/// `settings.max_tokens`, sized by one tokenization of the window.
fn split_window<'t>(
    text: &'t str,
    range: Range<usize>,
    markdown: bool,
    settings: &ChunkSettings,
    pieces: &mut Vec<Piece<'t>>,
) -> Result<(), KnowledgeError> {
    let base = range.start;
    let window = &text[range];
    let sizer = WindowSizer::new(window, settings.max_tokens);
    for (offset, piece) in split_with(&sizer, window, markdown, settings)? {
        let tokens = sizer.count(piece);
        if tokens <= settings.max_tokens {
            pieces.push((base + offset, piece, tokens));
            continue;
        }
        // The estimate let a candidate through that is over the limit (a
        // long word at an edge): split that piece again, counting exactly.
        let exact = split_with(tokenizer(), piece, markdown, settings)?;
        let inner = piece.as_ptr() as usize - window.as_ptr() as usize;
        pieces.extend(
            exact
                .into_iter()
                .map(|(o, p)| (base + inner + o, p, count_tokens(p))),
        );
    }
    Ok(())
}

/// `text` split by the splitter for its format, sized by `sizer`.
fn split_with<'t, S: ChunkSizer>(
    sizer: S,
    text: &'t str,
    markdown: bool,
    settings: &ChunkSettings,
) -> Result<Vec<(usize, &'t str)>, KnowledgeError> {
    let config = ChunkConfig::new(settings.max_tokens)
        .with_sizer(sizer)
        .with_overlap(settings.overlap_tokens)
        .map_err(|e| KnowledgeError::Settings(e.to_string()))?;
    Ok(if markdown {
        MarkdownSplitter::new(config).chunk_indices(text).collect()
    } else {
        TextSplitter::new(config).chunk_indices(text).collect()
    })
}

/// The length in bytes of each `cl100k_base` token, by rank.
static TOKEN_BYTES: LazyLock<Vec<u16>> = LazyLock::new(|| {
    let bpe = tokenizer();
    let mut lengths = Vec::with_capacity(100_300);
    let mut misses = 0;
    for rank in 0u32.. {
        match bpe.decode_bytes(&[rank]) {
            Ok(bytes) => {
                lengths.resize(rank as usize, 0);
                lengths.push(bytes.len().min(u16::MAX as usize) as u16);
                misses = 0;
            }
            // Ranks run without gaps up to the special tokens; a long run of
            // unknown ranks is the end.
            Err(_) => {
                misses += 1;
                if misses > 1024 {
                    break;
                }
            }
        }
    }
    lengths
});

/// Sizes the splitter's candidates in one window from a single
/// tokenization of it. The splitter hands the sizer slices of the window,
/// so a candidate's place in it is known; its estimate is the number of the
/// window's tokens that end inside it.
struct WindowSizer<'w> {
    window: &'w str,
    /// Where each of the window's tokens ends, ascending (byte offsets).
    ends: Vec<usize>,
    max_tokens: usize,
}

impl<'w> WindowSizer<'w> {
    fn new(window: &'w str, max_tokens: usize) -> Self {
        let lengths = &*TOKEN_BYTES;
        let mut at = 0usize;
        let ends = tokenizer()
            .encode_ordinary(window)
            .into_iter()
            .map(|rank| {
                at += lengths
                    .get(rank as usize)
                    .map_or(1, |&l| usize::from(l.max(1)));
                at
            })
            .collect();
        WindowSizer {
            window,
            ends,
            max_tokens,
        }
    }

    /// The tokens of `chunk`: estimated, or counted when the estimate is
    /// near the limit (or `chunk` is not a slice of the window).
    fn count(&self, chunk: &str) -> usize {
        let base = self.window.as_ptr() as usize;
        let at = chunk.as_ptr() as usize;
        if at < base || at + chunk.len() > base + self.window.len() {
            return count_tokens(chunk);
        }
        let start = at - base;
        let end = start + chunk.len();
        let estimate =
            self.ends.partition_point(|&e| e <= end) - self.ends.partition_point(|&e| e <= start);
        if estimate.abs_diff(self.max_tokens) <= NEAR_LIMIT_TOKENS {
            count_tokens(chunk)
        } else {
            estimate
        }
    }
}

impl ChunkSizer for &WindowSizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        self.count(chunk)
    }
}

/// The byte ranges to split separately: one per page for paged documents
/// (page 1 from the start of the text, each page up to the next one's start;
/// empty pages give no range), else the whole text. Page starts that are out
/// of order, out of range or not on a character boundary are ignored.
fn segments(text: &str, page_starts: &[usize]) -> Vec<Range<usize>> {
    let mut bounds: Vec<usize> = vec![0];
    let mut last = 0;
    for &start in page_starts.iter().skip(1) {
        if start > last && start < text.len() && text.is_char_boundary(start) {
            bounds.push(start);
            last = start;
        }
    }
    bounds.push(text.len());
    bounds
        .windows(2)
        .map(|w| w[0]..w[1])
        .filter(|r| !r.is_empty())
        .collect()
}

/// A stretch of text and how it is split.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Span {
    /// By the splitter (at most [`WINDOW_BYTES`]).
    Split(Range<usize>),
    /// By [`cut_run`]: a run of non-whitespace over [`LONG_RUN_BYTES`].
    Run(Range<usize>),
}

/// `range` of `text` as spans: long runs apart, the rest in windows.
fn spans(text: &str, range: Range<usize>) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut pending = range.start;
    let mut run_start: Option<usize> = None;
    let chars = text[range.clone()]
        .char_indices()
        .map(|(i, c)| (range.start + i, c.is_whitespace()))
        .chain(std::iter::once((range.end, true)));
    for (at, space) in chars {
        match (space, run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(start)) => {
                run_start = None;
                if at - start > LONG_RUN_BYTES {
                    windows(text, pending..start, &mut spans);
                    spans.push(Span::Run(start..at));
                    pending = at;
                }
            }
            _ => {}
        }
    }
    windows(text, pending..range.end, &mut spans);
    spans
}

/// Cuts `range` into windows of at most [`WINDOW_BYTES`], each ending at the
/// last paragraph break in its second half, else line break, else
/// whitespace (there is one: runs are shorter than half a window).
fn windows(text: &str, mut range: Range<usize>, spans: &mut Vec<Span>) {
    while range.len() > WINDOW_BYTES {
        let limit = char_floor(text, range.start + WINDOW_BYTES);
        let half = char_floor(text, range.start + WINDOW_BYTES / 2);
        let window = &text[half..limit];
        let cut = window
            .rfind("\n\n")
            .map(|i| i + 2)
            .or_else(|| window.rfind('\n').map(|i| i + 1))
            .or_else(|| {
                window
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace())
                    .map(|(i, c)| i + c.len_utf8())
            })
            .map_or(limit, |i| half + i);
        spans.push(Span::Split(range.start..cut));
        range.start = cut;
    }
    if !range.is_empty() {
        spans.push(Span::Split(range));
    }
}

/// The largest character boundary of `text` at or below `at`.
fn char_floor(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Cuts a long run into pieces of at most `max_tokens` tokens (at least one
/// character each), without the splitter: a guess of four bytes a token,
/// shrunk in proportion until it fits. Each guess costs one count of at most
/// `4 × max_tokens` bytes, and a few guesses do, so this is linear.
fn cut_run(text: &str, range: Range<usize>, max_tokens: usize) -> Vec<(usize, &str)> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let one_char = start + text[start..].chars().next().map_or(1, char::len_utf8);
        let mut end =
            char_floor(text, start.saturating_add(4 * max_tokens).min(range.end)).max(one_char);
        loop {
            let tokens = count_tokens(&text[start..end]);
            if tokens <= max_tokens || end == one_char {
                break;
            }
            let shrunk = start + (end - start) * max_tokens / tokens * 9 / 10;
            end = char_floor(text, shrunk).max(one_char);
        }
        pieces.push((start, &text[start..end]));
        start = end;
    }
    pieces
}

/// A heading in the source: where it starts, its level (1–6) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Heading {
    start: usize,
    /// Where the heading's source (marker, text, underline) ends.
    end: usize,
    level: u8,
    title: String,
}

/// Every heading in a Markdown text, in order. Uses a CommonMark parser so `#`
/// lines in fenced or indented code, and YAML front matter, are not headings.
fn markdown_headings(text: &str) -> Vec<Heading> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut headings = Vec::new();
    let mut current: Option<(Range<usize>, u8, String)> = None;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((range, level as u8, String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push(' ');
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((range, level, title)) = current.take() {
                    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !title.is_empty() {
                        headings.push(Heading {
                            start: range.start,
                            end: range.end,
                            level,
                            title,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    headings
}

/// Whether the piece of text at `offset` is nothing but headings and blanks.
fn only_headings(headings: &[Heading], offset: usize, text: &str) -> bool {
    let end = offset + text.len();
    let mut cursor = offset;
    for h in headings.iter().filter(|h| h.end > offset && h.start < end) {
        let gap_end = h.start.max(cursor).min(end);
        if !text[cursor - offset..gap_end - offset].trim().is_empty() {
            return false;
        }
        cursor = cursor.max(h.end.min(end));
    }
    text[cursor - offset..].trim().is_empty()
}

/// The heading path in force at byte `offset`: the last heading of each level
/// that starts at or before it, each closing its deeper levels. A chunk that
/// starts with a heading includes that heading.
fn heading_path_at(headings: &[Heading], offset: usize) -> Option<String> {
    let mut stack: Vec<&Heading> = Vec::new();
    for heading in headings.iter().take_while(|h| h.start <= offset) {
        while stack.last().is_some_and(|top| top.level >= heading.level) {
            stack.pop();
        }
        stack.push(heading);
    }
    if stack.is_empty() {
        return None;
    }
    Some(
        stack
            .iter()
            .map(|h| h.title.as_str())
            .collect::<Vec<_>>()
            .join(" > "),
    )
}

/// The 1-based page containing byte `offset`, given each page's start offset.
fn page_at(page_starts: &[usize], offset: usize) -> Option<u32> {
    if page_starts.is_empty() {
        return None;
    }
    let pages_started = page_starts.partition_point(|&start| start <= offset);
    Some(pages_started.max(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load;

    fn small() -> ChunkSettings {
        ChunkSettings {
            max_tokens: 40,
            overlap_tokens: 15,
        }
    }

    #[test]
    fn heading_paths_follow_the_outline_and_skip_code_fences() {
        let md = "\
Intro before any heading.

# Guide

Welcome text for the guide.

## Install

### Linux

Run the installer with sudo on Linux machines.

```sh
# not a heading
echo hi
```

### Windows

Double-click the setup program on Windows.

## Usage

Open the app and sign in.
";
        let doc = load("guide.md", md.as_bytes()).unwrap();
        let chunks = chunk_document(
            &doc,
            &ChunkSettings {
                max_tokens: 20,
                overlap_tokens: 0,
            },
        )
        .unwrap();
        let find = |needle: &str| {
            chunks
                .iter()
                .find(|c| c.text.contains(needle))
                .unwrap_or_else(|| panic!("no chunk has {needle:?}: {chunks:#?}"))
        };
        assert_eq!(find("Intro before").heading, None);
        assert_eq!(
            find("sudo").heading.as_deref(),
            Some("Guide > Install > Linux")
        );
        assert_eq!(
            find("echo hi").heading.as_deref(),
            Some("Guide > Install > Linux")
        );
        assert_eq!(
            find("Double-click").heading.as_deref(),
            Some("Guide > Install > Windows")
        );
        assert_eq!(find("sign in").heading.as_deref(), Some("Guide > Usage"));
        // A chunk that begins with a heading carries it.
        let guide = chunks
            .iter()
            .find(|c| c.text.starts_with("# Guide"))
            .unwrap();
        assert_eq!(guide.heading.as_deref(), Some("Guide"));
        assert!(chunks.iter().all(|c| c.page.is_none()));
        let positions: Vec<u32> = chunks.iter().map(|c| c.position).collect();
        assert_eq!(positions, (0..chunks.len() as u32).collect::<Vec<_>>());
    }

    /// Sizing from one tokenization per window cuts where counting every
    /// candidate exactly cut, or within the overlap of it (issue 15's bound),
    /// on real Markdown (this project's docs).
    #[test]
    fn window_sizing_cuts_where_exact_sizing_cut() {
        let settings = ChunkSettings::default();
        let (mut same, mut moved) = (0, 0);
        for (name, text) in [
            (
                "architecture.md",
                include_str!("../../../docs/architecture.md"),
            ),
            ("api.md", include_str!("../../../docs/api.md")),
            ("security.md", include_str!("../../../docs/security.md")),
        ] {
            for markdown in [true, false] {
                let exact = split_with(tokenizer(), text, markdown, &settings).unwrap();
                let sizer = WindowSizer::new(text, settings.max_tokens);
                let fast = split_with(&sizer, text, markdown, &settings).unwrap();
                assert_eq!(fast.len(), exact.len(), "{name}, markdown {markdown}");
                for ((a, piece), (b, _)) in fast.iter().zip(&exact) {
                    assert!(count_tokens(piece) <= settings.max_tokens, "{name}");
                    let between = &text[*a.min(b)..*a.max(b)];
                    assert!(
                        count_tokens(between) <= settings.overlap_tokens,
                        "{name}, markdown {markdown}: a chunk starts at {a}, was {b}"
                    );
                    if a == b { same += 1 } else { moved += 1 }
                }
            }
        }
        assert!(
            moved * 20 <= same,
            "{moved} of {} starts moved",
            same + moved
        );
    }

    #[test]
    fn chunks_respect_the_token_budget_and_overlap() {
        let text: String = (0..120)
            .map(|i| format!("Sentence number {i} talks about topic {}. ", i % 7))
            .collect();
        let doc = load("long.txt", text.as_bytes()).unwrap();
        let settings = small();
        let chunks = chunk_document(&doc, &settings).unwrap();
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.token_count as usize <= settings.max_tokens, "{c:?}");
            assert!(count_tokens(&c.text) <= settings.max_tokens, "{c:?}");
            assert!(
                (c.token_count as usize).abs_diff(count_tokens(&c.text)) <= NEAR_LIMIT_TOKENS,
                "{c:?}"
            );
            assert!(c.token_count > 0);
            assert_eq!(c.heading, None);
        }
        // With overlap, each chunk starts inside the previous one.
        let starts: Vec<usize> = chunks
            .iter()
            .map(|c| {
                text.find(&c.text)
                    .expect("chunk text comes from the source")
            })
            .collect();
        for (i, pair) in starts.windows(2).enumerate() {
            let prev_end = pair[0] + chunks[i].text.len();
            assert!(
                pair[1] < prev_end,
                "chunk {} does not overlap chunk {i}",
                i + 1
            );
        }
        // Without overlap they do not.
        let no_overlap = chunk_document(
            &doc,
            &ChunkSettings {
                max_tokens: 40,
                overlap_tokens: 0,
            },
        )
        .unwrap();
        let total: usize = no_overlap.iter().map(|c| c.text.len()).sum();
        assert!(total <= text.len());
    }

    #[test]
    fn crlf_and_bom_do_not_leak_into_chunks_or_headings() {
        let bytes = b"\xEF\xBB\xBF# Title\r\n\r\nBody line one.\r\nBody line two.\r\n";
        let doc = load("x.md", bytes).unwrap();
        let chunks = chunk_document(&doc, &ChunkSettings::default()).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading.as_deref(), Some("Title"));
        assert!(chunks[0].text.starts_with("# Title"));
        assert!(!chunks[0].text.contains('\r'));
        assert!(!chunks[0].text.contains('\u{feff}'));
    }

    #[test]
    fn whitespace_only_pieces_are_dropped_and_bad_settings_rejected() {
        let doc = load("x.md", b"# A\n\n   \n\n\n# B\n\ntext\n").unwrap();
        let chunks = chunk_document(&doc, &small()).unwrap();
        assert!(chunks.iter().all(|c| !c.text.trim().is_empty()));
        let bad = ChunkSettings {
            max_tokens: 10,
            overlap_tokens: 10,
        };
        assert!(matches!(
            chunk_document(&doc, &bad),
            Err(KnowledgeError::Settings(_))
        ));
    }

    #[test]
    fn heading_only_pieces_are_dropped_unless_nothing_else_remains() {
        let md = format!(
            "# Handbook\n\n## Travel\n\n### Expenses\n\n{}",
            "Submit expense reports with receipts within thirty days. ".repeat(6)
        );
        let doc = load("h.md", md.as_bytes()).unwrap();
        let chunks = chunk_document(&doc, &small()).unwrap();
        assert!(chunks.len() > 1);
        assert!(
            chunks.iter().all(|c| c.text.contains("expense")),
            "{chunks:#?}"
        );
        assert_eq!(
            chunks[0].heading.as_deref(),
            Some("Handbook > Travel > Expenses")
        );
        assert_eq!(chunks[0].position, 0);

        let doc = load("t.md", b"# Only\n\n## Headings\n").unwrap();
        let chunks = chunk_document(&doc, &small()).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading.as_deref(), Some("Only"));
    }

    #[test]
    fn pages_map_offsets_to_one_based_pages() {
        assert_eq!(page_at(&[], 5), None);
        assert_eq!(page_at(&[0, 100, 200], 0), Some(1));
        assert_eq!(page_at(&[0, 100, 200], 150), Some(2));
        assert_eq!(page_at(&[0, 100, 200], 200), Some(3));
    }

    #[test]
    fn setext_headings_and_levels_reset() {
        let hs = markdown_headings("Top\n===\n\n## A\n\n#### deep\n\n## B\n");
        let path = heading_path_at(&hs, usize::MAX);
        assert_eq!(path.as_deref(), Some("Top > B"));
    }
}
