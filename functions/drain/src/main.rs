//! `flowchat-drain`: the slow half of FlowChat as a process.
//!
//! - `--once [--max-seconds N]`: a cron job (Render). Drains until the queue
//!   is empty or the budget is spent, then exits 0.
//! - `--follow [--concurrency N]`: a background worker. Polls with adaptive
//!   backoff until SIGTERM/SIGINT.
//! - `stats`, `dead-letters list`, `dead-letters replay [ID|--all]`: admin.
//!
//! Exit codes: 0 done (store outages are logged: the next run retries),
//! 2 configuration error, 1 anything else an operator must look at.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use flowchat_domain::JobId;
use flowchat_domain::config::Config;
use flowchat_drain::Drain;
use flowchat_knowledge::{KnowledgeIndex, SqliteIndex};
use flowchat_native::{BootError, now};
use tokio::sync::watch;

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
struct RunArgs {
    /// Drain until the queue is empty (or the budget is spent), then exit.
    #[arg(long, conflicts_with = "follow")]
    once: bool,
    /// Keep running and polling until SIGTERM/SIGINT.
    #[arg(long)]
    follow: bool,
    /// With --once: stop claiming after this many seconds.
    #[arg(long, default_value_t = 300, requires = "once")]
    max_seconds: u64,
    /// Jobs processed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Queue depth, running and delayed jobs, dead letters, last heartbeat.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Jobs that failed their last attempt.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(Subcommand, Debug)]
enum DeadLetterCommand {
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

/// What went wrong, sorted by who must act.
enum Failure {
    Config(anyhow::Error),
    Other(anyhow::Error),
}

impl From<BootError> for Failure {
    fn from(e: BootError) -> Self {
        match e {
            BootError::Config(_) | BootError::UpstashUnauthorized | BootError::Upstash(_) => {
                Failure::Config(e.into())
            }
            other => Failure::Other(other.into()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    flowchat_native::load_dotenv();
    let cli = Cli::parse();
    let config = match flowchat_native::config_from_env() {
        Ok(config) => config,
        Err(e) => return report(Failure::Config(e.into())),
    };
    flowchat_native::init_tracing(config.log_format);
    let outcome = match cli.command {
        Some(command) => admin(&config, command).await,
        None if cli.run.once || cli.run.follow => drain(config, &cli.run).await,
        None => Err(Failure::Config(anyhow::anyhow!(
            "say what to do: --once (cron job), --follow (worker), stats, or dead-letters (see --help)"
        ))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::Config(e) => {
            eprintln!("flowchat-drain: {e:#}");
            ExitCode::from(2)
        }
        Failure::Other(e) => {
            eprintln!("flowchat-drain: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn drain(config: Config, args: &RunArgs) -> Result<(), Failure> {
    let answerer = flowchat_drain::boot::answerer(&config, flowchat_native::env_var)
        .map_err(|e| Failure::Config(e.into()))?;
    let store = flowchat_native::open_store(&config, flowchat_native::env_var).await?;
    flowchat_native::ensure_data_dir(&config)?;
    let index: Arc<dyn KnowledgeIndex> = Arc::new(
        SqliteIndex::open(flowchat_native::knowledge_path(&config))
            .map_err(|e| Failure::Other(anyhow::anyhow!("cannot open the knowledge index: {e}")))?,
    );
    let worker_id = format!(
        "drain-{}-{}",
        flowchat_native::env_var("HOSTNAME").unwrap_or_else(|| "local".to_owned()),
        std::process::id()
    );
    let options = flowchat_drain::boot::options(&config, worker_id, args.concurrency, answerer);
    let drain = Drain::new(store, index, options);
    let shutdown = shutdown_on_signal();

    if args.once {
        let budget = Duration::from_secs(args.max_seconds);
        match drain.run_until_idle_or_shutdown(budget, shutdown).await {
            Ok(outcome) => {
                tracing::info!(
                    claimed = outcome.claimed,
                    succeeded = outcome.succeeded,
                    retried = outcome.retried,
                    dead_lettered = outcome.dead_lettered,
                    released = outcome.released,
                    "drain finished"
                );
            }
            // The next scheduled run tries again; a cron job failing here
            // would only add noise to an outage the readiness check shows.
            Err(e) => tracing::error!(error = %e, "the store failed; stopping this run"),
        }
    } else {
        drain.run(shutdown).await;
    }
    Ok(())
}

/// Turns true on SIGTERM (what Render, Kubernetes and systemd send) or SIGINT.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        let _ = sender.send(true);
    });
    receiver
}

async fn admin(config: &Config, command: Command) -> Result<(), Failure> {
    let store = flowchat_native::open_store(config, flowchat_native::env_var).await?;
    let failed = |e: flowchat_store::StoreError| Failure::Other(e.into());
    match command {
        Command::Stats { json } => {
            let stats = store.queue_stats(now()).await.map_err(failed)?;
            let heartbeat = store.last_heartbeat().await.map_err(failed)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"namespace": config.namespace, "queue": stats, "heartbeat": heartbeat})
                );
            } else {
                println!("namespace     {}", config.namespace);
                println!("queued        {}", stats.queued);
                println!("delayed       {}", stats.delayed);
                println!("running       {}", stats.running);
                println!("dead letters  {}", stats.dead_letters);
                match heartbeat {
                    Some(hb) => println!(
                        "last drain    {} ({} s ago)",
                        hb.worker,
                        now().millis_since(hb.at) / 1000
                    ),
                    None => println!("last drain    none has reported"),
                }
            }
        }
        Command::DeadLetters(DeadLetterCommand::List { limit, json }) => {
            let letters = store.dead_letters(limit).await.map_err(failed)?;
            if json {
                println!("{}", serde_json::json!(letters));
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                for l in letters {
                    println!(
                        "{}  {}  {} attempts  {}  {}",
                        l.job_id,
                        l.kind.as_str(),
                        l.attempts,
                        l.failed_at.to_rfc3339(),
                        l.error
                    );
                }
            }
        }
        Command::DeadLetters(DeadLetterCommand::Replay { id, all }) => {
            let ids: Vec<JobId> = if all {
                store
                    .dead_letters(u32::MAX)
                    .await
                    .map_err(failed)?
                    .into_iter()
                    .map(|l| l.job_id)
                    .collect()
            } else {
                let raw = id.unwrap_or_default();
                vec![
                    JobId::parse(&raw, "ID")
                        .map_err(|e| Failure::Config(anyhow::anyhow!("{e}")))?,
                ]
            };
            let mut replayed = 0;
            for id in &ids {
                if store.replay_dead_letter(id, now()).await.map_err(failed)? {
                    replayed += 1;
                    println!("replayed {id}");
                } else {
                    println!("{id} is not a dead letter");
                }
            }
            if !all && replayed == 0 {
                return Err(Failure::Other(anyhow::anyhow!("nothing was replayed")));
            }
            println!("{replayed} job(s) back in the queue");
        }
    }
    Ok(())
}
