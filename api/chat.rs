//! `POST /api/chat`: a thin shim over flowchat-api (see src/lib.rs), which
//! may drain the queue right after answering 202 (`flowchat::serve_chat`).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    // Started as a document reader process: read one document and exit.
    flowchat_knowledge::extract::run_extractor_if_requested();
    flowchat::serve_chat().await
}
