//! The HTTP boundary of the client.
//!
//! The client never talks to the network itself: it hands a finished request
//! to a [`Transport`]. That keeps this crate portable (the Cloudflare Worker
//! implements it with `worker::Fetch`, native code with reqwest behind the
//! `reqwest` feature) and lets tests replay canned answers at the one place
//! where the outside world begins.

use std::time::Duration;

/// What came back from the server, whatever the status.
///
/// The client, not the transport, decides what a status means, so every
/// runtime maps HTTP answers the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportResponse {
    /// HTTP status code.
    pub status: u16,
    /// The raw response body.
    pub body: Vec<u8>,
}

/// Why no HTTP answer was obtained.
///
/// The split matters for retries: a [`TransportError::Connect`] failure means
/// the request never reached the server, so even a non-idempotent write may be
/// sent again; after [`TransportError::Timeout`] or [`TransportError::Other`]
/// the server may have executed it.
///
/// Implementations must never put the URL's credentials or the bearer token in
/// the text: these messages end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The per-request deadline passed (connecting, sending or reading).
    #[error("request timed out")]
    Timeout,
    /// No connection could be made (DNS, TCP, TLS): nothing was sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// Anything else (connection reset mid-request, body read failure, ...).
    #[error("transport failure: {0}")]
    Other(String),
}

/// Sends one HTTP POST and returns the answer.
///
/// `Send + Sync` so one client can be shared by every request handler; on
/// wasm32 the futures themselves need not be `Send` (the Worker runtime is
/// single-threaded and `worker::Fetch` futures are not `Send`).
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Transport: Send + Sync {
    /// POST `body` to `url` with `headers`, giving up after `timeout`.
    ///
    /// Any HTTP status is a successful transport call; only the absence of an
    /// answer is a [`TransportError`].
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<TransportResponse, TransportError>;
}

/// Waits between retries.
///
/// The portable crate has no timer of its own (no tokio on wasm32), so the
/// runtime injects one. Without a sleeper the client retries immediately,
/// which is still useful against a dropped connection.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Sleeper: Send + Sync {
    /// Resolve after `duration`.
    async fn sleep(&self, duration: Duration);
}

/// A [`Sleeper`] backed by `tokio::time::sleep`, for native callers on tokio.
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
#[async_trait::async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
