//! The local emulator: the whole API, the web app's static files and an
//! in-process drain in one process, with nothing to install or sign up for.
//! Tests start it on a random port through [`start`].

mod builtin_page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use flowchat_api::{AppContext, ClientIp};
use flowchat_config::DrainConfig;
use flowchat_domain::JobId;
use flowchat_domain::Platform;
use flowchat_domain::model::JobPayload;
use flowchat_drain::DrainIdentity;
use flowchat_startup::NativePlatform;
use flowchat_store::NewJob;
use http::{Method, header};
use tokio::sync::watch;
use tower_http::services::{ServeDir, ServeFile};

/// How the dev server was asked to run, beyond the environment.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// The built web app (`web/dist`); `None` serves the built-in page.
    pub web_dir: Option<PathBuf>,
    /// Drain jobs processed at once; 0 runs no drain in the process (jobs
    /// wait for a separate `flowchat-drain`), after the start-up indexing.
    pub drain_concurrency: u32,
}

struct AppState {
    api: AppContext,
    wake_drain: Arc<tokio::sync::Notify>,
}

/// A started dev server. Dropping it does not stop it; call [`RunningServer::stop`].
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    drain: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones and the drain finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.drain.await;
    }
}

/// Opens the store and the index, indexes the shared documents folder, then
/// serves. Returns once the server is accepting connections.
pub async fn start(config: DrainConfig, options: ServerOptions) -> anyhow::Result<RunningServer> {
    let documents_path = PathBuf::from(&config.app.documents_path);
    std::fs::create_dir_all(&documents_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the documents folder {}: {e}",
            documents_path.display()
        )
    })?;
    let platform: Arc<dyn Platform> = Arc::new(NativePlatform);
    let store = flowchat_startup::open_store(&config.app, config.upstash.clone()).await?;
    let secret = flowchat_startup::session_secret(&config.app)?;
    let drain = flowchat_drain::assemble(
        &config,
        store.clone(),
        platform.clone(),
        DrainIdentity {
            worker_id: format!("devserver-{}", std::process::id()),
            concurrency: options.drain_concurrency,
        },
    )
    .await?;
    let api = AppContext::new(config.app, store, platform, secret);

    // Index the shared folder before serving, so the first question can be
    // answered from it.
    tracing::info!(folder = %documents_path.display(), "indexing the shared documents folder");
    api.store
        .enqueue(NewJob {
            id: JobId::from_random(api.platform.random_bytes()),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: api.platform.now(),
        })
        .await?;
    drain.run_until_idle(Duration::from_secs(600)).await?;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let wake_drain = drain.waker();
    // With concurrency 0 the jobs wait for a separate `flowchat-drain`.
    let drain_task = if options.drain_concurrency == 0 {
        tokio::spawn(async {})
    } else {
        // As in a worker drain: the documents of ended sessions go hourly.
        let cleanup = flowchat_drain::cleanup::spawn_cleanup(
            api.store.clone(),
            api.platform.clone(),
            api.config.namespace.clone(),
            shutdown_rx.clone(),
        );
        let run = drain.run(shutdown_rx.clone());
        tokio::spawn(async move {
            run.await;
            let _ = cleanup.await;
        })
    };

    let state = Arc::new(AppState { api, wake_drain });
    let app = router(state, options.web_dir.as_deref());
    let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port)).await?;
    let addr = listener.local_addr()?;
    let mut server_shutdown = shutdown_rx;
    let server = tokio::spawn(async move {
        // Small responses (and streamed events) leave at once instead of
        // waiting out Nagle's algorithm against a delayed ACK (40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the dev server stopped with an error");
        }
    });
    Ok(RunningServer {
        addr,
        shutdown,
        server,
        drain: drain_task,
    })
}

fn router(state: Arc<AppState>, web_dir: Option<&std::path::Path>) -> Router {
    let api = Router::new()
        .route("/api", any(api_handler))
        .route("/api/{*rest}", any(api_handler))
        .with_state(state);
    match web_dir {
        Some(dir) => {
            // A single-page app: unknown paths get index.html.
            let index = dir.join("index.html");
            let files = Router::new()
                .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
                .layer(axum::middleware::from_fn(web_app_headers));
            api.merge(files)
        }
        None => api
            .route("/", get(builtin_page::page))
            .fallback(|| async { (http::StatusCode::NOT_FOUND, "not found") }),
    }
}

/// The web app's static-file headers, the same as `vercel.json` sets in
/// production: Vite's content-hashed `/assets/*` are cached for good,
/// everything else (index.html) is revalidated so a new build shows at once;
/// the CSP allows only the app's own scripts, styles and API.
async fn web_app_headers(request: http::Request<Body>, next: axum::middleware::Next) -> Response {
    let immutable = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, http::HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(WEB_APP_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Keep in step with `vercel.json`.
const WEB_APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Converts axum's request to the portable one (body read with
/// [`flowchat_api::read_limited`], client address from the socket or the
/// configured `TRUSTED_IP_HEADER`) and back.
async fn api_handler(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: http::Request<Body>,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = match flowchat_api::read_limited(&state.api, &parts, body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return to_axum(refusal),
    };
    // The socket's peer, unless TRUSTED_IP_HEADER names the header a
    // proxy in front of this server overwrites.
    let trusted = state.api.config.trusted_ip_header.as_deref();
    parts
        .extensions
        .insert(ClientIp::resolve(&parts.headers, trusted, Some(peer.ip())));
    let is_write = matches!(parts.method, Method::POST | Method::DELETE);
    let response = flowchat_api::handle(&state.api, http::Request::from_parts(parts, bytes)).await;
    if is_write && response.status().is_success() {
        state.wake_drain.notify_one();
    }
    to_axum(response)
}

/// Event streams are forwarded as they are produced.
fn to_axum(response: http::Response<flowchat_api::Body>) -> Response {
    response
        .map(|body| match body {
            flowchat_api::Body::Full(bytes) => Body::from(bytes),
            flowchat_api::Body::Events(stream) => {
                use futures_util::StreamExt;
                Body::from_stream(stream.map(Ok::<_, std::convert::Infallible>))
            }
        })
        .into_response()
}
