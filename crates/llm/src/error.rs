//! Typed failures of language-model calls. The messages end up in failed job
//! records that people read, so they say what happened in plain words, carry
//! the upstream explanation (shortened), and never a credential.

/// How much of an upstream explanation an error keeps: enough to diagnose,
/// short enough for a job record.
pub(crate) const MAX_DETAIL_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The settings cannot work (bad URL, client could not be built).
    #[error("the language model is not configured correctly: {0}")]
    Config(String),
    /// The credentials were refused: the token exchange failed, or a call
    /// still got 401 with a freshly fetched token.
    #[error("the language model refused the credentials (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// The request itself is wrong or not allowed (400, 403, 404, 422…);
    /// sending it again will not help.
    #[error("the language model refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Still 429 when the retries ran out.
    #[error("the language model is rate limited (HTTP 429): {message}")]
    RateLimited {
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// Still failing with a server error when the retries ran out.
    #[error("the language model service failed (HTTP {status}): {message}")]
    Upstream { status: u16, message: String },
    #[error("the language model did not answer in time: {0}")]
    Timeout(String),
    #[error("could not reach the language model: {0}")]
    Connection(String),
    #[error("the language model's answer stream broke off: {0}")]
    StreamInterrupted(String),
    #[error("the language model sent an answer that could not be understood: {0}")]
    InvalidResponse(String),
}

impl LlmError {
    /// True when trying the same call again later cannot succeed without a
    /// change of settings or request; callers use it to dead-letter a job
    /// instead of scheduling another attempt.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            LlmError::Config(_)
                | LlmError::Auth { .. }
                | LlmError::Rejected { .. }
                | LlmError::InvalidResponse(_)
        )
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Auth { status, .. }
            | LlmError::Rejected { status, .. }
            | LlmError::Upstream { status, .. } => Some(*status),
            LlmError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Adds how many tries were spent, so a reader knows the failure was
    /// not a one-off.
    pub(crate) fn gave_up_after(self, tries: u32) -> LlmError {
        let note = |m: String| {
            let plural = if tries == 1 { "try" } else { "tries" };
            if m.is_empty() {
                format!("gave up after {tries} {plural}")
            } else {
                format!("{m} (gave up after {tries} {plural})")
            }
        };
        match self {
            LlmError::RateLimited {
                message,
                retry_after_ms,
            } => LlmError::RateLimited {
                message: note(message),
                retry_after_ms,
            },
            LlmError::Upstream { status, message } => LlmError::Upstream {
                status,
                message: note(message),
            },
            LlmError::Timeout(m) => LlmError::Timeout(note(m)),
            LlmError::Connection(m) => LlmError::Connection(note(m)),
            LlmError::StreamInterrupted(m) => LlmError::StreamInterrupted(note(m)),
            other => other,
        }
    }
}

/// Removes every known credential and anything shaped like a bearer token or
/// JWT from upstream text, then shortens it. Upstream error bodies sometimes
/// echo the request, credentials included.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        // Very short values would blank out ordinary words.
        if secret.len() >= 4 {
            out = out.replace(secret, "[redacted]");
        }
    }
    let mut words: Vec<String> = Vec::new();
    let mut after_bearer = false;
    for word in out.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let looks_like_jwt = bare.starts_with("eyJ") && bare.len() >= 20;
        let looks_like_key = bare.starts_with("sk-") && bare.len() >= 20;
        if !bare.is_empty() && (after_bearer || looks_like_jwt || looks_like_key) {
            words.push(word.replace(bare, "[redacted]"));
        } else {
            words.push(word.to_owned());
        }
        after_bearer = bare.eq_ignore_ascii_case("bearer");
    }
    truncate(&words.join(" "), MAX_DETAIL_CHARS)
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_plainly() {
        let e = LlmError::Rejected {
            status: 400,
            message: "bad model".into(),
        };
        assert_eq!(
            e.to_string(),
            "the language model refused the request (HTTP 400): bad model"
        );
        let e = LlmError::RateLimited {
            message: "quota".into(),
            retry_after_ms: None,
        }
        .gave_up_after(4);
        assert_eq!(
            e.to_string(),
            "the language model is rate limited (HTTP 429): quota (gave up after 4 tries)"
        );
        assert_eq!(e.status(), Some(429));
        assert!(!e.is_permanent());
        assert!(
            LlmError::Auth {
                status: 401,
                message: String::new()
            }
            .is_permanent()
        );
    }

    #[test]
    fn redaction_removes_credentials_and_token_shapes() {
        let text = "bad secret my-client-secret; header Authorization: Bearer abc.def.ghi \
                    token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig key sk-1234567890abcdefghijkl";
        let out = redact(text, &["my-client-secret"]);
        assert!(!out.contains("my-client-secret"), "{out}");
        assert!(!out.contains("abc.def.ghi"), "{out}");
        assert!(!out.contains("eyJhbGci"), "{out}");
        assert!(!out.contains("sk-1234567890"), "{out}");
        assert!(out.contains("Bearer [redacted]"), "{out}");
    }

    #[test]
    fn long_details_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(400);
        let out = redact(&long, &[]);
        assert_eq!(out.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}
