//! Turning HTTP answers into results.
//!
//! Kept apart from the request/retry logic so the mapping of statuses and
//! bodies to errors is one small table:
//!
//! | answer | result |
//! | --- | --- |
//! | 401 | [`UpstashError::Unauthorized`] |
//! | 413, or an error mentioning "max request size" | [`UpstashError::TooLarge`] |
//! | 408, 429, 5xx | [`UpstashError::Transport`] (retryable) |
//! | `{"error": "..."}` (Upstash uses 400 for both syntax and runtime errors) | [`UpstashError::Command`] |
//! | `{"result": ...}` | the decoded [`Value`] |
//! | anything else | [`UpstashError::Protocol`] |

use serde_json::Value as Json;

use crate::{CommandError, TransportResponse, UpstashError, Value};

/// Longest server message quoted in a transport error; enough to diagnose,
/// short enough to keep a log line readable.
const MAX_QUOTED: usize = 200;

/// If the answer means "the service failed, try again", the error message.
///
/// Checked before anything else because these are the retryable answers.
pub(crate) fn server_failure(resp: &TransportResponse) -> Option<String> {
    let s = resp.status;
    if s == 408 || s == 429 || (500..=599).contains(&s) {
        let mut msg = format!("HTTP {s}");
        if let Some(detail) = error_text(&resp.body) {
            msg.push_str(": ");
            msg.extend(detail.chars().take(MAX_QUOTED));
        }
        Some(msg)
    } else {
        None
    }
}

/// The answer to one command (`POST /`).
pub(crate) fn single(resp: &TransportResponse) -> Result<Value, UpstashError> {
    match parse(resp)? {
        Json::Object(mut obj) => {
            if let Some(err) = obj.remove("error") {
                return Err(redis_error(err));
            }
            match obj.remove("result") {
                Some(result) => Value::from_json(result),
                None => Err(shape_error(resp.status, "neither `result` nor `error`")),
            }
        }
        _ => Err(shape_error(resp.status, "not a JSON object")),
    }
}

/// The answer to `POST /pipeline` or `POST /multi-exec`: one entry per
/// command, in order; or one `{"error"}` for the whole request (a discarded
/// transaction, a malformed body).
pub(crate) fn many(
    resp: &TransportResponse,
    expected: usize,
) -> Result<Vec<Result<Value, CommandError>>, UpstashError> {
    match parse(resp)? {
        Json::Array(items) => {
            if items.len() != expected {
                return Err(UpstashError::Protocol(format!(
                    "{} answers for {expected} commands",
                    items.len()
                )));
            }
            items.into_iter().map(entry).collect()
        }
        Json::Object(mut obj) => match obj.remove("error") {
            Some(err) => Err(redis_error(err)),
            None => Err(shape_error(resp.status, "an object without `error`")),
        },
        _ => Err(shape_error(resp.status, "neither an array nor an object")),
    }
}

/// One element of a pipeline answer.
fn entry(item: Json) -> Result<Result<Value, CommandError>, UpstashError> {
    let Json::Object(mut obj) = item else {
        return Err(UpstashError::Protocol(
            "a pipeline entry is not an object".into(),
        ));
    };
    if let Some(err) = obj.remove("error") {
        return Ok(Err(CommandError {
            message: message_of(err),
        }));
    }
    match obj.remove("result") {
        Some(result) => Ok(Ok(Value::from_json(result)?)),
        None => Err(UpstashError::Protocol(
            "a pipeline entry has neither `result` nor `error`".into(),
        )),
    }
}

/// Status checks that hold for every endpoint, then the JSON body.
fn parse(resp: &TransportResponse) -> Result<Json, UpstashError> {
    match resp.status {
        401 => return Err(UpstashError::Unauthorized),
        413 => return Err(UpstashError::TooLarge),
        _ => {}
    }
    if let Some(msg) = server_failure(resp) {
        return Err(UpstashError::Transport(msg));
    }
    serde_json::from_slice(&resp.body).map_err(|_| {
        if (200..300).contains(&resp.status) || resp.status == 400 {
            UpstashError::Protocol(format!("HTTP {}: the body is not JSON", resp.status))
        } else {
            // A proxy page or a wrong path: say so rather than "bad JSON".
            UpstashError::Protocol(format!(
                "unexpected HTTP status {} (is the URL the database's REST endpoint?)",
                resp.status
            ))
        }
    })
}

/// A whole-request `{"error"}`.
fn redis_error(err: Json) -> UpstashError {
    let message = message_of(err);
    if message.to_ascii_lowercase().contains("max request size") {
        UpstashError::TooLarge
    } else {
        UpstashError::Command(message)
    }
}

/// The text of an `error` field (a string in practice; anything else is shown as JSON).
fn message_of(err: Json) -> String {
    match err {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// The `error` field of a body, if it is JSON and has one.
fn error_text(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Json>(body).ok()? {
        Json::Object(mut obj) => obj.remove("error").map(message_of),
        _ => None,
    }
}

fn shape_error(status: u16, what: &str) -> UpstashError {
    UpstashError::Protocol(format!("HTTP {status}: the answer is {what}"))
}
