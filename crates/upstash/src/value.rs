//! Replies, decoded from the REST answer.
//!
//! The client always sends `Upstash-Encoding: base64`, because without it
//! Upstash replaces invalid UTF-8 with U+FFFD and binary values would be
//! silently corrupted. With it, every string in `result` is base64 except the
//! bare `OK` status, so decoding is unambiguous: base64 text always has a
//! length that is a multiple of four, and `OK` has two characters.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::UpstashError;

/// One Redis reply.
///
/// There is no float variant: Redis answers floats (ZSCORE, INCRBYFLOAT) as
/// strings, so they arrive as [`Value::Bytes`]; use [`Value::as_f64`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// JSON `null`: a missing key, an empty pop, a nil array element.
    Nil,
    /// An integer reply.
    Int(i64),
    /// A string reply, already base64-decoded.
    Bytes(Vec<u8>),
    /// An array reply; elements may themselves be arrays (XREADGROUP,
    /// XAUTOCLAIM, XPENDING with ranges).
    Array(Vec<Value>),
    /// The bare `OK` status (SET, MSET, ...).
    Ok,
}

impl Value {
    /// `true` for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The integer of an [`Value::Int`], or of a [`Value::Bytes`] that spells
    /// one (GET of a counter written with INCR comes back as a string).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// A float from a string reply (ZSCORE, INCRBYFLOAT) or an integer reply.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The bytes of a string reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A string reply as UTF-8 text; `None` if it is not a string or not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// Take the bytes of a string reply.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Take a string reply as UTF-8 text.
    pub fn into_string(self) -> Option<String> {
        String::from_utf8(self.into_bytes()?).ok()
    }

    /// Take the elements of an array reply. `Nil` gives an empty vector,
    /// because Redis answers "nothing" both ways (e.g. XREADGROUP with no new
    /// entries is nil, LRANGE of a missing key is `[]`).
    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            Value::Nil => Some(Vec::new()),
            _ => None,
        }
    }

    /// Decode one `result` from a base64-encoded answer.
    pub(crate) fn from_json(json: serde_json::Value) -> Result<Value, UpstashError> {
        use serde_json::Value as J;
        Ok(match json {
            J::Null => Value::Nil,
            J::String(s) if s == "OK" => Value::Ok,
            J::String(s) => Value::Bytes(BASE64.decode(s.as_bytes()).map_err(|_| {
                UpstashError::Protocol(
                    "a string in the answer is not base64 (was Upstash-Encoding ignored?)".into(),
                )
            })?),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                // Not expected from Redis (floats are strings), but keep the
                // text so as_f64 still works rather than failing the call.
                None => Value::Bytes(n.to_string().into_bytes()),
            },
            J::Bool(b) => Value::Int(i64::from(b)),
            J::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(Value::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(_) => {
                return Err(UpstashError::Protocol(
                    "unexpected object inside a result".into(),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        BASE64.encode(s)
    }

    #[test]
    fn decodes_scalars() {
        assert_eq!(Value::from_json(json!(null)).unwrap(), Value::Nil);
        assert_eq!(Value::from_json(json!("OK")).unwrap(), Value::Ok);
        assert_eq!(Value::from_json(json!(42)).unwrap(), Value::Int(42));
        assert_eq!(Value::from_json(json!(-7)).unwrap().as_i64(), Some(-7));
        let v = Value::from_json(json!(b64("héllo"))).unwrap();
        assert_eq!(v.as_str(), Some("héllo"));
        // A float comes back as a (base64) string.
        let v = Value::from_json(json!(b64("1.5"))).unwrap();
        assert_eq!(v.as_f64(), Some(1.5));
    }

    #[test]
    fn binary_survives() {
        let raw = vec![0u8, 0xff, 0xfe, b'O', b'K'];
        let v = Value::from_json(json!(BASE64.encode(&raw))).unwrap();
        assert_eq!(v.as_bytes(), Some(&raw[..]));
        assert_eq!(v.as_str(), None);
    }

    #[test]
    fn a_stored_ok_string_is_not_the_status() {
        // The value "OK" stored by a user is base64 "T0s=", not the bare status.
        let v = Value::from_json(json!(b64("OK"))).unwrap();
        assert_eq!(v, Value::Bytes(b"OK".to_vec()));
    }

    #[test]
    fn decodes_nested_arrays_like_xreadgroup() {
        // [[stream, [[id, [field, value, ...]], ...]]]
        let answer = json!([[
            b64("jobs"),
            [
                [b64("1-0"), [b64("payload"), b64("{\"a\":1}")]],
                [b64("2-0"), null]
            ]
        ]]);
        let v = Value::from_json(answer).unwrap();
        let streams = v.into_array().unwrap();
        let stream = streams[0].clone().into_array().unwrap();
        assert_eq!(stream[0].as_str(), Some("jobs"));
        let entries = stream[1].clone().into_array().unwrap();
        let first = entries[0].clone().into_array().unwrap();
        assert_eq!(first[0].as_str(), Some("1-0"));
        let fields = first[1].clone().into_array().unwrap();
        assert_eq!(fields[1].as_str(), Some("{\"a\":1}"));
        // A deleted entry claimed by XAUTOCLAIM / XREADGROUP has nil fields.
        assert!(entries[1].clone().into_array().unwrap()[1].is_nil());
    }

    #[test]
    fn decodes_xautoclaim_shape() {
        // [next-cursor, [[id, [f, v]]], [deleted ids]]
        let answer = json!([b64("0-0"), [[b64("3-0"), [b64("f"), b64("v")]]], []]);
        let parts = Value::from_json(answer).unwrap().into_array().unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].as_str(), Some("0-0"));
        assert_eq!(parts[2], Value::Array(vec![]));
    }

    #[test]
    fn rejects_non_base64_strings() {
        let err = Value::from_json(json!("not base64!")).unwrap_err();
        assert!(matches!(err, UpstashError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn nil_is_an_empty_array() {
        assert_eq!(Value::Nil.into_array(), Some(vec![]));
        assert_eq!(Value::Int(1).into_array(), None);
    }
}
