//! Draining: as a cron job (`--once`) or a worker (`--follow`).

use std::sync::Arc;
use std::time::Duration;

use flowchat_config::DrainConfig;
use flowchat_drain::{Drain, DrainIdentity};
use tokio::sync::watch;

use crate::error::CliError;
use crate::fleet::Fleet;
use crate::{RunArgs, ops};

/// The store and a drain over it, assembled the way every command of this
/// binary that processes jobs needs them.
pub async fn open_drain(
    config: &DrainConfig,
    worker_id: String,
    concurrency: u32,
) -> Result<Arc<Drain>, CliError> {
    let store = flowchat_startup::open_store(&config.app, config.upstash.clone()).await?;
    flowchat_startup::ensure_data_dir(&config.app)?;
    let platform = Arc::new(flowchat_startup::NativePlatform);
    let identity = DrainIdentity {
        worker_id,
        concurrency,
    };
    Ok(flowchat_drain::assemble(config, store, platform, identity).await?)
}

pub async fn drain(config: DrainConfig, args: &RunArgs) -> Result<(), CliError> {
    let worker_id = format!(
        "drain-{}-{}",
        flowchat_startup::env_var("HOSTNAME").unwrap_or_else(|| "local".to_owned()),
        std::process::id()
    );
    if config.namespaces.single().is_none() {
        return drain_several(config, args, worker_id).await;
    }
    let drain = open_drain(&config, worker_id, args.concurrency).await?;
    drain.prepare().await;
    let shutdown = shutdown_on_signal();

    if args.once {
        ops::cleanup::sweep_logged(drain.store().as_ref(), &config.app.namespace).await;
        let budget = Duration::from_secs(args.max_seconds);
        match drain.run_until_idle_or_shutdown(budget, shutdown).await {
            Ok(outcome) => outcome.log(&config.app.namespace, "drain finished"),
            // The next scheduled run tries again; a cron job failing here
            // would only add noise to an outage the readiness check shows.
            Err(e) => tracing::error!(error = %e, "the store failed; stopping this run"),
        }
    } else {
        let backups = scheduled_backups(&config, args).map(|schedule| {
            ops::scheduled::start(
                drain.clone(),
                config.app.clone(),
                schedule,
                shutdown.clone(),
            )
        });
        let cleanup = ops::cleanup::start(
            drain.store().clone(),
            config.app.namespace.clone(),
            shutdown.clone(),
        );
        drain.run(shutdown).await;
        let _ = cleanup.await;
        // A backup under way is finished, not cut short.
        if let Some(Some(task)) = backups {
            let _ = task.await;
        }
    }
    Ok(())
}

/// Every namespace with work (or the listed ones), each by a drain of its
/// own (see `fleet`).
async fn drain_several(
    config: DrainConfig,
    args: &RunArgs,
    worker_id: String,
) -> Result<(), CliError> {
    if scheduled_backups(&config, args).is_some() {
        return Err(CliError::Config(anyhow::anyhow!(
            "BACKUP_EVERY_HOURS backs up one namespace's index: set FLOWCHAT_NAMESPACE to the one \
             namespace this drain serves (it serves several now: {:?})",
            config.namespaces
        )));
    }
    let fleet = Fleet::new(config, worker_id, args.concurrency)?;
    let shutdown = shutdown_on_signal();
    if args.once {
        match fleet
            .once(Duration::from_secs(args.max_seconds), shutdown)
            .await
        {
            Ok(outcome) => outcome.log("(all served)", "drain finished"),
            Err(e) => tracing::error!(error = %e, "the store failed; stopping this run"),
        }
    } else {
        fleet.follow(shutdown).await;
    }
    Ok(())
}

/// The backup schedule of a worker, when `BACKUP_EVERY_HOURS` (or the
/// tests' `--backup-every-secs`) turns it on.
fn scheduled_backups(config: &DrainConfig, args: &RunArgs) -> Option<ops::scheduled::Schedule> {
    let backups = &config.backups;
    let every = match (args.backup_every_secs, backups.every_hours) {
        (Some(secs), _) => Duration::from_secs(secs),
        (None, Some(hours)) => Duration::from_secs(u64::from(hours) * 3600),
        (None, None) => return None,
    };
    Some(ops::scheduled::Schedule {
        every,
        keep: backups.keep as usize,
        dir: backups.dir.clone().into(),
    })
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
