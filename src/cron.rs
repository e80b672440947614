//! `GET /api/cron/drain`: Vercel's scheduled drain (`vercel.json` `crons`).
//!
//! Vercel calls the route with `Authorization: Bearer $CRON_SECRET`; the
//! token is compared in constant time, and anything else is refused (401,
//! or 503 while `CRON_SECRET` is not set at all). With the embedded index
//! the route answers 409: a function has no disk to keep it on. Otherwise it
//! runs one bounded pass of the deployment's own namespace (see
//! [`crate::function_drain`]) and answers 200 with what it did.
//!
//! On a warm instance's first call, when `DOCUMENTS_PATH` names a folder
//! that exists in the function (shipped with `includeFiles`), the folder is
//! indexed first, by content hash (an unchanged folder costs a read per
//! file). By default a function has no such folder and this is skipped.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flowchat_domain::Platform;
use flowchat_domain::config::AdminToken;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use tokio::sync::OnceCell;
use vercel_runtime::{Error, Request, Response, ResponseBody, service_fn};

use crate::function_drain::{FunctionDrain, PassLimits};

/// What the route runs with, read once per process.
pub struct CronRoute {
    /// `CRON_SECRET`, `None` when unset.
    secret: Option<AdminToken>,
    limits: PassLimits,
    /// The drain, or why this deployment cannot drain in a function.
    drain: Result<FunctionDrain, String>,
    platform: Arc<dyn Platform>,
    folder_indexed: OnceCell<()>,
}

impl CronRoute {
    /// The drain's settings are read only where a function can drain: a
    /// deployment with the embedded index need not carry the models'
    /// credentials for its cron route to answer 409.
    pub fn new(
        lookup: impl Fn(&str) -> Option<String> + Copy,
        platform: Arc<dyn Platform>,
    ) -> Result<CronRoute, flowchat_domain::ConfigError> {
        let app = flowchat_config::app_config(lookup)?;
        let secret = flowchat_config::Env::new(lookup)
            .get("CRON_SECRET")
            .map(AdminToken::new);
        let budget = crate::function_drain::cron_budget_secs(lookup)?;
        let drain = match crate::function_drain::unsuitable(&app) {
            Some(reason) => Err(reason),
            None => Ok(FunctionDrain::for_cron(
                &flowchat_config::drain_config(lookup)?,
                platform.clone(),
            )),
        };
        Ok(CronRoute {
            secret,
            limits: PassLimits::new(budget, app.drain.shutdown_grace_secs.into()),
            drain,
            platform,
            folder_indexed: OnceCell::new(),
        })
    }

    /// Answers one call of the route.
    pub async fn answer(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Response<ResponseBody> {
        let request_id = request_id(self.platform.as_ref(), headers);
        if method != Method::GET && method != Method::HEAD {
            let mut response = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("{method} is not allowed here; use GET"),
                &request_id,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let Some(secret) = &self.secret else {
            tracing::error!("GET /api/cron/drain refused: CRON_SECRET is not set");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "CRON_SECRET is not set: the scheduled drain refuses every call until the \
                 deployment has one (Vercel sends it as `Authorization: Bearer $CRON_SECRET`)"
                    .to_owned(),
                &request_id,
            );
        };
        if !bearer(headers).is_some_and(|presented| secret.matches(presented)) {
            let mut response = problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                "this route is for Vercel's cron: it needs `Authorization: Bearer <CRON_SECRET>`"
                    .to_owned(),
                &request_id,
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let drain = match &self.drain {
            Ok(drain) => drain,
            Err(reason) => {
                return problem(
                    StatusCode::CONFLICT,
                    "remote-index-required",
                    "This deployment cannot drain in a function",
                    reason.clone(),
                    &request_id,
                );
            }
        };
        let started = Instant::now();
        if let Err(error) = self.index_folder_once(drain).await {
            return unavailable(&request_id, error);
        }
        match drain.pass(self.limits).await {
            Ok(outcome) => {
                let report = DrainReport {
                    namespace: &drain.config().app.namespace,
                    claimed: outcome.claimed,
                    succeeded: outcome.succeeded,
                    retried: outcome.retried,
                    dead_lettered: outcome.dead_lettered,
                    released: outcome.released,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                };
                tracing::info!(
                    namespace = report.namespace,
                    claimed = report.claimed,
                    succeeded = report.succeeded,
                    retried = report.retried,
                    dead_lettered = report.dead_lettered,
                    released = report.released,
                    elapsed_ms = report.elapsed_ms,
                    "cron drain pass finished"
                );
                json(StatusCode::OK, &report, "application/json")
            }
            Err(error) => unavailable(&request_id, error),
        }
    }

    /// The shared folder, once per warm instance, when it exists here.
    async fn index_folder_once(&self, drain: &FunctionDrain) -> Result<(), String> {
        let folder = std::path::PathBuf::from(&drain.config().app.documents_path);
        if !folder.is_dir() {
            return Ok(());
        }
        self.folder_indexed
            .get_or_try_init(|| async {
                match drain.get().await?.index_shared_folder().await {
                    Ok(report) => tracing::info!(
                        folder = %folder.display(),
                        added = report.added,
                        updated = report.updated,
                        unchanged = report.unchanged,
                        removed = report.removed,
                        failed = report.failed.len(),
                        "shared documents folder indexed"
                    ),
                    Err(error) => tracing::warn!(
                        %error,
                        folder = %folder.display(),
                        "the shared documents folder could not be indexed; draining anyway"
                    ),
                }
                Ok::<_, String>(())
            })
            .await
            .map(|_| ())
    }
}

fn unavailable(request_id: &str, error: String) -> Response<ResponseBody> {
    tracing::warn!(%error, "cron drain pass failed");
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        format!("the drain could not run: {error}; the next scheduled call tries again"),
        request_id,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// `GET /api/cron/drain`'s function (`api/cron/drain.rs`).
pub async fn serve_cron_drain() -> Result<(), Error> {
    let config = flowchat_startup::config_from_env()?;
    flowchat_startup::init_tracing(config.log_format);
    let platform: Arc<dyn Platform> = Arc::new(flowchat_startup::NativePlatform);
    let route = Arc::new(CronRoute::new(flowchat_startup::env_var, platform)?);
    vercel_runtime::run(service_fn(move |req: Request| {
        let route = route.clone();
        async move { Ok::<_, Error>(route.answer(req.method(), req.headers()).await) }
    }))
    .await
}

/// The 200 answer: what the pass did.
#[derive(Serialize)]
struct DrainReport<'a> {
    namespace: &'a str,
    claimed: u32,
    succeeded: u32,
    retried: u32,
    dead_lettered: u32,
    released: u32,
    elapsed_ms: u64,
}

/// The API's problem+json body (RFC 9457), field for field as
/// `flowchat_api` writes it (its type is private to that crate).
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'static str,
    status: u16,
    detail: String,
    request_id: &'a str,
}

fn problem(
    status: StatusCode,
    slug: &str,
    title: &'static str,
    detail: String,
    request_id: &str,
) -> Response<ResponseBody> {
    let body = Problem {
        problem_type: format!("urn:flowchat:problem:{slug}"),
        title,
        status: status.as_u16(),
        detail,
        request_id,
    };
    let mut response = json(status, &body, "application/problem+json");
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn json(
    status: StatusCode,
    body: &impl Serialize,
    content_type: &'static str,
) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(ResponseBody::from(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The caller's `x-request-id` when short and plain (as the API does), else
/// a fresh one.
fn request_id(platform: &dyn Platform, headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            platform
                .random_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_credential_is_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer(&h), Some("s3cret"));
    }
}
