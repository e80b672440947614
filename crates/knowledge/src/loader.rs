//! Turns a file's bytes into plain text we can chunk.
//!
//! The format is chosen by the file name's extension, never by sniffing the
//! bytes: uploads and folder files always carry a name, and an explicit rule is
//! easier to explain to a user than a guess. Text is normalised here (BOM
//! stripped, line endings made `\n`) so every later step sees one convention
//! and byte offsets mean the same thing everywhere.

use crate::error::KnowledgeError;

/// A document format we can read.
///
/// `non_exhaustive` because PDF and HTML are coming: paged formats will fill
/// [`LoadedDocument::page_starts`], and callers must already handle formats
/// they do not know by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Plain UTF-8 text (`.txt`).
    Text,
    /// CommonMark / GitHub-flavoured Markdown (`.md`, `.markdown`).
    Markdown,
}

impl Format {
    /// Every supported extension (lowercase, without the dot) and its format.
    pub const EXTENSIONS: &'static [(&'static str, Format)] = &[
        ("txt", Format::Text),
        ("md", Format::Markdown),
        ("markdown", Format::Markdown),
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
        }
    }

    /// The supported extensions as a user reads them: ".txt, .md, .markdown".
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

/// Reads `bytes` as the format named by `name`'s extension.
pub fn load(name: &str, bytes: &[u8]) -> Result<LoadedDocument, KnowledgeError> {
    let format = Format::from_name(name).ok_or_else(|| KnowledgeError::Unsupported {
        name: name.to_owned(),
        extension: extension(name).unwrap_or_default().to_owned(),
        supported: Format::supported_list(),
    })?;
    let text = match format {
        Format::Text | Format::Markdown => decode_text(name, bytes)?,
    };
    if text.trim().is_empty() {
        return Err(KnowledgeError::Empty {
            name: name.to_owned(),
        });
    }
    Ok(LoadedDocument {
        format,
        text,
        page_starts: Vec::new(),
    })
}

/// UTF-8 (with or without BOM) to normalised text.
fn decode_text(name: &str, bytes: &[u8]) -> Result<String, KnowledgeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
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
        assert!(!is_supported("x.pdf"));
        assert!(!is_supported(".md"));
    }

    #[test]
    fn strips_bom_and_normalises_line_endings() {
        let doc = load("a.md", b"\xEF\xBB\xBF# T\r\n\r\nline\rnext\r\n").unwrap();
        assert_eq!(doc.text, "# T\n\nline\nnext\n");
        assert!(doc.page_starts.is_empty());
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
        assert!(err.to_string().contains(".txt, .md, .markdown"), "{err}");
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
}
