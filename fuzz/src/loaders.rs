//! `load_text`, `load_html`, `load_pdf`: an uploaded file as the API checks
//! it (`check_content`, the cheap test before anything is stored) and as the
//! drain ingests it (`load`, then `chunk_document`).
//!
//! Input: the file's bytes; for `load_text` the first byte picks `.txt` or
//! `.md`. Properties: the text is within [`MAX_EXTRACTED_TEXT_BYTES`] and
//! has no `\r`; pages start in order inside the text; chunks are
//! numbered without gaps, none is empty or over the token limit, and each
//! cites a page of the document.

use flowchat_knowledge::{
    ChunkSettings, LoadedDocument, MAX_EXTRACTED_TEXT_BYTES, check_content, chunk_document, load,
};

/// Loads and chunks `bytes` under `name`, checking what must hold.
fn load_and_chunk(name: &str, bytes: &[u8]) {
    let _ = check_content(name, bytes);
    let Ok(doc) = load(name, bytes) else {
        return;
    };
    check_document(&doc);
    let settings = ChunkSettings::default();
    let Ok(chunks) = chunk_document(&doc, &settings) else {
        return;
    };
    let pages = doc.page_count();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.position as usize, i, "chunk positions have gaps");
        assert!(!chunk.text.trim().is_empty(), "an empty chunk");
        assert!(
            chunk.token_count as usize <= settings.max_tokens,
            "a chunk of {} tokens",
            chunk.token_count
        );
        match (chunk.page, pages) {
            (Some(page), Some(pages)) => assert!((1..=pages).contains(&page)),
            (None, None) => {}
            other => panic!("chunk page and document pages disagree: {other:?}"),
        }
    }
}

fn check_document(doc: &LoadedDocument) {
    assert!(doc.text.len() <= MAX_EXTRACTED_TEXT_BYTES);
    assert!(!doc.text.contains('\r'), "a \\r survived");
    assert!(!doc.text.trim().is_empty(), "an empty document loaded");
    if let Some(first) = doc.page_starts.first() {
        assert_eq!(*first, 0);
    }
    for pair in doc.page_starts.windows(2) {
        assert!(pair[0] <= pair[1], "pages out of order");
    }
    for start in &doc.page_starts {
        assert!(*start <= doc.text.len());
        assert!(doc.text.is_char_boundary(*start));
    }
}

pub fn run_text(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = if pick & 1 == 0 {
        "notes.txt"
    } else {
        "notes.md"
    };
    load_and_chunk(name, bytes);
}

pub fn run_html(data: &[u8]) {
    load_and_chunk("page.html", data);
}

pub fn run_pdf(data: &[u8]) {
    load_and_chunk("report.pdf", data);
}

/// Builds the token counter (the `cl100k_base` tables) before the first
/// input: under AddressSanitizer that takes over libFuzzer's 1 s per-input
/// timeout, which is not a finding.
pub fn warm_up() {
    load_and_chunk("warm-up.md", b"# Warm up\n\nOne sentence to count.\n");
}

/// The PDF reader is known to panic on broken files, and the loader catches
/// that on its reader thread by design: the hook stays quiet there and
/// aborts (as libFuzzer's does) anywhere else.
pub fn quiet_pdf_reader_panics() {
    const READER_THREADS: &[&str] = &["document-reader", "pdf-extract"];
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(name) = std::thread::current().name()
            && READER_THREADS.contains(&name)
        {
            return;
        }
        previous(info);
    }));
}
