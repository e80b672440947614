//! Commands and their arguments.
//!
//! The REST API takes a command as a JSON array of strings. JSON strings are
//! Unicode, so an argument that is not valid UTF-8 cannot be sent faithfully:
//! rather than corrupting it (lossy conversion) or guessing an encoding the
//! server would not undo, the client refuses it with
//! [`UpstashError::NotUtf8Argument`]. Callers store binary blobs (upload
//! chunks, vectors) base64-encoded themselves. Replies have no such limit:
//! they come back base64-encoded and are decoded to raw bytes.

use crate::UpstashError;

/// One argument of a command: raw bytes, checked for UTF-8 when sent.
///
/// Built from strings, byte slices and numbers, so commands read naturally:
/// `Command::new("SET").arg("k").arg(&bytes[..]).arg(100)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arg(Vec<u8>);

impl Arg {
    /// The argument's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg(s.as_bytes().to_vec())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg(s.into_bytes())
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Arg {
    fn from(b: &[u8]) -> Self {
        Arg(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Arg {
    fn from(b: &[u8; N]) -> Self {
        Arg(b.to_vec())
    }
}

impl From<Vec<u8>> for Arg {
    fn from(b: Vec<u8>) -> Self {
        Arg(b)
    }
}

impl From<&Vec<u8>> for Arg {
    fn from(b: &Vec<u8>) -> Self {
        Arg(b.clone())
    }
}

impl From<&Arg> for Arg {
    fn from(a: &Arg) -> Self {
        a.clone()
    }
}

macro_rules! arg_from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Self {
                Arg(n.to_string().into_bytes())
            }
        }
    )*};
}

// Numbers go as their decimal text, which is what Redis parses. Floats use
// Rust's shortest round-trip form; infinities print as `inf`/`-inf`, which
// Redis accepts for scores.
arg_from_display!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

/// A Redis command: its name and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    parts: Vec<Arg>,
}

impl Command {
    /// A command with no arguments yet, e.g. `Command::new("GET")`.
    pub fn new(name: impl Into<Arg>) -> Self {
        Command {
            parts: vec![name.into()],
        }
    }

    /// Append one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<Arg>) -> Self {
        self.parts.push(arg.into());
        self
    }

    /// Append several arguments.
    #[must_use]
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Arg>,
    {
        self.parts.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command name as given (e.g. `"SET"`), lossily decoded for messages.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(self.parts[0].as_bytes()).into_owned()
    }

    /// Name and arguments, name first.
    pub fn parts(&self) -> &[Arg] {
        &self.parts
    }

    /// The JSON array the REST API expects.
    pub(crate) fn to_json(&self) -> Result<serde_json::Value, UpstashError> {
        self.parts
            .iter()
            .map(|a| {
                std::str::from_utf8(a.as_bytes())
                    .map(|s| serde_json::Value::String(s.to_owned()))
                    .map_err(|_| UpstashError::NotUtf8Argument)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(serde_json::Value::Array)
    }
}

/// Build a [`Command`]: `cmd!("SET", key, value, "EX", 100)`.
///
/// Each argument may be anything that converts into an [`Arg`].
#[macro_export]
macro_rules! cmd {
    ($name:expr $(, $arg:expr)* $(,)?) => {
        $crate::Command::new($name)$(.arg($arg))*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_and_macro_agree() {
        let bytes = b"v".to_vec();
        let built = Command::new("SET")
            .arg("k")
            .arg(&bytes[..])
            .arg("EX")
            .arg(100);
        let by_macro = crate::cmd!("SET", "k", &bytes, "EX", 100u64);
        assert_eq!(built, by_macro);
        assert_eq!(
            built.to_json().unwrap(),
            json!(["SET", "k", "v", "EX", "100"])
        );
        assert_eq!(built.name(), "SET");
    }

    #[test]
    fn numbers_are_decimal_text() {
        let c = crate::cmd!("ZADD", "z", 1.5f64, "m", -3i32, f64::INFINITY);
        assert_eq!(
            c.to_json().unwrap(),
            json!(["ZADD", "z", "1.5", "m", "-3", "inf"])
        );
    }

    #[test]
    fn args_appends_many() {
        let c = Command::new("DEL")
            .args(["a", "b"])
            .args(vec![String::from("c")]);
        assert_eq!(c.to_json().unwrap(), json!(["DEL", "a", "b", "c"]));
    }

    #[test]
    fn non_utf8_is_refused() {
        let c = Command::new("SET").arg("k").arg(&[0xffu8, 0x00][..]);
        assert!(matches!(c.to_json(), Err(UpstashError::NotUtf8Argument)));
    }
}
