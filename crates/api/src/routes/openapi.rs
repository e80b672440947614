//! `GET /api/openapi.json`: the API's OpenAPI description, docs/openapi.yaml
//! as JSON. `build.rs` converts the file when this crate is built, so every
//! runtime serves the same document and none parses YAML at run time.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::response::{Body, full};

/// docs/openapi.yaml, converted to JSON by `build.rs`.
const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

pub(crate) fn document() -> Response<Body> {
    let mut response = full(StatusCode::OK, Bytes::from_static(DOCUMENT.as_bytes()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
