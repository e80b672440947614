//! The client: builds requests, sends them through a [`Transport`], retries
//! where that is safe, and decodes the answers.
//!
//! # Retries
//!
//! A request that may have reached Redis is sent again only when the caller
//! says repeating it is harmless: [`UpstashClient::cmd_read`],
//! [`UpstashClient::ping`], the `*_idempotent` pipeline and transaction calls,
//! and [`UpstashClient::eval`] with `idempotent = true`. Those are retried up
//! to `max_retries` times after a timeout, a transport failure, or an HTTP
//! 408/429/5xx answer. Plain [`UpstashClient::cmd`], [`UpstashClient::pipeline`]
//! and [`UpstashClient::multi_exec`] are not, because an `INCR` or `XADD`
//! that timed out may have been applied and must not be applied twice.
//!
//! One exception applies to every call: [`TransportError::Connect`] means no
//! connection was made, so nothing was sent and a retry cannot duplicate a
//! write.
//!
//! Between attempts the client waits `retry_backoff × attempt` (100 ms, then
//! 200 ms by default) through the injected [`Sleeper`]. The portable crate has
//! no timer of its own, so without a sleeper it retries at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::answer;
use crate::{
    Arg, Command, CommandError, Script, Sleeper, Transport, TransportError, TransportResponse,
    UpstashConfig, UpstashError, Value,
};

/// Default pause before the first retry; doubled for the second, and so on.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// What a command answers to a pipeline or transaction: one result per
/// command, in order. A failed command does not fail the others.
pub type Replies = Vec<Result<Value, CommandError>>;

/// Whether a request may be sent again after it possibly reached Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads and idempotent writes.
    Safe,
    /// Anything else: retried only when it certainly was not sent.
    Unsafe,
}

impl Repeat {
    fn from_flag(idempotent: bool) -> Self {
        if idempotent {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        }
    }
}

/// An Upstash Redis REST client.
///
/// Cheap to clone; clones share the transport and the request counter.
#[derive(Clone)]
pub struct UpstashClient {
    config: UpstashConfig,
    transport: Arc<dyn Transport>,
    sleeper: Option<Arc<dyn Sleeper>>,
    retry_backoff: Duration,
    requests_sent: Arc<AtomicU64>,
}

impl std::fmt::Debug for UpstashClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstashClient")
            .field("config", &self.config)
            .field("has_sleeper", &self.sleeper.is_some())
            .field("retry_backoff", &self.retry_backoff)
            .field("requests_sent", &self.requests_sent())
            .finish_non_exhaustive()
    }
}

impl UpstashClient {
    /// A client for `config`, sending through `transport`, retrying without pause.
    pub fn new(config: UpstashConfig, transport: Arc<dyn Transport>) -> Self {
        UpstashClient {
            config,
            transport,
            sleeper: None,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            requests_sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Wait through `sleeper` between retries.
    #[must_use]
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = Some(sleeper);
        self
    }

    /// Change the pause before the first retry (later ones are multiples of it).
    #[must_use]
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &UpstashConfig {
        &self.config
    }

    /// HTTP requests sent so far, retries included. Tests use it to assert
    /// round trips (e.g. one chat submission = one request).
    pub fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Run one command. Not retried once it may have reached Redis: use this
    /// for writes that must not happen twice.
    pub async fn cmd(&self, command: Command) -> Result<Value, UpstashError> {
        self.single(&command, Repeat::Unsafe).await
    }

    /// Run one command that is safe to repeat (a read, or an idempotent write
    /// such as `SET k v`, `DEL`, `EXPIRE`); retried on transport failures.
    pub async fn cmd_read(&self, command: Command) -> Result<Value, UpstashError> {
        self.single(&command, Repeat::Safe).await
    }

    /// Run commands in one round trip (`POST /pipeline`). Not atomic: other
    /// clients' commands may interleave, and each command succeeds or fails
    /// on its own. Not retried.
    pub async fn pipeline(&self, commands: Vec<Command>) -> Result<Replies, UpstashError> {
        self.many("/pipeline", &commands, Repeat::Unsafe).await
    }

    /// [`pipeline`](Self::pipeline) for commands that are all safe to repeat; retried.
    pub async fn pipeline_idempotent(
        &self,
        commands: Vec<Command>,
    ) -> Result<Replies, UpstashError> {
        self.many("/pipeline", &commands, Repeat::Safe).await
    }

    /// Run commands atomically (`POST /multi-exec`, MULTI/EXEC). A command
    /// failing at run time (e.g. `WRONGTYPE`) does not undo the others, as in
    /// Redis; a transaction Redis discards as a whole is an
    /// [`UpstashError::Command`]. Not retried.
    pub async fn multi_exec(&self, commands: Vec<Command>) -> Result<Replies, UpstashError> {
        self.many("/multi-exec", &commands, Repeat::Unsafe).await
    }

    /// [`multi_exec`](Self::multi_exec) for a transaction that is safe to repeat; retried.
    pub async fn multi_exec_idempotent(
        &self,
        commands: Vec<Command>,
    ) -> Result<Replies, UpstashError> {
        self.many("/multi-exec", &commands, Repeat::Safe).await
    }

    /// Run a Lua script: `EVALSHA` first, and once, on `NOSCRIPT`, `EVAL`
    /// with the source (which also caches it in Redis for next time).
    ///
    /// `idempotent` says whether the script may run twice without harm; only
    /// then are transport failures retried. Keys must all be in `keys`
    /// (Upstash's key locking and Redis Cluster rely on it).
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[Arg],
        args: &[Arg],
        idempotent: bool,
    ) -> Result<Value, UpstashError> {
        let repeat = Repeat::from_flag(idempotent);
        let tail = |c: Command| c.arg(keys.len()).args(keys).args(args);
        let by_sha = tail(Command::new("EVALSHA").arg(script.sha1()));
        match self.single(&by_sha, repeat).await {
            Err(e) if e.is_noscript() => {
                let by_source = tail(Command::new("EVAL").arg(script.source()));
                self.single(&by_source, repeat).await
            }
            other => other,
        }
    }

