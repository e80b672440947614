//! The one reader of configuration values. Every variable goes through it,
//! so "empty means unset", number ranges, URLs and choices are parsed one
//! way and every error names its variable the same way.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use flowchat_domain::ConfigError;
use flowchat_domain::validation::is_http_url;

/// A lookup of configuration values by name: the process environment on
/// native runtimes, `env.var`/`env.secret` in a Worker, a map in tests.
pub struct Env<F> {
    lookup: F,
}

pub(crate) fn error(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// The trimmed value; empty or blank counts as unset, because deployment
    /// dashboards often keep a variable defined but blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| error(name, "is required but not set"))
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(error(
                name,
                format!(
                    "expected a whole number from {} to {}, got `{}`",
                    range.start(),
                    range.end(),
                    shorten(&raw)
                ),
            )),
        }
    }

    /// A finite decimal number within `range`, or `default` when unset.
    pub fn decimal(
        &self,
        name: &'static str,
        default: f32,
        range: RangeInclusive<f32>,
    ) -> Result<f32, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<f32>() {
            Ok(v) if v.is_finite() && range.contains(&v) => Ok(v),
            _ => Err(error(
                name,
                format!(
                    "expected a number from {} to {}, got `{}`",
                    range.start(),
                    range.end(),
                    shorten(&raw)
                ),
            )),
        }
    }

    /// One of `choices` by its name, or `default` when unset.
    pub fn choice<T: Copy>(
        &self,
        name: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(spelling, _)| *spelling == raw)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                error(
                    name,
                    format!("expected {}, got `{}`", list(choices), shorten(&raw)),
                )
            })
    }

    /// An absolute `http://` or `https://` URL without its trailing `/`, so
    /// paths can be appended verbatim. The value is never echoed in the
    /// error: a URL may carry credentials.
    pub fn url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let url = raw.trim_end_matches('/').to_owned();
        if is_http_url(&url) {
            Ok(Some(url))
        } else {
            Err(error(name, "expected an absolute http:// or https:// URL"))
        }
    }

    /// [`Env::url`] with a default for when it is unset.
    pub fn url_or(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .url(name)?
            .unwrap_or_else(|| default.trim_end_matches('/').to_owned()))
    }
}

/// "`a`, `b` or `c`".
fn list<T>(choices: &[(&str, T)]) -> String {
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Long values are cut in messages: they are there to recognise the
/// mistake, not to be repeated whole into logs.
fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
pub(crate) fn map(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_are_unset_and_values_are_trimmed() {
        let env = Env::new(map(&[("A", "  "), ("B", " b ")]));
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B").as_deref(), Some("b"));
        assert_eq!(env.or("A", "x"), "x");
        assert_eq!(env.required("A").unwrap_err().variable, "A");
    }

    #[test]
    fn numbers_name_the_range() {
        let env = Env::new(map(&[("N", "12"), ("BIG", "99"), ("WORD", "ten")]));
        assert_eq!(env.number("N", 1u32, 1..=20).unwrap(), 12);
        assert_eq!(env.number("UNSET", 7u64, 1..=20).unwrap(), 7);
        let e = env.number("BIG", 1u32, 1..=20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error in BIG: expected a whole number from 1 to 20, got `99`"
        );
        assert_eq!(
            env.number("WORD", 1u32, 1..=20).unwrap_err().variable,
            "WORD"
        );
    }

    #[test]
    fn choices_list_what_is_allowed() {
        let env = Env::new(map(&[("C", "pink")]));
        let e = env
            .choice("C", 0, &[("a", 1), ("b", 2), ("c", 3)])
            .unwrap_err();
        assert_eq!(e.message, "expected `a`, `b` or `c`, got `pink`");
        assert_eq!(env.choice("UNSET", 0, &[("a", 1)]).unwrap(), 0);
    }

    #[test]
    fn urls_are_http_with_a_host_and_never_echoed() {
        for bad in [
            "redis://zz.host",
            "zz.host",
            "https://",
            "https:///zz",
            "gopher://u:zz@h",
        ] {
            let env = Env::new(map(&[("U", bad)]));
            let e = env.url("U").unwrap_err();
            assert!(!e.to_string().contains("zz"), "{e}");
        }
        let env = Env::new(map(&[("U", "HTTP://127.0.0.1:8079/ ")]));
        assert_eq!(
            env.url("U").unwrap().as_deref(),
            Some("HTTP://127.0.0.1:8079")
        );
        assert_eq!(
            env.url_or("V", "https://x.example/").unwrap(),
            "https://x.example"
        );
    }
}
