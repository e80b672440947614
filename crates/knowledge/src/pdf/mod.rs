//! PDF text extraction, page by page.
//!
//! `pdf-extract` (pure Rust, on `lopdf`) does the text layout. It is not
//! hardened against hostile or broken files: it panics on some (a page
//! without a `MediaBox`, a broken content stream), can spend a very long
//! time on others, and `lopdf` decodes streams without limit. So
//!
//! - extraction runs where it can be stopped, under a deadline and a memory
//!   limit (the `extract` module: a reader process by default). Between
//!   pages it checks whether it was given up on, so an in-process reader
//!   stops at the next page;
//! - every stream is decoded once within a budget before anything else
//!   reads it, each page's content streams are listed once, and pages or
//!   forms too large to parse safely are skipped (see [`inflate`]): a
//!   decompression bomb fails as [`KnowledgeError::DecodedTooLarge`];
//! - `catch_unwind` wraps loading the document and each page, so a
//!   panicking page loses that page only (the panic message still goes to
//!   stderr through the process's panic hook). A stack overflow cannot be
//!   caught (it aborts the process), so recursion through nested forms is
//!   bounded before extraction (see `forms`), and so are walks up the page
//!   tree (see `page_tree`);
//! - within size budgets: files over [`MAX_FILE_BYTES`] are refused before
//!   parsing, and extraction stops with [`KnowledgeError::TextTooLarge`] once
//!   the text passes [`MAX_EXTRACTED_TEXT_BYTES`].
//!
//! Encrypted files: `lopdf` opens files whose user password is empty (the
//! common "owner password only" kind that just restricts printing/copying)
//! and decrypts them itself; those are read normally. Files that need a
//! password fail with [`KnowledgeError::PdfEncrypted`].
//!
//! The text of each page is cleaned (see [`clean_page`]) and the pages are
//! joined with blank lines; [`LoadedDocument::page_starts`] records where each
//! page begins so chunks can cite pages.
//!
//! [`LoadedDocument::page_starts`]: crate::loader::LoadedDocument::page_starts

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use pdf_extract::{OutputError, PlainTextOutput};

use crate::error::KnowledgeError;
use crate::extract::{ReadLimits, panic_message};
use crate::folder::MAX_FILE_BYTES;

mod forms;
pub(crate) mod inflate;
mod page_tree;

use inflate::{Budget, MAX_DECODED_BYTES};

/// How long reading one PDF may take by default (`EXTRACT_TIMEOUT_SECONDS`
/// sets it; see the `extract` module).
pub const PDF_TIME_BUDGET: Duration = Duration::from_secs(crate::extract::DEFAULT_TIMEOUT_SECS);

/// The most text (UTF-8 bytes) taken from one document; more fails it
/// with [`KnowledgeError::TextTooLarge`]. Generous: 10 MiB is a few thousand
/// pages of dense prose, far more than a 20 MiB PDF usually holds.
pub const MAX_EXTRACTED_TEXT_BYTES: usize = 10 * 1024 * 1024;

/// The text of a PDF and the byte offset where each page's text starts.
/// Runs on the caller's thread, which needs a large stack (see `extract`).
pub(crate) fn extract(
    name: &str,
    bytes: &[u8],
    limits: &ReadLimits,
) -> Result<(String, Vec<usize>), KnowledgeError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KnowledgeError::TooLarge {
            name: name.to_owned(),
            size_bytes: bytes.len() as u64,
            limit_bytes: MAX_FILE_BYTES,
        });
    }
    if !flowchat_domain::document_format::has_pdf_header(bytes) {
        return Err(not_a_pdf(name));
    }
    let pages = extract_pages(bytes, MAX_EXTRACTED_TEXT_BYTES, limits)
        .map_err(|failure| failure.into_error(name))?;
    join_pages(name, &pages)
}

pub(crate) fn not_a_pdf(name: &str) -> KnowledgeError {
    KnowledgeError::ContentMismatch {
        name: name.to_owned(),
        expected: "PDF".to_owned(),
        reason: "it does not start with the %PDF- header".to_owned(),
    }
}

/// Why extraction failed, before it is tied to a file name.
#[derive(Debug)]
enum PdfFailure {
    Encrypted,
    Unreadable(String),
    NoText,
    TooMuchText,
    /// The streams decode to more than [`MAX_DECODED_BYTES`].
    DecodedTooLarge,
    /// Given up on by whoever waited for it.
    Cancelled,
}

