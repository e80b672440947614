//! The operator's commands on the queue: `stats` and `dead-letters`, printed
//! for people or as JSON; and the dispatch of the index operations (`ops`).

use flowchat_config::DrainConfig;
use flowchat_domain::JobId;
use flowchat_domain::config::StoreKind;

use crate::error::CliError;
use crate::{Command, DeadLetterCommand, ops};

pub async fn run(config: &DrainConfig, command: Command) -> Result<(), CliError> {
    match &command {
        Command::Backup { out } => {
            let manifest = ops::backup(&config.app, out).map_err(CliError::Other)?;
            println!(
                "backup written to {}: the index ({} bytes) and {} document(s)",
                out.display(),
                manifest.index.bytes,
                manifest.documents.len()
            );
            return Ok(());
        }
        Command::Restore { from } => {
            let report = ops::restore(&config.app, from).map_err(CliError::Other)?;
            println!(
                "restored the index and {} document(s) from the backup of {}",
                report.documents, report.created_at
            );
            for path in report.not_in_backup {
                println!("  kept {path} (not in the backup; the next scan indexes it)");
            }
            return Ok(());
        }
        Command::Reindex => return ops::reindex(config).await,
        _ => {}
    }
    let store = flowchat_startup::open_store(&config.app, config.upstash.clone()).await?;
    let registry = match config.app.store {
        StoreKind::Upstash => Some(flowchat_startup::upstash_store(
            &config.app,
            config.upstash.clone(),
        )?),
        StoreKind::Sqlite => None,
    };
    let now = flowchat_startup::now;
    let config = &config.app;
    let failed = |e: flowchat_store::StoreError| CliError::Other(e.into());
    match command {
        Command::Stats { json } => {
            let stats = store.queue_stats(now()).await.map_err(failed)?;
            let heartbeat = store.last_heartbeat().await.map_err(failed)?;
            // On Upstash, which namespaces a drain serving all would serve.
            let with_work = match &registry {
                Some(upstash) => Some(upstash.namespaces_with_work().await.map_err(failed)?),
                None => None,
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "namespace": config.namespace,
                        "queue": stats,
                        "heartbeat": heartbeat,
                        "namespaces_with_work": with_work,
                    })
                );
            } else {
                println!("namespace     {}", config.namespace);
                if let Some(names) = &with_work {
                    println!("with work     {}", display_list(names));
                }
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
        Command::Cleanup { json } => {
            let report = ops::cleanup::sweep_all(store.as_ref())
                .await
                .map_err(failed)?;
            if json {
                println!("{}", serde_json::json!(report));
            } else {
                println!(
                    "removed {} document(s), {} bytes, of {} ended session(s); their index chunks are queued for deletion",
                    report.documents, report.bytes, report.sessions
                );
            }
        }
        Command::Reindex => unreachable!("handled above"),
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
                        .map_err(|e| CliError::Config(anyhow::anyhow!("{e}")))?,
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
                return Err(CliError::Other(anyhow::anyhow!("nothing was replayed")));
            }
            println!("{replayed} job(s) back in the queue");
        }
    }
    Ok(())
}

fn display_list(names: &[String]) -> String {
    match names {
        [] => "no namespace".to_owned(),
        names => names.join(", "),
    }
}
