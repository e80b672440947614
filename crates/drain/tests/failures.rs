//! How jobs fail (issue 14: M2 and the answer deadline), through a real
//! drain over real stores — SQLite, and Upstash as a real redis-server behind
//! the gateway — with the fake Flow server as the language model:
//! - an upload whose ingest job is dead-lettered is `failed`, not `pending`
//!   forever, and the same bytes can be uploaded again;
//! - a failed job's record holds a short safe sentence (see also
//!   `failure_logs.rs`);
//! - a model that streams forever is cut at `LLM_ANSWER_TIMEOUT_SECONDS`,
//!   after which the job's lease is no longer extended;
//! - `max_tokens` (`LLM_MAX_OUTPUT_TOKENS`) reaches the model.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use flowchat_domain::model::{DocumentStatus, JobStatus};
use flowchat_drain::messages::{DOCUMENT_UNREADABLE, LLM_TIMEOUT};
use flowchat_fake_flow::{FakeFlow, Fault, Target};
use flowchat_gateway::testing::TestGateway;
use flowchat_store::{ClaimRequest, Store, UPLOAD_GIVEN_UP};
use tokio::sync::watch;

/// M2: the drain dies on an upload until the claim gives it up; the
/// document was `pending` forever and the same bytes were `Existing`.
async fn upload_whose_drain_keeps_dying(dir: &Path, store: Arc<dyn Store>) {
    let text = b"# Trains\n\nTravellers book trains for trips under 500 km.\n";
    let (document_id, first_job) = upload(&store, "trains.md", text).await;
    // A drain claims it and dies (no completion, no failure, no release).
    let dying = store
        .claim(&ClaimRequest {
            worker: "dying".to_owned(),
            max_jobs: 1,
            lease_ms: 500,
            max_attempts: 1,
            now: flowchat_startup::now(),
        })
        .await
        .unwrap();
    assert_eq!(dying.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let drain = extractive_drain(dir, store.clone(), 1);
    let outcome = drain.pass().await.unwrap();
    assert_eq!(outcome.claimed, 0, "out of attempts: not handed out");
    let given_up = job(&store, &first_job).await;
    assert_eq!(given_up.status, JobStatus::Failed);
    let error = given_up.error.unwrap_or_default();
    assert!(error.contains("stopped responding"), "{error}");
    let record = document(&store, &document_id).await;
    assert_eq!(record.status, DocumentStatus::Failed);
    assert_eq!(record.error.as_deref(), Some(UPLOAD_GIVEN_UP));
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job_id, first_job);

    // The same bytes again: accepted, and this time indexed.
    let (again, second_job) = upload(&store, "trains.md", text).await;
    assert_eq!(again, document_id);
    assert_eq!(
        document(&store, &document_id).await.status,
        DocumentStatus::Pending
    );
    let outcome = drain.pass().await.unwrap();
    assert_eq!((outcome.claimed, outcome.succeeded), (1, 1), "{outcome:?}");
    assert_eq!(job(&store, &second_job).await.status, JobStatus::Succeeded);
    let record = document(&store, &document_id).await;
    assert_eq!(record.status, DocumentStatus::Indexed);
    assert_eq!(record.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_drain_keeps_dying_fails_and_can_be_uploaded_again_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path());
    upload_whose_drain_keeps_dying(dir.path(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_drain_keeps_dying_fails_and_can_be_uploaded_again_upstash() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = TestGateway::start().await.unwrap();
    let store = upstash_store(&gateway);
    upload_whose_drain_keeps_dying(dir.path(), store).await;
}

/// A document that cannot be read fails at once with the loader's plain
/// sentence, not "the knowledge index failed: …".
#[tokio::test]
async fn an_unreadable_upload_fails_with_the_loaders_plain_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path());
    let (document_id, job_id) = upload(&store, "blank.md", b"  \n\n   \n").await;
    let drain = extractive_drain(dir.path(), store.clone(), 3);
    assert_eq!(drain.pass().await.unwrap().dead_lettered, 1);
    let expected = format!("{DOCUMENT_UNREADABLE}: blank.md contains no text");
    let record = document(&store, &document_id).await;
    assert_eq!(record.status, DocumentStatus::Failed);
    assert_eq!(record.error.as_deref(), Some(expected.as_str()));
    assert_eq!(
        job(&store, &job_id).await.error.as_deref(),
        Some(expected.as_str())
    );
}