impl PdfFailure {
    fn into_error(self, name: &str) -> KnowledgeError {
        let name = name.to_owned();
        match self {
            PdfFailure::Encrypted => KnowledgeError::PdfEncrypted { name },
            PdfFailure::Unreadable(detail) => KnowledgeError::PdfUnreadable { name, detail },
            PdfFailure::NoText => KnowledgeError::PdfNoText { name },
            PdfFailure::TooMuchText => KnowledgeError::TextTooLarge {
                name,
                limit_bytes: MAX_EXTRACTED_TEXT_BYTES as u64,
            },
            PdfFailure::DecodedTooLarge => KnowledgeError::DecodedTooLarge {
                name,
                limit_bytes: MAX_DECODED_BYTES as u64,
            },
            PdfFailure::Cancelled => KnowledgeError::PdfUnreadable {
                name,
                detail: "reading was given up on".into(),
            },
        }
    }
}

/// Loads the document and extracts each page's raw text (uncleaned). Runs on
/// the budget thread.
fn extract_pages(
    bytes: &[u8],
    max_text: usize,
    limits: &ReadLimits,
) -> Result<Vec<String>, PdfFailure> {
    let max_page = limits.max_page_content;
    let mut budget = Budget::new(MAX_DECODED_BYTES);
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        inflate::load_within_budget(bytes, &mut budget)
    }));
    let doc = match loaded {
        _ if budget.exceeded() => return Err(PdfFailure::DecodedTooLarge),
        Ok(Ok(doc)) => doc,
        Ok(Err(err)) => return Err(classify_load_error(bytes, &err)),
        Err(p) => return Err(PdfFailure::Unreadable(panic_message(&*p))),
    };
    // lopdf decrypts files whose user password is empty while loading and
    // drops their /Encrypt entry; one still present needs a password.
    if doc.is_encrypted() {
        return Err(PdfFailure::Encrypted);
    }
    let mut doc = doc;
    match catch_unwind(AssertUnwindSafe(|| {
        inflate::decode_streams(&mut doc, &mut budget, max_page)
    })) {
        Ok(Ok(())) => {}
        Ok(Err(inflate::OverBudget)) => return Err(PdfFailure::DecodedTooLarge),
        Err(p) => return Err(PdfFailure::Unreadable(panic_message(&*p))),
    }
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| prepare(&mut doc, limits))) {
        return Err(PdfFailure::Unreadable(panic_message(&*p)));
    }
    let pages_by_number = doc.get_pages();
    if pages_by_number.is_empty() {
        return Err(PdfFailure::Unreadable("it has no pages".into()));
    }

    let mut pages = Vec::with_capacity(pages_by_number.len());
    let mut total = 0usize;
    let mut first_error = None;
    let mut failed = 0usize;
    for (number, page_id) in pages_by_number {
        if limits.cancel.is_cancelled() {
            return Err(PdfFailure::Cancelled);
        }
        if inflate::page_content_len(&doc, page_id) > max_page {
            failed += 1;
            first_error.get_or_insert_with(|| {
                format!(
                    "page {number}'s content is over {} MiB",
                    max_page / (1024 * 1024)
                )
            });
            pages.push(String::new());
            continue;
        }
        let page = catch_unwind(AssertUnwindSafe(|| {
            let mut text = String::new();
            let mut output = PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, number).map(|()| text)
        }));
        let text = match page {
            Ok(Ok(text)) => text,
            Ok(Err(err)) => {
                failed += 1;
                first_error.get_or_insert_with(|| describe_output_error(&err));
                String::new()
            }
            Err(p) => {
                failed += 1;
                first_error.get_or_insert_with(|| panic_message(&*p));
                String::new()
            }
        };
        total += text.len();
        if total > max_text {
            return Err(PdfFailure::TooMuchText);
        }
        pages.push(text);
    }
    if failed > 0 {
        tracing::warn!(
            failed_pages = failed,
            pages = pages.len(),
            error = first_error.as_deref().unwrap_or_default(),
            "some PDF pages could not be read; their text is missing"
        );
    }
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(match first_error {
            Some(detail) => PdfFailure::Unreadable(detail),
            None => PdfFailure::NoText,
        });
    }
    Ok(pages)
}

