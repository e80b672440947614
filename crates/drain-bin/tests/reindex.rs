//! `flowchat-drain reindex` rebuilds the folder's documents and nothing
//! else: questions waiting in the queue are left to the drain that has the
//! language model (issue 14: it used to answer them by quoting passages).

use std::process::Command;
use std::sync::Arc;

use flowchat_domain::model::{DocumentStatus, JobStatus, Role};
use flowchat_domain::{ConversationId, JobId, SessionId};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::{ChatSubmission, ConversationTarget, Store, SubmitOutcome};

#[tokio::test]
async fn reindex_leaves_queued_questions_to_the_drain_with_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("faq.md"),
        "# FAQ\n\nThe office opens at nine in the morning.\n",
    )
    .unwrap();
    let vars = [
        ("FLOWCHAT_DATA_DIR", dir.path().display().to_string()),
        ("DOCUMENTS_PATH", docs.display().to_string()),
        // The deployment answers with a model; reindex never calls it.
        ("LLM_PROVIDER", "flow".to_owned()),
        ("FLOW_BASE_URL", "http://127.0.0.1:9".to_owned()),
        ("FLOW_TENANT", "tenant".to_owned()),
        ("FLOW_CLIENT_ID", "client".to_owned()),
        ("FLOW_CLIENT_SECRET", "a-secret-of-some-length".to_owned()),
        ("EMBEDDINGS_PROVIDER", "none".to_owned()),
    ];
    let config = flowchat_config::app_config(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(config.store_file()).unwrap());
    let outcome = store
        .submit_chat(ChatSubmission {
            session: SessionId::from_random(flowchat_startup::random_bytes()),
            conversation: ConversationTarget::New {
                id: ConversationId::from_random(flowchat_startup::random_bytes()),
                title: "office".to_owned(),
            },
            message: "When does the office open?".to_owned(),
            job_id: JobId::from_random(flowchat_startup::random_bytes()),
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

    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .arg("reindex")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("reindexed"), "{stdout}");

    let waiting = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(waiting.status, JobStatus::Queued, "{waiting:?}");
    assert_eq!(waiting.attempts, 0);
    let conversation = store
        .get_conversation(&conversation_id)
        .await
        .unwrap()
        .unwrap();
    let roles: Vec<Role> = conversation.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User], "no quoted answer was written");
    let documents = store.list_documents(None).await.unwrap();
    assert!(
        documents
            .iter()
            .any(|d| d.name == "faq.md" && d.status == DocumentStatus::Indexed),
        "{documents:?}"
    );
}
