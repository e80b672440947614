//! What the drain's failure tests share: stores (SQLite, and Upstash over a
//! real redis-server behind the gateway), drains built two ways, and the
//! requests the API would make.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowchat_domain::config::DrainSettings;
use flowchat_domain::model::{
    DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, Job, JobPayload,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId};
use flowchat_drain::{Answerer, Drain, DrainIdentity, DrainOptions};
use flowchat_fake_flow::FakeFlow;
use flowchat_gateway::testing::TestGateway;
use flowchat_knowledge::{ChunkSettings, SqliteIndex};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_store::{
    ChatSubmission, ConversationTarget, NewJob, Store, SubmitOutcome, UploadOutcome,
    UploadSubmission, upload_parts,
};
use flowchat_upstash::{ReqwestTransport, Token, UpstashClient, UpstashConfig};

pub fn random_id() -> [u8; 16] {
    flowchat_startup::random_bytes()
}

pub fn sqlite_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join("store.db")).unwrap())
}

pub fn upstash_store(gateway: &TestGateway) -> Arc<dyn Store> {
    let client = UpstashClient::new(
        UpstashConfig::new(gateway.url(), Token::new(gateway.token())),
        Arc::new(ReqwestTransport::new().unwrap()),
    );
    let namespace = format!("drain-failures-{}", hex(&random_id()));
    Arc::new(UpstashStore::new(client, &namespace, Ttls::default()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A drain with the quoting answerer over `store`: what the upload tests need.
pub fn extractive_drain(dir: &Path, store: Arc<dyn Store>, max_attempts: u32) -> Arc<Drain> {
    let index = Arc::new(SqliteIndex::open(dir.join("index.db")).unwrap());
    Drain::new(
        store,
        index,
        DrainOptions {
            worker_id: "failures".to_owned(),
            settings: DrainSettings {
                max_attempts,
                lease_secs: 1,
                retry_base_secs: 0,
                retry_max_secs: 0,
                partial_flush_ms: 50,
                shutdown_grace_secs: 5,
            },
            documents_path: dir.join("docs"),
            chunking: ChunkSettings::default(),
            top_k: 5,
            answerer: Answerer::Extractive,
            embedder: None,
            concurrency: 2,
            platform: Arc::new(flowchat_startup::NativePlatform),
        },
    )
}

/// A drain assembled from settings, as the binary and the dev server build
/// one, answering with the fake Flow server's model.
pub async fn flow_drain(
    dir: &Path,
    flow: &FakeFlow,
    store: Arc<dyn Store>,
    settings: &[(&str, &str)],
) -> Arc<Drain> {
    let mut vars: HashMap<String, String> = flow
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (name, value) in [
        ("FLOWCHAT_DATA_DIR", dir.display().to_string()),
        ("DOCUMENTS_PATH", dir.join("docs").display().to_string()),
        ("EMBEDDINGS_PROVIDER", "none".to_owned()),
        ("LLM_MAX_RETRIES", "0".to_owned()),
    ] {
        vars.insert(name.to_owned(), value);
    }
    for (name, value) in settings {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    let config = flowchat_config::drain_config(|name| vars.get(name).cloned()).unwrap();
    flowchat_drain::assemble(
        &config,
        store,
        Arc::new(flowchat_startup::NativePlatform),
        DrainIdentity {
            worker_id: "flow".to_owned(),
            concurrency: 1,
        },
    )
    .await
    .unwrap()
}

pub async fn ask(store: &Arc<dyn Store>, question: &str) -> JobId {
    let outcome = store
        .submit_chat(ChatSubmission {
            session: SessionId::from_random(random_id()),
            conversation: ConversationTarget::New {
                id: ConversationId::from_random(random_id()),
                title: "q".to_owned(),
            },
            message: question.to_owned(),
            job_id: JobId::from_random(random_id()),
            rate_checks: vec![],
            now: flowchat_startup::now(),
        })
        .await
        .unwrap();
    let SubmitOutcome::Accepted { job, .. } = outcome else {
        panic!("submission refused");
    };
    job.id
}

/// Stores an upload's bytes and submits it, as the API does: a shared
/// document (an operator's upload), pending, with its ingest job.
pub async fn upload(store: &Arc<dyn Store>, name: &str, bytes: &[u8]) -> (DocumentId, JobId) {
    let owner = DocumentOwner::Shared;
    let id = DocumentId::for_upload(&owner, bytes);
    let now = flowchat_startup::now();
    for (index, part) in bytes.chunks(flowchat_store::UPLOAD_PART_BYTES).enumerate() {
        store
            .put_upload_part(&id, index as u32, part, now)
            .await
            .unwrap();
    }
    let job_id = JobId::from_random(random_id());
    let outcome = store
        .submit_upload(UploadSubmission {
            record: DocumentRecord {
                id: id.clone(),
                name: name.to_owned(),
                owner: owner.clone(),
                size_bytes: bytes.len() as u64,
                status: DocumentStatus::Pending,
                chunks: 0,
                pages: None,
                origin: DocumentOrigin::Upload,
                error: None,
                updated_at: now,
            },
            job: NewJob {
                id: job_id.clone(),
                owner: None,
                payload: JobPayload::IngestUpload {
                    document_id: id.clone(),
                    name: name.to_owned(),
                    owner,
                },
                now,
            },
            rate_checks: vec![],
            session: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, UploadOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(upload_parts(bytes.len() as u64), 1);
    (id, job_id)
}

pub async fn job(store: &Arc<dyn Store>, id: &JobId) -> Job {
    store.get_job(id).await.unwrap().unwrap()
}

pub async fn document(store: &Arc<dyn Store>, id: &DocumentId) -> DocumentRecord {
    store.get_document(id).await.unwrap().unwrap()
}

/// Polls until `done` holds for the job, for at most `limit`.
pub async fn wait_for_job(
    store: &Arc<dyn Store>,
    id: &JobId,
    limit: Duration,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + limit;
    loop {
        let job = job(store, id).await;
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job still {:?} after {limit:?}: {job:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