/// Works around gaps in pdf-extract 0.12 before extracting:
///
/// - It recurses into form XObjects without a depth limit or cycle check, so
///   a form that draws itself overflows the stack and aborts the process;
///   such calls are removed (see [`forms`]).
/// - It runs the bytes of every image drawn with `Do` through the content
///   stream parser as if they were a form: a scanned page's megabytes of
///   pixels are parsed for text operators (slow, and a source of bogus
///   errors). Image streams were emptied by [`inflate::decode_streams`].
/// - It ignores the `'` and `"` text operators ("next line, then show text"),
///   which Ghostscript and other producers use for body text, so that text
///   went missing. They are rewritten to the equivalent `T*` + `Tj` (with
///   `Tw`/`Tc` for `"`), in pages and in form XObjects.
fn prepare(doc: &mut lopdf::Document, limits: &ReadLimits) {
    page_tree::break_parent_cycles(doc);
    forms::break_form_recursion(doc);
    for object in doc.objects.values_mut() {
        let lopdf::Object::Stream(stream) = object else {
            continue;
        };
        if let Ok(b"Form") = stream.dict.get(b"Subtype").and_then(lopdf::Object::as_name)
            && let Ok(content) = stream.get_plain_content()
            && let Some(rewritten) = rewrite_quote_operators(&content)
        {
            stream.set_plain_content(rewritten);
        }
    }
    let pages: Vec<lopdf::ObjectId> = doc.get_pages().into_values().collect();
    // Content streams rewritten in place already: pages sharing one are
    // done once, not once per page.
    let mut done = std::collections::HashSet::new();
    for page_id in pages {
        if limits.cancel.is_cancelled() {
            return;
        }
        if let [only] = doc.get_page_contents(page_id)[..]
            && !done.insert(only)
        {
            continue;
        }
        // Too large to parse safely: extraction skips it too.
        if inflate::page_content_len(doc, page_id) > limits.max_page_content {
            continue;
        }
        let Ok(content) = doc.get_page_content(page_id) else {
            continue;
        };
        if let Some(rewritten) = rewrite_quote_operators(&content) {
            set_page_content(doc, page_id, rewritten);
        }
    }
}

/// The content with `'` and `"` operators rewritten, or `None` when it has
/// none (or cannot be parsed: then pdf-extract reports the problem itself).
fn rewrite_quote_operators(content: &[u8]) -> Option<Vec<u8>> {
    use lopdf::content::{Content, Operation};
    if !may_have_quote_operator(content) {
        return None;
    }
    let decoded = Content::decode(content).ok()?;
    if !decoded
        .operations
        .iter()
        .any(|op| op.operator == "'" || op.operator == "\"")
    {
        return None;
    }
    let mut operations = Vec::with_capacity(decoded.operations.len() + 8);
    for op in decoded.operations {
        match (op.operator.as_str(), op.operands.as_slice()) {
            ("'", [text]) => {
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", vec![text.clone()]));
            }
            ("\"", [word_spacing, char_spacing, text]) => {
                operations.push(Operation::new("Tw", vec![word_spacing.clone()]));
                operations.push(Operation::new("Tc", vec![char_spacing.clone()]));
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", vec![text.clone()]));
            }
            _ => operations.push(op),
        }
    }
    Content { operations }.encode().ok()
}

/// A cheap pre-check: a `'` or `"` that stands as a token, i.e. is followed
/// by whitespace, a delimiter or the end. (Apostrophes inside words of a
/// string, as in `(don't)`, are not.)
fn may_have_quote_operator(content: &[u8]) -> bool {
    content.iter().enumerate().any(|(i, &b)| {
        (b == b'\'' || b == b'"')
            && content
                .get(i + 1)
                .is_none_or(|&next| next.is_ascii_whitespace() || b"()<>[]{}/%".contains(&next))
    })
}

