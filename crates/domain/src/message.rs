use crate::validation::ValidationError;

/// The text of a user's chat message: 1–4000 characters after trimming, with
/// no NUL or other control characters except newline, carriage return and tab.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

pub const MESSAGE_MAX_CHARS: usize = 4000;

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let count = trimmed.chars().count();
        if count == 0 {
            return Err(ValidationError::new(
                "message",
                "required",
                "message must not be empty",
            ));
        }
        if count > MESSAGE_MAX_CHARS {
            return Err(ValidationError::new(
                "message",
                "length",
                format!("message must be at most {MESSAGE_MAX_CHARS} characters (got {count})"),
            ));
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ValidationError::new(
                "message",
                "characters",
                format!(
                    "message must not contain control characters other than newlines and tabs (found U+{:04X})",
                    bad as u32
                ),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_inner_newlines() {
        let m = MessageText::parse("  line one\n\tline two  ").unwrap();
        assert_eq!(m.as_str(), "line one\n\tline two");
    }

    #[test]
    fn length_limits_count_characters() {
        assert!(MessageText::parse(&"ç".repeat(4000)).is_ok());
        assert_eq!(
            MessageText::parse(&"ç".repeat(4001)).unwrap_err().rule,
            "length"
        );
        assert_eq!(MessageText::parse(" \n ").unwrap_err().rule, "required");
    }

    #[test]
    fn rejects_nul_and_escape() {
        for bad in ["a\0b", "bell\u{7}", "esc\u{1b}[31m"] {
            assert_eq!(MessageText::parse(bad).unwrap_err().rule, "characters");
        }
    }
}
