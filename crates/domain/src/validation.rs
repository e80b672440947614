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
