//! The pure conversions between HTTP and Lambda's wire formats, kept apart
//! from the servers so each rule is tested on its own: an HTTP request as a
//! Function URL event (payload format 2.0), the streaming response's prelude,
//! and a buffered (JSON) function response.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde_json::{Map, Value, json};

/// The largest request a Function URL passes to a function (6 MB event
/// payload, the limit for synchronous invocations); bigger ones are refused
/// by Lambda itself with 413, before the function runs.
pub const MAX_REQUEST_PAYLOAD: usize = 6 * 1024 * 1024;

/// The eight NUL bytes that end the prelude of a streamed response.
pub const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// What the front knows about one HTTP request when it makes the event.
pub struct IncomingRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: IpAddr,
    pub request_id: &'a str,
    /// Milliseconds since the Unix epoch.
    pub time_epoch_ms: u64,
}

/// The request as a Lambda Function URL event (payload format 2.0), as
/// documented in "Invoking Lambda function URLs": header names lowercased
/// and repeated values joined with commas, cookies in their own array,
/// `requestContext.http.sourceIp` from the connection, and the body as text
/// when it is textual UTF-8, otherwise base64 with `isBase64Encoded`.
pub fn function_url_event(req: &IncomingRequest<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in req.headers.keys() {
        let values: Vec<String> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == http::header::COOKIE {
            for value in &values {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
            }
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path = req.uri.path();
    let raw_query = req.uri.query().unwrap_or("");
    let user_agent = req
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "flowchat-emulator",
            "domainName": host,
            "domainPrefix": "flowchat-emulator",
            "http": {
                "method": req.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip.to_string(),
                "userAgent": user_agent,
            },
            "requestId": req.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": clf_time(req.time_epoch_ms),
            "timeEpoch": req.time_epoch_ms,
        },
        "isBase64Encoded": false,
    });
    let object = event.as_object_mut().expect("built as an object above");
    if !cookies.is_empty() {
        object.insert("cookies".into(), json!(cookies));
    }
    if !raw_query.is_empty() {
        object.insert("queryStringParameters".into(), query_parameters(raw_query));
    }
    if !req.body.is_empty() {
        let content_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match std::str::from_utf8(req.body) {
            Ok(text) if is_textual(content_type) => {
                object.insert("body".into(), Value::String(text.to_owned()));
            }
            _ => {
                object.insert("body".into(), Value::String(BASE64.encode(req.body)));
                object.insert("isBase64Encoded".into(), Value::Bool(true));
            }
        }
    }
    event
}

/// Whether Lambda passes a body of this content type as text. A missing
/// type counts as text (Function URLs do the same for UTF-8 bodies).
pub fn is_textual(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
        )
}

/// `queryStringParameters`: decoded names and values, repeated names joined
/// with commas, as Lambda builds them.
fn query_parameters(raw: &str) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        match map.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                map.insert(name, Value::String(value));
            }
        }
    }
    Value::Object(map)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `requestContext.time` in Lambda's format, `12/Mar/2020:19:03:58 +0000`.
fn clf_time(epoch_ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Where a streamed response's prelude ends: the index of the first of the
/// eight NUL bytes. JSON never contains a raw NUL, so the first run of eight
/// is the delimiter.
pub fn find_delimiter(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(PRELUDE_DELIMITER.len())
        .position(|w| w == PRELUDE_DELIMITER)
}

/// The head of an HTTP answer, from a streaming prelude or a buffered
/// response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Why a function's answer could not be turned into an HTTP response (the
/// front answers 502, as Lambda does for a malformed function response).
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the response prelude is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the response has an invalid status code")]
    Status,
    #[error("the response body is not valid base64")]
    Base64,
}

/// Parses the JSON prelude of a streamed response:
/// `{"statusCode":200,"headers":{"name":"v" | ["v1","v2"]},"cookies":[...]}`.
pub fn parse_prelude(prelude: &[u8]) -> Result<ResponseHead, ResponseError> {
    let value: Value = serde_json::from_slice(prelude)?;
    head_from(&value)
}

