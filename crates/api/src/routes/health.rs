//! Liveness (`ping`, touches nothing) and readiness (`ready`, checks what a
//! request needs: the store, the queue, a live drain, the LLM mode).

use bytes::Bytes;
use flowchat_domain::config::LlmProvider;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::response::json;

/// A drain not seen for longer than this is reported as stale.
pub(crate) const DRAIN_STALE_AFTER_SECS: i64 = 120;

pub(crate) fn ping() -> Response<Bytes> {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

pub(crate) async fn ready(ctx: &AppContext) -> Result<Response<Bytes>, ApiError> {
    let started = ctx.platform.now();
    let ping = ctx.store.ping().await;
    let latency_ms = ctx.platform.now().millis_since(started);
    let now = ctx.platform.now();

    let store_check = match &ping {
        Ok(()) => {
            json!({"status": "ok", "backend": ctx.config.store.as_str(), "latency_ms": latency_ms})
        }
        Err(e) => {
            json!({"status": "error", "backend": ctx.config.store.as_str(), "latency_ms": latency_ms, "error": e.to_string()})
        }
    };
    let (queue_check, drain_check) = if ping.is_ok() {
        let queue = match ctx.store.queue_stats(now).await {
            Ok(stats) => json!({
                "status": "ok",
                "queued": stats.queued,
                "delayed": stats.delayed,
                "running": stats.running,
                "dead_letters": stats.dead_letters,
            }),
            Err(e) => json!({"status": "error", "error": e.to_string()}),
        };
        let drain = match ctx.store.last_heartbeat().await {
            Ok(Some(hb)) => {
                let age = now.millis_since(hb.at) / 1000;
                json!({
                    "status": if age <= DRAIN_STALE_AFTER_SECS { "ok" } else { "stale" },
                    "worker": hb.worker,
                    "last_seen": hb.at,
                    "age_seconds": age,
                })
            }
            Ok(None) => {
                json!({"status": "missing", "detail": "no drain has reported yet; queued jobs wait until one runs"})
            }
            Err(e) => json!({"status": "error", "error": e.to_string()}),
        };
        (queue, drain)
    } else {
        let skipped = json!({"status": "skipped", "detail": "the store is unreachable"});
        (skipped.clone(), skipped)
    };
    let llm_check = match ctx.config.llm_provider {
        LlmProvider::Extractive => json!({
            "status": "ok",
            "mode": "extractive",
            "detail": "no language model is configured; answers quote the documents",
        }),
        provider => json!({
            "status": "ok",
            "mode": "generative",
            "provider": provider.as_str(),
            "detail": "the drain generates answers; its own start-up checks the credentials",
        }),
    };

    let ready = ping.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "namespace": ctx.config.namespace,
        "checks": {
            "store": store_check,
            "queue": queue_check,
            "drain": drain_check,
            "llm": llm_check,
        }
    });
    let mut response = json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    );
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
