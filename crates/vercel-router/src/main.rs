//! `flowchat-vercel-router`: Vercel's routing on one port in front of the
//! function binaries, each already listening on its own `VERCEL_DEV_PORT`.
//! Started by `scripts/vercel-dev`; development and tests only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Serves the built web app and routes `/api/...` to the function binaries
/// by Vercel's rules (static files first, then the `api/` file tree, `[id]`
/// segments as query parameters), streaming requests and responses.
#[derive(Parser, Debug)]
#[command(name = "flowchat-vercel-router", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The built web app (static files; other paths outside /api/ get its
    /// index.html). A missing folder serves no files.
    #[arg(long, default_value = "web/dist")]
    web_dir: PathBuf,
    /// A function: ROUTE=PORT, the route as Vercel derives it from the file
    /// path (`/api/chat/[id]=4011`). Repeat for each function.
    #[arg(long = "function", value_name = "ROUTE=PORT", required = true)]
    functions: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut functions = Vec::new();
    for spec in &args.functions {
        let (route, port) = spec
            .split_once('=')
            .with_context(|| format!("--function {spec}: expected ROUTE=PORT"))?;
        anyhow::ensure!(
            route.starts_with("/api/"),
            "--function {spec}: the route must start with /api/"
        );
        let port: u16 = port
            .parse()
            .with_context(|| format!("--function {spec}: the port is not a number"))?;
        functions.push((route, port));
    }
    let router = flowchat_vercel_router::start_on(
        SocketAddr::new(args.host, args.port),
        args.web_dir,
        functions,
    )
    .await
    .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
    println!("flowchat-vercel-router listening on {}", router.url());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    router.stop().await;
    Ok(())
}