/// The answer deadline: a model that streams a word every 100 ms forever
/// never trips the read timeout, and its job stayed `running`, its lease
/// extended, for as long as the stream went on. Now the call ends at
/// `LLM_ANSWER_TIMEOUT_SECONDS`, the attempt fails with a safe sentence
/// and is retried later, and nothing extends the lease any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_streams_forever_is_cut_at_the_answer_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let flow = FakeFlow::start().await;
    flow.push_fault(Target::Chat, Fault::Endless { every_ms: 100 });
    let store = sqlite_store(dir.path());
    let drain = flow_drain(
        dir.path(),
        &flow,
        store.clone(),
        &[
            ("LLM_ANSWER_TIMEOUT_SECONDS", "2"),
            ("DRAIN_LEASE_SECONDS", "1"),
            ("PARTIAL_FLUSH_MS", "100"),
            ("DRAIN_MAX_ATTEMPTS", "2"),
            ("DRAIN_RETRY_BASE_SECONDS", "3600"),
            ("DRAIN_RETRY_MAX_SECONDS", "3600"),
        ],
    )
    .await;
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(drain.clone().run(shutdown));

    let id = ask(&store, "Tell me everything.").await;
    let started = wait_for_job(&store, &id, Duration::from_secs(10), |j| {
        j.status == JobStatus::Running && j.partial.as_deref().is_some_and(|p| !p.is_empty())
    })
    .await;
    assert_eq!(started.attempts, 1);
    let streaming = Instant::now();
    let failed = wait_for_job(&store, &id, Duration::from_secs(20), |j| {
        j.status != JobStatus::Running
    })
    .await;
    let cut_after = streaming.elapsed();
    assert_eq!(
        failed.status,
        JobStatus::Queued,
        "retried later: {failed:?}"
    );
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.error.as_deref(), Some(LLM_TIMEOUT));
    assert_eq!(failed.partial, None);
    println!("the endless stream was cut {cut_after:?} after its first words");

    // Nothing holds the job any more: no lease, no progress writes.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let later = job(&store, &id).await;
    assert_eq!(later.updated_at, failed.updated_at, "{later:?}");
    let stats = store.queue_stats(flowchat_startup::now()).await.unwrap();
    assert_eq!((stats.running, stats.delayed), (0, 1), "{stats:?}");
    assert_eq!(flow.count(Target::Chat), 1);

    stop.send_replace(true);
    running.await.unwrap();
}

/// `max_tokens` goes out with every answer request, set by
/// `LLM_MAX_OUTPUT_TOKENS`, so no answer can run on without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_requested_with_the_configured_max_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let flow = FakeFlow::start().await;
    let store = sqlite_store(dir.path());
    let drain = flow_drain(
        dir.path(),
        &flow,
        store.clone(),
        &[("LLM_MAX_OUTPUT_TOKENS", "321")],
    )
    .await;
    let id = ask(&store, "When does the office open?").await;
    assert_eq!(drain.pass().await.unwrap().succeeded, 1);
    assert_eq!(job(&store, &id).await.status, JobStatus::Succeeded);
    let chats: Vec<_> = flow
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(Target::Chat))
        .collect();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].body["max_tokens"], 321);
    assert_eq!(chats[0].body["stream"], true);
    assert!(
        flow.header_problems().is_empty(),
        "{:?}",
        flow.header_problems()
    );
}
