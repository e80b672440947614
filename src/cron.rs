//! `GET /api/cron/drain`: Vercel's scheduled drain (`vercel.json` `crons`).
//!
//! Vercel calls the route with `Authorization: Bearer $CRON_SECRET`; the
//! token is compared in constant time, and anything else is refused (401,
//! or 503 while `CRON_SECRET` is not set at all). With the embedded index
//! the route answers 409: a function has no disk to keep it on. Otherwise it
//! runs one bounded pass of the deployment's own namespace (see
//! [`crate::function_drain`]) and answers 200 with what it did.
//!
//! On a warm instance's first call the drain is prepared as every drain is
//! (`Drain::prepare`): documents embedded with the configured model and,
//! when `DOCUMENTS_PATH` names a folder that exists in the function
//! (shipped with `includeFiles`), the folder indexed by content hash. By
//! default a function has no such folder and that part is skipped.

use std::sync::Arc;
use std::time::Instant;

use flowchat_api::ApiError;
use flowchat_domain::Platform;
use flowchat_domain::config::AdminToken;
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::OnceCell;
use vercel_runtime::{Error, Request, Response, ResponseBody, service_fn};

use flowchat_drain::PassOutcome;

use crate::function_drain::{FunctionDrain, PassLimits};

/// What the route runs with, read once per process.
pub struct CronRoute {
    /// `CRON_SECRET`, `None` when unset.
    secret: Option<AdminToken>,
    limits: PassLimits,
    /// The drain, or why this deployment cannot drain in a function.
    drain: Result<FunctionDrain, String>,
    platform: Arc<dyn Platform>,
    prepared: OnceCell<()>,
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
        let settings = flowchat_config::function_drain_settings(app.vector_store, lookup)?;
        let drain = match crate::function_drain::unsuitable(&app) {
            Some(reason) => Err(reason),
            None => Ok(FunctionDrain::for_cron(
                &flowchat_config::drain_config(lookup)?,
                platform.clone(),
            )),
        };
        Ok(CronRoute {
            secret: settings.cron_secret,
            limits: PassLimits::new(
                settings.cron_budget_secs,
                app.drain.shutdown_grace_secs.into(),
            ),
            drain,
            platform,
            prepared: OnceCell::new(),
        })
    }

    /// Answers one call of the route.
    pub async fn answer(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Response<ResponseBody> {
        let request_id = flowchat_api::request_id(self.platform.as_ref(), headers);
        let response = match self.drain_if_allowed(method, headers).await {
            Ok(report) => flowchat_api::json(StatusCode::OK, &report),
            Err(error) => flowchat_api::problem_response(&error, &request_id),
        };
        crate::to_vercel(response)
    }

    async fn drain_if_allowed(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Result<DrainReport<'_>, ApiError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                allow: "GET",
            });
        }
        let Some(secret) = &self.secret else {
            tracing::error!("GET /api/cron/drain refused: CRON_SECRET is not set");
            return Err(ApiError::NotConfigured(
                "CRON_SECRET is not set: the scheduled drain refuses every call until the \
                 deployment has one (Vercel sends it as `Authorization: Bearer $CRON_SECRET`)"
                    .to_owned(),
            ));
        };
        if !flowchat_api::bearer_token(headers).is_some_and(|presented| secret.matches(presented)) {
            return Err(ApiError::Unauthorized(
                "this route is for Vercel's cron: it needs `Authorization: Bearer <CRON_SECRET>`"
                    .to_owned(),
            ));
        }
        let drain = self
            .drain
            .as_ref()
            .map_err(|reason| ApiError::RemoteIndexRequired(reason.clone()))?;
        let started = Instant::now();
        let unavailable = |error: String| {
            tracing::warn!(%error, "cron drain pass failed");
            ApiError::Unavailable
        };
        self.prepare_once(drain).await.map_err(unavailable)?;
        let outcome = drain.pass(self.limits).await.map_err(unavailable)?;
        let namespace = drain.config().app.namespace.as_str();
        outcome.log(namespace, "cron drain pass finished");
        Ok(DrainReport {
            namespace,
            outcome,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// What every drain does before answering, once per warm instance.
    async fn prepare_once(&self, drain: &FunctionDrain) -> Result<(), String> {
        self.prepared
            .get_or_try_init(|| async {
                drain.get().await?.prepare().await;
                Ok::<_, String>(())
            })
            .await
            .map(|_| ())
    }
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
    #[serde(flatten)]
    outcome: PassOutcome,
    elapsed_ms: u64,
}
