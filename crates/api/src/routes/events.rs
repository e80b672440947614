//! `GET /api/chat/{id}/events`: the job as Server-Sent Events — partial
//! answer text while the drain streams it, then the final answer with its
//! citations (or the failure). It follows the job record in the store, so any
//! function instance can serve it, whichever drain does the work.
//!
//! Each connection lasts at most [`STREAM_SECS`] (under function time
//! limits); a client that has not seen `answer` or `failed` reconnects and
//! receives the current state again (`partial` always carries the whole text
//! so far, so nothing depends on what a previous connection delivered).
//!
//! Each connection holds a follower slot (`MAX_FOLLOWERS_PER_SESSION`,
//! `MAX_FOLLOWERS_PER_IP`) for as long as the stream lives: the slot goes
//! back when the stream ends or the client goes away (the runtime drops it).

use std::sync::Arc;

use bytes::Bytes;
use flowchat_domain::model::{Job, JobStatus};
use flowchat_domain::{JobId, Timestamp};
use flowchat_store::Store;
use futures_util::stream;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::Serialize;

use crate::auth::require_actor;
use crate::context::{AppContext, Platform};
use crate::error::ApiError;
use crate::followers::FollowerSlot;
use crate::policy::{actor_session, follower, visible_job};
use crate::response::{Body, EventStream, no_store};
use crate::views::{ChatJob, JobProgress, PartialText, StreamEnd};

/// How long one connection follows the job before the client must reconnect.
pub(crate) const STREAM_SECS: i64 = 25;
/// Polling the store: quick at first, then at most this often.
const POLL_MAX_MS: u64 = 250;
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE_MS: i64 = 10_000;

pub(crate) async fn open(
    ctx: &AppContext,
    req: &Request<Bytes>,
    raw_id: &str,
) -> Result<Response<Body>, ApiError> {
    let actor = require_actor(ctx, req)?;
    let id = JobId::parse(raw_id, "job_id")?;
    let job = visible_job(ctx, &id, &actor).await?;
    let slot = follower(ctx, req, actor_session(&actor)).await?;

    let follower = Follower {
        _slot: slot,
        store: ctx.store.clone(),
        platform: ctx.platform.clone(),
        id,
        deadline: ctx.platform.now().plus_secs(STREAM_SECS),
        sent: Sent::default(),
        pending: Some(job),
        opened: false,
        finished: false,
        poll_ms: 5,
        last_write: ctx.platform.now(),
    };
    let mut response = Response::new(Body::Events(events(follower)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(no_store(response))
}

/// What this connection has already told the client.
#[derive(Default)]
struct Sent {
    status: Option<JobStatus>,
    attempts: u32,
    partial: Option<String>,
}

struct Follower {
    /// Dropped with the stream, whichever way it ends.
    _slot: FollowerSlot,
    store: Arc<dyn Store>,
    platform: Arc<dyn Platform>,
    id: JobId,
    deadline: Timestamp,
    sent: Sent,
    /// The job read before the stream started, described first.
    pending: Option<Job>,
    opened: bool,
    finished: bool,
    poll_ms: u64,
    last_write: Timestamp,
}

impl Follower {
    /// The next bytes to send, or `None` to end the stream.
    async fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(b"retry: 1000\n\n"));
        }
        loop {
            let job = match self.pending.take() {
                Some(job) => job,
                None => {
                    let now = self.platform.now();
                    let remaining = self.deadline.millis_since(now);
                    if remaining <= 0 {
                        return None;
                    }
                    if now.millis_since(self.last_write) >= KEEP_ALIVE_MS {
                        self.last_write = now;
                        return Some(Bytes::from_static(b": keep-alive\n\n"));
                    }
                    self.platform
                        .sleep_ms(self.poll_ms.min(remaining as u64))
                        .await;
                    self.poll_ms = (self.poll_ms * 2).min(POLL_MAX_MS);
                    match self.store.get_job(&self.id).await {
                        Ok(Some(job)) => job,
                        Ok(None) => {
                            self.finished = true;
                            return Some(event(
                                "gone",
                                &StreamEnd {
                                    detail: "the job has expired",
                                },
                            ));
                        }
                        Err(error) => {
                            // The client reconnects (retry: 1000) and resumes.
                            tracing::warn!(%error, "event stream: the store is unavailable");
                            self.finished = true;
                            return Some(event(
                                "unavailable",
                                &StreamEnd {
                                    detail: "the store is unavailable; reconnect to continue",
                                },
                            ));
                        }
                    }
                }
            };
            let out = self.describe_changes(&job);
            if !out.is_empty() {
                self.last_write = self.platform.now();
                self.poll_ms = 5;
                return Some(Bytes::from(out));
            }
        }
    }

    /// Events for whatever changed since the last look; marks the stream
    /// finished once the job is.
    fn describe_changes(&mut self, job: &Job) -> Vec<u8> {
        let mut out = Vec::new();
        if self.sent.status != Some(job.status) || self.sent.attempts != job.attempts {
            self.sent.status = Some(job.status);
            self.sent.attempts = job.attempts;
            out.extend(event(
                "status",
                &JobProgress {
                    status: job.status,
                    attempts: job.attempts,
                    error: job.error.as_deref(),
                },
            ));
        }
        match job.status {
            JobStatus::Succeeded => {
                out.extend(event("answer", &ChatJob::from(job)));
                self.finished = true;
            }
            JobStatus::Failed => {
                out.extend(event("failed", &ChatJob::from(job)));
                self.finished = true;
            }
            JobStatus::Queued | JobStatus::Running => {
                // A retried attempt starts over: an empty `partial` tells the
                // client to clear what the failed attempt had streamed.
                let partial = job.partial.clone().unwrap_or_default();
                if self.sent.partial.as_deref().unwrap_or_default() != partial {
                    out.extend(event("partial", &PartialText { text: &partial }));
                    self.sent.partial = Some(partial);
                }
            }
        }
        out
    }
}

fn event<T: Serialize>(name: &str, data: &T) -> Bytes {
    // Compact JSON never contains a raw newline, so one `data:` line carries
    // it; serialising our own views cannot fail.
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn events(follower: Follower) -> EventStream {
    Box::pin(stream::unfold(follower, |mut follower| async move {
        let bytes = follower.next().await?;
        Some((bytes, follower))
    }))
}
