//! `GET /api/cron/drain`: Vercel's scheduled drain (see src/cron.rs).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    // Started as a document reader process: read one document and exit.
    flowchat_knowledge::extract::run_extractor_if_requested();
    flowchat::serve_cron_drain().await
}
