//! The conformance suite on the Upstash back end, over the REST protocol,
//! against a real redis-server behind the local gateway: one redis-server and
//! one gateway for the whole test binary, a new random namespace per store.
//! A second handle is another client (its own HTTP connection pool) on the
//! same namespace, as a second drain process would have.
//!
//! After the suite, checks specific to this back end: one request per chat
//! or upload submission and per upload read, namespaced keys with TTLs
//! (upload parts included), error mapping, stream hygiene, claim order with
//! retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flowchat_domain::model::{
    AnswerMode, ChatAnswer, DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus,
    IngestReport, JobPayload, JobResult, JobStatus,
};
use flowchat_domain::{ConversationId, DocumentId, JobId, SessionId, Timestamp};
use flowchat_gateway::testing::TestGateway;
use flowchat_store::conformance::{Harness, async_trait};
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_store::{
    ChatSubmission, ClaimRequest, ConversationTarget, FailureOutcome, NewJob, RateCheck, RateRule,
    Store, StoreError, SubmitOutcome, UPLOAD_PART_BYTES, UploadOutcome, UploadSubmission,
};
use flowchat_upstash::{Command, ReqwestTransport, Token, UpstashClient, UpstashConfig, Value};

/// Where the shared gateway listens.
struct Shared {
    url: String,
    token: String,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// The shared gateway and its redis-server, dropped (the server killed) at exit.
static ENV: Mutex<Option<TestGateway>> = Mutex::new(None);

extern "C" fn stop_shared_env() {
    if let Ok(mut env) = ENV.lock() {
        env.take();
    }
}

/// Starts redis-server and the gateway once, on a runtime of their own that
/// outlives every test's runtime.
fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shared-gateway".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the shared gateway");
                runtime.block_on(async move {
                    let env = TestGateway::start()
                        .await
                        .expect("start redis-server and the gateway");
                    let shared = Shared {
                        url: env.url(),
                        token: env.token().to_owned(),
                    };
                    *ENV.lock().expect("env lock") = Some(env);
                    tx.send(shared).expect("hand over the gateway address");
                    std::future::pending::<()>().await;
                });
            })
            .expect("spawn the gateway thread");
        let shared = rx.recv().expect("the shared gateway started");
        // SAFETY: registers a plain function with no captured state; it runs
        // once at process exit and only drops the environment (killing the
        // redis-server child), which needs no runtime.
        unsafe {
            libc::atexit(stop_shared_env);
        }
        shared
    })
}

fn client(url: &str, token: &str) -> UpstashClient {
    let transport = ReqwestTransport::new().expect("an HTTP client");
    UpstashClient::new(
        UpstashConfig::new(url, Token::new(token)),
        Arc::new(transport),
    )
}

fn random_namespace() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "test-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct UpstashHarness;

#[async_trait]
impl Harness for UpstashHarness {
    type S = UpstashStore;

    async fn fresh(&self) -> UpstashStore {
        let shared = shared();
        UpstashStore::new(
            client(&shared.url, &shared.token),
            &random_namespace(),
            Ttls::default(),
        )
    }

    async fn second_handle(&self, of: &UpstashStore) -> UpstashStore {
        let shared = shared();
        UpstashStore::new(
            client(&shared.url, &shared.token),
            of.namespace(),
            Ttls::default(),
        )
    }
}

flowchat_store::conformance_tests!(UpstashHarness);

/// The whole suite again in one go, so the checks also hold when many
/// namespaces share one database.
#[test]
fn all_checks_in_sequence() {
    flowchat_store::conformance::block_on(flowchat_store::conformance::run_all(&UpstashHarness));
}

// ---------------------------------------------------------------------------
// Checks specific to the Upstash back end.

fn at(ms: i64) -> Timestamp {
    flowchat_store::conformance::at(ms)
}

fn ids(n: u8) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let salt = std::process::id().to_be_bytes();
    bytes[..4].copy_from_slice(&salt);
    bytes[4] = n;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    bytes[5..].copy_from_slice(&nanos.to_be_bytes()[5..]);
    bytes
}

