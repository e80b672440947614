//! The drain inside a Vercel function: the cron route (`CRON_SECRET`,
//! `CRON_DRAIN_MAX_SECONDS`) and the chat function's pass after its 202
//! (`DRAIN_AFTER_RESPONSE`, `DRAIN_AFTER_RESPONSE_SECONDS`). Both plan
//! around the functions' `maxDuration` in `vercel.json`.

use flowchat_domain::ConfigError;
use flowchat_domain::config::{AdminToken, VectorStore};

use crate::env::{Env, error};

/// `maxDuration` of `api/cron/drain.rs` and `api/chat.rs` in `vercel.json`
/// (a test of the root package checks they agree).
pub const FUNCTION_MAX_DURATION_SECS: u64 = 60;
/// Seconds kept free at the end of an invocation for answering and logging.
pub const HARD_STOP_MARGIN_SECS: u64 = 5;
/// `CRON_DRAIN_MAX_SECONDS` unless set: claiming stops at 30 s, which leaves
/// a job claimed last about 25 s (one language-model answer) to finish.
const CRON_DRAIN_DEFAULT_SECS: u64 = 30;
/// `DRAIN_AFTER_RESPONSE_SECONDS` unless set.
const AFTER_RESPONSE_DEFAULT_SECS: u64 = 5;

#[derive(Debug, Clone)]
pub struct FunctionDrainSettings {
    /// `CRON_SECRET`: the bearer token Vercel's cron sends; `None` when unset
    /// (the route then refuses every call).
    pub cron_secret: Option<AdminToken>,
    /// `CRON_DRAIN_MAX_SECONDS`: how long the cron route claims jobs.
    pub cron_budget_secs: u64,
    /// `Some(budget)` when the chat function drains after its 202:
    /// `DRAIN_AFTER_RESPONSE` (default on exactly when the index is remote)
    /// and `DRAIN_AFTER_RESPONSE_SECONDS`.
    pub after_response_secs: Option<u64>,
}

pub fn function_drain_settings(
    vector_store: VectorStore,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<FunctionDrainSettings, ConfigError> {
    let env = Env::new(lookup);
    let longest = 1..=FUNCTION_MAX_DURATION_SECS - HARD_STOP_MARGIN_SECS;
    let remote = vector_store == VectorStore::Chroma;
    let on = env.choice(
        "DRAIN_AFTER_RESPONSE",
        remote,
        &[
            ("on", true),
            ("true", true),
            ("1", true),
            ("off", false),
            ("false", false),
            ("0", false),
        ],
    )?;
    let after_secs = env.number(
        "DRAIN_AFTER_RESPONSE_SECONDS",
        AFTER_RESPONSE_DEFAULT_SECS,
        longest.clone(),
    )?;
    if on && !remote {
        return Err(error(
            "DRAIN_AFTER_RESPONSE",
            "a function can drain only with the remote index (VECTOR_STORE=chroma): \
             it has no persistent disk for the embedded one",
        ));
    }
    Ok(FunctionDrainSettings {
        cron_secret: env.get("CRON_SECRET").map(AdminToken::new),
        cron_budget_secs: env.number("CRON_DRAIN_MAX_SECONDS", CRON_DRAIN_DEFAULT_SECS, longest)?,
        after_response_secs: on.then_some(after_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map;

    fn read(
        store: VectorStore,
        pairs: &[(&str, &str)],
    ) -> Result<FunctionDrainSettings, ConfigError> {
        function_drain_settings(store, map(pairs))
    }

    #[test]
    fn settings_name_their_variable() {
        let defaults = read(VectorStore::Chroma, &[]).unwrap();
        assert_eq!(defaults.cron_budget_secs, 30);
        assert_eq!(defaults.after_response_secs, Some(5));
        assert!(defaults.cron_secret.is_none());
        let set = read(
            VectorStore::Chroma,
            &[
                ("CRON_DRAIN_MAX_SECONDS", "10"),
                ("CRON_SECRET", "s3cret-enough"),
            ],
        )
        .unwrap();
        assert_eq!(set.cron_budget_secs, 10);
        assert!(set.cron_secret.unwrap().matches("s3cret-enough"));
        let e = read(VectorStore::Chroma, &[("CRON_DRAIN_MAX_SECONDS", "60")]).unwrap_err();
        assert_eq!(e.variable, "CRON_DRAIN_MAX_SECONDS");

        assert_eq!(
            read(VectorStore::Sqlite, &[]).unwrap().after_response_secs,
            None
        );
        let off = read(VectorStore::Chroma, &[("DRAIN_AFTER_RESPONSE", "off")]).unwrap();
        assert_eq!(off.after_response_secs, None);
        let short = read(
            VectorStore::Chroma,
            &[("DRAIN_AFTER_RESPONSE_SECONDS", "2")],
        )
        .unwrap();
        assert_eq!(short.after_response_secs, Some(2));
        let e = read(VectorStore::Sqlite, &[("DRAIN_AFTER_RESPONSE", "on")]).unwrap_err();
        assert_eq!(e.variable, "DRAIN_AFTER_RESPONSE");
        let e = read(VectorStore::Chroma, &[("DRAIN_AFTER_RESPONSE", "maybe")]).unwrap_err();
        assert_eq!(e.variable, "DRAIN_AFTER_RESPONSE");
    }
}
