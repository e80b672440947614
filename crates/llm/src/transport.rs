//! One HTTP client per language-model client, with the read timeout applied
//! the way long streams need it (to each wait, never to the whole call) and
//! every failure turned into a retry decision and a readable, redacted
//! message.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::error::{LlmError, redact};
use crate::retry::{AttemptFailure, retry_after};
use crate::settings::HttpSettings;
use crate::wire::{self, BodyError, UpstreamError};

/// Error bodies are read only this far: the message is what matters.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) struct HttpCore {
    pub client: reqwest::Client,
    pub http: HttpSettings,
    /// Credentials that must be blanked out of any upstream text.
    secrets: Vec<String>,
}

impl HttpCore {
    pub fn new(http: HttpSettings, secrets: Vec<String>) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_millis(http.connect_timeout_ms))
            .user_agent(concat!("flowchat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(HttpCore {
            client,
            http,
            secrets,
        })
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.http.read_timeout_ms)
    }

    /// Upstream text made safe for logs and error messages.
    pub fn clean(&self, text: &str, credential: Option<&str>) -> String {
        let mut secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        secrets.extend(credential);
        redact(text, &secrets)
    }

    /// Sends and waits for the response head, without judging the status.
    pub async fn send_raw(&self, request: RequestBuilder) -> Result<Response, AttemptFailure> {
        match tokio::time::timeout(self.read_timeout(), request.send()).await {
            Err(_) => Err(AttemptFailure::retryable(LlmError::Timeout(format!(
                "no response within {} ms",
                self.http.read_timeout_ms
            )))),
            Ok(Err(e)) => Err(self.transport_failure(&e, false)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Sends to a language-model endpoint: any non-success status becomes
    /// the matching failure.
    pub async fn send(
        &self,
        request: RequestBuilder,
        credential: Option<&str>,
    ) -> Result<Response, AttemptFailure> {
        let response = self.send_raw(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, wait, detail) = self.error_parts(response, credential).await;
        Err(status_failure(status, wait, detail, credential))
    }

    /// Status, server wish and cleaned message of an error response.
    pub async fn error_parts(
        &self,
        response: Response,
        credential: Option<&str>,
    ) -> (u16, Option<Duration>, String) {
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = self.read_limited(response, MAX_ERROR_BODY).await;
        let mut detail = wire::error_detail(&body);
        if detail.is_empty() {
            detail = status
                .canonical_reason()
                .unwrap_or("no explanation given")
                .to_owned();
        }
        (status.as_u16(), wait, self.clean(&detail, credential))
    }

    /// The whole body, waiting at most the read timeout for each piece.
    pub async fn read_all(&self, mut response: Response) -> Result<Bytes, AttemptFailure> {
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.read_timeout(), response.chunk()).await {
                Err(_) => {
                    return Err(AttemptFailure::retryable(LlmError::Timeout(format!(
                        "the answer stalled for {} ms",
                        self.http.read_timeout_ms
                    ))));
                }
                Ok(Err(e)) => return Err(self.transport_failure(&e, true)),
                Ok(Ok(None)) => return Ok(body.into()),
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            }
        }
    }

    /// Best effort: an error body that cannot be read is just not quoted.
    async fn read_limited(&self, response: Response, limit: usize) -> Vec<u8> {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while body.len() < limit {
            match tokio::time::timeout(self.read_timeout(), stream.next()).await {
                Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(limit);
        body
    }

    /// A reqwest error as a retry decision. `in_body`: the head had arrived,
    /// so a break is an interrupted answer rather than an unreachable server.
    pub fn transport_failure(&self, error: &reqwest::Error, in_body: bool) -> AttemptFailure {
        let text = self.clean(&describe(error), None);
        if error.is_builder() {
            return AttemptFailure::Permanent(LlmError::Config(text));
        }
        let error = if error.is_timeout() {
            LlmError::Timeout(text)
        } else if in_body {
            LlmError::StreamInterrupted(text)
        } else {
            LlmError::Connection(text)
        };
        AttemptFailure::retryable(error)
    }

    /// A body that is not the expected answer.
    pub fn body_failure(&self, error: BodyError, credential: Option<&str>) -> AttemptFailure {
        match error {
            BodyError::Malformed(m) => AttemptFailure::Permanent(LlmError::InvalidResponse(m)),
            BodyError::Truncated(m) => AttemptFailure::retryable(LlmError::StreamInterrupted(m)),
            BodyError::Upstream(e) => self.upstream_failure(e, credential),
        }
    }

    /// An error object found inside a body or a stream, judged like the
    /// HTTP status it stands for.
    pub fn upstream_failure(
        &self,
        error: UpstreamError,
        credential: Option<&str>,
    ) -> AttemptFailure {
        let detail = self.clean(&error.message, credential);
        status_failure(error.status, None, detail, credential)
    }
}

/// The retry decision for an error status of a language-model endpoint.
pub(crate) fn status_failure(
    status: u16,
    wait: Option<Duration>,
    message: String,
    credential: Option<&str>,
) -> AttemptFailure {
    match StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY) {
        StatusCode::UNAUTHORIZED => AttemptFailure::Unauthorized {
            error: LlmError::Auth { status, message },
            credential: credential.map(str::to_owned),
        },
        StatusCode::TOO_MANY_REQUESTS => AttemptFailure::Retryable {
            error: LlmError::RateLimited {
                message,
                retry_after_ms: wait.map(|w| w.as_millis() as u64),
            },
            retry_after: wait,
        },
        StatusCode::REQUEST_TIMEOUT => AttemptFailure::retryable(LlmError::Timeout(format!(
            "the server gave up waiting (HTTP 408): {message}"
        ))),
        s if s.is_server_error() => AttemptFailure::Retryable {
            error: LlmError::Upstream { status, message },
            retry_after: wait,
        },
        _ => AttemptFailure::Permanent(LlmError::Rejected { status, message }),
    }
}

/// The error and its causes on one line (reqwest's own text stops at the
/// outermost layer, which rarely says what went wrong). The URL is left out:
/// the reader knows which service it is.
fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let text = if parts.is_empty() {
            // The outermost text repeats the URL; strip it.
            match error.url() {
                Some(url) => e.to_string().replace(&format!(" ({url})"), ""),
                None => e.to_string(),
            }
        } else {
            e.to_string()
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_decisions() {
        let f = |s| status_failure(s, None, "m".into(), Some("tok"));
        assert!(
            matches!(f(401), AttemptFailure::Unauthorized { credential: Some(c), .. } if c == "tok")
        );
        assert!(matches!(
            f(429),
            AttemptFailure::Retryable {
                error: LlmError::RateLimited { .. },
                ..
            }
        ));
        assert!(matches!(
            f(503),
            AttemptFailure::Retryable {
                error: LlmError::Upstream { status: 503, .. },
                ..
            }
        ));
        assert!(matches!(
            f(408),
            AttemptFailure::Retryable {
                error: LlmError::Timeout(_),
                ..
            }
        ));
        for s in [400, 403, 404, 422] {
            assert!(
                matches!(f(s), AttemptFailure::Permanent(LlmError::Rejected { status, .. }) if status == s)
            );
        }
    }

    #[test]
    fn retry_after_is_kept_in_the_error() {
        let f = status_failure(429, Some(Duration::from_secs(2)), "m".into(), None);
        assert!(matches!(
            f,
            AttemptFailure::Retryable {
                error: LlmError::RateLimited {
                    retry_after_ms: Some(2000),
                    ..
                },
                retry_after: Some(_)
            }
        ));
    }
}
