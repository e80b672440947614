use serde::Serialize;

/// Why a piece of input was refused: which field, which rule, in words a
/// person can act on. The API turns it into a 400 problem+json as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The request field, as the client spelled it (`nickname`, `message`).
    pub field: String,
    /// A stable machine-readable rule name (`length`, `characters`, `required`).
    pub rule: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
}

/// `http://` or `https://` followed by a host: what every configured
/// endpoint (Upstash, Flow, OpenAI, Chroma) must look like.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}
