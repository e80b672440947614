//! `flowchat-drain`: the slow half of FlowChat as a process.
//!
//! - `--once [--max-seconds N]`: a cron job (Render). Drains until the queue
//!   is empty or the budget is spent, then exits 0.
//! - `--follow [--concurrency N]`: a background worker. Polls with adaptive
//!   backoff until SIGTERM/SIGINT.
//! - `stats`, `dead-letters list`, `dead-letters replay [ID|--all]`: admin.
//! - `reindex`, `backup --out FILE`, `restore --from FILE`: the knowledge
//!   index (see `ops`).
//!
//! Exit codes: 0 done (store outages are logged: the next run retries),
//! 2 configuration error, 1 anything else an operator must look at.

use std::process::ExitCode;
use std::time::Duration;

mod ops;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use std::sync::Arc;

use flowchat_domain::JobId;
use flowchat_domain::config::Config;
use flowchat_domain::model::{DocumentOrigin, DocumentOwner, JobPayload, JobResult};
use flowchat_drain::Drain;
use flowchat_native::{BootError, now};
use flowchat_store::NewJob;
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
    let (answerer, embedder) =
        flowchat_drain::boot::language_models(&config, flowchat_native::env_var)
            .map_err(|e| Failure::Config(e.into()))?;
    let store = flowchat_native::open_store(&config, flowchat_native::env_var).await?;
    flowchat_native::ensure_data_dir(&config)?;
    let index = flowchat_drain::boot::index(&config, flowchat_native::env_var)
        .await
        .map_err(|e| Failure::Other(e.into()))?;
    let worker_id = format!(
        "drain-{}-{}",
        flowchat_native::env_var("HOSTNAME").unwrap_or_else(|| "local".to_owned()),
        std::process::id()
    );
    // After an embedding-model change, bring every document's vectors to
    // the configured model before answering (vectors are never mixed, so
    // until then vector search would see only re-embedded documents).
    if let Some(embedder) = &embedder {
        match flowchat_knowledge::embed_missing(index.as_ref(), embedder.as_ref()).await {
            Ok(0) => {}
            Ok(documents) => tracing::info!(
                documents,
                model = embedder.model(),
                "documents embedded with the configured model"
            ),
            Err(error) => tracing::warn!(
                %error,
                "not every document could be embedded yet; the next start or folder scan retries"
            ),
        }
    }
    let options =
        flowchat_drain::boot::options(&config, worker_id, args.concurrency, answerer, embedder);
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
    match &command {
        Command::Backup { out } => {
            let manifest = ops::backup(config, out).map_err(Failure::Other)?;
            println!(
                "backup written to {}: the index ({} bytes) and {} document(s)",
                out.display(),
                manifest.index.bytes,
                manifest.documents.len()
            );
            return Ok(());
        }
        Command::Restore { from } => {
            let report = ops::restore(config, from).map_err(Failure::Other)?;
            println!(
                "restored the index and {} document(s) from the backup of {}",
                report.documents, report.created_at
            );
            for path in report.not_in_backup {
                println!("  kept {path} (not in the backup; the next scan indexes it)");
            }
            return Ok(());
        }
        _ => {}
    }
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
        Command::Reindex => reindex(config, store).await?,
        Command::Backup { .. } | Command::Restore { .. } => unreachable!("handled above"),
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

/// Drops the folder's documents from the index and scans the folder again,
/// through the same ingest job the API queues, so chunking, embeddings and
/// the catalog all follow the current configuration.
async fn reindex(config: &Config, store: Arc<dyn flowchat_store::Store>) -> Result<(), Failure> {
    let other = |e: anyhow::Error| Failure::Other(e);
    let (_, embedder) = flowchat_drain::boot::language_models(config, flowchat_native::env_var)
        .map_err(|e| Failure::Config(e.into()))?;
    let index = flowchat_drain::boot::index(config, flowchat_native::env_var)
        .await
        .map_err(|e| Failure::Other(e.into()))?;
    let uploads: std::collections::HashSet<_> = store
        .list_documents(None)
        .await
        .map_err(|e| other(e.into()))?
        .into_iter()
        .filter(|d| d.origin == DocumentOrigin::Upload)
        .map(|d| d.id)
        .collect();
    let mut dropped = 0;
    for doc in index
        .documents(&DocumentOwner::Shared)
        .await
        .map_err(|e| other(e.into()))?
    {
        if !uploads.contains(&doc.id) {
            index
                .remove_document(&doc.id)
                .await
                .map_err(|e| other(e.into()))?;
            dropped += 1;
        }
    }
    let job = store
        .enqueue(NewJob {
            id: JobId::from_random(flowchat_native::random_bytes()),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: now(),
        })
        .await
        .map_err(|e| other(e.into()))?;
    let answerer = flowchat_drain::Answerer::Extractive;
    let options =
        flowchat_drain::boot::options(config, "reindex".to_owned(), 1, answerer, embedder);
    let drain = Drain::new(store.clone(), index, options);
    // Other queued jobs may be processed too: that is harmless, and the
    // ingest job is the oldest claimable one only if the queue was empty.
    let budget = Duration::from_secs(3600);
    drain
        .run_until_idle(budget)
        .await
        .map_err(|e| other(e.into()))?;
    let done = store
        .get_job(&job.id)
        .await
        .map_err(|e| other(e.into()))?
        .ok_or_else(|| other(anyhow::anyhow!("the re-scan job disappeared")))?;
    match (&done.status, &done.result) {
        (flowchat_domain::model::JobStatus::Succeeded, Some(JobResult::Ingest(report))) => {
            println!(
                "reindexed: dropped {dropped} document(s), indexed {} (failed: {})",
                report.added + report.updated + report.unchanged,
                report.failed.len()
            );
            for failure in &report.failed {
                println!("  {}: {}", failure.source, failure.error);
            }
            Ok(())
        }
        _ => Err(Failure::Other(anyhow::anyhow!(
            "the re-scan did not finish: status {}, error {}",
            done.status.as_str(),
            done.error.as_deref().unwrap_or("none")
        ))),
    }
}
