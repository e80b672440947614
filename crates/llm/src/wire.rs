//! The OpenAI-shaped wire formats both providers speak: request bodies,
//! answer parsing and the error objects found in bodies and streams. Pure
//! functions, so the shapes are tested without a server.

use serde_json::{Value, json};

use crate::types::ChatMessage;

pub(crate) fn chat_body(
    model: &str,
    messages: &[ChatMessage],
    temperature: f32,
    max_tokens: u32,
    stream: bool,
) -> Value {
    // Through its shortest decimal form, so 0.2 goes out as 0.2 and not as
    // the f32's exact value 0.20000000298023224.
    let temperature: f64 = temperature
        .to_string()
        .parse()
        .unwrap_or(f64::from(temperature));
    json!({
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

/// A non-streamed chat answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedCompletion {
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

/// Why an answer body could not be used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BodyError {
    /// Not the expected shape.
    Malformed(String),
    /// Valid so far but cut short: the connection broke mid-answer, so
    /// another try may well succeed.
    Truncated(String),
    /// A well-formed error object, as some gateways send with status 200.
    Upstream(UpstreamError),
}

/// An error object from the provider, with the HTTP status it stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UpstreamError {
    pub status: u16,
    pub message: String,
}

pub(crate) fn parse_completion(body: &[u8]) -> Result<ParsedCompletion, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| not_json("chat", &e))?;
    if let Some(err) = error_object(&value) {
        return Err(BodyError::Upstream(err));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| BodyError::Malformed("the chat answer has no choices".to_owned()))?;
    let content = match choice.pointer("/message/content") {
        Some(Value::String(s)) => s.clone(),
        // A refusal or a filtered answer arrives as null content.
        Some(Value::Null) | None => {
            let reason = choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            return Err(BodyError::Malformed(format!(
                "the chat answer has no text (finish reason: {reason})"
            )));
        }
        Some(_) => {
            return Err(BodyError::Malformed(
                "the chat answer's content is not text".to_owned(),
            ));
        }
    };
    let (prompt_tokens, completion_tokens) = usage(&value);
    Ok(ParsedCompletion {
        content,
        model: model_name(&value),
        prompt_tokens,
        completion_tokens,
    })
}

fn not_json(what: &str, error: &serde_json::Error) -> BodyError {
    if error.is_eof() {
        BodyError::Truncated(format!("the {what} answer ended early"))
    } else {
        BodyError::Malformed(format!("the {what} answer is not JSON ({error})"))
    }
}

pub(crate) fn model_name(value: &Value) -> Option<String> {
    value
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

pub(crate) fn usage(value: &Value) -> (Option<u32>, Option<u32>) {
    let count = |name: &str| {
        value
            .get("usage")
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    (count("prompt_tokens"), count("completion_tokens"))
}

/// Vectors in input order. The `index` fields are trusted over array order
/// because the API allows answering out of order.
pub(crate) fn parse_embeddings(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| not_json("embeddings", &e))?;
    if let Some(err) = error_object(&value) {
        return Err(BodyError::Upstream(err));
    }
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| BodyError::Malformed("the embeddings answer has no data".to_owned()))?;
    if data.len() != expected {
        return Err(BodyError::Malformed(format!(
            "asked for {expected} embeddings, got {}",
            data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            Some(v) => v
                .as_u64()
                .map(|i| i as usize)
                .filter(|i| *i < expected)
                .ok_or_else(|| {
                    BodyError::Malformed(format!("embedding index {v} is out of range"))
                })?,
            None => position,
        };
        let vector: Vec<f32> = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| BodyError::Malformed("an embedding is not a list of numbers".into()))?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| BodyError::Malformed("an embedding is not a list of numbers".into()))?;
        if vector.is_empty() {
            return Err(BodyError::Malformed("an embedding is empty".into()));
        }
        if slots[index].replace(vector).is_some() {
            return Err(BodyError::Malformed(format!(
                "embedding index {index} appears twice"
            )));
        }
    }
    let vectors: Vec<Vec<f32>> = slots.into_iter().map(Option::unwrap_or_default).collect();
    let dims = vectors[0].len();
    if vectors.iter().any(|v| v.len() != dims) {
        return Err(BodyError::Malformed(
            "the embeddings have different dimensions".into(),
        ));
    }
    Ok(vectors)
}

/// The `error` member of a body or stream event, if there is one.
pub(crate) fn error_object(value: &Value) -> Option<UpstreamError> {
    let error = value.get("error")?;
    match error {
        Value::Null => None,
        Value::String(s) => Some(UpstreamError {
            status: 502,
            message: s.clone(),
        }),
        Value::Object(_) => {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            Some(UpstreamError {
                status: error_status(error),
                message,
            })
        }
        other => Some(UpstreamError {
            status: 502,
            message: other.to_string(),
        }),
    }
}

