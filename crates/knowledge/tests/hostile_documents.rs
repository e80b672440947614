//! Hostile documents load and chunk in time linear in their size, with
//! chunks inside the limits, or fail with a message the uploader can act on
//! (docs/security.md, "Denial of service").

use flowchat_knowledge::{
    Chunk, ChunkSettings, KnowledgeError, MAX_EXTRACTED_TEXT_BYTES, NEAR_LIMIT_TOKENS,
    chunk_document, count_tokens, load,
};

const MB: usize = 1024 * 1024;

fn assert_within_limits(chunks: &[Chunk], settings: &ChunkSettings) {
    assert!(!chunks.is_empty());
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.position as usize, i);
        assert!(
            c.token_count as usize <= settings.max_tokens,
            "{i}: {}",
            c.token_count
        );
        assert!(c.token_count > 0);
        // Exact near the limit; from the window's tokenization elsewhere.
        assert!(count_tokens(&c.text) <= settings.max_tokens);
        assert!((c.token_count as usize).abs_diff(count_tokens(&c.text)) <= NEAR_LIMIT_TOKENS);
    }
}

/// The reviewer's 45 KB upload: 5,000 nested lists. Indenting each item by
/// its depth made 25 MB of text that was still chunking after 4 minutes.
#[test]
fn five_thousand_nested_html_lists_give_linear_text() {
    let page = "<ul><li>a".repeat(5000);
    assert_eq!(page.len(), 45_000);
    let started = std::time::Instant::now();
    let doc = load("lists.html", page.as_bytes()).unwrap();
    // Each item is one line of at most 8 levels of indentation, "- a" and a
    // newline: 20 bytes.
    assert_eq!(doc.text.lines().count(), 5000);
    assert!(doc.text.len() <= 5000 * 20, "{} bytes", doc.text.len());
    let settings = ChunkSettings::default();
    let chunks = chunk_document(&doc, &settings).unwrap();
    assert_within_limits(&chunks, &settings);
    assert!(chunks.len() < 1000, "{} chunks", chunks.len());
    eprintln!(
        "45 KB of nested lists: {} bytes of text, {} chunks, {:?}",
        doc.text.len(),
        chunks.len(),
        started.elapsed()
    );
}

fn assert_cut_whole(text: &str, chunks: &[Chunk]) {
    // A run is cut without overlap: the chunks are the text, in order.
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(joined.len(), text.len());
    assert!(joined == text);
}

/// 1 MB with no whitespace: the splitter re-read the rest of the "word" for
/// every chunk, minutes of CPU.
#[test]
fn a_megabyte_of_one_letter_chunks_within_limits() {
    let text = "a".repeat(MB);
    let started = std::time::Instant::now();
    let doc = load("a.txt", text.as_bytes()).unwrap();
    let settings = ChunkSettings::default();
    let chunks = chunk_document(&doc, &settings).unwrap();
    eprintln!(
        "1 MiB of 'a': {} chunks, {:?}",
        chunks.len(),
        started.elapsed()
    );
    assert_within_limits(&chunks, &settings);
    assert_cut_whole(&text, &chunks);
    // Pieces are guessed at four bytes a token and shrunk to fit: never
    // smaller than needed by more than the 10 % margin and rounding.
    assert!(chunks.len() <= MB / 400, "{} chunks", chunks.len());
}

#[test]
fn a_megabyte_of_random_letters_chunks_within_limits() {
    // Letters only, so the tokenizer sees one 1 MB "word" too.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let text: String = (0..MB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
            letters[(state % letters.len() as u64) as usize] as char
        })
        .collect();
    let started = std::time::Instant::now();
    let doc = load("r.md", text.as_bytes()).unwrap();
    let settings = ChunkSettings::default();
    let chunks = chunk_document(&doc, &settings).unwrap();
    eprintln!(
        "1 MiB of random letters: {} chunks, {:?}",
        chunks.len(),
        started.elapsed()
    );
    assert_within_limits(&chunks, &settings);
    assert_cut_whole(&text, &chunks);
    // A random letter is about half a token: some 1,300 chunks of 400.
    let tokens: usize = chunks.iter().map(|c| c.token_count as usize).sum();
    assert!(chunks.len() <= tokens / 300 + 1, "{} chunks", chunks.len());
}

/// One megabyte of single-letter words and no sentence end: the splitter
/// gets it a window at a time.
#[test]
fn a_megabyte_sentence_chunks_within_limits() {
    let text = "a ".repeat(MB / 2);
    let started = std::time::Instant::now();
    let doc = load("s.txt", text.as_bytes()).unwrap();
    let settings = ChunkSettings::default();
    let chunks = chunk_document(&doc, &settings).unwrap();
    eprintln!(
        "1 MiB of \"a \": {} chunks, {:?}",
        chunks.len(),
        started.elapsed()
    );
    assert_within_limits(&chunks, &settings);
}

#[test]
fn ordinary_text_around_a_long_run_is_kept_whole() {
    let text = format!(
        "Intro paragraph about travel.\n\ndata:{}\n\nClosing paragraph about hotels.\n",
        "Zm9v".repeat(2000)
    );
    let doc = load("mixed.md", text.as_bytes()).unwrap();
    let settings = ChunkSettings::default();
    let chunks = chunk_document(&doc, &settings).unwrap();
    assert_within_limits(&chunks, &settings);
    assert_eq!(chunks[0].text, "Intro paragraph about travel.");
    assert_eq!(
        chunks.last().unwrap().text,
        "Closing paragraph about hotels."
    );
}

#[test]
fn text_over_the_output_budget_fails_with_a_plain_message() {
    let words = "word ".repeat(MAX_EXTRACTED_TEXT_BYTES / 5 + 1);
    let err = load("big.txt", words.as_bytes()).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::TextTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "big.txt holds more than 10 MiB of text, which is over the limit; \
         split it into smaller files"
    );

    let page = format!("<p>{words}</p>");
    let err = load("big.html", page.as_bytes()).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::TextTooLarge { .. }),
        "{err:?}"
    );
}
