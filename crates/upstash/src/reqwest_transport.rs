//! [`Transport`] over reqwest (rustls), for native runtimes: Vercel, Lambda,
//! the drain, the dev server.
//!
//! Error texts are built from reqwest's error *without its URL* and from its
//! source chain: reqwest's own `Display` quotes the URL, which may carry
//! credentials (`https://user:pass@host`).

use std::error::Error as _;
use std::time::Duration;

use crate::{Transport, TransportError, TransportResponse};

/// Sends requests with a shared `reqwest::Client` (connection pooling, TLS
/// via rustls) and a deadline per request.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with its own client.
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| TransportError::Other(describe(e)))?;
        Ok(ReqwestTransport { client })
    }

    /// Reuse an existing client (and its connection pool).
    pub fn from_client(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }
}

#[async_trait::async_trait]
impl Transport for ReqwestTransport {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<TransportResponse, TransportError> {
        let mut request = self.client.post(url).timeout(timeout).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(map_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(map_error)?;
        Ok(TransportResponse {
            status,
            body: body.to_vec(),
        })
    }
}

fn map_error(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_connect() {
        TransportError::Connect(describe(e))
    } else {
        TransportError::Other(describe(e))
    }
}

/// The error and its causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(|s| s.source());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server that answers `reply` after reading the request head.
    async fn serve_once(reply: &'static str) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read until the body (announced by Content-Length) is complete.
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if seen.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            sock.write_all(reply.as_bytes()).await.unwrap();
            sock.shutdown().await.ok();
            seen
        });
        (format!("http://{addr}"), handle)
    }

    #[tokio::test]
    async fn posts_headers_and_body_and_returns_status() {
        let (url, server) = serve_once(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"error\":\"ERR x\"}",
        )
        .await;
        let t = ReqwestTransport::new().unwrap();
        let resp = t
            .post(
                &url,
                &[("Upstash-Encoding", "base64".into())],
                br#"["PING"]"#.to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body, br#"{"error":"ERR x"}"#);
        let seen = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(seen.starts_with("POST / HTTP/1.1"), "{seen}");
        assert!(
            seen.to_ascii_lowercase()
                .contains("upstash-encoding: base64")
        );
        assert!(seen.ends_with(r#"["PING"]"#));
    }

    #[tokio::test]
    async fn slow_server_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Accept and hold the connection without answering.
        let _hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(sock);
        });
        let t = ReqwestTransport::new().unwrap();
        let err = t
            .post(&url, &[], b"[]".to_vec(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err, TransportError::Timeout);
    }

    #[tokio::test]
    async fn refused_connection_is_connect_without_credentials() {
        // Bind then drop to get a port nobody listens on.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let url = format!("http://user:hunter2-secret@{addr}/");
        let t = ReqwestTransport::new().unwrap();
        let err = t
            .post(&url, &[], b"[]".to_vec(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("user:"), "{shown}");
    }
}
