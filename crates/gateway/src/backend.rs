//! Connections to redis-server and the three ways of running commands on them.
//!
//! - Single commands and pipelines share one multiplexed connection: each request's
//!   bytes are written in one piece, so a pipeline is never split by another client.
//! - Transactions (`MULTI` .. `EXEC`) run on connections of their own, taken from a
//!   small pool of idle ones, one transaction at a time per connection.
//! - Connections are opened lazily with a short timeout. Each one's driver task is
//!   watched: when Redis closes the socket (restart, crash) the connection is marked
//!   dead and the next request opens a new one, so the gateway recovers by itself.
//!
//! Every error reply of Redis comes back as `Value::ServerError`; an `Err` from this
//! module always means Redis could not be reached (HTTP 503).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, Value};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::protocol::Args;

/// Idle transaction connections kept for reuse.
const MAX_IDLE_TRANSACTION_CONNECTIONS: usize = 8;

/// Redis could not be reached, or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Redis answers `LOADING` while it reads its data back after a restart.
/// That is Redis not being ready rather than an answer to the command, so it
/// is answered 503 (callers retry) like a Redis that is down, not passed on as
/// the command's failure.
fn ready(replies: &[Value]) -> Result<(), Unavailable> {
    for reply in replies {
        if let Value::ServerError(error) = reply
            && error.code() == "LOADING"
        {
            return Err(Unavailable(crate::reply::error_text(error)));
        }
    }
    Ok(())
}

/// A connection and the flag its driver task clears when the socket is gone.
#[derive(Clone)]
struct Link {
    conn: MultiplexedConnection,
    alive: Arc<AtomicBool>,
}

impl Link {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
    }
}

/// The gateway's access to one redis-server.
pub struct Backend {
    info: ConnectionInfo,
    connect_timeout: Duration,
    command_timeout: Duration,
    shared: tokio::sync::Mutex<Option<Link>>,
    idle: Mutex<Vec<Link>>,
}

