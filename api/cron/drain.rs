//! `GET /api/cron/drain`: Vercel's scheduled drain (see src/cron.rs).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    flowchat::serve_cron_drain().await
}