/// Replaces a page's content (one stream or an array of them) with
/// `content`, uncompressed.
fn set_page_content(doc: &mut lopdf::Document, page_id: lopdf::ObjectId, content: Vec<u8>) {
    let single = doc
        .get_dictionary(page_id)
        .and_then(|page| page.get(b"Contents"))
        .ok()
        .and_then(|contents| match contents {
            lopdf::Object::Reference(id) => Some(*id),
            lopdf::Object::Array(items) if items.len() == 1 => items[0].as_reference().ok(),
            _ => None,
        });
    if let Some(id) = single
        && let Ok(lopdf::Object::Stream(stream)) = doc.get_object_mut(id)
    {
        stream.set_plain_content(content);
        return;
    }
    let id = doc.add_object(lopdf::Stream::new(lopdf::Dictionary::new(), content));
    if let Ok(lopdf::Object::Dictionary(page)) = doc.get_object_mut(page_id) {
        page.set("Contents", id);
    }
}

fn classify_load_error(bytes: &[u8], err: &lopdf::Error) -> PdfFailure {
    match err {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => PdfFailure::Encrypted,
        // A file lopdf could not parse that names an encryption dictionary is
        // almost surely encrypted in a way lopdf does not handle; saying so
        // helps the user more than a parser message.
        _ if contains(bytes, b"/Encrypt") => PdfFailure::Encrypted,
        _ => PdfFailure::Unreadable(describe_lopdf_error(err)),
    }
}

fn describe_lopdf_error(err: &lopdf::Error) -> String {
    format!("the PDF structure is invalid: {err}")
}

fn describe_output_error(err: &OutputError) -> String {
    match err {
        OutputError::PdfError(e) => describe_lopdf_error(e),
        other => format!("the PDF reader failed: {other}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Cleans each page and joins them with a blank line, recording where each
/// page starts. Empty pages get a start too (equal to the next page's).
fn join_pages(name: &str, pages: &[String]) -> Result<(String, Vec<usize>), KnowledgeError> {
    let mut text = String::new();
    let mut starts = Vec::with_capacity(pages.len());
    for page in pages {
        let cleaned = clean_page(page);
        if !cleaned.is_empty() && !text.is_empty() {
            text.push_str("\n\n");
        }
        starts.push(text.len());
        text.push_str(&cleaned);
    }
    if text.trim().is_empty() {
        return Err(KnowledgeError::PdfNoText {
            name: name.to_owned(),
        });
    }
    text.push('\n');
    Ok((text, starts))
}

/// Cleans the raw text of one page:
///
/// - line endings become `\n`; form feeds and other control characters are
///   dropped;
///   typographic ligatures (`ﬁ`) become letters; no-break spaces become spaces;
/// - runs of spaces and tabs become one space, lines are trimmed;
/// - a word broken across lines with a hyphen is joined ("infor-\nmation" →
///   "information") when the next line starts with a lowercase letter
///   (so "Jean-\nPaul" and "1990-\n2000" stay as they are); a soft hyphen at
///   the end of a line always joins;
/// - single line breaks are kept (they carry table rows and list items), and
///   runs of blank lines become one blank line: a paragraph break.
pub(crate) fn clean_page(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let lines = raw
        .split(['\n', '\r', '\u{2028}', '\u{2029}'])
        .map(clean_line);

    let mut out = String::with_capacity(raw.len());
    // Whether a blank line was seen since the last text line.
    let mut pending_break = false;
    // Whether the last text line ended with a hyphen that may be joined.
    let mut joinable = false;
    for line in lines {
        if line.is_empty() {
            if !out.is_empty() {
                pending_break = true;
            }
            joinable = false;
            continue;
        }
        if joinable && line.chars().next().is_some_and(char::is_lowercase) {
            out.pop(); // the hyphen
            out.push_str(&line);
        } else if !pending_break && out.ends_with('\u{ad}') {
            out.pop(); // a soft hyphen: always a break inside a word
            out.push_str(&line);
        } else {
            if !out.is_empty() {
                out.push_str(if pending_break { "\n\n" } else { "\n" });
            }
            out.push_str(&line);
        }
        pending_break = false;
        joinable = ends_with_word_hyphen(&out);
    }
    // Soft hyphens left inside lines are invisible; drop them.
    if out.contains('\u{ad}') {
        out = out.replace('\u{ad}', "");
    }
    out
}

/// One line: control characters dropped, ligatures expanded, whitespace runs
/// collapsed, ends trimmed.
fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut space = false;
    for c in line.chars() {
        if c.is_whitespace() || c == '\u{a0}' {
            space = true;
            continue;
        }
        if c.is_control() {
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        match ligature(c) {
            Some(letters) => out.push_str(letters),
            None => out.push(c),
        }
    }
    out
}

/// The letters of a Latin typographic ligature (U+FB00–FB06).
fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        '\u{fb05}' | '\u{fb06}' => "st",
        _ => return None,
    })
}

