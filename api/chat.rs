//! `POST /api/chat`: a thin shim over flowchat-api (see src/lib.rs), which
//! may drain the queue right after answering 202 (`flowchat::serve_chat`).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    flowchat::serve_chat().await
}
