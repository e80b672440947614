//! Liveness (`ping`, touches nothing) and readiness (`ready`, checks what a
//! request needs: the store, the queue, a live drain, the LLM mode).
//!
//! Readiness needs no credentials (uptime monitors poll it) and reads the
//! store three times, so it is limited per client address like a write
//! (`RATE_LIMIT_IP_PER_MINUTE`, its own count): the limit's own round trip
//! doubles as the store check, so an allowed request costs what it did
//! before the limit and a refused one costs one store call. Operators
//! (`ADMIN_TOKEN`) are not limited.

use bytes::Bytes;
use flowchat_domain::config::LlmProvider;
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::auth::{Actor, optional_actor};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::policy::ip_ready_check;
use crate::response::{Body, json, no_store};
use crate::views::{
    DrainCheck, DrainSeen, Liveness, LlmCheck, QueueCheck, Readiness, ReadinessChecks, StoreCheck,
};

/// A drain not seen for longer than this is reported as stale.
pub(crate) const DRAIN_STALE_AFTER_SECS: i64 = 120;

pub(crate) fn ping() -> Response<Body> {
    json(StatusCode::OK, &Liveness { status: "ok" })
}

/// 503 (with `Retry-After`) only when the store is unreachable: without a
/// drain or a model, requests are still accepted and wait in the queue.
pub(crate) async fn ready(
    ctx: &AppContext,
    req: &Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    let started = ctx.platform.now();
    // A token that does not verify is not an operator's; readiness answers
    // it like any anonymous caller rather than with a 401.
    let operator = matches!(optional_actor(ctx, req), Ok(Some(Actor::Admin)));
    // Store errors can name hosts and internals: operators get them, anyone
    // else a plain sentence; the log keeps the detail either way.
    let describe = |check: &str, e: &flowchat_store::StoreError| {
        tracing::warn!(check, error = %e, "readiness check failed");
        if operator {
            e.to_string()
        } else {
            "the store did not answer; operators see the detail with ADMIN_TOKEN and in the logs"
                .to_owned()
        }
    };
    let ping = if operator {
        ctx.store.ping().await
    } else {
        match ctx
            .store
            .hit_rate_limits(&[ip_ready_check(ctx, req)], started)
            .await
        {
            Ok(decision) if !decision.allowed => {
                return Err(ApiError::rate_limited(decision, started));
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    };
    let latency_ms = ctx.platform.now().millis_since(started);
    let now = ctx.platform.now();
    let backend = ctx.config.store.as_str();

    let store = match &ping {
        Ok(()) => StoreCheck::Ok {
            backend,
            latency_ms,
        },
        Err(e) => StoreCheck::Error {
            backend,
            latency_ms,
            error: describe("store", e),
        },
    };
    let (queue, drain) = if ping.is_ok() {
        let queue = match ctx.store.queue_stats(now).await {
            Ok(stats) => QueueCheck::Ok(stats),
            Err(e) => QueueCheck::Error {
                error: describe("queue", &e),
            },
        };
        let drain = match ctx.store.last_heartbeat().await {
            Ok(Some(heartbeat)) => {
                let seen = DrainSeen::new(heartbeat, now);
                if seen.age_seconds <= DRAIN_STALE_AFTER_SECS {
                    DrainCheck::Ok(seen)
                } else {
                    DrainCheck::Stale(seen)
                }
            }
            Ok(None) => DrainCheck::Missing {
                detail: "no drain has reported yet; queued jobs wait until one runs",
            },
            Err(e) => DrainCheck::Error {
                error: describe("drain", &e),
            },
        };
        (queue, drain)
    } else {
        const SKIPPED: &str = "the store is unreachable";
        (
            QueueCheck::Skipped { detail: SKIPPED },
            DrainCheck::Skipped { detail: SKIPPED },
        )
    };
    let llm = match ctx.config.llm_provider {
        LlmProvider::Extractive => LlmCheck {
            status: "ok",
            mode: "extractive",
            provider: None,
            detail: "no language model is configured; answers quote the documents",
        },
        provider => LlmCheck {
            status: "ok",
            mode: "generative",
            provider: Some(provider.as_str()),
            detail: "the drain generates answers; its own start-up checks the credentials",
        },
    };

    let ready = ping.is_ok();
    let view = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        namespace: &ctx.config.namespace,
        checks: ReadinessChecks {
            store,
            queue,
            drain,
            llm,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json(status, &view);
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    Ok(no_store(response))
}
