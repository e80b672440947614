//! What the drain and its reader process say to each other over pipes.
//!
//! Request (stdin): one JSON line `{"name": …}`, then the file's bytes to
//! the end. Answer (stdout): the line [`MAGIC`], one JSON line
//! ([`Answer`]), then, for a document, exactly `text_bytes` of UTF-8 text.
//! The text goes raw rather than inside JSON so a 10 MiB text costs 10 MiB,
//! not six times that in escapes.
//!
//! The reader handles hostile input, so its answer is checked as if it were
//! hostile too: sizes within the limits, page starts in order and on
//! character boundaries, strings short. The file name in errors is always
//! the drain's own, never echoed back.

use serde::{Deserialize, Serialize};

use crate::error::KnowledgeError;

/// The first line of every answer.
pub(crate) const MAGIC: &[u8] = b"FLOWCHAT-EXTRACT/1\n";

/// The longest JSON line either side accepts: the request line, or an
/// answer line with a page start per page.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// The longest string the reader may put in an error.
const MAX_DETAIL_CHARS: usize = 500;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Document {
        text_bytes: usize,
        page_starts: Vec<usize>,
    },
    Failed(WireError),
}

/// A loader error without its file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireError {
    Unsupported {
        extension: String,
        supported: String,
    },
    TooLarge {
        size_bytes: u64,
        limit_bytes: u64,
    },
    NotUtf8,
    Binary,
    Empty,
    ContentMismatch {
        expected: String,
        reason: String,
    },
    PdfEncrypted,
    PdfNoText,
    PdfUnreadable {
        detail: String,
    },
    PdfTimeout {
        seconds: u64,
    },
    LoadTimeout {
        seconds: u64,
    },
    TextTooLarge {
        limit_bytes: u64,
    },
    DecodedTooLarge {
        limit_bytes: u64,
    },
    Other {
        detail: String,
    },
}

impl WireError {
    pub(crate) fn from_error(error: &KnowledgeError) -> WireError {
        use KnowledgeError as K;
        match error {
            K::Unsupported {
                extension,
                supported,
                ..
            } => WireError::Unsupported {
                extension: extension.clone(),
                supported: supported.clone(),
            },
            K::TooLarge {
                size_bytes,
                limit_bytes,
                ..
            } => WireError::TooLarge {
                size_bytes: *size_bytes,
                limit_bytes: *limit_bytes,
            },
            K::NotUtf8 { .. } => WireError::NotUtf8,
            K::Binary { .. } => WireError::Binary,
            K::Empty { .. } => WireError::Empty,
            K::ContentMismatch {
                expected, reason, ..
            } => WireError::ContentMismatch {
                expected: expected.clone(),
                reason: reason.clone(),
            },
            K::PdfEncrypted { .. } => WireError::PdfEncrypted,
            K::PdfNoText { .. } => WireError::PdfNoText,
            K::PdfUnreadable { detail, .. } => WireError::PdfUnreadable {
                detail: detail.clone(),
            },
            K::PdfTimeout { seconds, .. } => WireError::PdfTimeout { seconds: *seconds },
            K::LoadTimeout { seconds, .. } => WireError::LoadTimeout { seconds: *seconds },
            K::TextTooLarge { limit_bytes, .. } => WireError::TextTooLarge {
                limit_bytes: *limit_bytes,
            },
            K::DecodedTooLarge { limit_bytes, .. } => WireError::DecodedTooLarge {
                limit_bytes: *limit_bytes,
            },
            K::ReaderFailed { detail, .. } => WireError::Other {
                detail: detail.clone(),
            },
            other => WireError::Other {
                detail: other.to_string(),
            },
        }
    }

    /// The error for the drain's file `name`, strings shortened.
    pub(crate) fn into_error(self, name: &str) -> KnowledgeError {
        use KnowledgeError as K;
        let name = name.to_owned();
        match self {
            WireError::Unsupported {
                extension,
                supported,
            } => K::Unsupported {
                name,
                extension: short(extension),
                supported: short(supported),
            },
            WireError::TooLarge {
                size_bytes,
                limit_bytes,
            } => K::TooLarge {
                name,
                size_bytes,
                limit_bytes,
            },
            WireError::NotUtf8 => K::NotUtf8 { name },
            WireError::Binary => K::Binary { name },
            WireError::Empty => K::Empty { name },
            WireError::ContentMismatch { expected, reason } => K::ContentMismatch {
                name,
                expected: short(expected),
                reason: short(reason),
            },
            WireError::PdfEncrypted => K::PdfEncrypted { name },
            WireError::PdfNoText => K::PdfNoText { name },
            WireError::PdfUnreadable { detail } => K::PdfUnreadable {
                name,
                detail: short(detail),
            },
            WireError::PdfTimeout { seconds } => K::PdfTimeout { name, seconds },
            WireError::LoadTimeout { seconds } => K::LoadTimeout { name, seconds },
            WireError::TextTooLarge { limit_bytes } => K::TextTooLarge { name, limit_bytes },
            WireError::DecodedTooLarge { limit_bytes } => K::DecodedTooLarge { name, limit_bytes },
            WireError::Other { detail } => K::ReaderFailed {
                name,
                detail: short(detail),
            },
        }
    }
}

fn short(text: String) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    cut.push('…');
    cut
}

/// Whether `starts` are valid page starts for `text`: in order, within it,
/// on character boundaries.
pub(crate) fn valid_page_starts(text: &str, starts: &[usize]) -> bool {
    starts.windows(2).all(|w| w[0] <= w[1])
        && starts
            .iter()
            .all(|&s| s <= text.len() && text.is_char_boundary(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_without_the_name_and_come_back_with_the_drains() {
        let error = KnowledgeError::ContentMismatch {
            name: "evil\nname.pdf".into(),
            expected: "PDF".into(),
            reason: "x".repeat(2000),
        };
        let wire = WireError::from_error(&error);
        let json = serde_json::to_string(&wire).unwrap();
        assert!(!json.contains("evil"));
        let back: WireError = serde_json::from_str(&json).unwrap();
        match back.into_error("mine.pdf") {
            KnowledgeError::ContentMismatch { name, reason, .. } => {
                assert_eq!(name, "mine.pdf");
                assert_eq!(reason.chars().count(), MAX_DETAIL_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn page_starts_are_checked() {
        assert!(valid_page_starts("abc", &[0, 1, 3]));
        assert!(!valid_page_starts("abc", &[0, 4]));
        assert!(!valid_page_starts("abc", &[2, 1]));
        assert!(!valid_page_starts("é", &[1]));
    }
}
