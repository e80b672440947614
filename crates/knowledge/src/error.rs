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

    /// Chunk settings that cannot work (zero size, overlap not below size).
    #[error("invalid chunk settings: {0}")]
    Settings(String),

    /// The index back end failed (SQLite error, a background task that died).
    #[error("knowledge index error: {0}")]
    Index(String),
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
    }
}
