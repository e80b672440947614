//! Where the database is and how patiently to talk to it. The variables are
//! read by `flowchat-config` (the one place configuration is parsed), which
//! also serves the Cloudflare Worker's `env.secret(..)`; their names are
//! here because they belong to the protocol's conventions.

use std::fmt;
use std::time::Duration;

/// Name of the URL variable set by the Upstash console.
pub const URL_VAR: &str = "UPSTASH_REDIS_REST_URL";
/// Name of the token variable set by the Upstash console.
pub const TOKEN_VAR: &str = "UPSTASH_REDIS_REST_TOKEN";
/// Vercel's marketplace name for the same URL.
pub const KV_URL_VAR: &str = "KV_REST_API_URL";
/// Vercel's marketplace name for the same token.
pub const KV_TOKEN_VAR: &str = "KV_REST_API_TOKEN";
/// Optional per-request timeout in milliseconds.
pub const TIMEOUT_VAR: &str = "UPSTASH_TIMEOUT_MS";

/// Per-request timeout when `UPSTASH_TIMEOUT_MS` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra attempts for calls that are safe to repeat.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// The REST bearer token.
///
/// A type of its own so that it can never be printed by accident: `Debug`
/// shows a placeholder and there is no `Display`. Read it with
/// [`Token::expose`] only to build the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The secret itself. Only the request builder should need this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to reach one Upstash database.
#[derive(Debug, Clone)]
pub struct UpstashConfig {
    /// The REST endpoint, e.g. `https://eu1-xyz.upstash.io` (no trailing `/`).
    pub url: String,
    /// The bearer token.
    pub token: Token,
    /// Deadline for one HTTP request (each retry gets a fresh one).
    pub timeout: Duration,
    /// Extra attempts after a transport failure, for calls that are safe to repeat.
    pub max_retries: u32,
}

impl UpstashConfig {
    /// A configuration with the default timeout and retry count.
    ///
    /// A trailing `/` on `url` is dropped so that `/pipeline` can be appended.
    pub fn new(url: impl Into<String>, token: Token) -> Self {
        let url = url.into();
        UpstashConfig {
            url: url.trim_end_matches('/').to_owned(),
            token,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let cfg = UpstashConfig::new("https://a.upstash.io", Token::new("s3cr3t-token"));
        let shown = format!("{cfg:?} {:?}", cfg.token);
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