fn chat_submission(session: &SessionId, n: u8, now: Timestamp) -> ChatSubmission {
    ChatSubmission {
        session: session.clone(),
        conversation: ConversationTarget::New {
            id: ConversationId::from_random(ids(n)),
            title: format!("question {n}"),
        },
        message: format!("question {n}?"),
        job_id: JobId::from_random(ids(n.wrapping_add(100))),
        rate_checks: vec![
            RateCheck {
                key: format!("chat:session:{session}"),
                rule: RateRule::per_minute(10),
            },
            RateCheck {
                key: "chat:ip:192.0.2.1".to_owned(),
                rule: RateRule::per_minute(30),
            },
        ],
        now,
    }
}

async fn raw(env: &TestGateway, command: Command) -> Value {
    client(&env.url(), env.token())
        .cmd(command)
        .await
        .expect("a raw command")
}

/// One chat submission is one request to Upstash and one command on Redis
/// (the script), once the scripts are cached; before that, one more for the
/// `NOSCRIPT` answer. The gateway runs the scripts with their
/// `allow-key-locking` shebang, as Upstash does.
#[tokio::test]
async fn submit_chat_is_one_request() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let store = UpstashStore::new(
        client(&env.url(), env.token()),
        &random_namespace(),
        Ttls::default(),
    );
    let session = SessionId::from_random(ids(1));

    // Cold: Redis does not know the script yet.
    let (sent, stats) = (store.client().requests_sent(), env.stats());
    let outcome = store
        .submit_chat(chat_submission(&session, 1, at(0)))
        .await
        .expect("submit_chat");
    assert!(
        matches!(outcome, SubmitOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let cold = 2;
    assert_eq!(
        store.client().requests_sent() - sent,
        cold,
        "EVALSHA, NOSCRIPT, EVAL"
    );
    assert_eq!(env.stats().requests - stats.requests, cold);

    // Warm: exactly one request, one command.
    for n in 2..6 {
        let (sent, stats) = (store.client().requests_sent(), env.stats());
        let outcome = store
            .submit_chat(chat_submission(&session, n, at(i64::from(n))))
            .await
            .expect("submit_chat");
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            store.client().requests_sent() - sent,
            1,
            "one request per submission"
        );
        let now = env.stats();
        assert_eq!(
            now.requests - stats.requests,
            1,
            "the gateway saw one request"
        );
        assert_eq!(now.commands - stats.commands, 1, "one command: the script");
    }

    // Refused submissions cost one request too.
    let mut refused = chat_submission(&session, 6, at(7));
    refused.conversation = ConversationTarget::Existing(ConversationId::from_random(ids(200)));
    let sent = store.client().requests_sent();
    assert!(matches!(
        store.submit_chat(refused).await.expect("submit_chat"),
        SubmitOutcome::ConversationNotFound
    ));
    assert_eq!(store.client().requests_sent() - sent, 1);
    let mut limited = chat_submission(&session, 7, at(8));
    limited.rate_checks[0].rule = RateRule::per_minute(5);
    let sent = store.client().requests_sent();
    assert!(matches!(
        store.submit_chat(limited).await.expect("submit_chat"),
        SubmitOutcome::RateLimited(_)
    ));
    assert_eq!(store.client().requests_sent() - sent, 1);

    // Scripts flushed (a Redis restart or failover): one NOSCRIPT round trip.
    raw(&env, Command::new("SCRIPT").arg("FLUSH")).await;
    let sent = store.client().requests_sent();
    store
        .submit_chat(chat_submission(&session, 8, at(9)))
        .await
        .expect("submit_chat");
    assert_eq!(store.client().requests_sent() - sent, 2);

    // After `load_scripts` (one request) there is no fallback at all.
    raw(&env, Command::new("SCRIPT").arg("FLUSH")).await;
    let sent = store.client().requests_sent();
    store.load_scripts().await.expect("load_scripts");
    assert_eq!(store.client().requests_sent() - sent, 1);
    let sent = store.client().requests_sent();
    store
        .submit_chat(chat_submission(&session, 9, at(10)))
        .await
        .expect("submit_chat");
    assert_eq!(store.client().requests_sent() - sent, 1);
}