fn head_from(value: &Value) -> Result<ResponseHead, ResponseError> {
    let status = match value.get("statusCode") {
        None | Some(Value::Null) => StatusCode::OK,
        Some(code) => code
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(ResponseError::Status)?,
    };
    let mut headers = HeaderMap::new();
    for key in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(map)) = value.get(key) {
            for (name, values) in map {
                let values: Vec<&Value> = match values {
                    Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                for v in values {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if let (Ok(name), Ok(v)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&text),
                    ) {
                        headers.append(name, v);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(cookies)) = value.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
    }
    Ok(ResponseHead { status, headers })
}

/// A buffered function response as Function URLs read it: an object with
/// `statusCode` is an HTTP response (`body`, `isBase64Encoded`, `headers`,
/// `cookies`); anything else is returned as a 200 JSON body.
pub fn parse_buffered(payload: &[u8]) -> Result<(ResponseHead, Bytes), ResponseError> {
    let value: Value = serde_json::from_slice(payload)?;
    if value.get("statusCode").is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let head = ResponseHead {
            status: StatusCode::OK,
            headers,
        };
        return Ok((head, Bytes::copy_from_slice(payload)));
    }
    let head = head_from(&value)?;
    let body = match value.get("body") {
        Some(Value::String(text)) if value["isBase64Encoded"] == Value::Bool(true) => BASE64
            .decode(text)
            .map(Bytes::from)
            .map_err(|_| ResponseError::Base64)?,
        Some(Value::String(text)) => Bytes::from(text.clone()),
        _ => Bytes::new(),
    };
    Ok((head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(method: &Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Value {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        function_url_event(&IncomingRequest {
            method,
            uri: &uri,
            headers: &map,
            body,
            source_ip: "127.0.0.2".parse().unwrap(),
            request_id: "req-1",
            time_epoch_ms: 1_583_348_638_390,
        })
    }

    #[test]
    fn a_request_becomes_a_function_url_event() {
        let e = event(
            &Method::POST,
            "/api/chat?wait=2&tag=a%20b&tag=c",
            &[
                ("Content-Type", "application/json"),
                ("X-Many", "1"),
                ("X-Many", "2"),
                ("Cookie", "a=1; b=2"),
                ("Host", "localhost:9"),
            ],
            br#"{"message":"hi"}"#,
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/api/chat");
        assert_eq!(e["rawQueryString"], "wait=2&tag=a%20b&tag=c");
        assert_eq!(e["queryStringParameters"]["tag"], "a b,c");
        assert_eq!(e["headers"]["x-many"], "1,2");
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.2");
        assert_eq!(e["requestContext"]["domainName"], "localhost:9");
        assert_eq!(e["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(e["body"], r#"{"message":"hi"}"#);
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let e = event(
            &Method::POST,
            "/api/documents",
            &[("content-type", "multipart/form-data; boundary=x")],
            b"--x\r\n\xff\x00",
        );
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(
            BASE64.decode(e["body"].as_str().unwrap()).unwrap(),
            b"--x\r\n\xff\x00"
        );
        let invalid_utf8 = event(
            &Method::POST,
            "/x",
            &[("content-type", "text/plain")],
            b"\xff",
        );
        assert_eq!(invalid_utf8["isBase64Encoded"], true);
        let empty = event(&Method::GET, "/x", &[], b"");
        assert!(empty.get("body").is_none());
        assert!(empty.get("queryStringParameters").is_none());
    }

    #[test]
    fn the_prelude_gives_status_headers_and_cookies() {
        let head = parse_prelude(
            br#"{"statusCode":202,"headers":{"content-type":"application/json","vary":["a","b"]},"cookies":["s=1; Path=/"]}"#,
        )
        .unwrap();
        assert_eq!(head.status, StatusCode::ACCEPTED);
        assert_eq!(head.headers["content-type"], "application/json");
        assert_eq!(head.headers.get_all("vary").iter().count(), 2);
        assert_eq!(head.headers["set-cookie"], "s=1; Path=/");
        assert!(parse_prelude(b"{\"statusCode\":99999}").is_err());
        assert!(parse_prelude(b"not json").is_err());
    }

    #[test]
    fn the_delimiter_is_the_first_eight_nuls() {
        let mut wire = br#"{"statusCode":200}"#.to_vec();
        let at = wire.len();
        wire.extend_from_slice(&PRELUDE_DELIMITER);
        wire.extend_from_slice(b"\0body");
        assert_eq!(find_delimiter(&wire), Some(at));
        assert_eq!(find_delimiter(b"{\"a\":1}\0\0\0"), None);
    }

    #[test]
    fn buffered_responses_are_read_like_function_urls_do() {
        let (head, body) = parse_buffered(
            br#"{"statusCode":404,"headers":{"content-type":"text/plain"},"body":"aGk=","isBase64Encoded":true}"#,
        )
        .unwrap();
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(&body[..], b"hi");
        let (head, body) = parse_buffered(br#"{"answer":42}"#).unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["content-type"], "application/json");
        assert_eq!(&body[..], br#"{"answer":42}"#);
    }

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
