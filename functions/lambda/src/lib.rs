//! The AWS Lambda adapter: one function serves every `/api/...` route.
//!
//! Like the Vercel adapter (`src/lib.rs` at the repository root) it reads the
//! configuration once per process (once per Lambda execution environment,
//! i.e. at cold start), converts each event to the portable
//! `http::Request<Bytes>` (the body read by `flowchat_api::read_limited`, so
//! the limits hold exactly as on every other runtime), hands it to
//! `flowchat_api::handle`, and converts the answer back.
//!
//! Answers leave through Lambda's *response streaming*: behind a Function URL
//! with `InvokeMode: RESPONSE_STREAM` an SSE stream (`Body::Events`) reaches
//! the browser as the drain writes it; a complete body (`Body::Full`) is one
//! chunk. The client address comes from the event's request context
//! (`sourceIp`), which Lambda fills in from the connection: a client cannot
//! forge it with a header.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use flowchat_api::{AppContext, ClientIp};
use flowchat_domain::ConfigError;
use flowchat_domain::config::{Config, Environment, StoreKind};
use flowchat_startup::StartupError;
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;
use lambda_http::request::RequestContext;

/// The body handed to `lambda_http`: a stream of frames that is `Send` and
/// `Unpin`, as its streaming runtime requires. It never fails: an API error
/// is already a problem+json answer by the time it gets here.
pub type ResponseBody =
    StreamBody<Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>>;

/// Why the function could not start. Each message names the variable to
/// fix; none echoes a secret.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
}

impl StartError {
    /// The process's exit code: 2 when an operator must change the
    /// configuration (as the drain binary does), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let configuration = match self {
            StartError::Config(_) => true,
            StartError::Startup(e) => e.is_configuration(),
        };
        if configuration { 2 } else { 1 }
    }
}

/// Everything start-up settles, read once per execution environment.
pub async fn context_from_env() -> Result<Arc<AppContext>, StartError> {
    let config = flowchat_startup::config_from_env()?;
    flowchat_startup::init_tracing(config.log_format);
    check_store(&config)?;
    let secret = flowchat_startup::session_secret(&config)?;
    let upstash = flowchat_config::upstash_config(flowchat_startup::env_var)?;
    let store = flowchat_startup::open_store(&config, upstash).await?;
    let platform = Arc::new(flowchat_startup::NativePlatform);
    Ok(Arc::new(AppContext::new(config, store, platform, secret)))
}

/// A Lambda execution environment has only an ephemeral `/tmp` of its own:
/// a SQLite file there is not shared with other instances or with the drain,
/// so sessions and jobs would vanish between requests. Production therefore
/// needs Upstash; development may use SQLite to run the binary locally.
pub fn check_store(config: &Config) -> Result<(), ConfigError> {
    if config.env == Environment::Production && config.store == StoreKind::Sqlite {
        return Err(ConfigError {
            variable: "FLOWCHAT_STORE",
            message: "must be `upstash` on AWS Lambda in production: a SQLite file on the function's ephemeral disk is not shared between instances or with the drain (set FLOWCHAT_STORE=upstash and UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN)".to_owned(),
        });
    }
    Ok(())
}

/// Answers one event. Never fails: every refusal is an HTTP answer.
pub async fn answer(ctx: &AppContext, req: lambda_http::Request) -> http::Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    let bytes = match flowchat_api::read_limited(ctx, &parts, body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return to_lambda(refusal),
    };
    let context = parts.extensions.get::<RequestContext>();
    // The connection's address Lambda reports, unless TRUSTED_IP_HEADER
    // names the header a proxy in front of the function overwrites.
    let ip = ClientIp::resolve(
        &parts.headers,
        ctx.config.trusted_ip_header.as_deref(),
        source_ip(context).parse().ok(),
    );
    if let Some(uri) = without_stage(&parts.uri, stage(context)) {
        parts.uri = uri;
    }
    parts.extensions.insert(ip);
    to_lambda(flowchat_api::handle(ctx, http::Request::from_parts(parts, bytes)).await)
}