/// Whether `text` ends with a letter followed by a hyphen ("infor-").
fn ends_with_word_hyphen(text: &str) -> bool {
    let mut rev = text.chars().rev();
    matches!(
        (rev.next(), rev.next()),
        (Some('-' | '\u{2010}'), Some(c)) if c.is_alphabetic()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_joins_hyphenated_words_and_keeps_paragraphs() {
        let raw = "  The  infor-\nmation\tis here.\r\n\n\n\nNew para-\r\nGraph and 1990-\n2000.\u{c}\nJean-\nPaul ﬁle.";
        assert_eq!(
            clean_page(raw),
            "The information is here.\n\nNew para-\nGraph and 1990-\n2000.\nJean-\nPaul file."
        );
    }

    #[test]
    fn cleaning_drops_control_characters_and_soft_hyphens() {
        assert_eq!(clean_page("a\u{0}b\u{7}c"), "abc");
        assert_eq!(
            clean_page("hy\u{ad}\nphen and co\u{ad}op"),
            "hyphen and coop"
        );
        assert_eq!(clean_page("\n\n  \n"), "");
        assert_eq!(clean_page("x\u{a0}\u{a0}y"), "x y");
    }

    #[test]
    fn a_hyphen_does_not_join_across_a_paragraph_break() {
        assert_eq!(clean_page("end-\n\nstart"), "end-\n\nstart");
    }

    #[test]
    fn pages_are_joined_with_their_starts() {
        let pages = vec!["one".to_owned(), "  ".to_owned(), "three".to_owned()];
        let (text, starts) = join_pages("x.pdf", &pages).unwrap();
        assert_eq!(text, "one\n\nthree\n");
        assert_eq!(starts, vec![0, 3, 5]);
        assert_eq!(&text[starts[2]..], "three\n");
        let err = join_pages("x.pdf", &["\n".to_owned()]).unwrap_err();
        assert!(matches!(err, KnowledgeError::PdfNoText { .. }));
    }

    #[test]
    fn quote_text_operators_are_rewritten() {
        let content = b"BT /F1 12 Tf 14 TL (first) Tj (don't stop)' 1 0.5 (third)\" ET";
        assert!(may_have_quote_operator(content));
        let rewritten = String::from_utf8(rewrite_quote_operators(content).unwrap()).unwrap();
        let ops: Vec<&str> = rewritten.split_whitespace().collect();
        assert!(!ops.contains(&"'") && !ops.contains(&"\""), "{rewritten}");
        assert!(rewritten.contains("(don't stop) Tj"), "{rewritten}");
        assert!(rewritten.contains("1 Tw"), "{rewritten}");
        assert!(rewritten.contains("0.5 Tc"), "{rewritten}");
        assert_eq!(rewritten.matches("T*").count(), 2, "{rewritten}");

        assert!(!may_have_quote_operator(
            b"BT (don't) Tj (\"quoted\"x) Tj ET"
        ));
        assert_eq!(rewrite_quote_operators(b"BT (plain) Tj ET"), None);
    }

    #[test]
    fn extraction_stops_at_the_text_limit() {
        let bytes = crate::testing::pdf_with_pages(&["A first page of text.", "And a second."]);
        let limits = ReadLimits::reader_process();
        assert_eq!(extract_pages(&bytes, 1024, &limits).unwrap().len(), 2);
        assert!(matches!(
            extract_pages(&bytes, 25, &limits),
            Err(PdfFailure::TooMuchText)
        ));
        let err = PdfFailure::TooMuchText.into_error("big.pdf");
        assert!(
            err.to_string()
                .starts_with("big.pdf holds more than 10 MiB of text")
        );
    }

    #[test]
    fn the_header_starts_the_file() {
        use flowchat_domain::document_format::has_pdf_header;
        assert!(has_pdf_header(b"%PDF-1.7\n"));
        assert!(!has_pdf_header(b"\xEF\xBB\xBF%PDF-1.4"));
        assert!(!has_pdf_header(b"PDF-1.4"));
        assert!(!has_pdf_header(b""));
    }
}
