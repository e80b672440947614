use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use flowchat_devserver::{ServerOptions, start};

/// FlowChat on one machine: the API, the web app and the drain in one
/// process, with embedded storage and no accounts.
#[derive(Parser, Debug)]
#[command(name = "flowchat-devserver", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the sqlite files and the development secret live
    /// [default: $FLOWCHAT_DATA_DIR or ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The shared documents folder [default: $DOCUMENTS_PATH or <data dir>/documents].
    #[arg(long)]
    docs_dir: Option<PathBuf>,
    /// The built web app to serve [default: web/dist if it exists, else a built-in page].
    #[arg(long)]
    web_dir: Option<PathBuf>,
    /// Drain jobs processed at once; 0 leaves the queue to a separate
    /// `flowchat-drain` process.
    #[arg(long, default_value_t = 2)]
    drain_concurrency: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Started as a document reader process: read one document and exit.
    flowchat_knowledge::extract::run_extractor_if_requested();
    flowchat_startup::load_dotenv();
    flowchat_startup::restrict_new_file_permissions();
    let args = Args::parse();
    // Flags win over the environment.
    let flag = |dir: &Option<PathBuf>| dir.as_ref().map(|d| d.display().to_string());
    let (data_dir, docs_dir) = (flag(&args.data_dir), flag(&args.docs_dir));
    let config = flowchat_config::drain_config(|name| match name {
        "FLOWCHAT_DATA_DIR" if data_dir.is_some() => data_dir.clone(),
        "DOCUMENTS_PATH" if docs_dir.is_some() => docs_dir.clone(),
        _ => flowchat_startup::env_var(name),
    })?;
    flowchat_startup::init_tracing(config.app.log_format);
    flowchat_knowledge::extract::configure(config.extract.clone());

    let web_dir = args.web_dir.or_else(|| {
        let default = PathBuf::from("web/dist");
        default.join("index.html").exists().then_some(default)
    });
    if let Some(dir) = &web_dir {
        anyhow::ensure!(
            dir.join("index.html").exists(),
            "--web-dir {} has no index.html (build the web app first)",
            dir.display()
        );
    }
    let documents = config.app.documents_path.clone();
    let server = start(
        config,
        ServerOptions {
            host: args.host,
            port: args.port,
            web_dir,
            drain_concurrency: args.drain_concurrency,
        },
    )
    .await
    .context("the dev server could not start")?;

    println!("FlowChat is running at {}", server.url());
    println!("  documents folder: {documents} (POST /api/documents/ingest re-scans it)");
    println!("  press Ctrl+C to stop");

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl+C")?;
    println!("stopping…");
    server.stop().await;
    Ok(())
}
