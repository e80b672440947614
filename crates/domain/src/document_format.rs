//! The document formats FlowChat reads, and the cheap checks that a file's
//! bytes are what its name says.
//!
//! One set of rules for both doors a document comes in by: the upload API
//! refuses a mismatch with 415 before storing anything, and the knowledge
//! loader applies the same rules to shared-folder files and to the uploads
//! it indexes. Two copies used to disagree (a windows-1252 `.htm` page was
//! indexed from the folder but refused on upload); here there is one.
//!
//! The format is chosen by the file name's extension, never by sniffing the
//! bytes: every document carries a name, and an explicit rule is easier to
//! explain to a user than a guess. The checks do not parse — the loader does
//! that and can still fail (a damaged PDF) — they refuse the obvious
//! mismatches at once, saying what was expected.
//!
//! Every check is one pass over at most the first [`CHECK_PREFIX_BYTES`] of
//! the file: a large upload of hostile markup costs no more than reading
//! 64 KiB, whatever its size, and the loader, which reads the whole file,
//! still refuses what is wrong further in. Nothing here does I/O, so the
//! API's wasm32 build uses it as it is.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, Encoding};

/// How much of a file [`DocumentFormat::check`] reads. Real pages show
/// their markup, and a binary file its NUL bytes, well within it.
pub const CHECK_PREFIX_BYTES: usize = 64 * 1024;

/// A document format we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentFormat {
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

/// Why a file's bytes do not match the format its name gives. The message
/// completes "it is not a … file:" and reads on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentMismatch {
    #[error("it does not start with the %PDF- header")]
    NoPdfHeader,
    #[error("it is a PDF document; name it .pdf")]
    PdfAsText,
    #[error("it is not valid UTF-8 text")]
    NotUtf8,
    #[error("it contains NUL bytes, so it looks like a binary file")]
    Binary,
    #[error("it is not UTF-8 and declares no character set that can be decoded")]
    UndecodableCharset,
    #[error(
        "it has no HTML markup (no <!doctype html>, <html>, <body>, <p>, <div> or heading tags)"
    )]
    NoMarkup,
}

impl DocumentFormat {
    /// Every supported extension (lowercase, without the dot) and its format.
    pub const EXTENSIONS: &'static [(&'static str, DocumentFormat)] = &[
        ("txt", DocumentFormat::Text),
        ("md", DocumentFormat::Markdown),
        ("markdown", DocumentFormat::Markdown),
        ("pdf", DocumentFormat::Pdf),
        ("html", DocumentFormat::Html),
        ("htm", DocumentFormat::Html),
    ];

    /// The format for a file name (or path), by its extension in any case.
    pub fn from_name(name: &str) -> Option<DocumentFormat> {
        let ext = extension(name)?;
        Self::EXTENSIONS
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
            .map(|&(_, format)| format)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentFormat::Text => "text",
            DocumentFormat::Markdown => "markdown",
            DocumentFormat::Pdf => "pdf",
            DocumentFormat::Html => "html",
        }
    }

    /// The format's name as a user reads it: "text", "Markdown", "PDF", "HTML".
    pub fn label(self) -> &'static str {
        match self {
            DocumentFormat::Text => "text",
            DocumentFormat::Markdown => "Markdown",
            DocumentFormat::Pdf => "PDF",
            DocumentFormat::Html => "HTML",
        }
    }

    /// What a file in this format must contain, for a message that says
    /// what was expected.
    pub fn expected_content(self) -> &'static str {
        match self {
            DocumentFormat::Text | DocumentFormat::Markdown => "UTF-8 text without NUL bytes",
            DocumentFormat::Pdf => "a PDF document (starting with `%PDF-`)",
            DocumentFormat::Html => {
                "HTML markup (a tag such as `<html>` or `<p>`) in UTF-8, or in the character set its `<meta charset>` declares"
            }
        }
    }

    /// Whether the chunker reads this format's text as Markdown (headings
    /// give chunks their heading paths). HTML is converted to Markdown.
    pub fn is_markdown_like(self) -> bool {
        matches!(self, DocumentFormat::Markdown | DocumentFormat::Html)
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

    /// Checks, without parsing, that the first [`CHECK_PREFIX_BYTES`] of
    /// `bytes` look like this format (a character cut by the end of that
    /// prefix is not an error):
    ///
    /// - PDF: the bytes start with the `%PDF-` header;
    /// - text and Markdown: valid UTF-8 (a BOM is fine) without NUL bytes,
    ///   and not a PDF;
    /// - HTML: UTF-8, or a legacy charset the page declares in a
    ///   `<meta charset>` near its top ([`decode_html`]); and markup
    ///   ([`looks_like_html`]).
    ///
    /// Passing does not promise the document loads (a PDF may still be
    /// damaged, encrypted or scanned).
    pub fn check(self, bytes: &[u8]) -> Result<(), ContentMismatch> {
        let head = &bytes[..bytes.len().min(CHECK_PREFIX_BYTES)];
        let whole = head.len() == bytes.len();
        match self {
            DocumentFormat::Pdf if has_pdf_header(head) => Ok(()),
            DocumentFormat::Pdf => Err(ContentMismatch::NoPdfHeader),
            DocumentFormat::Text | DocumentFormat::Markdown => {
                if has_pdf_header(head) {
                    return Err(ContentMismatch::PdfAsText);
                }
                decode_text_of(head, whole).map(|_| ())
            }
            DocumentFormat::Html => {
                if looks_like_html(&decode_html_of(head, whole)?) {
                    Ok(())
                } else {
                    Err(ContentMismatch::NoMarkup)
                }
            }
        }
    }

    /// Guesses a format from content alone: `Pdf` for the PDF header, `Html`
    /// for UTF-8 text that looks like HTML, `Text` for other UTF-8 text
    /// without NUL bytes, `None` for anything else (binary). Never
    /// `Markdown`: Markdown is plain text to a sniffer. For hints and logs;
    /// the format of a document is always its name's.
    pub fn sniff(bytes: &[u8]) -> Option<DocumentFormat> {
        if has_pdf_header(bytes) {
            return Some(DocumentFormat::Pdf);
        }
        let text = decode_text(bytes).ok()?;
        if looks_like_html(text) {
            Some(DocumentFormat::Html)
        } else {
            Some(DocumentFormat::Text)
        }
    }
}

