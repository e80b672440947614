//! What can go wrong, sorted by what the caller should do about it.
//!
//! No variant ever carries the token or the URL's credentials: these errors
//! are logged and may be turned into API responses. Transport messages are
//! also scrubbed of the token by the client before they get here.

/// Failure of a whole call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstashError {
    /// HTTP 401: the REST token is wrong, expired or revoked.
    #[error(
        "Upstash rejected the REST token (HTTP 401): check UPSTASH_REDIS_REST_TOKEN or KV_REST_API_TOKEN"
    )]
    Unauthorized,
    /// Redis refused or failed the command (`{"error": "..."}`), e.g.
    /// `WRONGTYPE ...`, `NOSCRIPT ...`, a Lua error. Not retryable: the same
    /// command would fail the same way.
    #[error("redis error: {0}")]
    Command(String),
    /// HTTP 413, or Upstash's "max request size exceeded": split the value.
    #[error("request too large for Upstash (limit is 10 MB per request): split the value")]
    TooLarge,
    /// No usable HTTP answer: connection failure, 5xx, 429. Retryable.
    #[error("Upstash unreachable: {0}")]
    Transport(String),
    /// The per-request deadline passed. Retryable, but a write may have
    /// been applied.
    #[error("Upstash request timed out")]
    Timeout,
    /// The answer did not have the documented shape.
    #[error("unexpected answer from Upstash: {0}")]
    Protocol(String),
    /// An argument is not valid UTF-8. The REST API carries arguments as JSON
    /// strings, so binary values must be base64-encoded by the caller.
    #[error(
        "a command argument is not valid UTF-8; the Upstash REST API takes JSON strings, so encode binary values (e.g. base64) before storing them"
    )]
    NotUtf8Argument,
}

impl UpstashError {
    /// Whether trying again later may succeed (the store is unreachable or
    /// overloaded, not wrong). API handlers map these to `503 Retry-After`.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpstashError::Transport(_) | UpstashError::Timeout)
    }

    /// Whether this is Redis's `NOSCRIPT` (EVALSHA of an unknown script).
    pub fn is_noscript(&self) -> bool {
        matches!(self, UpstashError::Command(m) if m.starts_with("NOSCRIPT"))
    }
}

/// Redis refused one command of a pipeline or transaction; the others ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis error: {message}")]
pub struct CommandError {
    /// Redis's message, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    pub message: String,
}

impl From<CommandError> for UpstashError {
    fn from(e: CommandError) -> Self {
        UpstashError::Command(e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_is_only_transport_and_timeout() {
        assert!(UpstashError::Transport("x".into()).is_retryable());
        assert!(UpstashError::Timeout.is_retryable());
        for e in [
            UpstashError::Unauthorized,
            UpstashError::Command("ERR".into()),
            UpstashError::TooLarge,
            UpstashError::Protocol("x".into()),
            UpstashError::NotUtf8Argument,
        ] {
            assert!(!e.is_retryable(), "{e:?}");
        }
    }

    #[test]
    fn noscript_is_recognised() {
        assert!(UpstashError::Command("NOSCRIPT No matching script.".into()).is_noscript());
        assert!(!UpstashError::Command("ERR NOSCRIPT".into()).is_noscript());
    }
}
