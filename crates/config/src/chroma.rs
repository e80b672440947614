//! The Chroma server behind `VECTOR_STORE=chroma`.

use flowchat_domain::ConfigError;
use flowchat_knowledge::ChromaSettings;

use crate::env::Env;

/// `Ok(None)` when `CHROMA_URL` is unset: Chroma is not used. The collection
/// is per namespace (see [`ChromaSettings::collection_name`]).
pub fn chroma_settings(
    namespace: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<ChromaSettings>, ConfigError> {
    let env = Env::new(lookup);
    let Some(url) = env.url("CHROMA_URL")? else {
        return Ok(None);
    };
    let mut settings = ChromaSettings::new(url, namespace);
    if let Some(tenant) = env.get("CHROMA_TENANT") {
        settings.tenant = tenant;
    }
    if let Some(database) = env.get("CHROMA_DATABASE") {
        settings.database = database;
    }
    if let Some(collection) = env.get("CHROMA_COLLECTION") {
        settings.collection = collection;
    }
    settings.token = env.get("CHROMA_TOKEN");
    settings.timeout_ms = env.number("CHROMA_TIMEOUT_MS", settings.timeout_ms, 1..=600_000)?;
    settings.validate()?;
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::map as lookup;

    #[test]
    fn settings_are_optional_and_default() {
        assert_eq!(chroma_settings("dev", lookup(&[])).unwrap(), None);
        assert_eq!(
            chroma_settings("dev", lookup(&[("CHROMA_URL", "  ")])).unwrap(),
            None
        );
        let s = chroma_settings("dev", lookup(&[("CHROMA_URL", "http://h:8000/")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.url, "http://h:8000");
        assert_eq!(s.tenant, "default_tenant");
        assert_eq!(s.database, "default_database");
        assert_eq!(s.collection_name(), "flowchat-dev");
        assert_eq!(s.token, None);
        assert_eq!(s.timeout_ms, flowchat_knowledge::CHROMA_DEFAULT_TIMEOUT_MS);

        let s = chroma_settings(
            "preview-feat-x-",
            lookup(&[
                ("CHROMA_URL", "https://chroma.example.com"),
                ("CHROMA_TENANT", "t1"),
                ("CHROMA_DATABASE", "docs"),
                ("CHROMA_COLLECTION", "kb"),
                ("CHROMA_TOKEN", "secret"),
                ("CHROMA_TIMEOUT_MS", "2500"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.collection_name(), "kb-preview-feat-x");
        assert_eq!(s.token.as_deref(), Some("secret"));
        assert_eq!(s.timeout_ms, 2500);
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let variable =
            |vars: &[(&str, &str)]| chroma_settings("dev", lookup(vars)).unwrap_err().variable;
        assert_eq!(variable(&[("CHROMA_URL", "localhost:8000")]), "CHROMA_URL");
        let url = ("CHROMA_URL", "http://localhost:8000");
        assert_eq!(
            variable(&[url, ("CHROMA_TIMEOUT_MS", "soon")]),
            "CHROMA_TIMEOUT_MS"
        );
        assert_eq!(
            variable(&[url, ("CHROMA_TIMEOUT_MS", "0")]),
            "CHROMA_TIMEOUT_MS"
        );
        assert_eq!(
            variable(&[url, ("CHROMA_DATABASE", "db")]),
            "CHROMA_DATABASE"
        );
        assert_eq!(variable(&[url, ("CHROMA_TENANT", "a/b")]), "CHROMA_TENANT");
        assert_eq!(
            variable(&[url, ("CHROMA_COLLECTION", "-kb")]),
            "CHROMA_COLLECTION"
        );
    }
}
