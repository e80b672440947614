use unicode_normalization::UnicodeNormalization;

use crate::validation::ValidationError;

/// A display name chosen at the nickname gate.
///
/// Parsing trims, NFC-normalises, then requires 1–40 characters that are
/// letters, digits, spaces or one of `-_.'`. The same rules are shown to the
/// user by the web app, so the wording of each error matters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Nickname(String);

pub const NICKNAME_MAX_CHARS: usize = 40;

impl Nickname {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let normalised: String = raw.trim().nfc().collect();
        let count = normalised.chars().count();
        if count == 0 {
            return Err(ValidationError::new(
                "nickname",
                "required",
                "nickname must not be empty",
            ));
        }
        if count > NICKNAME_MAX_CHARS {
            return Err(ValidationError::new(
                "nickname",
                "length",
                format!("nickname must be at most {NICKNAME_MAX_CHARS} characters (got {count})"),
            ));
        }
        if let Some(bad) = normalised
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\'')))
        {
            return Err(ValidationError::new(
                "nickname",
                "characters",
                format!(
                    "nickname may contain only letters, digits, spaces and - _ . ' (found {:?})",
                    bad
                ),
            ));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Nickname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_normalises() {
        // "e" + combining acute accent becomes the single code point é.
        let nick = Nickname::parse("  Jose\u{301} Silva ").unwrap();
        assert_eq!(nick.as_str(), "Jos\u{e9} Silva");
    }

    #[test]
    fn accepts_allowed_punctuation_and_unicode_letters() {
        for ok in ["O'Brien", "ana_maria-2", "Dr. Zé", "東京", "a"] {
            assert!(Nickname::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_empty_and_whitespace() {
        for bad in ["", "   ", "\t"] {
            assert_eq!(Nickname::parse(bad).unwrap_err().rule, "required");
        }
    }

    #[test]
    fn rejects_too_long_counting_characters_not_bytes() {
        assert!(Nickname::parse(&"é".repeat(40)).is_ok());
        assert_eq!(Nickname::parse(&"é".repeat(41)).unwrap_err().rule, "length");
    }

    #[test]
    fn rejects_symbols_and_controls() {
        for bad in ["<script>", "a@b", "tab\there", "emoji 😀", "semi;colon"] {
            let err = Nickname::parse(bad).unwrap_err();
            assert_eq!(err.rule, "characters", "{bad}");
            assert_eq!(err.field, "nickname");
        }
    }
}
