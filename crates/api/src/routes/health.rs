//! Liveness (`ping`, touches nothing) and readiness (`ready`, checks what a
//! request needs: the store, the queue, a live drain, the LLM mode).

use flowchat_domain::config::LlmProvider;
use http::{HeaderValue, Response, StatusCode, header};

use crate::context::AppContext;
use crate::error::ApiError;
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
pub(crate) async fn ready(ctx: &AppContext) -> Result<Response<Body>, ApiError> {
    let started = ctx.platform.now();
    let ping = ctx.store.ping().await;
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
            error: e.to_string(),
        },
    };
    let (queue, drain) = if ping.is_ok() {
        let queue = match ctx.store.queue_stats(now).await {
            Ok(stats) => QueueCheck::Ok(stats),
            Err(e) => QueueCheck::Error {
                error: e.to_string(),
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
                error: e.to_string(),
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
