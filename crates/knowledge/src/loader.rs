//! Turns a file's bytes into plain text we can chunk.
//!
//! Which formats there are, how a name picks one and what the bytes of each
//! must look like are [`flowchat_domain::document_format`]'s rules, shared
//! with the upload API so a file is never accepted by one and refused by the
//! other. Here they are applied, and the text normalised (BOM stripped, line
//! endings made `\n`) so every later step sees one convention and byte
//! offsets mean the same thing everywhere.
//!
//! - Text and Markdown: UTF-8, with or without a BOM.
//! - PDF: text by page through `pdf-extract`, streams decoded within a
//!   budget (see the `pdf` module); fills [`LoadedDocument::page_starts`].
//! - HTML: converted to Markdown-ish text (headings, paragraphs, lists, table
//!   rows, code; page chrome and scripts dropped; see the `html` module), then
//!   chunked like Markdown so chunks get heading paths. Read as UTF-8, or in
//!   the legacy charset its `<meta charset>` declares when it is not UTF-8.
//!
//! Every format has the same output budget: at most
//! [`MAX_EXTRACTED_TEXT_BYTES`] of text (2.5 times the largest upload), so
//! what the chunker and the embedder get is bounded whatever the input. More
//! fails the document with [`KnowledgeError::TextTooLarge`], a message the
//! uploader can act on. HTML stops converting as soon as it passes the budget.
//!
//! Every format also has a time budget and runs where it can be stopped:
//! [`load`] reads through the process's [`Extractor`] (a reader process
//! with a memory limit, killed at the deadline; see the `extract` module).

use flowchat_domain::document_format::{self, ContentMismatch};

use crate::error::KnowledgeError;
use crate::extract::ReadLimits;
use crate::{html, pdf};

#[cfg(doc)]
use crate::extract::Extractor;

pub use crate::pdf::{MAX_EXTRACTED_TEXT_BYTES, PDF_TIME_BUDGET};
pub use flowchat_domain::document_format::DocumentFormat;

/// Whether [`load`] would accept a file of this name (ignoring its content).
pub fn is_supported(name: &str) -> bool {
    DocumentFormat::from_name(name).is_some()
}

/// A document's text, ready for chunking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedDocument {
    pub format: DocumentFormat,
    /// UTF-8 text with `\n` line endings and no byte-order mark.
    pub text: String,
    /// Byte offsets into `text` where each page starts (page 1 first), for
    /// paged formats. Empty for formats without pages (text, Markdown).
    pub page_starts: Vec<usize>,
}

impl LoadedDocument {
    /// Pages in the document, for paged formats (PDF); `None` for others.
    pub fn page_count(&self) -> Option<u32> {
        (!self.page_starts.is_empty()).then_some(self.page_starts.len() as u32)
    }
}

/// Reads `bytes` as the format named by `name`'s extension, through the
/// process's [`Extractor`] (`EXTRACT_*` settings).
///
/// Blocks for up to the time budget (`EXTRACT_TIMEOUT_SECONDS`, by default
/// [`PDF_TIME_BUDGET`]): run it off the async executor (e.g. in
/// `tokio::task::spawn_blocking`).
pub fn load(name: &str, bytes: &[u8]) -> Result<LoadedDocument, KnowledgeError> {
    crate::extract::extractor().load(name, bytes)
}

/// Reads `bytes` on this thread, with no time budget: what a reader runs.
/// PDFs need a large stack (see `extract`); `limits` stops them between
/// pages and bounds the pages they parse.
pub(crate) fn read(
    name: &str,
    bytes: &[u8],
    limits: &ReadLimits,
) -> Result<LoadedDocument, KnowledgeError> {
    let format = format_of(name)?;
    let (text, page_starts) = match format {
        DocumentFormat::Text | DocumentFormat::Markdown => {
            let text = document_format::decode_text(bytes).map_err(|e| unreadable(name, e))?;
            let text = normalise_newlines(text);
            if text.len() > MAX_EXTRACTED_TEXT_BYTES {
                return Err(too_much_text(name));
            }
            (text, Vec::new())
        }
        DocumentFormat::Html => {
            let text = document_format::decode_html(bytes).map_err(|e| unreadable(name, e))?;
            let text =
                html::to_markdown_within(&normalise_newlines(&text), MAX_EXTRACTED_TEXT_BYTES)
                    .ok_or_else(|| too_much_text(name))?;
            (text, Vec::new())
        }
        DocumentFormat::Pdf => pdf::extract(name, bytes, limits)?,
    };
    if text.trim().is_empty() {
        return Err(KnowledgeError::Empty {
            name: name.to_owned(),
        });
    }
    Ok(LoadedDocument {
        format,
        text,
        page_starts,
    })
}

