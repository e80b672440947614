//! The Vercel adapter: every `api/**/*.rs` function calls [`serve`] with its
//! route pattern. It reads the configuration once per process, converts
//! Vercel's request to the portable `http::Request<Bytes>` (the body read by
//! `flowchat_api::read_limited`, so an oversized one is refused unread),
//! hands it to `flowchat_api::handle`, and streams the answer back.
//!
//! Two functions do more: `POST /api/chat` ([`serve_chat`]) may drain the
//! queue after answering, and `GET /api/cron/drain` ([`serve_cron_drain`])
//! is Vercel's scheduled drain; both are in [`function_drain`].

pub mod cron;
pub mod function_drain;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowchat_api::{AppContext, ClientIp};
use vercel_runtime::{AppState, Error, Request, Response, ResponseBody, service_fn};

pub use cron::serve_cron_drain;
use function_drain::{FunctionDrain, PassLimits, SignalWhenSent};

/// Serves one function. `route` is its path pattern, e.g. `/api/chat/[id]`:
/// Vercel passes a dynamic segment as `?id=`, which is put back into the
/// path when the request arrives under the file's own name.
pub async fn serve(route: &'static str) -> Result<(), Error> {
    serve_with(route, false).await
}

/// `POST /api/chat`: [`serve`], and — with the remote index, unless
/// `DRAIN_AFTER_RESPONSE=off` — a short drain pass after each 202, so an
/// answer starts within about a second instead of at the next cron tick.
///
/// How the pass runs after the response: vercel_runtime 2.4's
/// [`AppState::wait_until`] spawns a future and holds the invocation open
/// (the `end` message to Vercel waits for it, up to `maxDuration`) while
/// the response itself is returned at once. The 202's body reports when the
/// server is done writing it ([`SignalWhenSent`]), and the pass starts only
/// then, so the client has its 202 before the drain claims anything. The
/// pass claims for `DRAIN_AFTER_RESPONSE_SECONDS` (default 5) in this
/// deployment's namespace; jobs it claimed are finished. The cron route
/// remains the safety net for whatever is left.
pub async fn serve_chat() -> Result<(), Error> {
    serve_with("/api/chat", true).await
}

async fn serve_with(route: &'static str, drain_after_response: bool) -> Result<(), Error> {
    let config = flowchat_startup::config_from_env()?;
    flowchat_startup::init_tracing(config.log_format);
    let secret = flowchat_startup::session_secret(&config)?;
    let upstash = flowchat_config::upstash_config(flowchat_startup::env_var)?;
    let store = flowchat_startup::open_store(&config, upstash).await?;
    let platform: Arc<dyn flowchat_api::Platform> = Arc::new(flowchat_startup::NativePlatform);
    let after = match drain_after_response {
        true => AfterResponse::from_env(&config, store.clone(), platform.clone())?.map(Arc::new),
        false => None,
    };
    if let Some(after) = after.clone() {
        // Assembled while the instance starts (Chroma's collection, the
        // model clients), so the first 202's pass does not wait for it.
        tokio::spawn(async move {
            if let Err(error) = after.drain.get().await {
                tracing::warn!(%error, "the drain after the response is not ready yet");
            }
        });
    }
    let ctx = Arc::new(AppContext::new(config, store, platform, secret));
    vercel_runtime::run(service_fn(move |req: Request, state: AppState| {
        let ctx = ctx.clone();
        let after = after.clone();
        async move {
            let response = answer(&ctx, route, req).await;
            Ok::<_, Error>(match after {
                Some(after) if response.status() == http::StatusCode::ACCEPTED => {
                    after.schedule(response, &state)
                }
                _ => response,
            })
        }
    }))
    .await
}

/// The chat function's drain after the response (see [`serve_chat`]).
struct AfterResponse {
    drain: FunctionDrain,
    limits: PassLimits,
}

impl AfterResponse {
    fn from_env(
        config: &flowchat_domain::config::Config,
        store: Arc<dyn flowchat_store::Store>,
        platform: Arc<dyn flowchat_api::Platform>,
    ) -> Result<Option<AfterResponse>, flowchat_domain::ConfigError> {
        let lookup = flowchat_startup::env_var;
        let settings = flowchat_config::function_drain_settings(config.vector_store, lookup)?;
        let Some(budget) = settings.after_response_secs else {
            return Ok(None);
        };
        let drain_config = flowchat_config::drain_config(lookup)?;
        let limits = PassLimits::new(budget, drain_config.app.drain.shutdown_grace_secs.into());
        tracing::info!(
            budget_secs = budget,
            "answers are drained right after the 202 (DRAIN_AFTER_RESPONSE)"
        );
        Ok(Some(AfterResponse {
            drain: FunctionDrain::after_response(&drain_config, store, platform),
            limits,
        }))
    }

