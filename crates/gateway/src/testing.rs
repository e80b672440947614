//! Test helpers (feature `testing`): a throwaway redis-server per test, and a
//! gateway in front of it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowchat_gateway::testing::{RedisServer, TestGateway};
//!
//! // Just Redis, for code that speaks RESP:
//! let redis = RedisServer::start()?;
//! let url = redis.url(); // redis://127.0.0.1:PORT
//!
//! // Redis behind the gateway, for code that speaks the Upstash REST protocol:
//! let env = TestGateway::start().await?;
//! let (rest_url, rest_token) = (env.url(), env.token());
//! # let _ = (url, rest_url, rest_token); Ok(()) }
//! ```
//!
//! In another crate: `flowchat-gateway = { workspace = true, features = ["testing"] }`
//! under `[dev-dependencies]`. The `redis-server` binary is taken from
//! `$REDIS_SERVER_BIN`, else from the `PATH` (Debian: `apt-get install redis-server`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{GatewayOptions, RunningGateway, StatsSnapshot};

/// How long a fresh redis-server gets to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server child process on a free loopback port, without persistence.
/// Killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        let binary = redis_server_binary();
        let mut last_error = None;
        // A port found free can be taken before redis-server binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            match Self::start_with(binary.clone(), port) {
                Ok(server) => return Ok(server),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Starts redis-server on the given port and waits until it answers PING.
    pub fn start_on_port(port: u16) -> anyhow::Result<Self> {
        Self::start_with(redis_server_binary(), port)
    }

    fn start_with(binary: PathBuf, port: u16) -> anyhow::Result<Self> {
        let mut server = Self {
            child: None,
            port,
            binary,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (install redis-server, or set REDIS_SERVER_BIN)",
                    self.binary.display()
                )
            })?;
        self.child = Some(child);
        if let Err(err) = self.wait_ready() {
            self.stop();
            return Err(err);
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "redis-server exited ({status}) before answering on port {} (port taken?)",
                    self.port
                );
            }
            if ping(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "redis-server did not answer PING on port {} within {READY_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on (kept across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process and waits for it; the data is gone. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it (if running) and starts a fresh, empty one on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_server_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Whether a RESP PING on the port gets `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A throwaway redis-server with a gateway in front of it, in this process.
pub struct TestGateway {
    /// The gateway (drop order: the gateway stops before Redis).
    pub gateway: RunningGateway,
    /// The Redis behind it; [`RedisServer::stop`] / [`RedisServer::restart`] it to
    /// test outages.
    pub redis: RedisServer,
    token: String,
}

impl TestGateway {
    /// Starts Redis on a free port and the gateway on another.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestGateway::start`], adjusting the gateway's options first
    /// (the Redis URL, token and port are already set).
    pub async fn start_with(adjust: impl FnOnce(&mut GatewayOptions)) -> anyhow::Result<Self> {
        let redis = RedisServer::start()?;
        let token = format!("test-token-{}", redis.port());
        let mut options = GatewayOptions::new(redis.url(), token.clone()).with_free_port();
        adjust(&mut options);
        let token = options.token.clone();
        let gateway = crate::start(options).await?;
        Ok(Self {
            gateway,
            redis,
            token,
        })
    }

    /// The REST URL (`UPSTASH_REDIS_REST_URL`).
    pub fn url(&self) -> String {
        self.gateway.url()
    }

    /// The REST token (`UPSTASH_REDIS_REST_TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Requests and commands so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.gateway.stats()
    }

    /// Zeroes the counters; returns the counts they had.
    pub fn reset_stats(&self) -> StatsSnapshot {
        self.gateway.reset_stats()
    }
}
