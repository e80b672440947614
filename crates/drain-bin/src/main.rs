//! `flowchat-drain`: the slow half of FlowChat as a process.
//!
//! - `--once [--max-seconds N]`: a cron job (Render). Drains until the queue
//!   is empty or the budget is spent, then exits 0.
//! - `--follow [--concurrency N]`: a background worker. Polls with adaptive
//!   backoff until SIGTERM/SIGINT; with `BACKUP_EVERY_HOURS`, backs up the
//!   embedded index on a schedule (see `ops::scheduled`).
//! - `stats`, `dead-letters list`, `dead-letters replay [ID|--all]`,
//!   `feedback list`: admin (see `admin`).
//! - `reindex`, `backup --out FILE`, `restore --from FILE`: the knowledge
//!   index (see `ops`).
//! - `cleanup`: the documents of sessions that ended (also run by `--once`
//!   and hourly by `--follow`; see `ops::cleanup`).
//!
//! Exit codes: 0 done (store outages are logged: the next run retries),
//! 2 configuration error, 1 anything else an operator must look at.

mod admin;
mod error;
mod fleet;
mod ops;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;

#[derive(Parser, Debug)]
#[command(
    name = "flowchat-drain",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Drain until the queue is empty (or the budget is spent), then exit.
    #[arg(long, conflicts_with = "follow")]
    pub once: bool,
    /// Keep running and polling until SIGTERM/SIGINT.
    #[arg(long)]
    pub follow: bool,
    /// With --once: stop claiming after this many seconds.
    #[arg(long, default_value_t = 300, requires = "once")]
    pub max_seconds: u64,
    /// Jobs processed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Tests only: scheduled backups every N seconds instead of
    /// `BACKUP_EVERY_HOURS` (turns them on; `BACKUP_KEEP` and `BACKUP_DIR`
    /// still apply).
    #[arg(long, hide = true, requires = "follow", value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_every_secs: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Queue depth, running and delayed jobs, dead letters, last heartbeat.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Jobs that failed their last attempt.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Readers' 👍/👎 on answers, with the question, answer and sources.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Rebuild the index's shared-folder documents from the folder (new
    /// chunking, new embedding model); uploads are kept.
    Reindex,
    /// A consistent online copy of the sqlite index plus the documents
    /// folder, with a manifest, in one tar file.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup (stop the drains first).
    Restore {
        #[arg(long)]
        from: PathBuf,
    },
    /// Remove the private documents of sessions that ended: catalog entries
    /// and upload parts now, index chunks through queued `delete` jobs.
    Cleanup {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum FeedbackCommand {
    /// The most recent feedback, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON (whole answers and sources) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeadLetterCommand {
    /// The most recent dead letters, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Put dead-lettered jobs back in the queue with fresh attempts.
    Replay {
        /// The job to replay.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Started as a document reader process: read one document and exit.
    flowchat_knowledge::extract::run_extractor_if_requested();
    flowchat_startup::load_dotenv();
    flowchat_startup::restrict_new_file_permissions();
    let cli = Cli::parse();
    let config = match flowchat_config::drain_config(flowchat_startup::env_var) {
        Ok(config) => config,
        Err(e) => return report(e.into()),
    };
    flowchat_startup::init_tracing(config.app.log_format);
    flowchat_knowledge::extract::configure(config.extract.clone());
    let outcome = match cli.command {
        Some(command) => admin::run(&config, command).await,
        None if cli.run.once || cli.run.follow => run::drain(config, &cli.run).await,
        None => Err(CliError::Config(anyhow::anyhow!(
            "say what to do: --once (cron job), --follow (worker), stats, or dead-letters (see --help)"
        ))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

fn report(error: CliError) -> ExitCode {
    let (CliError::Config(e) | CliError::Other(e)) = &error;
    eprintln!("flowchat-drain: {e:#}");
    ExitCode::from(match error {
        CliError::Config(_) => 2,
        CliError::Other(_) => 1,
    })
}
