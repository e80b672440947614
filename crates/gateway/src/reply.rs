//! Redis replies as Upstash answers them in JSON.
//!
//! Integers become numbers, nil becomes `null`, arrays stay arrays, and every
//! string (bulk or simple, doubles and verbatim strings included) becomes a JSON
//! string: base64 when the client asked for `Upstash-Encoding: base64` (except the
//! bare status `OK`), otherwise UTF-8 with invalid bytes replaced by U+FFFD.
//! Errors are never encoded.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use redis::{ServerError, Value};
use serde_json::{Value as Json, json};

/// How strings are written in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, invalid bytes replaced by U+FFFD.
    Utf8,
    /// Standard base64 with padding (`Upstash-Encoding: base64`).
    Base64,
}

/// The text Redis sent for an error reply, e.g. `ERR unknown command 'FOO'...`.
pub fn error_text(error: &ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {}", error.code(), details),
        None => error.code().to_owned(),
    }
}

/// `{"result": ...}` or, for an error reply, `{"error": "..."}`.
pub fn entry(value: Value, encoding: Encoding) -> Json {
    match value {
        Value::ServerError(error) => json!({ "error": error_text(&error) }),
        value => json!({ "result": to_json(value, encoding) }),
    }
}

/// One reply as JSON.
pub fn to_json(value: Value, encoding: Encoding) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(n) => Json::from(n),
        Value::Okay => Json::from("OK"),
        Value::SimpleString(text) if text == "OK" => Json::from("OK"),
        Value::SimpleString(text) => string(text.as_bytes(), encoding),
        Value::BulkString(bytes) => string(&bytes, encoding),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => Json::Array(
            items
                .into_iter()
                .map(|item| to_json(item, encoding))
                .collect(),
        ),
        // RESP3 shapes, as RESP2 would have sent them (the gateway speaks RESP2,
        // so these only appear if that changes).
        Value::Map(pairs) => Json::Array(
            pairs
                .into_iter()
                .flat_map(|(key, value)| [to_json(key, encoding), to_json(value, encoding)])
                .collect(),
        ),
        Value::Attribute { data, .. } => to_json(*data, encoding),
        Value::Double(number) => string(number.to_string().as_bytes(), encoding),
        Value::Boolean(flag) => Json::from(i64::from(flag)),
        Value::VerbatimString { text, .. } => string(text.as_bytes(), encoding),
        Value::BigNumber(digits) => string(&digits, encoding),
        Value::ServerError(error) => Json::from(error_text(&error)),
        // `Value` is non-exhaustive.
        other => string(format!("{other:?}").as_bytes(), encoding),
    }
}

fn string(bytes: &[u8], encoding: Encoding) -> Json {
    match encoding {
        Encoding::Utf8 => Json::from(String::from_utf8_lossy(bytes).into_owned()),
        Encoding::Base64 => Json::from(STANDARD.encode(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_follow_the_encoding_except_ok() {
        let reply = Value::Array(vec![
            Value::BulkString(vec![0xff]),
            Value::BulkString(b"hi".to_vec()),
            Value::Okay,
            Value::SimpleString("PONG".to_owned()),
            Value::Int(7),
            Value::Nil,
            Value::Array(vec![Value::BulkString(b"x".to_vec())]),
        ]);
        assert_eq!(
            to_json(reply.clone(), Encoding::Base64),
            json!(["/w==", "aGk=", "OK", "UE9ORw==", 7, null, ["eA=="]])
        );
        assert_eq!(
            to_json(reply, Encoding::Utf8),
            json!(["\u{fffd}", "hi", "OK", "PONG", 7, null, ["x"]])
        );
    }

    #[test]
    fn a_bulk_string_holding_ok_is_still_encoded() {
        assert_eq!(
            to_json(Value::BulkString(b"OK".to_vec()), Encoding::Base64),
            json!("T0s=")
        );
    }
}