    /// Cache a script in Redis ahead of use (`SCRIPT LOAD`), so the first
    /// [`eval`](Self::eval) does not need the `EVAL` fallback. Safe to repeat.
    pub async fn script_load(&self, script: &Script) -> Result<(), UpstashError> {
        let reply = self
            .single(
                &Command::new("SCRIPT").arg("LOAD").arg(script.source()),
                Repeat::Safe,
            )
            .await?;
        match reply.as_str() {
            Some(sha) if sha.eq_ignore_ascii_case(script.sha1()) => Ok(()),
            _ => Err(UpstashError::Protocol(
                "SCRIPT LOAD answered a different digest".into(),
            )),
        }
    }

    /// Check that the database is reachable and the token accepted
    /// (readiness checks). Any successful reply counts: the point is the
    /// round trip, not the word `PONG`.
    pub async fn ping(&self) -> Result<(), UpstashError> {
        self.single(&Command::new("PING"), Repeat::Safe)
            .await
            .map(drop)
    }

    async fn single(&self, command: &Command, repeat: Repeat) -> Result<Value, UpstashError> {
        let body = encode(&command.to_json()?)?;
        let resp = self.send("", body, repeat).await?;
        answer::single(&resp).map_err(|e| self.scrub(e))
    }

    async fn many(
        &self,
        path: &str,
        commands: &[Command],
        repeat: Repeat,
    ) -> Result<Replies, UpstashError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let json = commands
            .iter()
            .map(Command::to_json)
            .collect::<Result<Vec<_>, _>>()?;
        let body = encode(&serde_json::Value::Array(json))?;
        let resp = self.send(path, body, repeat).await?;
        let replies = answer::many(&resp, commands.len()).map_err(|e| self.scrub(e))?;
        Ok(replies
            .into_iter()
            .map(|r| {
                r.map_err(|e| CommandError {
                    message: self.scrub_text(e.message),
                })
            })
            .collect())
    }

    /// POST `body` to `url + path`, retrying as `repeat` allows. Returns the
    /// first answer that is not a server failure.
    async fn send(
        &self,
        path: &str,
        body: Vec<u8>,
        repeat: Repeat,
    ) -> Result<TransportResponse, UpstashError> {
        // Trimmed here too: `config.url` is a public field and may end in `/`.
        let url = format!("{}{}", self.config.url.trim_end_matches('/'), path);
        let headers = [
            (
                "Authorization",
                format!("Bearer {}", self.config.token.expose()),
            ),
            // Every string in the answer base64-encoded: binary values survive.
            ("Upstash-Encoding", "base64".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        let mut body = Some(body);
        let mut attempt: u32 = 0;
        loop {
            let last = attempt >= self.config.max_retries;
            // Keep a copy only while another attempt is possible.
            let this_body = if last {
                body.take().unwrap_or_default()
            } else {
                body.clone().unwrap_or_default()
            };
            self.requests_sent.fetch_add(1, Ordering::Relaxed);
            let outcome = self
                .transport
                .post(&url, &headers, this_body, self.config.timeout)
                .await;
            let (error, may_repeat) = match outcome {
                Ok(resp) => match answer::server_failure(&resp) {
                    None => return Ok(resp),
                    Some(msg) => (UpstashError::Transport(msg), repeat == Repeat::Safe),
                },
                Err(TransportError::Connect(msg)) => (
                    UpstashError::Transport(format!("could not connect: {msg}")),
                    true,
                ),
                Err(TransportError::Timeout) => (UpstashError::Timeout, repeat == Repeat::Safe),
                Err(TransportError::Other(msg)) => {
                    (UpstashError::Transport(msg), repeat == Repeat::Safe)
                }
            };
            if last || !may_repeat {
                return Err(self.scrub(error));
            }
            attempt += 1;
            if let Some(sleeper) = &self.sleeper {
                sleeper.sleep(self.retry_backoff * attempt).await;
            }
        }
    }

    /// Defence in depth: remove the token from any text a server or transport
    /// put in an error, in case one ever echoes a request header.
    fn scrub(&self, e: UpstashError) -> UpstashError {
        match e {
            UpstashError::Command(m) => UpstashError::Command(self.scrub_text(m)),
            UpstashError::Transport(m) => UpstashError::Transport(self.scrub_text(m)),
            UpstashError::Protocol(m) => UpstashError::Protocol(self.scrub_text(m)),
            other => other,
        }
    }

    fn scrub_text(&self, text: String) -> String {
        let token = self.config.token.expose();
        if token.is_empty() || !text.contains(token) {
            text
        } else {
            text.replace(token, "<redacted>")
        }
    }
}

fn encode(json: &serde_json::Value) -> Result<Vec<u8>, UpstashError> {
    serde_json::to_vec(json)
        .map_err(|e| UpstashError::Protocol(format!("could not encode the request: {e}")))
}

#[cfg(test)]
mod tests;
