//! Turns a file's bytes into plain text we can chunk.
//!
//! The format is chosen by the file name's extension, never by sniffing the
//! bytes: uploads and folder files always carry a name, and an explicit rule is
//! easier to explain to a user than a guess. [`check_content`] then verifies
//! (cheaply, without parsing) that the bytes are what the name says, so an
//! upload can be refused up front. Text is normalised here (BOM stripped, line
//! endings made `\n`) so every later step sees one convention and byte offsets
//! mean the same thing everywhere.
//!
//! - Text and Markdown: UTF-8, with or without a BOM.
//! - PDF: text by page through `pdf-extract`, under a time and size budget
//!   (see the `pdf` module); fills [`LoadedDocument::page_starts`].
//! - HTML: converted to Markdown-ish text (headings, paragraphs, lists, table
//!   rows, code; page chrome and scripts dropped; see the `html` module), then
//!   chunked like Markdown so chunks get heading paths. Read as UTF-8, or in
//!   the legacy charset its `<meta charset>` declares when it is not UTF-8.

use crate::error::KnowledgeError;
use crate::{html, pdf};

pub use crate::pdf::{MAX_EXTRACTED_TEXT_BYTES, PDF_TIME_BUDGET};

/// A document format we can read.
///
/// `non_exhaustive`: more formats may come, and callers must handle formats
/// they do not know by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Plain UTF-8 text (`.txt`).
    Text,
    /// CommonMark / GitHub-flavoured Markdown (`.md`, `.markdown`).
    Markdown,
    /// PDF (`.pdf`): text by page; chunks carry page numbers.
    Pdf,
    /// HTML (`.html`, `.htm`): converted to Markdown-ish text; chunks carry
    /// heading paths.
    Html,
}

