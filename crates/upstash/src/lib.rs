//! FlowChat's own client for Upstash Redis over its REST protocol.
//!
//! Why our own: the published `upstash-redis-rs` does not build on stable and
//! lacks commands we need (streams, scripts, transactions). This one is
//! small, speaks the protocol documented in `docs/platforms.md`, and is
//! portable: it builds for `wasm32-unknown-unknown` because it does no I/O
//! itself. HTTP goes through a [`Transport`] (reqwest on native behind the
//! `reqwest` feature, `worker::Fetch` in the Cloudflare Worker); retry pauses
//! go through an optional [`Sleeper`].
//!
//! ```no_run
//! # async fn demo(transport: std::sync::Arc<dyn flowchat_upstash::Transport>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use flowchat_upstash::{cmd, Command, Script, Token, UpstashClient, UpstashConfig};
//!
//! let config = UpstashConfig::new("https://eu1-example.upstash.io", Token::new("…"));
//! let client = UpstashClient::new(config, transport);
//!
//! client.cmd(cmd!("SET", "greeting", "hello", "EX", 100)).await?;
//! let v = client.cmd_read(Command::new("GET").arg("greeting")).await?;
//! assert_eq!(v.as_str(), Some("hello"));
//!
//! let replies = client
//!     .pipeline(vec![cmd!("INCR", "n"), cmd!("EXPIRE", "n", 60)])
//!     .await?;
//! let n = replies[0].as_ref().map_err(Clone::clone)?.as_i64();
//!
//! let bump = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
//! let total = client.eval(&bump, &["n".into()], &[5.into()], false).await?;
//! # let _ = (n, total);
//! # Ok(()) }
//! ```
//!
//! Arguments are sent as JSON strings, so they must be UTF-8
//! ([`UpstashError::NotUtf8Argument`] otherwise): store binary blobs
//! base64-encoded. Replies are requested base64-encoded
//! (`Upstash-Encoding: base64`) and decoded, so they round-trip any bytes.

mod answer;
mod client;
mod command;
mod config;
mod error;
#[cfg(all(feature = "reqwest", not(target_arch = "wasm32")))]
mod reqwest_transport;
mod script;
mod transport;
mod value;

pub use client::{DEFAULT_RETRY_BACKOFF, Replies, UpstashClient};
pub use command::{Arg, Command};
pub use config::{
    DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, KV_TOKEN_VAR, KV_URL_VAR, TIMEOUT_VAR, TOKEN_VAR, Token,
    URL_VAR, UpstashConfig,
};
pub use error::{CommandError, UpstashError};
#[cfg(all(feature = "reqwest", not(target_arch = "wasm32")))]
pub use reqwest_transport::ReqwestTransport;
pub use script::Script;
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
pub use transport::TokioSleeper;
pub use transport::{Sleeper, Transport, TransportError, TransportResponse};
pub use value::Value;