/// The HTTP status an error object stands for: an explicit numeric code or
/// status when present, else a guess from the OpenAI error type, else 502
/// (the gateway's upstream failed: worth a retry).
fn error_status(error: &Value) -> u16 {
    let numeric = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| (400..600).contains(n))
            .map(|n| n as u16)
    };
    if let Some(status) = ["status", "code", "status_code"]
        .iter()
        .find_map(|k| error.get(*k).and_then(numeric))
    {
        return status;
    }
    let words = ["code", "type"]
        .iter()
        .filter_map(|k| error.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let has = |needle: &str| words.contains(needle);
    if has("rate_limit") || has("too_many_requests") || has("quota") {
        429
    } else if has("authentication") || has("invalid_api_key") || has("unauthorized") {
        401
    } else if has("permission") || has("forbidden") {
        403
    } else if has("not_found") || has("model_not_found") {
        404
    } else if has("invalid_request")
        || has("context_length")
        || has("content_filter")
        || has("bad_request")
    {
        400
    } else if has("overloaded") || has("unavailable") {
        503
    } else if has("timeout") {
        504
    } else if has("server_error") || has("api_error") || has("internal") {
        500
    } else {
        502
    }
}

/// The human part of an error body: the provider's message when the body is
/// a JSON error, else the text itself with whitespace collapsed.
pub(crate) fn error_detail(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(err) = error_object(&value) {
            return err.message;
        }
        for key in ["message", "detail", "error_description", "title"] {
            if let Some(s) = value.get(key).and_then(Value::as_str) {
                return s.to_owned();
            }
        }
    }
    String::from_utf8_lossy(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_body_has_the_openai_fields() {
        let body = chat_body("m", &[ChatMessage::user("hi")], 0.2, 10, true);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 0.2,
                "max_tokens": 10,
                "stream": true,
            })
        );
    }

    #[test]
    fn completion_is_parsed() {
        let body = br#"{"model":"gpt-4o-mini-2024","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
        let c = parse_completion(body).unwrap();
        assert_eq!(c.content, "hi");
        assert_eq!(c.model.as_deref(), Some("gpt-4o-mini-2024"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (Some(5), Some(1)));
    }

    #[test]
    fn cut_bodies_are_truncated_not_malformed() {
        assert!(matches!(
            parse_completion(br#"{"choices":[{"mess"#),
            Err(BodyError::Truncated(_))
        ));
        assert!(matches!(
            parse_embeddings(br#"{"data":[{"#, 1),
            Err(BodyError::Truncated(_))
        ));
        assert!(matches!(
            parse_completion(b"<html>"),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn completion_without_text_is_malformed() {
        let body =
            br#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#;
        let err = parse_completion(body).unwrap_err();
        assert!(matches!(err, BodyError::Malformed(m) if m.contains("content_filter")));
        assert!(matches!(
            parse_completion(br#"{"choices":[]}"#),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn error_objects_map_to_statuses() {
        let status = |body: &str| match parse_completion(body.as_bytes()) {
            Err(BodyError::Upstream(e)) => e.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(r#"{"error":{"message":"x","code":"429"}}"#), 429);
        assert_eq!(status(r#"{"error":{"message":"x","code":400}}"#), 400);
        assert_eq!(
            status(r#"{"error":{"message":"x","type":"invalid_request_error"}}"#),
            400
        );
        assert_eq!(
            status(r#"{"error":{"message":"x","code":"rate_limit_exceeded"}}"#),
            429
        );
        assert_eq!(status(r#"{"error":{"message":"x"}}"#), 502);
        assert_eq!(status(r#"{"error":"boom"}"#), 502);
    }

    #[test]
    fn embeddings_follow_index_order() {
        let body =
            br#"{"data":[{"index":1,"embedding":[2.0,2.5]},{"index":0,"embedding":[1.0,1.5]}]}"#;
        let v = parse_embeddings(body, 2).unwrap();
        assert_eq!(v, vec![vec![1.0, 1.5], vec![2.0, 2.5]]);
    }

    #[test]
    fn embeddings_count_and_indices_are_checked() {
        let one = br#"{"data":[{"index":0,"embedding":[1.0]}]}"#;
        assert!(matches!(
            parse_embeddings(one, 2),
            Err(BodyError::Malformed(_))
        ));
        let dup = br#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#;
        assert!(matches!(
            parse_embeddings(dup, 2),
            Err(BodyError::Malformed(_))
        ));
        let out = br#"{"data":[{"index":5,"embedding":[1.0]}]}"#;
        assert!(matches!(
            parse_embeddings(out, 1),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn error_detail_prefers_the_message() {
        assert_eq!(
            error_detail(br#"{"error":{"message":"model not allowed"}}"#),
            "model not allowed"
        );
        assert_eq!(error_detail(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(
            error_detail(b"<html>\n  Bad   gateway</html>"),
            "<html> Bad gateway</html>"
        );
    }
}
