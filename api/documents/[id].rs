//! `GET` / `DELETE /api/documents/{id}`: a thin shim over flowchat-api (see src/lib.rs).

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    flowchat::serve("/api/documents/[id]").await
}
