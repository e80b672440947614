//! Where the database is and how patiently to talk to it.
//!
//! Read once at start-up from the environment through a lookup function (not
//! `std::env` directly) so the Cloudflare Worker can feed it `env.secret(..)`
//! and tests can feed it a map.

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

/// A configuration value is missing or malformed; names the variable.
///
/// Never contains the values themselves: the URL might be a mis-pasted token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// One half of a URL/token pair is set without the other.
    #[error("{missing} is not set but {present} is: set both or neither")]
    Incomplete {
        /// The variable that is missing.
        missing: &'static str,
        /// Its partner, which is set.
        present: &'static str,
    },
    /// The URL variable does not hold an `http://` or `https://` URL.
    #[error("{variable} must be an http:// or https:// URL")]
    InvalidUrl {
        /// The variable holding the bad value.
        variable: &'static str,
    },
    /// `UPSTASH_TIMEOUT_MS` is not a positive whole number of milliseconds.
    #[error("{variable} must be a positive whole number of milliseconds")]
    InvalidTimeout {
        /// The variable holding the bad value.
        variable: &'static str,
    },
}

impl ConfigError {
    /// The environment variable at fault, for start-up messages.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Incomplete { missing, .. } => missing,
            ConfigError::InvalidUrl { variable } | ConfigError::InvalidTimeout { variable } => {
                variable
            }
        }
    }
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

    /// Read the configuration through `lookup` (usually `std::env::var(..).ok()`).
    ///
    /// `UPSTASH_REDIS_REST_URL`/`UPSTASH_REDIS_REST_TOKEN` win; otherwise
    /// Vercel's `KV_REST_API_URL`/`KV_REST_API_TOKEN` are used. Empty values
    /// count as unset (hosting dashboards often leave them blank).
    ///
    /// `Ok(None)` when neither pair is set: the caller decides whether Upstash
    /// was required. An error names the variable when only half a pair is set,
    /// the URL is not http(s), or `UPSTASH_TIMEOUT_MS` is malformed.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<UpstashConfig>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let pair = match read_pair(&get, URL_VAR, TOKEN_VAR)? {
            Some(pair) => Some(pair),
            None => read_pair(&get, KV_URL_VAR, KV_TOKEN_VAR)?,
        };
        let Some((url_var, url, token)) = pair else {
            return Ok(None);
        };
        if !is_http_url(&url) {
            return Err(ConfigError::InvalidUrl { variable: url_var });
        }
        let mut config = UpstashConfig::new(url, Token::new(token));
        if let Some(ms) = get(TIMEOUT_VAR) {
            let ms: u64 =
                ms.parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or(ConfigError::InvalidTimeout {
                        variable: TIMEOUT_VAR,
                    })?;
            config.timeout = Duration::from_millis(ms);
        }
        Ok(Some(config))
    }
}

/// Both halves of a pair, neither, or an error naming the missing half.
fn read_pair(
    get: &impl Fn(&str) -> Option<String>,
    url_var: &'static str,
    token_var: &'static str,
) -> Result<Option<(&'static str, String, String)>, ConfigError> {
    match (get(url_var), get(token_var)) {
        (Some(url), Some(token)) => Ok(Some((url_var, url, token))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Incomplete {
            missing: token_var,
            present: url_var,
        }),
        (None, Some(_)) => Err(ConfigError::Incomplete {
            missing: url_var,
            present: token_var,
        }),
    }
}

/// `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn none_when_nothing_is_set() {
        assert!(UpstashConfig::from_lookup(lookup(&[])).unwrap().is_none());
        let blank = lookup(&[(URL_VAR, " "), (TOKEN_VAR, "")]);
        assert!(UpstashConfig::from_lookup(blank).unwrap().is_none());
    }

    #[test]
    fn upstash_names_win_over_vercel_names() {
        let cfg = UpstashConfig::from_lookup(lookup(&[
            (URL_VAR, "https://a.upstash.io/"),
            (TOKEN_VAR, "tok-a"),
            (KV_URL_VAR, "https://b.upstash.io"),
            (KV_TOKEN_VAR, "tok-b"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(cfg.url, "https://a.upstash.io");
        assert_eq!(cfg.token.expose(), "tok-a");
        assert_eq!(cfg.timeout, DEFAULT_TIMEOUT);
        assert_eq!(cfg.max_retries, DEFAULT_MAX_RETRIES);
    }

    #[test]
    fn vercel_names_are_a_fallback() {
        let cfg = UpstashConfig::from_lookup(lookup(&[
            (KV_URL_VAR, "https://b.upstash.io"),
            (KV_TOKEN_VAR, "tok-b"),
            (TIMEOUT_VAR, "1500"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(cfg.url, "https://b.upstash.io");
        assert_eq!(cfg.token.expose(), "tok-b");
        assert_eq!(cfg.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn half_a_pair_names_the_missing_variable() {
        let err =
            UpstashConfig::from_lookup(lookup(&[(URL_VAR, "https://a.upstash.io")])).unwrap_err();
        assert_eq!(err.variable(), TOKEN_VAR);
        assert!(err.to_string().contains(TOKEN_VAR));

        let err = UpstashConfig::from_lookup(lookup(&[(KV_TOKEN_VAR, "secret-tok")])).unwrap_err();
        assert_eq!(err.variable(), KV_URL_VAR);
        assert!(!err.to_string().contains("secret-tok"));
        // Half an Upstash pair is an error even when the Vercel pair is complete.
        let err = UpstashConfig::from_lookup(lookup(&[
            (TOKEN_VAR, "t"),
            (KV_URL_VAR, "https://b.upstash.io"),
            (KV_TOKEN_VAR, "tok-b"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable(), URL_VAR);
    }

    #[test]
    fn url_must_be_http() {
        for bad in [
            "redis://zz.upstash.io",
            "zz.upstash.io",
            "https://",
            "https:///zz",
        ] {
            let err = UpstashConfig::from_lookup(lookup(&[(URL_VAR, bad), (TOKEN_VAR, "t")]))
                .unwrap_err();
            assert_eq!(err, ConfigError::InvalidUrl { variable: URL_VAR }, "{bad}");
            assert!(!err.to_string().contains("zz"), "the value is not echoed");
        }
        let ok = UpstashConfig::from_lookup(lookup(&[
            (URL_VAR, "HTTP://127.0.0.1:8079"),
            (TOKEN_VAR, "t"),
        ]));
        assert!(ok.unwrap().is_some());
    }

    #[test]
    fn timeout_must_be_positive_millis() {
        for bad in ["0", "-5", "1.5", "soon"] {
            let err = UpstashConfig::from_lookup(lookup(&[
                (URL_VAR, "https://a.upstash.io"),
                (TOKEN_VAR, "t"),
                (TIMEOUT_VAR, bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable(), TIMEOUT_VAR, "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let cfg = UpstashConfig::new("https://a.upstash.io", Token::new("s3cr3t-token"));
        let shown = format!("{cfg:?} {:?}", cfg.token);
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
