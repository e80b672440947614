//! What the Worker reads from its bindings, and what it refuses.
//!
//! The same readers as every runtime (`flowchat_config::app_config`,
//! `flowchat_config::upstash_config`) over an injected lookup, plus the rules
//! only the edge has: no disk, so the store must be Upstash and the session
//! secret must be given (nothing can generate and keep one). Portable and
//! free of `worker` types, so its tests run natively.

use flowchat_config::ConfigError;
use flowchat_domain::config::{Config, StoreKind};
use flowchat_domain::token::SessionSecret;
use flowchat_upstash::UpstashConfig;

/// Everything the Worker needs to build its `AppContext`.
#[derive(Debug)]
pub struct EdgeSettings {
    pub config: Config,
    pub upstash: UpstashConfig,
    pub secret: SessionSecret,
}

/// Reads and checks the settings through `lookup` (`env.var`/`env.secret`
/// in the Worker, a map in tests). Every error names its variable and never
/// quotes a secret.
pub fn read(lookup: impl Fn(&str) -> Option<String>) -> Result<EdgeSettings, ConfigError> {
    let config = flowchat_config::app_config(&lookup)?;
    if config.store != StoreKind::Upstash {
        let given = lookup("FLOWCHAT_STORE")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let what = match given {
            Some(_) => "is `sqlite`".to_owned(),
            None => "is not set, so it defaults to `sqlite`".to_owned(),
        };
        return Err(ConfigError {
            variable: "FLOWCHAT_STORE",
            message: format!(
                "{what}, which needs a disk; a Cloudflare Worker has none: set FLOWCHAT_STORE=upstash \
                 (with UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN)"
            ),
        });
    }
    let upstash = flowchat_config::upstash_config(&lookup)?
        .ok_or_else(|| flowchat_config::upstash_required(": the Worker's store is Upstash"))?;
    let secret = config.session_secret.clone().ok_or_else(|| ConfigError {
        variable: "SESSION_SECRET",
        message: "is required on a Cloudflare Worker, in production or not (it has no disk to keep \
                  a generated one): at least 32 bytes, e.g. `openssl rand -hex 32 | wrangler secret put SESSION_SECRET`"
            .to_owned(),
    })?;
    Ok(EdgeSettings {
        config,
        upstash,
        secret,
    })
}

/// Cloudflare sets `CF-Connecting-IP` on every request it forwards to a
/// Worker (overwriting any the client sent); `wrangler dev` sets it too.
pub const CLOUDFLARE_IP_HEADER: &str = "cf-connecting-ip";

/// The one header the client's address is taken from: Cloudflare's, unless
/// `TRUSTED_IP_HEADER` names another. Nothing else is trusted.
pub fn trusted_ip_header(config: &Config) -> &str {
    config
        .trusted_ip_header
        .as_deref()
        .unwrap_or(CLOUDFLARE_IP_HEADER)
}

/// `text` with every occurrence of `url` (which may carry credentials)
/// replaced, for error messages that end up in logs.
pub fn redact(text: &str, url: &str) -> String {
    if url.is_empty() {
        return text.to_owned();
    }
    text.replace(url, "<upstash url>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("FLOWCHAT_STORE", "upstash"),
            ("UPSTASH_REDIS_REST_URL", "https://eu1-example.upstash.io"),
            ("UPSTASH_REDIS_REST_TOKEN", "tok-not-shown"),
            ("SESSION_SECRET", SECRET),
        ]
    }

    #[test]
    fn complete_settings_are_read() {
        let s = read(lookup(&complete())).unwrap();
        assert_eq!(s.config.store, StoreKind::Upstash);
        assert_eq!(s.upstash.url, "https://eu1-example.upstash.io");
        assert_eq!(s.config.namespace, "dev");
    }

    #[test]
    fn unset_store_is_refused_naming_the_variable() {
        let mut pairs = complete();
        pairs.retain(|(k, _)| *k != "FLOWCHAT_STORE");
        let e = read(lookup(&pairs)).unwrap_err();
        assert_eq!(e.variable, "FLOWCHAT_STORE");
        assert!(e.message.contains("defaults to `sqlite`"), "{e}");
        assert!(e.to_string().contains("FLOWCHAT_STORE=upstash"), "{e}");
    }

    #[test]
    fn sqlite_store_is_refused() {
        let mut pairs = complete();
        pairs[0] = ("FLOWCHAT_STORE", "sqlite");
        let e = read(lookup(&pairs)).unwrap_err();
        assert_eq!(e.variable, "FLOWCHAT_STORE");
        assert!(e.message.starts_with("is `sqlite`"), "{e}");
    }

    #[test]
    fn missing_upstash_endpoint_is_refused() {
        let pairs = vec![("FLOWCHAT_STORE", "upstash"), ("SESSION_SECRET", SECRET)];
        let e = read(lookup(&pairs)).unwrap_err();
        assert_eq!(e.variable, "UPSTASH_REDIS_REST_URL");
    }

    #[test]
    fn session_secret_is_required_even_in_development() {
        let mut pairs = complete();
        pairs.retain(|(k, _)| *k != "SESSION_SECRET");
        pairs.push(("FLOWCHAT_ENV", "development"));
        let e = read(lookup(&pairs)).unwrap_err();
        assert_eq!(e.variable, "SESSION_SECRET");
    }

    #[test]
    fn errors_never_quote_secrets() {
        let mut pairs = complete();
        pairs.retain(|(k, _)| *k != "SESSION_SECRET");
        pairs.push(("SESSION_SECRET", "short-secret-value"));
        let e = read(lookup(&pairs)).unwrap_err();
        assert_eq!(e.variable, "SESSION_SECRET");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("short-secret-value"), "{shown}");
        assert!(!shown.contains("tok-not-shown"), "{shown}");
    }

    #[test]
    fn client_ip_comes_from_cloudflare_unless_configured() {
        let s = read(lookup(&complete())).unwrap();
        assert_eq!(trusted_ip_header(&s.config), "cf-connecting-ip");
        let mut pairs = complete();
        pairs.push(("TRUSTED_IP_HEADER", "True-Client-IP"));
        let s = read(lookup(&pairs)).unwrap();
        assert_eq!(trusted_ip_header(&s.config), "true-client-ip");
    }

    #[test]
    fn redact_hides_the_url() {
        let url = "https://user:pw@eu1.upstash.io";
        assert_eq!(
            redact(&format!("fetch to {url} failed"), url),
            "fetch to <upstash url> failed"
        );
        assert_eq!(redact("x", ""), "x");
    }
}
