//! Where the Upstash database is: `UPSTASH_REDIS_REST_URL` and `_TOKEN`, or
//! the names Vercel's storage integration sets (`KV_REST_API_URL`, `_TOKEN`).

use std::time::Duration;

use flowchat_domain::ConfigError;
use flowchat_upstash::{
    KV_TOKEN_VAR, KV_URL_VAR, TIMEOUT_VAR, TOKEN_VAR, Token, URL_VAR, UpstashConfig,
};

use crate::env::{Env, error};

/// `Ok(None)` when neither pair is set. Half a pair is an error naming the
/// missing half, even when the other pair is complete: a typo must not
/// silently switch databases.
pub fn upstash_config(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<UpstashConfig>, ConfigError> {
    let env = Env::new(lookup);
    let pair = match read_pair(&env, URL_VAR, TOKEN_VAR)? {
        Some(pair) => Some(pair),
        None => read_pair(&env, KV_URL_VAR, KV_TOKEN_VAR)?,
    };
    let Some((url, token)) = pair else {
        return Ok(None);
    };
    let mut config = UpstashConfig::new(url, Token::new(token));
    let default_ms = config.timeout.as_millis() as u64;
    config.timeout = Duration::from_millis(env.number(TIMEOUT_VAR, default_ms, 1..=600_000)?);
    Ok(Some(config))
}

/// The error for a process whose store must be Upstash when neither pair is
/// set: it names `UPSTASH_REDIS_REST_URL` and lists both pairs. `why` follows
/// "are required" as it stands, e.g. `" when FLOWCHAT_STORE=upstash"`.
pub fn upstash_required(why: &str) -> ConfigError {
    error(
        URL_VAR,
        format!("{URL_VAR} and {TOKEN_VAR} (or {KV_URL_VAR} and {KV_TOKEN_VAR}) are required{why}"),
    )
}

fn read_pair<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    url_var: &'static str,
    token_var: &'static str,
) -> Result<Option<(String, String)>, ConfigError> {
    let half = |missing: &'static str, present: &str| {
        error(
            missing,
            format!("is not set but {present} is: set both or neither"),
        )
    };
    match (env.get(url_var).is_some(), env.get(token_var)) {
        (true, Some(token)) => Ok(Some((env.url(url_var)?.unwrap_or_default(), token))),
        (false, None) => Ok(None),
        (true, None) => Err(half(token_var, url_var)),
        (false, Some(_)) => Err(half(url_var, token_var)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map;
    use flowchat_upstash::{DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT};

    #[test]
    fn none_when_nothing_is_set() {
        assert!(upstash_config(map(&[])).unwrap().is_none());
        let blank = map(&[(URL_VAR, " "), (TOKEN_VAR, "")]);
        assert!(upstash_config(blank).unwrap().is_none());
    }

    #[test]
    fn upstash_names_win_over_vercel_names() {
        let cfg = upstash_config(map(&[
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
        let cfg = upstash_config(map(&[
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
        let err = upstash_config(map(&[(URL_VAR, "https://a.upstash.io")])).unwrap_err();
        assert_eq!(err.variable, TOKEN_VAR);
        assert!(err.to_string().contains(TOKEN_VAR));

        let err = upstash_config(map(&[(KV_TOKEN_VAR, "secret-tok")])).unwrap_err();
        assert_eq!(err.variable, KV_URL_VAR);
        assert!(!err.to_string().contains("secret-tok"));
        // Half an Upstash pair is an error even when the Vercel pair is complete.
        let err = upstash_config(map(&[
            (TOKEN_VAR, "t"),
            (KV_URL_VAR, "https://b.upstash.io"),
            (KV_TOKEN_VAR, "tok-b"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, URL_VAR);
    }

    #[test]
    fn upstash_required_names_both_pairs_and_why() {
        let err = upstash_required(" when FLOWCHAT_STORE=upstash");
        assert_eq!(err.variable, URL_VAR);
        assert_eq!(
            err.message,
            "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (or KV_REST_API_URL and \
             KV_REST_API_TOKEN) are required when FLOWCHAT_STORE=upstash"
        );
    }

    #[test]
    fn url_must_be_http() {
        for bad in [
            "redis://zz.upstash.io",
            "zz.upstash.io",
            "https://",
            "https:///zz",
        ] {
            let err = upstash_config(map(&[(URL_VAR, bad), (TOKEN_VAR, "t")])).unwrap_err();
            assert_eq!(err.variable, URL_VAR, "{bad}");
            assert!(!err.to_string().contains("zz"), "the value is not echoed");
        }
        let ok = upstash_config(map(&[(URL_VAR, "HTTP://127.0.0.1:8079"), (TOKEN_VAR, "t")]));
        assert!(ok.unwrap().is_some());
    }

    #[test]
    fn timeout_must_be_positive_millis() {
        for bad in ["0", "-5", "1.5", "soon"] {
            let err = upstash_config(map(&[
                (URL_VAR, "https://a.upstash.io"),
                (TOKEN_VAR, "t"),
                (TIMEOUT_VAR, bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, TIMEOUT_VAR, "{bad}");
        }
    }
}