/// Checks, without parsing, that `bytes` are what `name`'s extension says
/// ([`DocumentFormat::check`]), and returns that format.
///
/// A mismatch is [`KnowledgeError::ContentMismatch`]; an unknown extension is
/// [`KnowledgeError::Unsupported`]. Passing this does not promise [`load`]
/// succeeds (a PDF may still be damaged, encrypted or scanned).
pub fn check_content(name: &str, bytes: &[u8]) -> Result<DocumentFormat, KnowledgeError> {
    let format = format_of(name)?;
    format
        .check(bytes)
        .map_err(|mismatch| KnowledgeError::ContentMismatch {
            name: name.to_owned(),
            expected: format.label().to_owned(),
            reason: mismatch.to_string(),
        })?;
    Ok(format)
}

/// Guesses a format from content alone ([`DocumentFormat::sniff`]).
pub fn sniff(bytes: &[u8]) -> Option<DocumentFormat> {
    DocumentFormat::sniff(bytes)
}

pub(crate) fn format_of(name: &str) -> Result<DocumentFormat, KnowledgeError> {
    DocumentFormat::from_name(name).ok_or_else(|| KnowledgeError::Unsupported {
        name: name.to_owned(),
        extension: document_format::extension(name)
            .unwrap_or_default()
            .to_owned(),
        supported: DocumentFormat::supported_list(),
    })
}

/// Why text could not be read at all: the loader's own errors, which say
/// nothing of the extension (unlike a [`check_content`] mismatch).
fn unreadable(name: &str, mismatch: ContentMismatch) -> KnowledgeError {
    let name = name.to_owned();
    match mismatch {
        ContentMismatch::Binary => KnowledgeError::Binary { name },
        _ => KnowledgeError::NotUtf8 { name },
    }
}

fn too_much_text(name: &str) -> KnowledgeError {
    KnowledgeError::TextTooLarge {
        name: name.to_owned(),
        limit_bytes: MAX_EXTRACTED_TEXT_BYTES as u64,
    }
}

