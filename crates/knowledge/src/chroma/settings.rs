//! Where the Chroma server is and which collection FlowChat uses, checked
//! so that an unusable value is refused with the variable to fix.

use flowchat_domain::ConfigError;
use flowchat_domain::validation::is_http_url;

/// Default request timeout (`CHROMA_TIMEOUT_MS`).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

const DEFAULT_TENANT: &str = "default_tenant";
const DEFAULT_DATABASE: &str = "default_database";
const DEFAULT_COLLECTION: &str = "flowchat";

/// Where the Chroma server is and which collection FlowChat uses.
#[derive(Clone, PartialEq, Eq)]
pub struct ChromaSettings {
    /// `CHROMA_URL`, e.g. `http://localhost:8000` (no trailing `/`).
    pub url: String,
    /// `CHROMA_TENANT`, default `default_tenant`.
    pub tenant: String,
    /// `CHROMA_DATABASE`, default `default_database`; created when missing.
    pub database: String,
    /// `CHROMA_COLLECTION`, default `flowchat`: the collection's name before
    /// the namespace is appended (see [`ChromaSettings::collection_name`]).
    pub collection: String,
    /// FlowChat's namespace (`FLOWCHAT_NAMESPACE` or derived from the
    /// deployment), appended to the collection name.
    pub namespace: String,
    /// `CHROMA_TOKEN`, sent as the `x-chroma-token` header when set.
    pub token: Option<String>,
    /// `CHROMA_TIMEOUT_MS`, default 10 000: the limit for one HTTP request.
    pub timeout_ms: u64,
}

impl std::fmt::Debug for ChromaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaSettings")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl ChromaSettings {
    /// Settings for the server at `url` with every default.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        ChromaSettings {
            url: url.into().trim_end_matches('/').to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            namespace: namespace.into(),
            token: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// The collection's name on the server: `<collection>-<namespace>`.
    /// Chroma names must end with a letter or digit, so trailing `-` and `_`
    /// of the namespace (a derived branch name can end with one) are dropped.
    pub fn collection_name(&self) -> String {
        let namespace = self
            .namespace
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if namespace.is_empty() {
            self.collection.clone()
        } else {
            format!("{}-{namespace}", self.collection)
        }
    }

    /// Checks every value can work, with an error naming the variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_http_url(&self.url) {
            return Err(config_error(
                "CHROMA_URL",
                "must be an http:// or https:// URL",
            ));
        }
        if !is_path_safe(&self.tenant) {
            return Err(config_error(
                "CHROMA_TENANT",
                "may contain only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if !is_path_safe(&self.database) || self.database.len() < 3 {
            return Err(config_error(
                "CHROMA_DATABASE",
                "needs at least 3 characters, only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if !is_path_safe(&self.namespace) {
            return Err(config_error(
                "FLOWCHAT_NAMESPACE",
                "cannot be part of a Chroma collection name (only ASCII letters, digits, '.', '_' and '-')",
            ));
        }
        let name = self.collection_name();
        if !is_collection_name(&name) {
            return Err(config_error(
                "CHROMA_COLLECTION",
                &format!(
                    "gives the collection name {name:?}, but Chroma needs 3 to 512 ASCII letters, \
                     digits, '.', '_' or '-', starting and ending with a letter or digit"
                ),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(config_error("CHROMA_TIMEOUT_MS", "must be at least 1"));
        }
        Ok(())
    }
}

pub(super) fn config_error(variable: &'static str, problem: &str) -> ConfigError {
    ConfigError {
        variable,
        message: problem.to_owned(),
    }
}

/// Safe as a URL path segment as it is (no escaping needed).
fn is_path_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Chroma's rule: 3 to 512 characters of `[a-zA-Z0-9._-]`, starting and
/// ending with a letter or digit.
fn is_collection_name(name: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (3..=512).contains(&name.len())
        && is_path_safe(name)
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
}