/// The extension of the last path segment (`/` or `\`), without the dot;
/// `None` when there is none (`README`, `.env`). `notes.md.` has the empty
/// extension, which no format claims.
pub fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match file.rfind('.') {
        Some(0) | None => None,
        Some(i) => Some(&file[i + 1..]),
    }
}

pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `bytes` start with the PDF header, `%PDF-`. Acrobat tolerates a
/// little junk before it, but the spec puts it at byte 0.
pub fn has_pdf_header(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// Text or Markdown as UTF-8, without its BOM; a NUL byte means binary.
pub fn decode_text(bytes: &[u8]) -> Result<&str, ContentMismatch> {
    decode_text_of(bytes, true)
}

/// UTF-8 without a BOM; unless `whole`, `bytes` is a prefix and a last
/// character it cuts is dropped rather than refused.
fn utf8_of(bytes: &[u8], whole: bool) -> Option<&str> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) if !whole && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

fn decode_text_of(bytes: &[u8], whole: bool) -> Result<&str, ContentMismatch> {
    let text = utf8_of(bytes, whole).ok_or(ContentMismatch::NotUtf8)?;
    if text.contains('\0') {
        return Err(ContentMismatch::Binary);
    }
    Ok(text)
}

/// An HTML page's text: UTF-8 (BOM allowed) first; otherwise the charset
/// named by the first `charset=` in the first 1024 bytes (`<meta
/// charset="…">` or the `http-equiv` form) when it decodes without errors.
/// A NUL character means binary.
pub fn decode_html(bytes: &[u8]) -> Result<Cow<'_, str>, ContentMismatch> {
    decode_html_of(bytes, true)
}

/// [`decode_html`]; unless `whole`, `bytes` is a prefix and a last
/// character it cuts is not an error.
fn decode_html_of(bytes: &[u8], whole: bool) -> Result<Cow<'_, str>, ContentMismatch> {
    let text = match utf8_of(bytes, whole) {
        Some(text) => Cow::Borrowed(text),
        None => {
            let encoding = declared_charset(bytes)
                // Declared UTF-8, but it is not.
                .filter(|&e| e != encoding_rs::UTF_8)
                .ok_or(ContentMismatch::UndecodableCharset)?;
            // As `Encoding::decode` (a BOM still wins), but refusing the
            // first malformed sequence instead of replacing it.
            let mut decoder = encoding.new_decoder();
            let capacity = decoder
                .max_utf8_buffer_length_without_replacement(bytes.len())
                .ok_or(ContentMismatch::UndecodableCharset)?;
            let mut text = String::with_capacity(capacity);
            match decoder.decode_to_string_without_replacement(bytes, &mut text, whole) {
                (DecoderResult::InputEmpty, _) => Cow::Owned(text),
                _ => return Err(ContentMismatch::UndecodableCharset),
            }
        }
    };
    if text.contains('\0') {
        return Err(ContentMismatch::Binary);
    }
    Ok(text)
}