impl Backend {
    /// Parses the URL; connects nothing yet.
    pub fn new(
        redis_url: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url)
            .map_err(|err| anyhow::anyhow!("invalid Redis URL: {err}"))?;
        let info = client.get_connection_info().clone();
        match info.addr() {
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..) => {}
            _ => anyhow::bail!("TLS Redis URLs (rediss://) are not supported by the gateway"),
        }
        Ok(Self {
            info,
            connect_timeout,
            command_timeout,
            shared: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Where Redis is, for messages (never includes a password).
    pub fn address(&self) -> String {
        self.info.addr().to_string()
    }

    /// Runs one command on the shared connection.
    pub async fn command(&self, args: &Args) -> Result<Value, Unavailable> {
        let link = self.shared_link().await?;
        let mut conn = link.conn.clone();
        let result = conn.send_packed_command(&to_cmd(args)).await;
        let value = result.map_err(|err| self.transport_error(&link, err))?;
        ready(std::slice::from_ref(&value))?;
        Ok(value)
    }

    /// Runs commands as a pipeline (not atomic) on the shared connection; one reply each.
    pub async fn pipeline(&self, commands: &[&Args]) -> Result<Vec<Value>, Unavailable> {
        let mut pipe = Pipeline::new();
        for args in commands {
            pipe.add_command(to_cmd(args));
        }
        let link = self.shared_link().await?;
        let mut conn = link.conn.clone();
        let result = conn.send_packed_commands(&pipe, 0, commands.len()).await;
        let values = result.map_err(|err| self.transport_error(&link, err))?;
        ready(&values)?;
        Ok(values)
    }

    /// Sends `MULTI`, the commands and `EXEC` on a dedicated connection and returns
    /// every raw reply: `OK`, one `QUEUED` (or error) per command, then EXEC's reply.
    pub async fn transaction(&self, commands: &[Args]) -> Result<Vec<Value>, Unavailable> {
        let mut pipe = Pipeline::new();
        pipe.cmd("MULTI");
        for args in commands {
            pipe.add_command(to_cmd(args));
        }
        pipe.cmd("EXEC");
        let link = self.dedicated_link().await?;
        let mut conn = link.conn.clone();
        match conn
            .send_packed_commands(&pipe, 0, commands.len() + 2)
            .await
        {
            Ok(replies) => {
                self.give_back(link);
                ready(&replies)?;
                Ok(replies)
            }
            // Whatever happened (even a timeout), this connection's state is
            // uncertain: drop it, which closes it, so Redis discards a half-sent
            // transaction.
            Err(err) => Err(self.transport_error(&link, err)),
        }
    }

    /// Checks that Redis answers PING.
    pub async fn ping(&self) -> Result<(), Unavailable> {
        match self.command(&vec![b"PING".to_vec()]).await? {
            Value::ServerError(error) => Err(Unavailable(crate::reply::error_text(&error))),
            _ => Ok(()),
        }
    }

    async fn shared_link(&self) -> Result<Link, Unavailable> {
        let mut slot = self.shared.lock().await;
        if let Some(link) = slot.as_ref().filter(|link| link.is_alive()) {
            return Ok(link.clone());
        }
        *slot = None;
        let link = self.connect().await?;
        *slot = Some(link.clone());
        Ok(link)
    }

    async fn dedicated_link(&self) -> Result<Link, Unavailable> {
        loop {
            let candidate = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match candidate {
                Some(link) if link.is_alive() => return Ok(link),
                Some(_dead) => continue,
                None => return self.connect().await,
            }
        }
    }

    fn give_back(&self, link: Link) {
        if !link.is_alive() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE_TRANSACTION_CONNECTIONS {
            idle.push(link);
        }
    }

    fn transport_error(&self, link: &Link, err: redis::RedisError) -> Unavailable {
        if err.is_timeout() {
            // The connection stays usable: a late reply is read and dropped.
            return Unavailable(format!(
                "ERR redis at {} did not answer within {:?}",
                self.address(),
                self.command_timeout
            ));
        }
        link.mark_dead();
        Unavailable(format!(
            "ERR lost the connection to redis at {}: {err}",
            self.address()
        ))
    }

    async fn connect(&self) -> Result<Link, Unavailable> {
        let address = self.address();
        let attempt = async {
            match self.info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(|err| err.to_string())?;
                    stream.set_nodelay(true).map_err(|err| err.to_string())?;
                    self.handshake(stream).await
                }
                #[cfg(unix)]
                ConnectionAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|err| err.to_string())?;
                    self.handshake(stream).await
                }
                _ => Err("unsupported address".to_owned()),
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(link)) => {
                tracing::debug!(redis = %address, "connected to redis");
                Ok(link)
            }
            Ok(Err(reason)) => {
                tracing::warn!(redis = %address, %reason, "cannot connect to redis");
                Err(Unavailable(format!(
                    "ERR cannot connect to redis at {address}: {reason}"
                )))
            }
            Err(_) => {
                tracing::warn!(redis = %address, "timed out connecting to redis");
                Err(Unavailable(format!(
                    "ERR cannot connect to redis at {address}: no answer within {:?}",
                    self.connect_timeout
                )))
            }
        }
    }

    async fn handshake<S>(&self, stream: S) -> Result<Link, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout));
        let (conn, driver) =
            MultiplexedConnection::new_with_config(self.info.redis_settings(), stream, config)
                .await
                .map_err(|err| err.to_string())?;
        let alive = Arc::new(AtomicBool::new(true));
        spawn_driver(driver, alive.clone());
        Ok(Link { conn, alive })
    }
}

/// Runs a connection's driver; when it ends (socket closed, or every handle
/// dropped) the connection is dead.
fn spawn_driver(driver: impl Future<Output = ()> + Send + 'static, alive: Arc<AtomicBool>) {
    tokio::spawn(async move {
        driver.await;
        alive.store(false, Ordering::Release);
    });
}

fn to_cmd(args: &Args) -> Cmd {
    let mut cmd = Cmd::new();
    for arg in args {
        cmd.arg(arg.as_slice());
    }
    cmd
}
