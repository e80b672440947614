//! `flowchat-lambda-emulator`: runs a Lambda function binary (normally
//! `flowchat-lambda`) behind the Runtime API emulator and serves it on
//! 127.0.0.1 like a Function URL, for trying the Lambda build locally.
//! Development only. The function's own variables (FLOWCHAT_*, UPSTASH_*,
//! SESSION_SECRET, …) come from this process's environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use flowchat_lambda_emulator::{LambdaFront, Options};

#[derive(Parser)]
#[command(about = "Serve a Lambda function binary locally behind an emulated Function URL")]
struct Cli {
    /// The function's binary (the `bootstrap`), e.g. target/debug/flowchat-lambda.
    binary: PathBuf,
    /// Port of the HTTP front on 127.0.0.1.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Copies of the binary (Lambda's concurrent execution environments).
    #[arg(long, default_value_t = 4)]
    instances: usize,
    /// The function's timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let cli = Cli::parse();
    let options = Options {
        instances: cli.instances,
        timeout: Duration::from_secs(cli.timeout),
        port: cli.port,
        ..Options::default()
    };
    let front = LambdaFront::start_with(&cli.binary, &[], options).await?;
    eprintln!("serving {} on {}", cli.binary.display(), front.url());
    shutdown_signal().await?;
    front.stop().await;
    Ok(())
}

/// Ctrl-C or SIGTERM: either way the function's processes are killed
/// before this one exits, so none is left polling a closed Runtime API.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
