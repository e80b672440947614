//! What a gateway needs to start: where Redis is, where to listen, the token.

use std::time::Duration;

/// Upstash's documented per-request limit (10 MB), used as the default body cap.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Options for [`crate::start`].
///
/// Build one with [`GatewayOptions::new`] and adjust the public fields.
#[derive(Clone)]
pub struct GatewayOptions {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path`; TLS is not supported.
    pub redis_url: String,
    /// Address to listen on (an IP address or a host name).
    pub host: String,
    /// Port to listen on; `0` picks a free one (see [`crate::RunningGateway::addr`]).
    pub port: u16,
    /// The bearer token clients must present (`Authorization: Bearer <token>`).
    pub token: String,
    /// Largest accepted request body, in bytes.
    pub max_request_bytes: usize,
    /// How long to wait for a TCP connection (and handshake) to Redis.
    pub connect_timeout: Duration,
    /// How long to wait for Redis to answer one request (a long script counts).
    pub command_timeout: Duration,
}

impl GatewayOptions {
    /// Options with the defaults: `127.0.0.1`, port 8079, 10 MB bodies,
    /// 1 s connect timeout, 30 s command timeout.
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            host: "127.0.0.1".to_owned(),
            port: 8079,
            token: token.into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(30),
        }
    }

    /// The same options, listening on a free port (for tests).
    pub fn with_free_port(mut self) -> Self {
        self.port = 0;
        self
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.token.trim().is_empty() {
            anyhow::bail!("the gateway token must not be empty");
        }
        if self.max_request_bytes == 0 {
            anyhow::bail!("max_request_bytes must be positive");
        }
        Ok(())
    }
}

impl std::fmt::Debug for GatewayOptions {
    // Never print the token or a password in the Redis URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &"<redacted>")
            .field("max_request_bytes", &self.max_request_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}