/// Converts the core's body to frames: a complete body as one chunk, an
/// event stream chunk by chunk as it is produced.
pub fn to_lambda(response: http::Response<flowchat_api::Body>) -> http::Response<ResponseBody> {
    response.map(|body| {
        let frames: Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>> =
            match body {
                flowchat_api::Body::Full(bytes) => Box::pin(futures_util::stream::once(
                    std::future::ready(Ok(Frame::data(bytes))),
                )),
                flowchat_api::Body::Events(stream) => {
                    Box::pin(stream.map(|chunk| Ok(Frame::data(chunk))))
                }
            };
        StreamBody::new(frames)
    })
}

/// The client's address from the request context: `requestContext.http.sourceIp`
/// for API Gateway HTTP API (payload 2.0) and Function URL events. Lambda
/// sets it from the connection; headers such as `X-Forwarded-For` are not
/// consulted because a client can write them.
pub fn source_ip(context: Option<&RequestContext>) -> String {
    let ip = match context {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
        _ => None,
    };
    ip.map(str::trim)
        .filter(|ip| !ip.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

fn stage(context: Option<&RequestContext>) -> Option<&str> {
    match context {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    }
}

/// Behind an API Gateway stage other than `$default`, `lambda_http` puts
/// the stage in front of the path (`/prod/api/chat`); the routes are
/// `/api/...`, so the stage comes off again. Function URLs and the
/// `$default` stage need nothing.
pub fn without_stage(uri: &http::Uri, stage: Option<&str>) -> Option<http::Uri> {
    let stage = stage.filter(|s| !s.is_empty() && *s != "$default")?;
    let rest = uri.path().strip_prefix('/')?.strip_prefix(stage)?;
    if !rest.starts_with("/api/") && rest != "/api" {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    path_and_query.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;

    fn v2_context(source_ip: Option<&str>, stage: Option<&str>) -> RequestContext {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.http.source_ip = source_ip.map(str::to_owned);
        ctx.stage = stage.map(str::to_owned);
        RequestContext::ApiGatewayV2(ctx)
    }

    #[test]
    fn client_ip_is_the_contexts_source_ip() {
        assert_eq!(
            source_ip(Some(&v2_context(Some("203.0.113.9"), None))),
            "203.0.113.9"
        );
        assert_eq!(source_ip(Some(&v2_context(Some(" "), None))), "unknown");
        assert_eq!(source_ip(Some(&v2_context(None, None))), "unknown");
        assert_eq!(source_ip(None), "unknown");
    }

    #[test]
    fn a_named_stage_comes_off_the_path() {
        let uri: http::Uri = "/prod/api/chat/abc?wait=2".parse().unwrap();
        let fixed = without_stage(&uri, Some("prod")).unwrap();
        assert_eq!(fixed.path(), "/api/chat/abc");
        assert_eq!(fixed.query(), Some("wait=2"));
        let plain: http::Uri = "/api/chat".parse().unwrap();
        assert!(without_stage(&plain, Some("$default")).is_none());
        assert!(without_stage(&plain, None).is_none());
        assert!(without_stage(&plain, Some("prod")).is_none());
        let other: http::Uri = "/production/api/chat".parse().unwrap();
        assert!(without_stage(&other, Some("prod")).is_none());
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        flowchat_config::app_config(move |k| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn production_refuses_sqlite_and_names_the_variable() {
        let error = check_store(&config(&[
            ("FLOWCHAT_ENV", "production"),
            ("FLOWCHAT_STORE", "sqlite"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "FLOWCHAT_STORE");
        assert!(check_store(&config(&[("FLOWCHAT_STORE", "sqlite")])).is_ok());
        assert!(
            check_store(&config(&[
                ("FLOWCHAT_ENV", "production"),
                ("FLOWCHAT_STORE", "upstash"),
            ]))
            .is_ok()
        );
    }

    #[tokio::test]
    async fn bodies_become_frames_in_order() {
        let full = to_lambda(http::Response::new(flowchat_api::Body::Full(
            Bytes::from_static(b"{\"ok\":true}"),
        )));
        let bytes = BodyExt::collect(full.into_body()).await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"ok\":true}");

        let events = futures_util::stream::iter([
            Bytes::from_static(b"event: a\n\n"),
            Bytes::from_static(b"event: b\n\n"),
        ]);
        let streamed = to_lambda(http::Response::new(flowchat_api::Body::Events(Box::pin(
            events,
        ))));
        let mut body = streamed.into_body();
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            chunks.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(chunks, [&b"event: a\n\n"[..], &b"event: b\n\n"[..]]);
    }
}
