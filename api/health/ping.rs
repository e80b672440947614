//! `GET /api/health/ping`: a thin shim over flowchat-api (see src/lib.rs).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    flowchat::serve("/api/health/ping").await
}
