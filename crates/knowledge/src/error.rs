//! The one error type of this crate.
//!
//! Loader errors end up on ingest jobs and in the document catalog, where an
//! end user reads them, so their messages name the file and say what is wrong
//! in plain words ("report.md is not valid UTF-8 text"). Index errors are for
//! operators: they carry the back end's message but never file contents.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KnowledgeError {
    /// Reading a file or folder failed.
    #[error("{name} could not be read: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },

    /// The file's format is not one we can read.
    #[error("{name}: {} files are not supported (supported: {supported})",
        if extension.is_empty() { "extension-less".to_owned() } else { format!(".{extension}") })]
    Unsupported {
        name: String,
        /// The extension as written, without the dot; empty when there is none.
        extension: String,
        /// The supported extensions, for the message.
        supported: String,
    },

    /// The file is over the size limit.
    #[error("{name} is {} which is over the {} limit", human_size(*size_bytes), human_size(*limit_bytes))]
    TooLarge {
        name: String,
        size_bytes: u64,
        limit_bytes: u64,
    },

    /// A text format whose bytes are not UTF-8.
    #[error("{name} is not valid UTF-8 text")]
    NotUtf8 { name: String },

    /// UTF-8 that still looks like a binary file (it holds NUL characters).
    #[error("{name} looks like a binary file, not text")]
    Binary { name: String },

    /// Nothing but whitespace: there is nothing to search.
    #[error("{name} contains no text")]
    Empty { name: String },

    /// The bytes do not match the format the file name promises (a `.pdf`
    /// without the PDF header, a `.txt` that is binary, a `.html` that is
    /// not markup). The upload API answers 415 Unsupported Media Type.
    #[error("{name} is not {} {expected} file: {reason}", article(expected))]
    ContentMismatch {
        name: String,
        /// The format the extension names, as a user reads it: "PDF",
        /// "HTML", "Markdown", "text".
        expected: String,
        /// What is wrong, in plain words.
        reason: String,
    },

    /// A PDF that needs a password to open.
    #[error(
        "{name} is encrypted (password-protected), so its text cannot be read; \
         save an unprotected copy and add that instead"
    )]
    PdfEncrypted { name: String },

    /// A PDF whose pages hold no text we can extract (scans, images).
    #[error(
        "{name} contains no extractable text — it may be a scanned image; OCR is not supported"
    )]
    PdfNoText { name: String },

    /// A PDF the parser could not make sense of (damaged, truncated, or using
    /// features it does not handle).
    #[error("{name} could not be read as a PDF; the file may be damaged or incomplete ({detail})")]
    PdfUnreadable { name: String, detail: String },

    /// Reading a PDF took longer than the time budget.
    #[error(
        "{name} took longer than {seconds} seconds to read and was given up on; \
         the file may be damaged or unusually complex"
    )]
    PdfTimeout { name: String, seconds: u64 },

    /// Reading a text, Markdown or HTML document took longer than the time
    /// budget (`EXTRACT_TIMEOUT_SECONDS`).
    #[error(
        "{name} took longer than {seconds} seconds to read and was given up on; \
         the file may be damaged or unusually complex"
    )]
    LoadTimeout { name: String, seconds: u64 },

    /// A PDF whose compressed streams decode to more than the decoding
    /// budget: a decompression bomb, or far more than the text limit allows.
    #[error(
        "{name} expands to more than {} when decompressed, which is over the limit; \
         the file may be damaged or built to exhaust memory", human_size(*limit_bytes)
    )]
    DecodedTooLarge { name: String, limit_bytes: u64 },

    /// Reading the document needed more memory than its reader may use
    /// (`EXTRACT_MEMORY_LIMIT_MB`).
    #[error(
        "{name} needs more than {} of memory to read and was given up on; \
         the file may be damaged or unusually complex", human_size(*limit_bytes)
    )]
    ReaderOutOfMemory { name: String, limit_bytes: u64 },

    /// The reader process stopped without an answer (killed, crashed, or
    /// an answer that is not one). `detail` (exit status, the reader's last
    /// stderr line) is for the log only: the message does not carry it.
    #[error("{name} could not be read; the reader stopped unexpectedly")]
    ReaderFailed { name: String, detail: String },

    /// A document whose extracted text is over the text limit.
    #[error("{name} holds more than {} of text, which is over the limit; split it into smaller files", human_size(*limit_bytes))]
    TextTooLarge { name: String, limit_bytes: u64 },

    /// Chunk settings that cannot work (zero size, overlap not below size).
    #[error("invalid chunk settings: {0}")]
    Settings(String),

    /// The index back end failed (SQLite error, a background task that died).
    #[error("knowledge index error: {0}")]
    Index(String),

    /// The embeddings provider failed; `permanent` when retrying cannot help
    /// (refused request, bad credentials).
    #[error("could not embed the text: {message}")]
    Embedding { message: String, permanent: bool },
}

