//! Reading what Redis answers: a reply of an unexpected shape is a
//! back-end error, a stored value that does not read back is `Corrupt`.

use flowchat_upstash::Value;

use crate::StoreError;
use crate::codec::corrupt;

pub(super) fn unexpected(what: &str, detail: impl std::fmt::Debug) -> StoreError {
    StoreError::Backend(format!(
        "unexpected reply from the {what} script: {detail:?}"
    ))
}

pub(super) fn array(value: Value, what: &str) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(what, other)),
    }
}

pub(super) fn text(value: Value, what: &str) -> Result<String, StoreError> {
    match value {
        Value::Bytes(bytes) => {
            String::from_utf8(bytes).map_err(|_| corrupt(what, "not UTF-8 text"))
        }
        Value::Ok => Ok("OK".to_owned()),
        other => Err(unexpected(what, other)),
    }
}

/// A stored string that may be missing (`Nil`).
pub(super) fn optional_text(value: Value, what: &str) -> Result<Option<String>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Bytes(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt(what, "not UTF-8 text")),
        Value::Int(n) => Ok(Some(n.to_string())),
        other => Err(corrupt(what, format!("unexpected {other:?}"))),
    }
}

pub(super) fn required_text(value: Value, what: &str) -> Result<String, StoreError> {
    optional_text(value, what)?.ok_or_else(|| corrupt(what, "missing"))
}

pub(super) fn integer(value: Value, what: &str) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(n),
        Value::Nil => Err(corrupt(what, "missing")),
        other => other
            .as_i64()
            .ok_or_else(|| corrupt(what, format!("not an integer: {other:?}"))),
    }
}

/// A reply integer that Redis computed (counts, remaining hits).
pub(super) fn count(value: Value, what: &str) -> Result<u64, StoreError> {
    let n = value.as_i64().ok_or_else(|| unexpected(what, &value))?;
    u64::try_from(n).map_err(|_| unexpected(what, n))
}

/// A script's answer that starts with a status word: the word, and the rest.
pub(super) fn tagged(
    value: Value,
    what: &str,
) -> Result<(String, std::vec::IntoIter<Value>), StoreError> {
    let mut parts = array(value, what)?.into_iter();
    let status = text(
        parts.next().unwrap_or(Value::Nil),
        &format!("{what} status"),
    )?;
    Ok((status, parts))
}