/// `load_scripts` is one request (the flagged scripts load through the
/// gateway), after which no call pays a `NOSCRIPT` round trip.
#[tokio::test]
async fn load_scripts_is_one_request() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let store = UpstashStore::new(
        client(&env.url(), env.token()),
        &random_namespace(),
        Ttls::default(),
    );
    let sent = store.client().requests_sent();
    store.load_scripts().await.expect("load_scripts");
    assert_eq!(store.client().requests_sent() - sent, 1);
    let sent = store.client().requests_sent();
    store.queue_stats(at(0)).await.expect("queue_stats");
    assert!(
        store
            .claim(&ClaimRequest {
                worker: "w".into(),
                max_jobs: 3,
                lease_ms: 1000,
                max_attempts: 1,
                now: at(0),
            })
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        store.client().requests_sent() - sent,
        2,
        "stats, and an empty claim: one each"
    );
}

/// Every key carries the namespace; records expire as configured.
#[tokio::test]
async fn keys_are_namespaced_and_expire() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let ttls = Ttls {
        job: Duration::from_secs(3600),
        conversation: Duration::from_secs(7200),
        upload: Duration::from_secs(60),
    };
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, ttls);
    let session = SessionId::from_random(ids(1));
    let SubmitOutcome::Accepted {
        job,
        conversation_id,
    } = store
        .submit_chat(chat_submission(&session, 1, at(0)))
        .await
        .expect("submit_chat")
    else {
        panic!("accepted");
    };
    let claimed = store
        .claim(&ClaimRequest {
            worker: "w".into(),
            max_jobs: 1,
            lease_ms: 1000,
            max_attempts: 3,
            now: at(1),
        })
        .await
        .expect("claim");
    store
        .complete_chat(
            &claimed[0],
            &ChatAnswer {
                answer: "yes".into(),
                citations: vec![],
                mode: AnswerMode::Extractive,
                context: vec![],
            },
            at(2),
        )
        .await
        .expect("complete");
    store.record_heartbeat("w", at(3)).await.expect("heartbeat");

    let keys = raw(&env, Command::new("KEYS").arg("*"))
        .await
        .into_array()
        .unwrap();
    let prefix = format!("fc:{namespace}:");
    assert!(keys.len() >= 8, "{keys:?}");
    // One key is shared by every namespace: the registry of those with work,
    // which holds this one until its drain finds it idle.
    for key in &keys {
        let key = key.as_str().expect("a key name");
        assert!(
            key.starts_with(&prefix) || key == "fc:namespaces",
            "{key} lacks the namespace"
        );
    }
    assert_eq!(
        store.namespaces_with_work().await.expect("registry"),
        std::slice::from_ref(&namespace)
    );
    assert!(store.forget_namespace_if_idle().await.expect("forget"));
    assert!(
        store
            .namespaces_with_work()
            .await
            .expect("registry")
            .is_empty()
    );
    let pttl = |key: String| async {
        raw(&env, Command::new("PTTL").arg(key))
            .await
            .as_i64()
            .unwrap()
    };
    let job_ttl = pttl(format!("{prefix}job:{}", job.id)).await;
    assert!(
        job_ttl > 3_500_000 && job_ttl <= 3_600_000,
        "job ttl {job_ttl}"
    );
    for key in [
        format!("{prefix}conv:{conversation_id}"),
        format!("{prefix}conv:{conversation_id}:messages"),
        format!("{prefix}session:{session}:conversations"),
    ] {
        let ttl = pttl(key.clone()).await;
        assert!(ttl > 7_100_000 && ttl <= 7_200_000, "{key} ttl {ttl}");
    }
    let rate_keys: Vec<_> = keys
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| k.contains(":rate:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        rate_keys.len(),
        2,
        "one current window per check: {rate_keys:?}"
    );
    for key in rate_keys {
        let ttl = pttl(key.clone()).await;
        assert!(ttl > 0 && ttl <= 121_000, "{key} ttl {ttl}");
    }
}

/// Unreachable store, wrong token, Redis down behind the gateway: all
/// `Unavailable` (the API answers 503), and no error carries the token.
#[tokio::test]
async fn outages_are_unavailable_and_never_leak_the_token() {
    let secret = "sekrit-token-value-1234";
    // Nothing listens on port 1.
    let store = UpstashStore::new(
        client("http://127.0.0.1:1", secret),
        "outage",
        Ttls::default(),
    );
    for error in [
        store.ping().await.unwrap_err(),
        store
            .get_job(&JobId::from_random(ids(1)))
            .await
            .unwrap_err(),
        store
            .submit_chat(chat_submission(&SessionId::from_random(ids(2)), 1, at(0)))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(!error.to_string().contains(secret), "{error}");
    }

    let mut env = TestGateway::start().await.expect("a gateway of its own");
    let wrong = UpstashStore::new(client(&env.url(), secret), "outage", Ttls::default());
    let error = wrong.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains(secret), "{error}");

    let store = UpstashStore::new(client(&env.url(), env.token()), "outage", Ttls::default());
    store.ping().await.expect("ping");
    env.redis.stop();
    let error = store.queue_stats(at(0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains(env.token()), "{error}");
}