impl From<rusqlite::Error> for KnowledgeError {
    fn from(err: rusqlite::Error) -> Self {
        KnowledgeError::Index(err.to_string())
    }
}

impl From<tokio::task::JoinError> for KnowledgeError {
    fn from(err: tokio::task::JoinError) -> Self {
        KnowledgeError::Index(format!("background task failed: {err}"))
    }
}

/// "a" or "an" before a format name ("an HTML file", "a PDF file").
fn article(word: &str) -> &'static str {
    let mut chars = word.chars();
    let (first, second) = (chars.next(), chars.next());
    let acronym = first.is_some_and(|c| c.is_ascii_uppercase())
        && second.is_some_and(|c| c.is_ascii_uppercase());
    // An acronym is read letter by letter: "an HTML", "an SVG", "a PDF".
    let vowels = if acronym {
        "AEFHILMNORSX"
    } else {
        "aeiouAEIOU"
    };
    match first {
        Some(c) if vowels.contains(c) => "an",
        _ => "a",
    }
}

/// Sizes as people read them: "512 bytes", "3.4 KiB", "20 MiB".
fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    let (value, unit) = if b < KIB {
        return format!("{bytes} bytes");
    } else if b < KIB * KIB {
        (b / KIB, "KiB")
    } else if b < KIB * KIB * KIB {
        (b / (KIB * KIB), "MiB")
    } else {
        (b / (KIB * KIB * KIB), "GiB")
    };
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_in_plain_words() {
        let err = KnowledgeError::NotUtf8 {
            name: "report.md".into(),
        };
        assert_eq!(err.to_string(), "report.md is not valid UTF-8 text");

        let err = KnowledgeError::TooLarge {
            name: "big.txt".into(),
            size_bytes: 25 * 1024 * 1024 + 512 * 1024,
            limit_bytes: 20 * 1024 * 1024,
        };
        assert_eq!(
            err.to_string(),
            "big.txt is 25.5 MiB which is over the 20 MiB limit"
        );

        let err = KnowledgeError::Unsupported {
            name: "deck.pptx".into(),
            extension: "pptx".into(),
            supported: ".txt, .md".into(),
        };
        assert_eq!(
            err.to_string(),
            "deck.pptx: .pptx files are not supported (supported: .txt, .md)"
        );

        let err = KnowledgeError::ContentMismatch {
            name: "page.html".into(),
            expected: "HTML".into(),
            reason: "it holds no HTML tags".into(),
        };
        assert_eq!(
            err.to_string(),
            "page.html is not an HTML file: it holds no HTML tags"
        );
        let err = KnowledgeError::ContentMismatch {
            name: "r.pdf".into(),
            expected: "PDF".into(),
            reason: "x".into(),
        };
        assert_eq!(err.to_string(), "r.pdf is not a PDF file: x");
        let err = KnowledgeError::ContentMismatch {
            name: "n.md".into(),
            expected: "Markdown".into(),
            reason: "x".into(),
        };
        assert_eq!(err.to_string(), "n.md is not a Markdown file: x");

        let err = KnowledgeError::TextTooLarge {
            name: "book.pdf".into(),
            limit_bytes: 10 * 1024 * 1024,
        };
        assert_eq!(
            err.to_string(),
            "book.pdf holds more than 10 MiB of text, which is over the limit; \
             split it into smaller files"
        );
    }
}
