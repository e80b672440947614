//! `PUT /api/chat/{id}/feedback`: a thin shim over flowchat-api (see src/lib.rs).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    flowchat::serve("/api/chat/[id]/feedback").await
}
