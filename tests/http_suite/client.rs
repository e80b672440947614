//! Speaking to one runtime instance over HTTP like a browser would, and
//! reading its answers (JSON, problem+json, event streams, raw sockets).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One running instance of a runtime, reached at `url`.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub client: reqwest::Client,
    /// Which runtime and namespace, for failure messages.
    pub label: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Target {
    pub fn new(url: String, label: String) -> Self {
        Target {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            label,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method.clone(), self.at(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.raw(req).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: request failed: {e:#}", self.label));
        Reply::read(res).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, token, None).await
    }

    /// Creates a session and returns (token, session_id).
    pub async fn session(&self, nickname: &str) -> (String, String) {
        let r = self
            .post("/api/session", None, json!({"nickname": nickname}))
            .await;
        assert_eq!(r.status, 201, "POST /api/session: {}", r.body);
        (
            r.body["token"].as_str().unwrap().to_owned(),
            r.body["session_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Asks without waiting; returns the 202's body.
    pub async fn submit(&self, token: &str, message: &str, conversation: Option<&str>) -> Value {
        let mut body = json!({"message": message});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let r = self.post("/api/chat", Some(token), body).await;
        assert_eq!(r.status, 202, "POST /api/chat: {}", r.body);
        r.body
    }

    /// Asks and follows the job by long-poll until it is finished.
    pub async fn ask(&self, token: &str, message: &str, conversation: Option<&str>) -> Value {
        let accepted = self.submit(token, message, conversation).await;
        self.wait_job(token, accepted["job_id"].as_str().unwrap())
            .await
    }

    /// Follows a job with `GET /api/chat/{id}?wait=5` until it is finished.
    pub async fn wait_job(&self, token: &str, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let r = self
                .get(&format!("/api/chat/{job_id}?wait=5"), Some(token))
                .await;
            assert_eq!(r.status, 200, "GET /api/chat/{job_id}: {}", r.body);
            let status = r.body["status"].as_str().unwrap();
            if status == "succeeded" || status == "failed" {
                return r.body;
            }
        }
        panic!("{}: job {job_id} did not finish within 90 s", self.label);
    }

    /// Opens `GET /api/chat/{id}/events` and reads it until one of the
    /// `until` events has arrived whole; returns the text received. Fails
    /// if the stream is silent for `quiet` or ends first.
    pub async fn events_until(
        &self,
        token: &str,
        job_id: &str,
        until: &[&str],
        quiet: Duration,
    ) -> String {
        let mut r = self
            .client
            .get(self.at(&format!("/api/chat/{job_id}/events")))
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: events request failed: {e:#}", self.label));
        assert_eq!(r.status(), 200, "GET /api/chat/{job_id}/events");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let mut received = String::new();
        // Until one of the events has arrived whole (its blank line too).
        let arrived = |text: &str| {
            until
                .iter()
                .any(|u| text.find(u).is_some_and(|at| text[at..].contains("\n\n")))
        };
        while !arrived(&received) {
            let chunk = tokio::time::timeout(quiet, r.chunk())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: no event within {quiet:?} (the stream is not streamed?); so far: {received:?}",
                        self.label
                    )
                })
                .unwrap_or_else(|e| panic!("{}: event stream broke: {e:#}", self.label))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: the event stream ended before {until:?}: {received:?}",
                        self.label
                    )
                });
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
        received
    }

    /// A POST over a raw socket: the head declares `declared` bytes, and
    /// `body` (maybe fewer, maybe none) is written from another task while
    /// the answer is read. A server may answer a body over its limit before
    /// reading it and close: reading at once, rather than after the write
    /// has finished (or failed), is how a client sees that answer.
    pub async fn raw_post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        declared: usize,
    ) -> RawReply {
        let url = reqwest::Url::parse(&self.url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        let port = url.port_or_known_default().unwrap();
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let (mut read, mut write) = tcp.into_split();
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {declared}\r\n\r\n"));
        let sent = body.len();
        let writer = tokio::spawn(async move {
            if write.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for chunk in body.chunks(16 * 1024) {
                if write.write_all(chunk).await.is_err() {
                    return;
                }
            }
            // Never the rest of a declared body: hold the connection open.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        let complete = |answer: &[u8]| -> bool {
            let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
                return false;
            };
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            if head.contains("transfer-encoding: chunked") {
                return answer[end..].windows(5).any(|w| w == b"0\r\n\r\n");
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            answer.len() >= end + 4 + length
        };
        let read_all = async {
            while !complete(&answer) {
                match read.read(&mut buf).await {
                    Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        };
        let timed_out = tokio::time::timeout(Duration::from_secs(15), read_all)
            .await
            .is_err();
        writer.abort();
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            !timed_out,
            "{}: no complete answer to POST {path} (declared {declared} bytes, sent {sent}) within 15 s; so far: {text:?}",
            self.label,
        );
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{}: no answer to POST {path}: {text:?}", self.label));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        RawReply {
            status,
            head: head.to_owned(),
            body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        }
    }
}

/// A chunked body's content.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(next)) = (after.get(..size), after.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        rest = next.trim_start_matches("\r\n");
    }
    out
}

/// An answer read off a raw socket.
pub struct RawReply {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: Value,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Asserts a problem+json answer with this status, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}\n\n{}", self.head, self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.head
        );
        assert_eq!(
            self.body["status"], status,
            "{}\n\n{}",
            self.head, self.body
        );
        &self.body
    }
}

impl Reply {
    async fn read(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(
                !self.body[field].is_null(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id")
        );
        &self.body
    }
}

pub const BOUNDARY: &str = "----FlowChatSuiteBoundary7MA4YWxkTrZu0gW";

/// A multipart/form-data body: (field name, filename, content) parts.
pub fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!(
                "Content-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

impl Target {
    pub async fn upload(
        &self,
        path: &str,
        token: Option<&str>,
        filename: &str,
        content: &[u8],
    ) -> Reply {
        let mut req = self
            .client
            .post(self.at(path))
            .header("content-type", multipart_type())
            .body(form(&[("file", Some(filename), content)]));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.raw(req).await
    }

    /// Document names listed for this caller, sorted.
    pub async fn document_names(&self, token: Option<&str>) -> Vec<String> {
        let r = self.get("/api/documents", token).await;
        assert_eq!(r.status, 200, "GET /api/documents: {}", r.body);
        let mut names: Vec<String> = r.body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}
