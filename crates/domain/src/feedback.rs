//! A reader's verdict on one answer: 👍 or 👎, with an optional comment.

use serde::{Deserialize, Serialize};

use crate::model::Citation;
use crate::validation::ValidationError;
use crate::{ConversationId, JobId, SessionId, Timestamp};

/// Whether an answer helped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackRating {
    Up,
    Down,
}

impl FeedbackRating {
    /// The name used in JSON and in stores.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackRating::Up => "up",
            FeedbackRating::Down => "down",
        }
    }

    pub fn parse(raw: &str) -> Option<FeedbackRating> {
        match raw {
            "up" => Some(FeedbackRating::Up),
            "down" => Some(FeedbackRating::Down),
            _ => None,
        }
    }

    /// As [`FeedbackRating::parse`], refusing anything else with a
    /// [`ValidationError`] on the field `rating`.
    pub fn parse_field(raw: &str) -> Result<FeedbackRating, ValidationError> {
        FeedbackRating::parse(raw).ok_or_else(|| {
            ValidationError::new("rating", "value", "rating must be \"up\" or \"down\"")
        })
    }
}

/// The longest feedback comment, in characters.
pub const FEEDBACK_COMMENT_MAX_CHARS: usize = 1000;

/// A feedback comment: trimmed, 1–1000 characters, no control characters
/// except newlines (and carriage returns). An empty comment is no comment:
/// [`FeedbackComment::parse_optional`] turns it into `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeedbackComment(String);

impl FeedbackComment {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        if count == 0 {
            return Err(ValidationError::new(
                "comment",
                "required",
                "comment must not be empty (leave it out instead)",
            ));
        }
        if count > FEEDBACK_COMMENT_MAX_CHARS {
            return Err(ValidationError::new(
                "comment",
                "length",
                format!(
                    "comment must be at most {FEEDBACK_COMMENT_MAX_CHARS} characters (got {count})"
                ),
            ));
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r'))
        {
            return Err(ValidationError::new(
                "comment",
                "characters",
                format!(
                    "comment must not contain control characters other than newlines (found U+{:04X})",
                    bad as u32
                ),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// `None` for an absent or blank comment; otherwise as [`FeedbackComment::parse`].
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, ValidationError> {
        match raw {
            Some(raw) if !raw.trim().is_empty() => Self::parse(raw).map(Some),
            _ => Ok(None),
        }
    }

    /// A comment read back from a store (checked when it was written).
    pub fn from_trusted(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One session's feedback on one answer; a later one replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// The chat job that produced the answer (the assistant message's `job_id`).
    pub job_id: JobId,
    pub session: SessionId,
    pub rating: FeedbackRating,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<FeedbackComment>,
    pub created_at: Timestamp,
}

/// Feedback as operators list it: with the question, the answer and its
/// sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackView {
    #[serde(flatten)]
    pub feedback: Feedback,
    pub conversation_id: ConversationId,
    pub question: String,
    pub answer: String,
    pub citations: Vec<Citation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_round_trip_and_refuse_others() {
        for r in [FeedbackRating::Up, FeedbackRating::Down] {
            assert_eq!(FeedbackRating::parse(r.as_str()), Some(r));
        }
        let err = FeedbackRating::parse_field("meh").unwrap_err();
        assert_eq!((err.field.as_str(), err.rule), ("rating", "value"));
    }

    #[test]
    fn comments_are_trimmed_and_blank_is_none() {
        let c = FeedbackComment::parse("  too long\nand vague  ").unwrap();
        assert_eq!(c.as_str(), "too long\nand vague");
        assert_eq!(FeedbackComment::parse_optional(Some("  ")).unwrap(), None);
        assert_eq!(FeedbackComment::parse_optional(None).unwrap(), None);
    }

    #[test]
    fn comment_limits_count_characters() {
        assert!(FeedbackComment::parse(&"ç".repeat(1000)).is_ok());
        let err = FeedbackComment::parse(&"ç".repeat(1001)).unwrap_err();
        assert_eq!((err.field.as_str(), err.rule), ("comment", "length"));
    }

    #[test]
    fn comments_refuse_control_characters_but_newlines() {
        for bad in ["a\0b", "tab\there", "esc\u{1b}[31m"] {
            assert_eq!(FeedbackComment::parse(bad).unwrap_err().rule, "characters");
        }
    }
}