impl Format {
    /// Every supported extension (lowercase, without the dot) and its format.
    pub const EXTENSIONS: &'static [(&'static str, Format)] = &[
        ("txt", Format::Text),
        ("md", Format::Markdown),
        ("markdown", Format::Markdown),
        ("pdf", Format::Pdf),
        ("html", Format::Html),
        ("htm", Format::Html),
    ];

    /// The format for a file name, by its extension (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        let ext = extension(name)?;
        Self::EXTENSIONS
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
            .map(|&(_, format)| format)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Pdf => "pdf",
            Format::Html => "html",
        }
    }

    /// The format's name as a user reads it: "text", "Markdown", "PDF", "HTML".
    pub fn label(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "Markdown",
            Format::Pdf => "PDF",
            Format::Html => "HTML",
        }
    }

    /// Whether the chunker reads this format's text as Markdown (headings
    /// give chunks their heading paths). HTML is converted to Markdown.
    pub fn is_markdown_like(self) -> bool {
        matches!(self, Format::Markdown | Format::Html)
    }

    /// The supported extensions as a user reads them:
    /// ".txt, .md, .markdown, .pdf, .html, .htm".
    pub fn supported_list() -> String {
        Self::EXTENSIONS
            .iter()
            .map(|(e, _)| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether [`load`] would accept a file of this name (ignoring its content).
pub fn is_supported(name: &str) -> bool {
    Format::from_name(name).is_some()
}

/// A document's text, ready for chunking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedDocument {
    pub format: Format,
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

/// Reads `bytes` as the format named by `name`'s extension.
///
/// CPU-bound, and a PDF can take up to [`PDF_TIME_BUDGET`]: run it off the
/// async executor (e.g. in `tokio::task::spawn_blocking`).
pub fn load(name: &str, bytes: &[u8]) -> Result<LoadedDocument, KnowledgeError> {
    let format = format_of(name)?;
    let (text, page_starts) = match format {
        Format::Text | Format::Markdown => (decode_text(name, bytes)?, Vec::new()),
        Format::Html => (html::to_markdown(&decode_html(name, bytes)?), Vec::new()),
        Format::Pdf => pdf::extract(name, bytes)?,
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

/// Checks, without parsing, that `bytes` are what `name`'s extension says,
/// and returns that format. Meant for uploads, before anything is stored:
///
/// - PDF: the bytes start with the `%PDF-` header;
/// - text and Markdown: valid UTF-8 (a BOM is fine) without NUL bytes, and
///   not a PDF;
/// - HTML: UTF-8, or a legacy charset the page declares in a
///   `<meta charset>` near its top; and it looks like HTML: it has a
///   `<!doctype html>` or a common tag (`<html`, `<body`, `<p`, `<div`,
///   `<h1>`…), case-insensitively.
///
/// A mismatch is [`KnowledgeError::ContentMismatch`]; an unknown extension is
/// [`KnowledgeError::Unsupported`]. Passing this does not promise [`load`]
/// succeeds (a PDF may still be damaged, encrypted or scanned).
pub fn check_content(name: &str, bytes: &[u8]) -> Result<Format, KnowledgeError> {
    let format = format_of(name)?;
    let mismatch = |reason: &str| KnowledgeError::ContentMismatch {
        name: name.to_owned(),
        expected: format.label().to_owned(),
        reason: reason.to_owned(),
    };
    match format {
        Format::Pdf => {
            if !pdf::has_pdf_header(bytes) {
                return Err(pdf::not_a_pdf(name));
            }
        }
        Format::Text | Format::Markdown => {
            if pdf::has_pdf_header(bytes) {
                return Err(mismatch("it is a PDF document; name it .pdf"));
            }
            let text = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
            if std::str::from_utf8(text).is_err() {
                return Err(mismatch("it is not valid UTF-8 text"));
            }
            if text.contains(&0) {
                return Err(mismatch(
                    "it contains NUL bytes, so it looks like a binary file",
                ));
            }
        }
        Format::Html => {
            let Some(text) = html_text(bytes) else {
                return Err(mismatch(
                    "it is not UTF-8 and declares no character set that can be decoded",
                ));
            };
            if text.contains('\0') {
                return Err(mismatch(
                    "it contains NUL bytes, so it looks like a binary file",
                ));
            }
            if !looks_like_html(&text) {
                return Err(mismatch(
                    "it has no HTML markup (no <!doctype html>, <html>, <body>, <p>, <div> or heading tags)",
                ));
            }
        }
    }
    Ok(format)
}

/// Guesses a format from content alone: `Pdf` for the PDF header, `Html`
/// for UTF-8 text that looks like HTML, `Text` for other UTF-8 text without
/// NUL bytes, `None` for anything else (binary). Never `Markdown`: Markdown
/// is plain text to a sniffer. For hints and logs; [`load`] goes by name.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if pdf::has_pdf_header(bytes) {
        return Some(Format::Pdf);
    }
    let text = std::str::from_utf8(bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)).ok()?;
    if text.contains('\0') {
        None
    } else if looks_like_html(text) {
        Some(Format::Html)
    } else {
        Some(Format::Text)
    }
}

fn format_of(name: &str) -> Result<Format, KnowledgeError> {
    Format::from_name(name).ok_or_else(|| KnowledgeError::Unsupported {
        name: name.to_owned(),
        extension: extension(name).unwrap_or_default().to_owned(),
        supported: Format::supported_list(),
    })
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// UTF-8 (with or without BOM) to normalised text.
fn decode_text(name: &str, bytes: &[u8]) -> Result<String, KnowledgeError> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| KnowledgeError::NotUtf8 {
        name: name.to_owned(),
    })?;
    if text.contains('\0') {
        return Err(KnowledgeError::Binary {
            name: name.to_owned(),
        });
    }
    Ok(normalise_newlines(text))
}

/// An HTML file's text: UTF-8, else the legacy charset it declares.
fn decode_html(name: &str, bytes: &[u8]) -> Result<String, KnowledgeError> {
    let text = html_text(bytes).ok_or_else(|| KnowledgeError::NotUtf8 {
        name: name.to_owned(),
    })?;
    if text.contains('\0') {
        return Err(KnowledgeError::Binary {
            name: name.to_owned(),
        });
    }
    Ok(normalise_newlines(&text))
}