/// The encoding named by the first `charset=` in the first 1024 bytes.
fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(1024)].to_ascii_lowercase();
    let at = head.windows(8).position(|w| w == b"charset=")? + 8;
    let label: Vec<u8> = head[at..]
        .iter()
        .copied()
        .skip_while(|b| matches!(b, b'"' | b'\'' | b' '))
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        .collect();
    Encoding::for_label(&label)
}

/// Tags that ordinary HTML pages use; one of them (or a doctype) is what
/// makes a file HTML rather than text that happens to hold a `<`.
const HTML_TAGS: &[&str] = &[
    "html", "head", "body", "title", "meta", "p", "div", "span", "a", "br", "h1", "h2", "h3", "h4",
    "h5", "h6", "table", "ul", "ol", "li", "pre", "article", "section", "main", "header", "footer",
    "nav", "img", "b", "i", "em", "strong",
];

/// Whether `text` has `<!doctype html` or one of the common tags, opening
/// or closing, followed by `>`, `/` or whitespace — case-insensitively.
///
/// One pass: each `<` is judged by the few bytes after it (a tag name is
/// at most 7 letters), never by searching the rest of the text, so tag soup
/// costs no more than plain text.
pub fn looks_like_html(text: &str) -> bool {
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
        let name = rest.strip_prefix(b"/").unwrap_or(rest);
        let name_len = name
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(name.len());
        let Some(&after) = name.get(name_len) else {
            continue;
        };
        if !(after == b'>' || after == b'/' || after.is_ascii_whitespace()) {
            continue;
        }
        let name = &name[..name_len];
        if HTML_TAGS
            .iter()
            .any(|t| t.as_bytes().eq_ignore_ascii_case(name))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_the_extension_in_any_case() {
        assert_eq!(
            DocumentFormat::from_name("a.TXT"),
            Some(DocumentFormat::Text)
        );
        assert_eq!(
            DocumentFormat::from_name("dir/b.Md"),
            Some(DocumentFormat::Markdown)
        );
        assert_eq!(
            DocumentFormat::from_name(r"C:\docs\c.markdown"),
            Some(DocumentFormat::Markdown)
        );
        assert_eq!(
            DocumentFormat::from_name("a.HTM"),
            Some(DocumentFormat::Html)
        );
        assert_eq!(
            DocumentFormat::from_name("..md"),
            Some(DocumentFormat::Markdown)
        );
        for none in [
            "README",
            ".md",
            "notes.md.",
            "x.docx",
            "archive.tar.gz",
            "x.pdf/evil",
        ] {
            assert_eq!(DocumentFormat::from_name(none), None, "{none}");
        }
        assert_eq!(
            DocumentFormat::supported_list(),
            ".txt, .md, .markdown, .pdf, .html, .htm"
        );
        assert_eq!(extension("deck.PPTX"), Some("PPTX"));
        assert_eq!(extension("notes.md."), Some(""));
    }

    #[test]
    fn matching_content_passes() {
        use DocumentFormat::*;
        assert_eq!(Pdf.check(b"%PDF-1.7\n..."), Ok(()));
        assert_eq!(Text.check(b"\xEF\xBB\xBFhi"), Ok(()));
        assert_eq!(Text.check("h\u{e9}llo".as_bytes()), Ok(()));
        assert_eq!(Markdown.check(b"# x"), Ok(()));
        for html in [
            "<!DOCTYPE html><title>x</title>",
            "<!doctype HTML>",
            "just a <P>paragraph",
            "<div class=x>y</div>",
            "<H2>Title</H2>",
            "text<br/>more",
            "</p>",
        ] {
            assert_eq!(Html.check(html.as_bytes()), Ok(()), "{html}");
        }
    }

    #[test]
    fn mismatches_say_why() {
        use ContentMismatch::*;
        use DocumentFormat::*;
        assert_eq!(Pdf.check(b"just text"), Err(NoPdfHeader));
        assert_eq!(Pdf.check(b" %PDF-1.7"), Err(NoPdfHeader));
        assert_eq!(Text.check(b"%PDF-1.4 x"), Err(PdfAsText));
        assert_eq!(Text.check(b"a\0b"), Err(Binary));
        assert_eq!(Markdown.check(&[0xff, 0xfe, b'a', 0]), Err(NotUtf8));
        assert_eq!(Html.check(b"no markup at all"), Err(NoMarkup));
        assert_eq!(Html.check(b"1 < 2 and 3 > 2"), Err(NoMarkup));
        assert_eq!(Html.check(b"<python> is not a tag"), Err(NoMarkup));
        assert_eq!(Html.check(b"<p\0>"), Err(Binary));
        assert_eq!(
            Html.check(&[0x89, b'P', b'N', b'G', b'<', b'p', b'>']),
            Err(UndecodableCharset)
        );
        // Declared UTF-8 but is not.
        assert_eq!(
            Html.check(b"<meta charset=utf-8><p>caf\xe9</p>"),
            Err(UndecodableCharset)
        );
        assert!(NoPdfHeader.to_string().contains("%PDF-"));
    }

    #[test]
    fn html_in_a_declared_legacy_charset_is_html() {
        let page =
            b"<html><head><meta charset=\"windows-1252\"></head><p>caf\xe9 \x93quoted\x94</p>";
        assert_eq!(DocumentFormat::Html.check(page), Ok(()));
        assert_eq!(
            decode_html(page).unwrap(),
            "<html><head><meta charset=\"windows-1252\"></head><p>caf\u{e9} \u{201c}quoted\u{201d}</p>"
        );
        let http_equiv = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\"><p>\xe9t\xe9</p>";
        assert!(decode_html(http_equiv).unwrap().contains("\u{e9}t\u{e9}"));
        // The declaration counts only near the top.
        let mut late = vec![b' '; 2000];
        late.extend_from_slice(b"<meta charset=windows-1252><p>caf\xe9</p>");
        assert_eq!(
            DocumentFormat::Html.check(&late),
            Err(ContentMismatch::UndecodableCharset)
        );
    }

    /// The markup check once rescanned the rest of the body after every
    /// `<tag `: 1.2 MB of `<a ` took about 20 s. Now each `<` costs a few
    /// bytes' look, whatever follows it.
    #[test]
    fn tag_soup_is_judged_in_one_pass() {
        let soup = "<a ".repeat(400 * 1024);
        assert!(soup.len() >= 1_200_000);
        assert_eq!(DocumentFormat::Html.check(soup.as_bytes()), Ok(()));
        let unknown = "<zz ".repeat(300 * 1024);
        assert_eq!(
            DocumentFormat::Html.check(unknown.as_bytes()),
            Err(ContentMismatch::NoMarkup)
        );
        let brackets = "<".repeat(1_200_000);
        assert!(!looks_like_html(&brackets));
    }

    /// Only the first 64 KiB are judged: markup or a NUL byte further in
    /// does not count (the loader still refuses a file that is not what
    /// it claims, reading it whole), so the check costs the same for 64 KiB
    /// and for 4 MB.
    #[test]
    fn only_a_prefix_is_checked() {
        use ContentMismatch::*;
        use DocumentFormat::*;
        let mut late_markup = vec![b'a'; CHECK_PREFIX_BYTES];
        late_markup.extend_from_slice(b"<p>late</p>");
        assert_eq!(Html.check(&late_markup), Err(NoMarkup));
        let mut early = b"<p>".to_vec();
        early.extend_from_slice(&late_markup);
        assert_eq!(Html.check(&early), Ok(()));

        let mut late_nul = vec![b'a'; CHECK_PREFIX_BYTES];
        late_nul.extend_from_slice(b"\0 and more");
        assert_eq!(Text.check(&late_nul), Ok(()));
        assert_eq!(
            decode_text(&late_nul),
            Err(Binary),
            "the loader reads it all"
        );
        late_nul[100] = 0;
        assert_eq!(Text.check(&late_nul), Err(Binary));

        // A character cut by the prefix's end is no error, in UTF-8 and in
        // a declared multi-byte charset; a broken one inside it still is.
        let mut cut = vec![b'a'; CHECK_PREFIX_BYTES - 1];
        cut.extend_from_slice("\u{e9}\u{e9}".as_bytes());
        assert_eq!(Markdown.check(&cut), Ok(()));
        cut[10] = 0xff;
        assert_eq!(Markdown.check(&cut), Err(NotUtf8));
        let mut sjis = b"<meta charset=shift_jis><p>".to_vec();
        while sjis.len() < CHECK_PREFIX_BYTES - 1 {
            sjis.push(b'a');
        }
        sjis.extend_from_slice(b"\x82\xa0\x82\xa0");
        assert_eq!(Html.check(&sjis), Ok(()));
        assert!(decode_html(&sjis).unwrap().ends_with("\u{3042}\u{3042}"));
        sjis[40] = 0x82;
        sjis[41] = b'\n';
        assert_eq!(Html.check(&sjis), Err(UndecodableCharset));
    }

    #[test]
    fn sniffing_guesses_from_content() {
        assert_eq!(
            DocumentFormat::sniff(b"%PDF-1.4"),
            Some(DocumentFormat::Pdf)
        );
        assert_eq!(
            DocumentFormat::sniff(b"<!doctype html><p>x"),
            Some(DocumentFormat::Html)
        );
        assert_eq!(
            DocumentFormat::sniff(b"# Title\n\ntext"),
            Some(DocumentFormat::Text)
        );
        assert_eq!(DocumentFormat::sniff(&[0xff, 0x00]), None);
        assert_eq!(DocumentFormat::sniff(b"a\0b"), None);
    }
}
