//! `flowchat-gateway`: the Upstash Redis REST protocol over a real redis-server.
//! A development and test tool; see the library docs.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use flowchat_gateway::{DEFAULT_MAX_REQUEST_BYTES, GatewayOptions};

/// Development and test tool: serves the Upstash Redis REST protocol on top of
/// a real redis-server, so FlowChat's Upstash back end can be run and tested
/// locally exactly as it talks to Upstash.
///
/// DEVELOPMENT AND TEST TOOL ONLY: not hardened for production use.
///
/// Prints `flowchat-gateway listening on http://HOST:PORT` on stdout once it
/// serves; use that URL as UPSTASH_REDIS_REST_URL and the token as
/// UPSTASH_REDIS_REST_TOKEN.
#[derive(Debug, Parser)]
#[command(name = "flowchat-gateway", version)]
struct Cli {
    /// The redis-server to serve (`redis://[user:password@]host:port[/db]`, or `redis+unix:///path`).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,

    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8079)]
    port: u16,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Bearer token clients must send (`Authorization: Bearer <token>`).
    #[arg(long, env = "FLOWCHAT_GATEWAY_TOKEN", hide_env_values = true)]
    token: String,

    /// Largest accepted request body in bytes (Upstash: 10 MB); larger ones get 413.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,

    /// Seconds to wait for Redis to answer one request before answering 503.
    #[arg(long, default_value_t = 30)]
    command_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let cli = Cli::parse();
    let mut options = GatewayOptions::new(cli.redis_url, cli.token);
    options.host = cli.host;
    options.port = cli.port;
    options.max_request_bytes = cli.max_request_bytes;
    options.command_timeout = Duration::from_secs(cli.command_timeout_secs.max(1));

    let gateway = flowchat_gateway::start(options).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "flowchat-gateway listening on {}", gateway.url())?;
        stdout.flush()?;
    }

    shutdown_signal().await;
    gateway.shutdown().await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
