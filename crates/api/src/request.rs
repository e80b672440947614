//! Reading the parts of a request handlers need, turning every malformed
//! piece into an [`ApiError`] that names the field and the rule.

use bytes::Bytes;
use http::{HeaderMap, Request, header};
use serde::de::DeserializeOwned;

use crate::body::MAX_REQUEST_BYTES;
use crate::context::Platform;
use crate::error::ApiError;

/// Uses the caller's `x-request-id` when it is short and plain, so traces can
/// be joined across a proxy; otherwise makes one.
pub fn request_id(platform: &dyn Platform, headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(platform.random_bytes()))
}

/// The request's `Content-Type` as sent, and its essence (`type/subtype`,
/// lowercased).
pub(crate) fn content_type(req: &Request<Bytes>) -> (&str, String) {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (content_type, essence)
}

/// A 415 for a body sent as something other than `expected`.
pub(crate) fn unsupported_content_type(expected: &'static str, sent: &str) -> ApiError {
    let found = if sent.is_empty() {
        "missing".to_owned()
    } else {
        format!("`{sent}`")
    };
    ApiError::UnsupportedMediaType { expected, found }
}

/// Parses a JSON body into `T`, reporting the offending field by its path.
pub(crate) fn json_body<T: DeserializeOwned>(req: &Request<Bytes>) -> Result<T, ApiError> {
    let (sent, essence) = content_type(req);
    if essence != "application/json" {
        return Err(unsupported_content_type("application/json", sent));
    }
    let body = req.body();
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_REQUEST_BYTES,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() && path != "." {
            ApiError::Validation(flowchat_domain::ValidationError::new(
                path,
                "type",
                inner.to_string(),
            ))
        } else if inner.is_data() {
            // A missing field or a body of the wrong shape: serde names the field.
            let msg = inner.to_string();
            let field = msg
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("body")
                .to_owned();
            let rule = if msg.starts_with("missing field") {
                "required"
            } else {
                "type"
            };
            ApiError::Validation(flowchat_domain::ValidationError::new(field, rule, msg))
        } else {
            ApiError::MalformedJson(inner.to_string())
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// The bearer credential, if the request sent one.
pub(crate) fn bearer(req: &Request<Bytes>) -> Option<&str> {
    bearer_token(req.headers())
}

/// The credential of an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

/// The value of query parameter `name`, if present.
pub(crate) fn query_param(req: &Request<Bytes>, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
