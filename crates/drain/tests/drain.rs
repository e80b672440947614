//! The drain over a real SQLite store and index: failures retried then
//! dead-lettered with a readable error, and drains racing for the same jobs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowchat_domain::config::DrainSettings;
use flowchat_domain::model::{JobPayload, JobStatus, Role};
use flowchat_domain::{ConversationId, JobId, SessionId};
use flowchat_drain::{Answerer, Drain, DrainOptions};
use flowchat_knowledge::{ChunkSettings, SqliteIndex};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::{ChatSubmission, ConversationTarget, NewJob, Store, SubmitOutcome};

fn random_id() -> [u8; 16] {
    flowchat_startup::random_bytes()
}

fn drain(dir: &Path, documents: &Path, settings: DrainSettings, name: &str) -> Arc<Drain> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("store.db")).unwrap());
    let index = Arc::new(SqliteIndex::open(dir.join("index.db")).unwrap());
    Drain::new(
        store,
        index,
        DrainOptions {
            worker_id: name.to_owned(),
            settings,
            documents_path: documents.to_owned(),
            chunking: ChunkSettings::default(),
            top_k: 5,
            answerer: Answerer::Extractive,
            embedder: None,
            concurrency: 4,
            platform: Arc::new(flowchat_startup::NativePlatform),
        },
    )
}

fn settings(max_attempts: u32) -> DrainSettings {
    DrainSettings {
        max_attempts,
        lease_secs: 60,
        retry_base_secs: 0,
        retry_max_secs: 0,
        partial_flush_ms: 250,
        shutdown_grace_secs: 20,
    }
}

#[tokio::test]
async fn a_failing_job_is_retried_then_dead_lettered_with_a_safe_error() {
    let dir = tempfile::tempdir().unwrap();
    // The documents "folder" is a file: every ingest attempt fails.
    let not_a_folder = dir.path().join("documents");
    std::fs::write(&not_a_folder, "oops").unwrap();
    let drain = drain(dir.path(), &not_a_folder, settings(2), "d1");
    let store = drain.store().clone();
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

    let first = drain.pass().await.unwrap();
    assert_eq!((first.claimed, first.retried), (1, 1));
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    // What users read: nothing of the server's paths.
    let error = job.error.unwrap();
    assert_eq!(error, flowchat_drain::messages::FILE_UNREADABLE);

    let second = drain.pass().await.unwrap();
    assert_eq!((second.claimed, second.dead_lettered), (1, 1));
    let job = store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 2);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job_id, id);
    assert_eq!(dead[0].error, flowchat_drain::messages::FILE_UNREADABLE);

    // Nothing left to do.
    assert_eq!(drain.pass().await.unwrap().claimed, 0);
}

#[tokio::test]
async fn racing_drains_answer_every_chat_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("faq.md"),
        "# FAQ\n\nThe office opens at nine in the morning.\n",
    )
    .unwrap();
    let a = drain(dir.path(), &docs, settings(3), "a");
    let b = drain(dir.path(), &docs, settings(3), "b");
    let store = a.store().clone();
    store
        .enqueue(NewJob {
            id: JobId::from_random(random_id()),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: flowchat_startup::now(),
        })
        .await
        .unwrap();
    // Index first, so every answer can come from the document.
    assert_eq!(
        a.run_until_idle(Duration::from_secs(60))
            .await
            .unwrap()
            .succeeded,
        1
    );

    let session = SessionId::from_random(random_id());
    let mut jobs = Vec::new();
    for i in 0..60 {
        let outcome = store
            .submit_chat(ChatSubmission {
                session: session.clone(),
                conversation: ConversationTarget::New {
                    id: ConversationId::from_random(random_id()),
                    title: format!("q{i}"),
                },
                message: "When does the office open?".to_owned(),
                job_id: JobId::from_random(random_id()),
                rate_checks: vec![],
                now: flowchat_startup::now(),
            })
            .await
            .unwrap();
        let SubmitOutcome::Accepted {
            job,
            conversation_id,
        } = outcome
        else {
            panic!("submission refused");
        };
        jobs.push((job.id, conversation_id));
    }

    let budget = Duration::from_secs(120);
    let (ra, rb) = tokio::join!(a.run_until_idle(budget), b.run_until_idle(budget));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.succeeded + rb.succeeded, 60, "each chat once");
    assert!(
        ra.claimed > 0 && rb.claimed > 0,
        "both drains took work: {ra:?} {rb:?}"
    );

    for (job_id, conversation_id) in jobs {
        let job = store.get_job(&job_id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Succeeded);
        let conversation = store
            .get_conversation(&conversation_id)
            .await
            .unwrap()
            .unwrap();
        let roles: Vec<Role> = conversation.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant]);
        assert!(
            conversation.messages[1]
                .content
                .contains("nine in the morning")
        );
    }
}