/// Decodes HTML bytes: UTF-8 (BOM allowed) first; otherwise the charset named
/// by a `charset=` in the first 1024 bytes (`<meta charset="…">` or the
/// `http-equiv` form), if `encoding_rs` knows it. `None` when neither works.
fn html_text(bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let unbommed = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(unbommed) {
        return Some(std::borrow::Cow::Borrowed(text));
    }
    let encoding = declared_charset(bytes)?;
    if encoding == encoding_rs::UTF_8 {
        return None; // declared UTF-8 but is not
    }
    let (text, _, had_errors) = encoding.decode(bytes);
    (!had_errors).then_some(text)
}

/// The encoding named by the first `charset=` in the first 1024 bytes.
fn declared_charset(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = bytes[..bytes.len().min(1024)].to_ascii_lowercase();
    let at = head.windows(8).position(|w| w == b"charset=")? + 8;
    let label: Vec<u8> = head[at..]
        .iter()
        .copied()
        .skip_while(|b| matches!(b, b'"' | b'\'' | b' '))
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        .collect();
    encoding_rs::Encoding::for_label(&label)
}

/// Whether `text` has a doctype or a tag that ordinary HTML pages use.
fn looks_like_html(text: &str) -> bool {
    const TAGS: &[&str] = &[
        "html", "head", "body", "title", "meta", "p", "div", "span", "a", "br", "h1", "h2", "h3",
        "h4", "h5", "h6", "table", "ul", "ol", "li", "pre", "article", "section", "main", "header",
        "footer", "nav", "img", "b", "i", "em", "strong",
    ];
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b'<') {
        let start = from + i + 1;
        from = start;
        let rest = &bytes[start..bytes.len().min(start + 16)];
        if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"!doctype ") {
            let after = &bytes[start + 9..bytes.len().min(start + 13)];
            if after.eq_ignore_ascii_case(b"html") {
                return true;
            }
            continue;
        }
        let name_len = rest
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let Some(&after) = rest.get(name_len) else {
            continue;
        };
        if !(after == b'>' || after == b'/' || after.is_ascii_whitespace()) {
            continue;
        }
        let name = &rest[..name_len];
        if TAGS.iter().any(|t| t.as_bytes().eq_ignore_ascii_case(name)) {
            return true;
        }
    }
    false
}

/// CRLF and lone CR (old Mac files) become LF.
fn normalise_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The extension of the last path segment, without the dot; `None` when there
/// is none (`README`, `.env`).
fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match file.rfind('.') {
        Some(0) | None => None,
        Some(i) => Some(&file[i + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_format_by_extension_case_insensitively() {
        assert_eq!(load("a.TXT", b"x").unwrap().format, Format::Text);
        assert_eq!(load("dir/b.Md", b"x").unwrap().format, Format::Markdown);
        assert_eq!(load("c.markdown", b"x").unwrap().format, Format::Markdown);
        assert!(is_supported("notes/x.MARKDOWN"));
        assert!(is_supported("x.PDF"));
        assert!(is_supported("site/index.htm"));
        assert!(is_supported("page.html"));
        assert!(!is_supported("x.docx"));
        assert!(!is_supported(".md"));
        assert_eq!(Format::from_name("a.HTM"), Some(Format::Html));
        assert_eq!(Format::from_name("a.pdf"), Some(Format::Pdf));
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
            Format::Pdf
        );
        assert_eq!(
            check_content("a.txt", b"\xEF\xBB\xBFhi").unwrap(),
            Format::Text
        );
        assert_eq!(
            check_content("a.md", "# Tï".as_bytes()).unwrap(),
            Format::Markdown
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
                Format::Html,
                "{html}"
            );
        }
        // A legacy charset the page declares.
        let latin1 = b"<html><head><meta charset=\"iso-8859-1\"></head><p>caf\xe9</p>";
        assert_eq!(check_content("l.htm", latin1).unwrap(), Format::Html);
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
        assert_eq!(sniff(b"%PDF-1.4"), Some(Format::Pdf));
        assert_eq!(sniff(b"<!doctype html><p>x"), Some(Format::Html));
        assert_eq!(sniff(b"# Title\n\ntext"), Some(Format::Text));
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
        assert_eq!(doc.format, Format::Html);
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
