//! Vercel's routing in front of the function binaries, as the platform
//! applies it (and `vercel dev` imitates it). A development and test tool:
//! `scripts/vercel-dev` runs it as `flowchat-vercel-router`, and the HTTP
//! suite (`tests/http_suite`) starts it in-process.
//!
//!
//! 1. the filesystem first: a file of the built web app is served as is;
//! 2. `vercel.json`'s rewrite: any other path outside `/api/` is the app's
//!    `index.html`;
//! 3. `/api/...` goes to the function whose file path matches, static
//!    segments before dynamic ones (`api/chat/completions.rs` before
//!    `api/chat/[id].rs`); a dynamic segment reaches the function as a query
//!    parameter, under the file's own path: `/api/chat/abc/events?x=1`
//!    becomes `/api/chat/[id]/events?id=abc&x=1`;
//! 4. no function: the platform's own 404 (`NOT_FOUND`, not problem+json).
//!
//! Request bodies are streamed to the function as they arrive (so a function
//! can refuse a declared size before the body is sent) and responses are
//! streamed back (so Server-Sent Events flow). The router sets `x-real-ip`
//! and `x-forwarded-for` from the socket, as Vercel's edge does.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

struct Routes {
    web: PathBuf,
    /// (route pattern split into segments, port), most specific first.
    functions: Vec<(Vec<String>, u16)>,
}

pub struct VercelRouter {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl VercelRouter {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The router on a free port of 127.0.0.1, serving `web` (the built web
/// app) and the functions: (route as Vercel derives it from the file path,
/// e.g. `/api/chat/[id]`, the port the function listens on).
pub async fn start(web: PathBuf, functions: Vec<(&str, u16)>) -> anyhow::Result<VercelRouter> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), web, functions).await
}

/// The router on this address (port 0 picks a free one).
pub async fn start_on(
    addr: SocketAddr,
    web: PathBuf,
    functions: Vec<(&str, u16)>,
) -> anyhow::Result<VercelRouter> {
    let mut functions: Vec<(Vec<String>, u16)> = functions
        .into_iter()
        .map(|(route, port)| (segments(route), port))
        .collect();
    // Static segments win over dynamic ones.
    functions.sort_by_key(|(segs, _)| segs.iter().filter(|s| is_dynamic(s)).count());
    let routes = Arc::new(Routes { web, functions });
    let app = axum::Router::new()
        .fallback(route)
        .with_state(routes)
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await;
    });
    Ok(VercelRouter {
        addr,
        shutdown,
        task,
    })
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

fn is_dynamic(segment: &str) -> bool {
    segment.starts_with('[') && segment.ends_with(']')
}

/// The function for this path, and the path and query it receives.
fn resolve(routes: &Routes, path: &str, query: Option<&str>) -> Option<(u16, String)> {
    let wanted = segments(path);
    'routes: for (pattern, port) in &routes.functions {
        if pattern.len() != wanted.len() {
            continue;
        }
        let mut params = Vec::new();
        for (p, w) in pattern.iter().zip(&wanted) {
            if is_dynamic(p) {
                if w.is_empty() {
                    continue 'routes;
                }
                params.push(format!("{}={w}", &p[1..p.len() - 1]));
            } else if p != w {
                continue 'routes;
            }
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            params.push(q.to_owned());
        }
        let mut target = format!("/{}", pattern.join("/"));
        if !params.is_empty() {
            target.push('?');
            target.push_str(&params.join("&"));
        }
        return Some((*port, target));
    }
    None
}

/// A file of the web app, if the path names one (never outside the folder).
fn static_file(web: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = web.join(relative);
    file.is_file().then_some(file)
}

async fn route(
    State(routes): State<Arc<Routes>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(file) = static_file(&routes.web, &path) {
        return serve_file(&file).await;
    }
    if !path.starts_with("/api/") {
        return serve_file(&routes.web.join("index.html")).await;
    }
    match resolve(&routes, &path, request.uri().query()) {
        Some((port, target)) => forward(port, &target, peer, request).await,
        None => (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("x-vercel-error"),
                    "NOT_FOUND",
                ),
            ],
            "The page could not be found\n\nNOT_FOUND\n",
        )
            .into_response(),
    }
}