    /// Registers the pass with the runtime and returns the 202, whose body
    /// starts the pass once written.
    fn schedule(
        self: Arc<Self>,
        response: Response<ResponseBody>,
        state: &AppState,
    ) -> Response<ResponseBody> {
        let (parts, body) = response.into_parts();
        let (body, sent) = SignalWhenSent::new(body);
        state.wait_until(async move {
            // The body is dropped once hyper has written it (or the client
            // went away); a second at most, so nothing holds the pass back.
            let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
            match self.drain.pass(self.limits).await {
                Ok(outcome) => outcome.log(
                    &self.drain.config().app.namespace,
                    "drain pass after the response finished",
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "drain pass after the response failed; the cron drain will take the job"
                ),
            }
        });
        Response::from_parts(
            parts,
            ResponseBody(http_body_util::combinators::BoxBody::new(body)),
        )
    }
}

async fn answer(ctx: &AppContext, route: &str, req: Request) -> Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    let bytes = match flowchat_api::read_limited(ctx, &parts, body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return to_vercel(refusal),
    };
    if let Some(uri) = restore_dynamic_segment(route, &parts.uri) {
        parts.uri = uri;
    }
    parts.extensions.insert(client_ip(
        &parts.headers,
        ctx.config.trusted_ip_header.as_deref(),
    ));
    to_vercel(flowchat_api::handle(ctx, http::Request::from_parts(parts, bytes)).await)
}

fn to_vercel(response: http::Response<flowchat_api::Body>) -> Response<ResponseBody> {
    response.map(|body| match body {
        flowchat_api::Body::Full(bytes) => ResponseBody::from(bytes),
        // Vercel streams function responses: events reach the browser as
        // the drain writes them. Its body type must be `Sync`, which a store
        // future is not, so a task drives the stream into a channel; the
        // task ends when the client goes away (the channel closes).
        flowchat_api::Body::Events(mut stream) => {
            use futures_util::StreamExt;
            let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
            tokio::spawn(async move {
                while let Some(chunk) = stream.next().await {
                    if sender.send(chunk).await.is_err() {
                        break;
                    }
                }
            });
            let frames = tokio_stream::wrappers::ReceiverStream::new(receiver)
                .map(|chunk| Ok::<_, Error>(hyper::body::Frame::data(chunk)));
            ResponseBody::from(http_body_util::StreamBody::new(frames))
        }
    })
}

/// Vercel's edge sets `x-real-ip` itself, overwriting whatever a client
/// sent, so it is trusted by default; a function has no socket peer of its
/// own. Behind another proxy, `TRUSTED_IP_HEADER` names the header that
/// proxy sets instead. Nothing else is read: a client can write headers.
const VERCEL_IP_HEADER: &str = "x-real-ip";

fn client_ip(headers: &http::HeaderMap, trusted_header: Option<&str>) -> ClientIp {
    ClientIp::resolve(
        headers,
        Some(trusted_header.unwrap_or(VERCEL_IP_HEADER)),
        None,
    )
}

/// `/api/chat/[id]` requested as `/api/chat/[id]?id=abc` (or under any path
/// that is not already the filled-in route) becomes `/api/chat/abc?id=abc`;
/// likewise `/api/chat/[id]/events`.
fn restore_dynamic_segment(route: &str, uri: &http::Uri) -> Option<http::Uri> {
    let param = route
        .split('/')
        .find(|segment| segment.starts_with('[') && segment.ends_with(']'))?;
    let name = &param[1..param.len() - 1];
    let query = uri.query().unwrap_or("");
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)?;
    let wanted = route.replacen(param, value, 1);
    if uri.path() == wanted {
        return None;
    }
    format!("{wanted}?{query}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_segment_comes_back_from_the_query() {
        let uri: http::Uri = "/api/chat/[id]?id=abc&wait=2".parse().unwrap();
        let fixed = restore_dynamic_segment("/api/chat/[id]", &uri).unwrap();
        assert_eq!(fixed.path(), "/api/chat/abc");
        assert_eq!(fixed.query(), Some("id=abc&wait=2"));
        let already: http::Uri = "/api/chat/abc?id=abc".parse().unwrap();
        assert!(restore_dynamic_segment("/api/chat/[id]", &already).is_none());
        assert!(restore_dynamic_segment("/api/chat", &already).is_none());
        let events: http::Uri = "/api/chat/[id]/events?id=abc".parse().unwrap();
        let fixed = restore_dynamic_segment("/api/chat/[id]/events", &events).unwrap();
        assert_eq!(fixed.path(), "/api/chat/abc/events");
    }

    #[test]
    fn client_ip_is_the_trusted_header_only() {
        let ip = |h: &http::HeaderMap, trusted: Option<&str>| client_ip(h, trusted).0;
        let mut h = http::HeaderMap::new();
        assert_eq!(ip(&h, None), "unknown");
        // A client's own x-forwarded-for is not Vercel's word.
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        assert_eq!(ip(&h, None), "unknown");
        h.insert("x-real-ip", "198.51.100.7".parse().unwrap());
        assert_eq!(ip(&h, None), "198.51.100.7");
        // Behind another proxy: the last entry of the header it appends to.
        assert_eq!(ip(&h, Some("x-forwarded-for")), "10.0.0.1");
    }
}
