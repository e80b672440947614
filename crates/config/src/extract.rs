//! How documents are read (`EXTRACT_*`): in a reader process with a memory
//! limit, killed at a deadline (see `flowchat_knowledge::extract`).

use flowchat_domain::ConfigError;
use flowchat_knowledge::extract::{
    DEFAULT_CONCURRENCY, DEFAULT_MEMORY_LIMIT_MB, DEFAULT_TIMEOUT_SECS, ExtractSettings, Isolation,
};

use crate::env::Env;

pub fn extract_settings(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ExtractSettings, ConfigError> {
    let env = Env::new(lookup);
    let isolation = env.choice(
        "EXTRACT_ISOLATION",
        Isolation::Subprocess,
        &[
            ("subprocess", Isolation::Subprocess),
            ("in-process", Isolation::InProcess),
        ],
    )?;
    let timeout_secs = env.number("EXTRACT_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECS, 1..=600)?;
    // Below ~128 MiB of address space the reader cannot start.
    let memory_limit_mb = env.number(
        "EXTRACT_MEMORY_LIMIT_MB",
        DEFAULT_MEMORY_LIMIT_MB,
        128..=1_048_576,
    )?;
    let concurrency = env.number("EXTRACT_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64)?;
    Ok(ExtractSettings {
        isolation,
        timeout: std::time::Duration::from_secs(timeout_secs),
        memory_limit_mb,
        concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map as lookup;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            extract_settings(lookup(&[])).unwrap(),
            ExtractSettings::default()
        );
        let s = extract_settings(lookup(&[
            ("EXTRACT_ISOLATION", "in-process"),
            ("EXTRACT_TIMEOUT_SECONDS", "5"),
            ("EXTRACT_MEMORY_LIMIT_MB", "256"),
            ("EXTRACT_CONCURRENCY", "1"),
        ]))
        .unwrap();
        assert_eq!(s.isolation, Isolation::InProcess);
        assert_eq!(s.timeout.as_secs(), 5);
        assert_eq!((s.memory_limit_mb, s.concurrency), (256, 1));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let variable = |k: &str, v: &str| extract_settings(lookup(&[(k, v)])).unwrap_err().variable;
        assert_eq!(variable("EXTRACT_ISOLATION", "fork"), "EXTRACT_ISOLATION");
        assert_eq!(
            variable("EXTRACT_TIMEOUT_SECONDS", "0"),
            "EXTRACT_TIMEOUT_SECONDS"
        );
        assert_eq!(
            variable("EXTRACT_MEMORY_LIMIT_MB", "16"),
            "EXTRACT_MEMORY_LIMIT_MB"
        );
        assert_eq!(variable("EXTRACT_CONCURRENCY", "0"), "EXTRACT_CONCURRENCY");
    }
}
