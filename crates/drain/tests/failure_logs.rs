//! M6 (issue 14): what a failed job shows users and what the log keeps.
//! Its own test binary: the log is captured by the process's subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use flowchat_domain::model::JobStatus;
use flowchat_drain::messages::LLM_UNAVAILABLE;
use flowchat_fake_flow::{FakeFlow, Fault, Target};

/// A `Write` into a shared buffer, to read back what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// M6: a failed answer's record said "the language model service failed
/// (HTTP 503): upstream provider error (gave up after 1 try)", or "could
/// not reach the language model: … tcp connect error: Connection refused
/// (os error 111)". Now the record (and
/// the dead letter) holds the safe sentence; the log holds the detail,
/// in the span that names the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_answer_shows_a_safe_sentence_and_logs_the_detail() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The process's subscriber, so every thread's lines are captured; the
    // only test in this binary.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let flow = FakeFlow::start().await;
    let store = sqlite_store(dir.path());
    let drain = flow_drain(
        dir.path(),
        &flow,
        store.clone(),
        &[("DRAIN_MAX_ATTEMPTS", "1")],
    )
    .await;
    flow.push_fault(
        Target::Chat,
        Fault::Status {
            status: 503,
            retry_after_secs: None,
        },
    );
    let failed = ask(&store, "When does the office open?").await;
    assert_eq!(drain.pass().await.unwrap().dead_lettered, 1);
    let record = job(&store, &failed).await;
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(record.error.as_deref(), Some(LLM_UNAVAILABLE));
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].error, LLM_UNAVAILABLE);

    // The model's host goes away.
    let address = flow.base_url();
    flow.stop().await;
    let unreachable = ask(&store, "And on Sundays?").await;
    assert_eq!(drain.pass().await.unwrap().dead_lettered, 1);
    let record = job(&store, &unreachable).await;
    assert_eq!(record.error.as_deref(), Some(LLM_UNAVAILABLE));

    let logs = logs.text();
    for (job_id, detail) in [
        (&failed, "HTTP 503"),
        (&unreachable, "could not reach the language model"),
    ] {
        let line = logs
            .lines()
            .find(|line| line.contains(job_id.as_str()) && line.contains("dead-lettered"))
            .unwrap_or_else(|| panic!("no log line for {job_id} in:\n{logs}"));
        assert!(line.contains(detail), "{line}");
    }
    // The transport's own words: "Connection refused" for a new connection,
    // "connection closed before message completed" when the stopped server
    // drops a pooled one (which of the two depends on timing).
    assert!(
        logs.contains("Connection refused") || logs.contains("connection closed"),
        "the log keeps the cause:\n{logs}"
    );
    let port = address.rsplit(':').next().unwrap_or_default().to_owned();
    for id in [&failed, &unreachable] {
        let error = job(&store, id).await.error.unwrap_or_default();
        assert!(!error.contains(&port) && !error.contains("503"), "{error}");
    }
}