/// CRLF and lone CR (old Mac files) become LF.
fn normalise_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_format_by_extension_case_insensitively() {
        assert_eq!(load("a.TXT", b"x").unwrap().format, DocumentFormat::Text);
        assert_eq!(
            load("dir/b.Md", b"x").unwrap().format,
            DocumentFormat::Markdown
        );
        assert_eq!(
            load("c.markdown", b"x").unwrap().format,
            DocumentFormat::Markdown
        );
        assert!(is_supported("notes/x.MARKDOWN"));
        assert!(is_supported("x.PDF"));
        assert!(is_supported("site/index.htm"));
        assert!(is_supported("page.html"));
        assert!(!is_supported("x.docx"));
        assert!(!is_supported(".md"));
        assert_eq!(
            DocumentFormat::from_name("a.HTM"),
            Some(DocumentFormat::Html)
        );
        assert_eq!(
            DocumentFormat::from_name("a.pdf"),
            Some(DocumentFormat::Pdf)
        );
    }

    #[test]
    fn strips_bom_and_normalises_line_endings() {
        let doc = load("a.md", b"\xEF\xBB\xBF# T\r\n\r\nline\rnext\r\n").unwrap();
        assert_eq!(doc.text, "# T\n\nline\nnext\n");
        assert!(doc.page_starts.is_empty());
        assert_eq!(doc.page_count(), None);
    }

    #[test]
    fn rejects_unsupported_extensions_with_the_extension() {
        match load("deck.PPTX", b"x") {
            Err(KnowledgeError::Unsupported { extension, .. }) => assert_eq!(extension, "PPTX"),
            other => panic!("unexpected {other:?}"),
        }
        let err = load("README", b"x").unwrap_err();
        assert!(
            matches!(&err, KnowledgeError::Unsupported { extension, .. } if extension.is_empty())
        );
        assert!(
            err.to_string()
                .contains(".txt, .md, .markdown, .pdf, .html, .htm"),
            "{err}"
        );
    }

    #[test]
    fn rejects_invalid_utf8_binary_and_empty_text() {
        let err = load("report.md", &[b'a', 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.to_string(), "report.md is not valid UTF-8 text");
        assert!(matches!(
            load("x.txt", b"a\0b"),
            Err(KnowledgeError::Binary { .. })
        ));
        assert!(matches!(
            load("x.txt", b" \r\n\t"),
            Err(KnowledgeError::Empty { .. })
        ));
    }

    fn mismatch_reason(name: &str, bytes: &[u8]) -> (String, String) {
        match check_content(name, bytes) {
            Err(KnowledgeError::ContentMismatch {
                expected, reason, ..
            }) => (expected, reason),
            other => panic!("expected a content mismatch for {name}, got {other:?}"),
        }
    }

    #[test]
    fn check_content_accepts_matching_bytes() {
        assert_eq!(
            check_content("a.pdf", b"%PDF-1.7\n...").unwrap(),
            DocumentFormat::Pdf
        );
        assert_eq!(
            check_content("a.txt", b"\xEF\xBB\xBFhi").unwrap(),
            DocumentFormat::Text
        );
        assert_eq!(
            check_content("a.md", "# Tï".as_bytes()).unwrap(),
            DocumentFormat::Markdown
        );
        for html in [
            "<!DOCTYPE html><title>x</title>",
            "<!doctype HTML>",
            "just a <P>paragraph",
            "<div class=x>y</div>",
            "<H2>Title</H2>",
            "text<br/>more",
        ] {
            assert_eq!(
                check_content("p.html", html.as_bytes()).unwrap(),
                DocumentFormat::Html,
                "{html}"
            );
        }
        // A legacy charset the page declares.
        let latin1 = b"<html><head><meta charset=\"iso-8859-1\"></head><p>caf\xe9</p>";
        assert_eq!(
            check_content("l.htm", latin1).unwrap(),
            DocumentFormat::Html
        );
    }

    #[test]
    fn check_content_rejects_mismatches_with_reasons() {
        let (expected, reason) = mismatch_reason("a.pdf", b"<html>not a pdf</html>");
        assert_eq!(expected, "PDF");
        assert!(reason.contains("%PDF-"), "{reason}");
        let err = check_content("a.pdf", b"PK\x03\x04").unwrap_err();
        assert!(err.to_string().contains("not a PDF"), "{err}");

        let (expected, reason) = mismatch_reason("n.md", &[b'#', 0xff, 0xfe]);
        assert_eq!(expected, "Markdown");
        assert!(reason.contains("UTF-8"), "{reason}");
        assert!(mismatch_reason("n.txt", b"a\0b").1.contains("NUL"));
        assert!(mismatch_reason("n.txt", b"%PDF-1.4 x").1.contains(".pdf"));

        let (expected, reason) = mismatch_reason("p.html", b"plain words, a < b > c");
        assert_eq!(expected, "HTML");
        assert!(reason.contains("no HTML markup"), "{reason}");
        assert!(
            mismatch_reason("p.html", b"<python> is not a tag")
                .1
                .contains("markup")
        );
        assert!(
            mismatch_reason("p.html", &[b'<', b'p', b'>', 0xff])
                .1
                .contains("UTF-8")
        );
        let err = check_content("p.html", b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.html is not an HTML file: it has no HTML markup \
             (no <!doctype html>, <html>, <body>, <p>, <div> or heading tags)"
        );

        assert!(matches!(
            check_content("deck.pptx", b"x"),
            Err(KnowledgeError::Unsupported { .. })
        ));
    }

    #[test]
    fn sniff_guesses_from_content() {
        assert_eq!(sniff(b"%PDF-1.4"), Some(DocumentFormat::Pdf));
        assert_eq!(sniff(b"<!doctype html><p>x"), Some(DocumentFormat::Html));
        assert_eq!(sniff(b"# Title\n\ntext"), Some(DocumentFormat::Text));
        assert_eq!(sniff(&[0xff, 0x00]), None);
        assert_eq!(sniff(b"a\0b"), None);
    }

    #[test]
    fn html_loads_as_markdown_like_text() {
        let doc = load(
            "p.html",
            b"<html><body><h1>Guide</h1>\r\n<p>Tom &amp; Jerry</p></body></html>",
        )
        .unwrap();
        assert_eq!(doc.format, DocumentFormat::Html);
        assert_eq!(doc.text, "# Guide\n\nTom & Jerry\n");
        assert!(doc.page_starts.is_empty());

        let latin1 = b"<meta charset=windows-1252><p>caf\xe9 \x93quoted\x94</p>";
        assert_eq!(
            load("l.html", latin1).unwrap().text,
            "caf\u{e9} \u{201c}quoted\u{201d}\n"
        );

        assert!(matches!(
            load("e.html", b"<html><script>x()</script></html>"),
            Err(KnowledgeError::Empty { .. })
        ));
        assert!(matches!(
            load("e.html", &[b'<', b'p', b'>', 0xff]),
            Err(KnowledgeError::NotUtf8 { .. })
        ));
    }
}
