//! Denial of service through the drain (docs/security.md): a slow job holds
//! one slot, not the drain, and keeps its lease while it runs, so another
//! drain does not run it a second time. Real SQLite store and index; the
//! slow job is a real ingest of a large document.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowchat_domain::config::DrainSettings;
use flowchat_domain::model::{Job, JobPayload, JobStatus, Role};
use flowchat_domain::{ConversationId, JobId, SessionId};
use flowchat_drain::{Answerer, Drain, DrainOptions};
use flowchat_knowledge::{ChunkSettings, SqliteIndex};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::{ChatSubmission, ConversationTarget, NewJob, Store, SubmitOutcome};
use tokio::sync::watch;

fn random_id() -> [u8; 16] {
    flowchat_startup::random_bytes()
}

fn drain(dir: &Path, name: &str, concurrency: u32, lease_secs: u32) -> Arc<Drain> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("store.db")).unwrap());
    let index = Arc::new(SqliteIndex::open(dir.join("index.db")).unwrap());
    Drain::new(
        store,
        index,
        DrainOptions {
            worker_id: name.to_owned(),
            settings: DrainSettings {
                max_attempts: 3,
                lease_secs,
                retry_base_secs: 0,
                retry_max_secs: 0,
                partial_flush_ms: 250,
                shutdown_grace_secs: 30,
            },
            documents_path: dir.join("docs"),
            chunking: ChunkSettings::default(),
            top_k: 5,
            answerer: Answerer::Extractive,
            embedder: None,
            concurrency,
            platform: Arc::new(flowchat_startup::NativePlatform),
        },
    )
}

/// A shared folder holding `files` large documents of ordinary prose (3 MB
/// each): indexing one takes about a second here (chunking and token
/// counting), the slow job of these tests.
fn large_folder(dir: &Path, files: usize) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < 3 * 1024 * 1024 {
        text.push_str(&format!(
            "Rule {i} says travellers book trains for trips under {} km and keep receipts number {}. ",
            i % 800,
            i * 7
        ));
        if i % 6 == 5 {
            text.push_str("\n\n");
        }
        i += 1;
    }
    for n in 0..files {
        // Different bytes, or the folder scan would index one copy.
        let text = format!("# Handbook {n}\n\n{text}");
        std::fs::write(docs.join(format!("handbook-{n}.md")), text).unwrap();
    }
}

async fn enqueue_folder_ingest(store: &Arc<dyn Store>) -> JobId {
    let id = JobId::from_random(random_id());
    store
        .enqueue(NewJob {
            id: id.clone(),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: flowchat_startup::now(),
        })
        .await
        .unwrap();
    id
}

async fn job(store: &Arc<dyn Store>, id: &JobId) -> Job {
    store.get_job(id).await.unwrap().unwrap()
}

async fn wait_for(store: &Arc<dyn Store>, id: &JobId, status: JobStatus) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = job(store, id).await;
        if job.status == status {
            return job;
        }
        assert!(Instant::now() < deadline, "{id} still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The review's H1: with the drain waiting for its whole batch, a chat sent
/// while an ingest chunked stayed `queued` until the ingest was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_is_answered_while_a_slow_ingest_runs() {
    let dir = tempfile::tempdir().unwrap();
    large_folder(dir.path(), 1);
    let drain = drain(dir.path(), "d", 2, 60);
    let store = drain.store().clone();
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(drain.clone().run(shutdown));

    let ingest = enqueue_folder_ingest(&store).await;
    wait_for(&store, &ingest, JobStatus::Running).await;
    let started = Instant::now();

    let outcome = store
        .submit_chat(ChatSubmission {
            session: SessionId::from_random(random_id()),
            conversation: ConversationTarget::New {
                id: ConversationId::from_random(random_id()),
                title: "q".to_owned(),
            },
            message: "How do I book a train?".to_owned(),
            job_id: JobId::from_random(random_id()),
            rate_checks: vec![],
            now: flowchat_startup::now(),
        })
        .await
        .unwrap();
    let SubmitOutcome::Accepted {
        job: chat,
        conversation_id,
    } = outcome
    else {
        panic!("submission refused");
    };
    wait_for(&store, &chat.id, JobStatus::Succeeded).await;
    let answered_in = started.elapsed();
    // The point: the ingest is still at work, in the other slot.
    assert_eq!(
        job(&store, &ingest).await.status,
        JobStatus::Running,
        "the chat waited for the ingest ({answered_in:?})"
    );
    let conversation = store
        .get_conversation(&conversation_id)
        .await
        .unwrap()
        .unwrap();
    let roles: Vec<Role> = conversation.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant]);

    let done = wait_for(&store, &ingest, JobStatus::Succeeded).await;
    eprintln!(
        "chat answered in {answered_in:?}; the ingest took {:?}",
        started.elapsed()
    );
    assert_eq!(done.attempts, 1);
    stop.send_replace(true);
    running.await.unwrap();
}

/// The review's H1: ingest jobs never extended their lease, so with two
/// drains a slow ingest was claimed again and ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ingest_keeps_its_lease_from_a_second_drain() {
    let dir = tempfile::tempdir().unwrap();
    large_folder(dir.path(), 5);
    // A one-second lease: the ingest outlives it several times over.
    let a = drain(dir.path(), "a", 1, 1);
    let b = drain(dir.path(), "b", 1, 1);
    let store = a.store().clone();
    let ingest = enqueue_folder_ingest(&store).await;

    let started = Instant::now();
    let first = {
        let a = a.clone();
        tokio::spawn(async move { a.run_until_idle(Duration::from_secs(120)).await })
    };
    wait_for(&store, &ingest, JobStatus::Running).await;
    let mut b_claims = 0;
    while !first.is_finished() {
        b_claims += b.pass().await.unwrap().claimed;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let a_outcome = first.await.unwrap().unwrap();
    // Otherwise this proves nothing: the lease must have run out many times.
    assert!(
        took > Duration::from_secs(3),
        "the ingest took only {took:?}"
    );
    assert_eq!(b_claims, 0, "the second drain took the ingest over");
    assert_eq!((a_outcome.claimed, a_outcome.succeeded), (1, 1));
    let done = job(&store, &ingest).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    eprintln!("ingest took {took:?} under a 1 s lease");
}
