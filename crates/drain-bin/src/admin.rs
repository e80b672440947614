//! The operator's commands on the queue: `stats` and `dead-letters`, and
//! readers' `feedback`, printed for people or as JSON; and the dispatch of
//! the index operations (`ops`).

use flowchat_config::DrainConfig;
use flowchat_domain::JobId;
use flowchat_domain::config::StoreKind;

use crate::error::CliError;
use crate::{Command, DeadLetterCommand, FeedbackCommand, ops};

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
        Command::Feedback(FeedbackCommand::List { limit, json }) => {
            let listed = store.list_feedback(limit).await.map_err(failed)?;
            if json {
                println!("{}", serde_json::json!(listed));
            } else if listed.is_empty() {
                println!("no feedback");
            } else {
                for f in listed {
                    print!("{}", feedback_text(&f));
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

/// How long an answer is in `feedback list`'s text, in characters.
const ANSWER_PREVIEW_CHARS: usize = 200;

/// `text` on one line, cut to `max` characters with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// One feedback record for people: rating, time and job, then the question,
/// the answer (shortened), the sources and the comment, and a blank line.
fn feedback_text(f: &flowchat_domain::FeedbackView) -> String {
    let rating = match f.feedback.rating {
        flowchat_domain::FeedbackRating::Up => "👍 up",
        flowchat_domain::FeedbackRating::Down => "👎 down",
    };
    let mut out = format!(
        "{rating}  {}  job {}  conversation {}\n",
        f.feedback.created_at.to_rfc3339(),
        f.feedback.job_id,
        f.conversation_id
    );
    out.push_str(&format!(
        "  question: {}\n",
        shorten(&f.question, ANSWER_PREVIEW_CHARS)
    ));
    out.push_str(&format!(
        "  answer:   {}\n",
        shorten(&f.answer, ANSWER_PREVIEW_CHARS)
    ));
    if f.citations.is_empty() {
        out.push_str("  sources:  none\n");
    } else {
        let sources: Vec<String> = f
            .citations
            .iter()
            .map(|c| match c.page {
                Some(page) => format!("[{}] {} p. {page}", c.index, c.source),
                None => format!("[{}] {}", c.index, c.source),
            })
            .collect();
        out.push_str(&format!("  sources:  {}\n", sources.join("; ")));
    }
    if let Some(comment) = &f.feedback.comment {
        out.push_str(&format!(
            "  comment:  {}\n",
            shorten(comment.as_str(), 1000)
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod feedback_tests {
    use super::shorten;

    #[test]
    fn answers_are_shortened_on_one_line() {
        assert_eq!(shorten("30 days\n\n[1]", 200), "30 days [1]");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abcd", 4), "abcd");
    }
}