/// Bad stored data is `Corrupt`, and an unreadable job does not block the queue.
#[tokio::test]
async fn corrupt_records_are_reported_and_skipped() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, Ttls::default());
    let bad = store
        .enqueue(NewJob {
            id: JobId::from_random(ids(1)),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: at(0),
        })
        .await
        .expect("enqueue");
    let good = store
        .enqueue(NewJob {
            id: JobId::from_random(ids(2)),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: at(1),
        })
        .await
        .expect("enqueue");
    let key = format!("fc:{namespace}:job:{}", bad.id);
    raw(
        &env,
        Command::new("HSET").arg(&key).arg("payload").arg("{nope"),
    )
    .await;
    let error = store.get_job(&bad.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let claimed = store
        .claim(&ClaimRequest {
            worker: "w".into(),
            max_jobs: 1,
            lease_ms: 1000,
            max_attempts: 3,
            now: at(5),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the readable job behind it is handed out");
    assert_eq!(claimed[0].job.id, good.id);
    let status = raw(&env, Command::new("HGET").arg(&key).arg("status")).await;
    assert_eq!(status.as_str(), Some("failed"));
    let stats = store.queue_stats(at(5)).await.expect("stats");
    assert_eq!((stats.queued, stats.running), (0, 1));

    // A message that is not JSON.
    let session = SessionId::from_random(ids(3));
    let SubmitOutcome::Accepted {
        conversation_id, ..
    } = store
        .submit_chat(chat_submission(&session, 4, at(6)))
        .await
        .expect("submit")
    else {
        panic!("accepted")
    };
    raw(
        &env,
        Command::new("RPUSH")
            .arg(format!("fc:{namespace}:conv:{conversation_id}:messages"))
            .arg("not json"),
    )
    .await;
    let error = store.get_conversation(&conversation_id).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

/// Finished jobs leave the stream: acknowledged and deleted, nothing pending.
#[tokio::test]
async fn the_stream_does_not_grow_with_history() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, Ttls::default());
    for n in 0..12u8 {
        store
            .enqueue(NewJob {
                id: JobId::from_random(ids(n)),
                owner: None,
                payload: JobPayload::IngestSharedFolder,
                now: at(i64::from(n)),
            })
            .await
            .expect("enqueue");
    }
    let stream = format!("fc:{namespace}:queue");
    let xlen = |env: &TestGateway| {
        let stream = stream.clone();
        let c = client(&env.url(), env.token());
        async move {
            c.cmd(Command::new("XLEN").arg(stream))
                .await
                .unwrap()
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(xlen(&env).await, 12);
    let request = |now| ClaimRequest {
        worker: "w".into(),
        max_jobs: 12,
        lease_ms: 1000,
        max_attempts: 3,
        now,
    };
    let claimed = store.claim(&request(at(100))).await.expect("claim");
    assert_eq!(claimed.len(), 12);
    let report = JobResult::Ingest(IngestReport::default());
    for (i, c) in claimed.iter().enumerate() {
        match i % 4 {
            0 => {
                store
                    .complete_job(c, &report, at(101))
                    .await
                    .expect("complete");
            }
            1 => {
                store
                    .fail_job(c, "later", Some(at(500)), at(101))
                    .await
                    .expect("fail");
            }
            2 => {
                store
                    .fail_job(c, "never", None, at(101))
                    .await
                    .expect("fail");
            }
            _ => {
                store.release(c, at(101)).await.expect("release");
            }
        }
    }
    assert_eq!(xlen(&env).await, 0, "every entry acknowledged and deleted");
    let pending = raw(&env, Command::new("XPENDING").arg(&stream).arg("drain")).await;
    assert_eq!(pending.into_array().unwrap()[0].as_i64(), Some(0));
    // The retried and released jobs are still claimable, from the delayed set.
    let again = store.claim(&request(at(1000))).await.expect("claim");
    assert_eq!(again.len(), 6);
    for c in &again {
        store
            .complete_job(c, &report, at(1001))
            .await
            .expect("complete");
    }
    let stats = store.queue_stats(at(1001)).await.expect("stats");
    assert_eq!(
        (
            stats.queued,
            stats.delayed,
            stats.running,
            stats.dead_letters
        ),
        (0, 0, 0, 3)
    );
}

/// A retry that comes due is handed out before jobs that arrived after it,
/// as in sqlite (oldest first by arrival).
#[tokio::test]
async fn a_due_retry_goes_before_newer_jobs() {
    let store = UpstashHarness.fresh().await;
    let enqueue = |n: u8, now| {
        let store = &store;
        async move {
            store
                .enqueue(NewJob {
                    id: JobId::from_random(ids(n)),
                    owner: None,
                    payload: JobPayload::IngestSharedFolder,
                    now,
                })
                .await
                .expect("enqueue")
        }
    };
    let request = |max_jobs, now| ClaimRequest {
        worker: "w".into(),
        max_jobs,
        lease_ms: 10_000,
        max_attempts: 5,
        now,
    };
    let first = enqueue(1, at(0)).await;
    let claimed = store.claim(&request(1, at(1))).await.expect("claim");
    assert_eq!(
        store
            .fail_job(&claimed[0], "try later", Some(at(50)), at(2))
            .await
            .expect("fail"),
        FailureOutcome::RetryAt(at(50))
    );
    let second = enqueue(2, at(10)).await;
    let third = enqueue(3, at(20)).await;
    let order: Vec<_> = store
        .claim(&request(3, at(60)))
        .await
        .expect("claim")
        .into_iter()
        .map(|c| (c.job.id, c.job.attempts, c.job.status))
        .collect();
    assert_eq!(
        order,
        vec![
            (first.id, 2, JobStatus::Running),
            (second.id, 1, JobStatus::Running),
            (third.id, 1, JobStatus::Running)
        ]
    );
}

/// `record_progress` is one request and one command (the script), and it
/// moves the job's score in the lease index with its `lease_until`, so
/// `queue_stats` and reserving agree with the job record.
#[tokio::test]
async fn record_progress_is_one_request_and_moves_the_lease_index() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, Ttls::default());
    store.load_scripts().await.expect("load_scripts");
    let job = store
        .enqueue(NewJob {
            id: JobId::from_random(ids(1)),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: at(0),
        })
        .await
        .expect("enqueue");
    let claimed = store
        .claim(&ClaimRequest {
            worker: "w".into(),
            max_jobs: 1,
            lease_ms: 1000,
            max_attempts: 3,
            now: at(1),
        })
        .await
        .expect("claim")
        .pop()
        .expect("claimed");

    let (sent, stats) = (store.client().requests_sent(), env.stats());
    assert!(
        store
            .record_progress(&claimed, "so far", at(90_000), at(2))
            .await
            .expect("record_progress")
    );
    assert_eq!(store.client().requests_sent() - sent, 1, "one request");
    let now = env.stats();
    assert_eq!(now.requests - stats.requests, 1);
    assert_eq!(now.commands - stats.commands, 1, "one command: the script");

    let leases = raw(
        &env,
        Command::new("ZRANGE")
            .arg(format!("fc:{namespace}:queue:leases"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES"),
    )
    .await
    .into_array()
    .unwrap();
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(
        leases[0].as_str().unwrap().ends_with(job.id.as_str()),
        "{leases:?}"
    );
    assert_eq!(leases[1].as_f64(), Some(at(90_000).as_millis() as f64));
    let key = format!("fc:{namespace}:job:{}", job.id);
    let fields = raw(
        &env,
        Command::new("HMGET")
            .arg(&key)
            .arg("partial")
            .arg("lease_until"),
    )
    .await
    .into_array()
    .unwrap();
    assert_eq!(fields[0].as_str(), Some("so far"));
    assert_eq!(
        fields[1].as_str(),
        Some(at(90_000).as_millis().to_string().as_str())
    );

    // Completion deletes the field rather than leaving an empty one.
    store
        .complete_job(&claimed, &JobResult::Ingest(IngestReport::default()), at(3))
        .await
        .expect("complete_job");
    let exists = raw(&env, Command::new("HEXISTS").arg(&key).arg("partial")).await;
    assert_eq!(exists.as_i64(), Some(0));
}

fn pending_upload(session: &SessionId, n: u8, now: Timestamp) -> UploadSubmission {
    let owner = DocumentOwner::Session(session.clone());
    let record = DocumentRecord {
        id: DocumentId::for_upload(&owner, &ids(n)),
        name: format!("upload-{n}.pdf"),
        owner: owner.clone(),
        size_bytes: 1000,
        status: DocumentStatus::Pending,
        chunks: 0,
        pages: None,
        origin: DocumentOrigin::Upload,
        error: None,
        updated_at: now,
    };
    UploadSubmission {
        job: NewJob {
            id: JobId::from_random(ids(n.wrapping_add(100))),
            owner: Some(session.clone()),
            payload: JobPayload::IngestUpload {
                document_id: record.id.clone(),
                name: record.name.clone(),
                owner,
            },
            now,
        },
        record,
        rate_checks: vec![
            RateCheck {
                key: format!("write:session:{session}"),
                rule: RateRule::per_minute(10),
            },
            RateCheck {
                key: "write:ip:192.0.2.1".to_owned(),
                rule: RateRule::per_minute(30),
            },
        ],
        // The quota is checked in the same script: still one request.
        session: Some(flowchat_store::SessionTerms {
            quota: flowchat_store::DocumentQuota {
                max_documents: 50,
                max_bytes: 50 * 1024 * 1024,
            },
            expires_at: now.plus_secs(flowchat_domain::token::SESSION_LIFETIME_SECS),
        }),
    }
}

/// Requests the client sent and the gateway saw so far, to assert round trips.
fn counters(store: &UpstashStore, env: &TestGateway) -> (u64, flowchat_gateway::StatsSnapshot) {
    (store.client().requests_sent(), env.stats())
}

/// Exactly one request, carrying one command (a script), since `before`.
fn assert_one_request(
    store: &UpstashStore,
    env: &TestGateway,
    before: (u64, flowchat_gateway::StatsSnapshot),
    what: &str,
) {
    let (sent, stats) = before;
    assert_eq!(
        store.client().requests_sent() - sent,
        1,
        "{what}: one request"
    );
    let now = env.stats();
    assert_eq!(
        now.requests - stats.requests,
        1,
        "{what}: the gateway saw one"
    );
    assert_eq!(now.commands - stats.commands, 1, "{what}: one command");
}

/// One upload submission is one request to Upstash and one command on
/// Redis (the script) once the scripts are cached, whatever the outcome:
/// accepted, existing, or rate-limited. Deleting a document is one too.
#[tokio::test]
async fn submit_upload_is_one_request() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let store = UpstashStore::new(
        client(&env.url(), env.token()),
        &random_namespace(),
        Ttls::default(),
    );
    let session = SessionId::from_random(ids(1));

    // Cold: Redis does not know the script yet.
    let sent = store.client().requests_sent();
    let first = pending_upload(&session, 1, at(0));
    let outcome = store
        .submit_upload(first.clone())
        .await
        .expect("submit_upload");
    assert!(
        matches!(outcome, UploadOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        store.client().requests_sent() - sent,
        2,
        "EVALSHA, NOSCRIPT, EVAL"
    );

    for n in 2..5 {
        let before = counters(&store, &env);
        let outcome = store
            .submit_upload(pending_upload(&session, n, at(i64::from(n))))
            .await
            .expect("submit_upload");
        assert!(
            matches!(outcome, UploadOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        assert_one_request(&store, &env, before, "accepted");
    }

    let mut again = first.clone();
    again.job.id = JobId::from_random(ids(250));
    let before = counters(&store, &env);
    assert!(matches!(
        store.submit_upload(again).await.expect("submit_upload"),
        UploadOutcome::Existing(_)
    ));
    assert_one_request(&store, &env, before, "existing");

    let mut limited = pending_upload(&session, 5, at(11));
    limited.rate_checks[0].rule = RateRule::per_minute(4);
    let before = counters(&store, &env);
    assert!(matches!(
        store.submit_upload(limited).await.expect("submit_upload"),
        UploadOutcome::RateLimited(_)
    ));
    assert_one_request(&store, &env, before, "rate-limited");

    store.load_scripts().await.expect("load_scripts");
    let id = first.record.id.clone();
    let before = counters(&store, &env);
    assert!(
        store
            .delete_document(
                &id,
                NewJob {
                    id: JobId::from_random(ids(251)),
                    owner: None,
                    payload: JobPayload::DeleteDocument {
                        document_id: id.clone()
                    },
                    now: at(12),
                },
            )
            .await
            .expect("delete_document")
    );
    assert_one_request(&store, &env, before, "delete_document");
}

/// Reading an upload of N parts is one request (one `MGET`), found or not;
/// each part is stored base64-encoded under its namespaced key, with the
/// upload TTL; deleting the upload deletes every part in one request.
#[tokio::test]
async fn upload_parts_are_one_request_to_read_and_expire() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let ttls = Ttls {
        upload: Duration::from_secs(60),
        ..Ttls::default()
    };
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, ttls);
    let id = DocumentId::for_content(&ids(1));
    let parts: Vec<Vec<u8>> = (0..5u8)
        .map(|n| {
            (0..UPLOAD_PART_BYTES / 4)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
                .collect()
        })
        .collect();
    for (index, part) in parts.iter().enumerate() {
        let sent = store.client().requests_sent();
        store
            .put_upload_part(&id, index as u32, part, at(0))
            .await
            .expect("put_upload_part");
        assert_eq!(store.client().requests_sent() - sent, 1, "one SET per part");
    }

    let (sent, stats) = (store.client().requests_sent(), env.stats());
    let joined = store.get_upload(&id, 5).await.expect("get_upload");
    assert_eq!(joined, Some(parts.concat()));
    assert_eq!(store.client().requests_sent() - sent, 1, "one request");
    let now = env.stats();
    assert_eq!(now.requests - stats.requests, 1);
    assert_eq!(now.commands - stats.commands, 1, "one command: MGET");
    let sent = store.client().requests_sent();
    assert_eq!(store.get_upload(&id, 6).await.expect("get_upload"), None);
    assert_eq!(store.client().requests_sent() - sent, 1, "a miss too");

    for (index, part) in parts.iter().enumerate() {
        let key = format!("fc:{namespace}:upload:{id}:{index}");
        let ttl = raw(&env, Command::new("PTTL").arg(&key))
            .await
            .as_i64()
            .unwrap();
        assert!(ttl > 55_000 && ttl <= 60_000, "{key} ttl {ttl}");
        let stored = raw(&env, Command::new("GET").arg(&key)).await;
        let text = stored.as_str().expect("stored as text");
        assert_eq!(text.len(), part.len().div_ceil(3) * 4, "base64");
    }

    let sent = store.client().requests_sent();
    store.delete_upload(&id, 5).await.expect("delete_upload");
    assert_eq!(store.client().requests_sent() - sent, 1, "one DEL");
    let keys = raw(
        &env,
        Command::new("KEYS").arg(format!("fc:{namespace}:upload:*")),
    )
    .await
    .into_array()
    .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// A stored part that is not what the store writes, and a catalog record
/// that does not read back, are `Corrupt`: reported, never a panic, and an
/// upload over the unreadable record writes nothing.
#[tokio::test]
async fn corrupt_uploads_and_catalog_records_are_reported() {
    let env = TestGateway::start().await.expect("a gateway of its own");
    let namespace = random_namespace();
    let store = UpstashStore::new(client(&env.url(), env.token()), &namespace, Ttls::default());
    let id = DocumentId::for_content(&ids(1));
    store
        .put_upload_part(&id, 0, b"fine", at(0))
        .await
        .expect("put_upload_part");
    raw(
        &env,
        Command::new("SET")
            .arg(format!("fc:{namespace}:upload:{id}:1"))
            .arg("not base64!"),
    )
    .await;
    let error = store.get_upload(&id, 2).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let session = SessionId::from_random(ids(2));
    let sub = pending_upload(&session, 3, at(0));
    raw(
        &env,
        Command::new("HSET")
            .arg(format!("fc:{namespace}:docs"))
            .arg(sub.record.id.as_str())
            .arg("{nope"),
    )
    .await;
    let job_id = sub.job.id.clone();
    let error = store.submit_upload(sub.clone()).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    let error = store.get_document(&sub.record.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert_eq!(store.get_job(&job_id).await.expect("get_job"), None);
    assert_eq!(store.queue_stats(at(1)).await.expect("stats").queued, 0);
}