async fn serve_file(file: &Path) -> Response {
    let Ok(bytes) = tokio::fs::read(file).await else {
        return (StatusCode::NOT_FOUND, "NOT_FOUND").into_response();
    };
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

/// Hop-by-hop headers, never forwarded.
const HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !HOP.contains(&name.as_str()) && name != header::HOST {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

async fn forward(port: u16, target: &str, peer: SocketAddr, request: Request<Body>) -> Response {
    match try_forward(port, target, peer, request).await {
        Ok(response) => response,
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the function on port {port} did not answer: {e:#}"),
        )
            .into_response(),
    }
}

async fn try_forward(
    port: u16,
    target: &str,
    peer: SocketAddr,
    request: Request<Body>,
) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let mut headers = end_to_end(&parts.headers);
    let ip = HeaderValue::from_str(&peer.ip().to_string())?;
    headers.insert("x-real-ip", ip.clone());
    headers.insert("x-forwarded-for", ip);
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("127.0.0.1:{port}"))?,
    );
    if let Some(te) = parts.headers.get(header::TRANSFER_ENCODING) {
        headers.insert(header::TRANSFER_ENCODING, te.clone());
    }
    let mut outgoing = Request::builder()
        .method(parts.method)
        .uri(target)
        .body(body)?;
    *outgoing.headers_mut() = headers;

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(Forgiving::new(tcp))).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let answer = sender.send_request(outgoing).await?;
    let (mut parts, body) = answer.into_parts();
    parts.headers = end_to_end(&parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The connection to a function, which may answer before it has read the
/// request body (a declared size over its limit) and close. The response is
/// what matters: once a write fails because the function has gone, further
/// writes are swallowed so that the answer already received is still read.
struct Forgiving {
    tcp: tokio::net::TcpStream,
    closed: bool,
}

impl Forgiving {
    fn new(tcp: tokio::net::TcpStream) -> Self {
        Forgiving { tcp, closed: false }
    }
}

impl tokio::io::AsyncRead for Forgiving {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Forgiving {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.tcp).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if gone(&e) => {
                self.closed = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.tcp).poll_flush(cx) {
            Poll::Ready(Err(e)) if gone(&e) => {
                self.closed = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let mut functions: Vec<(Vec<String>, u16)> = [
            ("/api/chat", 1),
            ("/api/chat/[id]", 2),
            ("/api/chat/[id]/events", 3),
            ("/api/chat/completions", 4),
        ]
        .into_iter()
        .map(|(route, port)| (segments(route), port))
        .collect();
        functions.sort_by_key(|(segs, _)| segs.iter().filter(|s| is_dynamic(s)).count());
        Routes {
            web: PathBuf::from("/nonexistent"),
            functions,
        }
    }

    #[test]
    fn static_segments_win_and_dynamic_ones_become_query_parameters() {
        let routes = routes();
        assert_eq!(
            resolve(&routes, "/api/chat", None),
            Some((1, "/api/chat".into()))
        );
        assert_eq!(
            resolve(&routes, "/api/chat/completions", None),
            Some((4, "/api/chat/completions".into()))
        );
        assert_eq!(
            resolve(&routes, "/api/chat/abc", Some("wait=20")),
            Some((2, "/api/chat/[id]?id=abc&wait=20".into()))
        );
        assert_eq!(
            resolve(&routes, "/api/chat/abc/events", None),
            Some((3, "/api/chat/[id]/events?id=abc".into()))
        );
        assert_eq!(resolve(&routes, "/api/chat/", None), None);
        assert_eq!(resolve(&routes, "/api/nothing", None), None);
    }

    #[test]
    fn static_files_never_leave_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir_all(web.join("assets")).unwrap();
        std::fs::write(web.join("assets/app.js"), "").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "").unwrap();
        assert_eq!(
            static_file(&web, "/assets/app.js"),
            Some(web.join("assets/app.js"))
        );
        assert_eq!(static_file(&web, "/assets"), None);
        assert_eq!(static_file(&web, "/../secret.txt"), None);
    }
}
