//! A drain killed with SIGKILL while it holds a job: the job is reclaimed by
//! another drain once its lease expires and completes exactly once, with one
//! assistant message. Real processes (the dev server binary, whose
//! in-process drain is the same code as the drain binary), a real
//! redis-server behind the Upstash-protocol gateway.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowchat_domain::model::{JobStatus, Role};
use flowchat_domain::{ConversationId, JobId};
use flowchat_gateway::testing::TestGateway;
use flowchat_store::Store;
use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env(gateway: &TestGateway, namespace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FLOWCHAT_STORE", "upstash".into()),
        ("UPSTASH_REDIS_REST_URL", gateway.url()),
        ("UPSTASH_REDIS_REST_TOKEN", gateway.token().into()),
        ("FLOWCHAT_NAMESPACE", namespace.into()),
        (
            "SESSION_SECRET",
            "crash-test-secret-crash-test-secret-0000".into(),
        ),
        ("RATE_LIMIT_CHAT_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_IP_PER_MINUTE", "1000000".into()),
        ("DRAIN_LEASE_SECONDS", "1".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

async fn start(vars: &[(&'static str, String)], dir: &std::path::Path, name: &str) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_flowchat-devserver"))
        .args(["--port", &port.to_string(), "--drain-concurrency", "2"])
        .arg("--data-dir")
        .arg(dir.join(name))
        .arg("--docs-dir")
        .arg(dir.join("docs"))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dev server starts");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{}/api/health/ping", server.url))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the dev server did not start");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_drain_killed_mid_job_loses_nothing_and_answers_once() {
    let gateway = TestGateway::start().await.unwrap();
    let namespace = format!("crash{}", std::process::id());
    let vars = env(&gateway, &namespace);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/policy.md"),
        "# Policy\n\nCore hours are 10:00 to 16:00.\n",
    )
    .unwrap();

    // The test reads the shared store directly, as a third client.
    let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let config = flowchat_config::app_config(lookup).unwrap();
    let upstash = flowchat_config::upstash_config(lookup).unwrap();
    let store = flowchat_startup::upstash_store(&config, upstash).unwrap();

    let mut first = start(&vars, dir.path(), "a").await;
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{}/api/session", first.url))
        .json(&json!({"nickname": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();

    // A backlog, so the first drain is busy when it is frozen.
    let mut jobs = Vec::new();
    for _ in 0..600 {
        let r: Value = client
            .post(format!("{}/api/chat", first.url))
            .bearer_auth(&token)
            .json(&json!({"message": "What are the core hours?"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jobs.push((
            JobId::parse(r["job_id"].as_str().unwrap(), "job_id").unwrap(),
            ConversationId::parse(r["conversation_id"].as_str().unwrap(), "conversation_id")
                .unwrap(),
        ));
    }

    // Freeze the drain until it is caught in the middle of a job (claimed,
    // status running, not completed), then kill it.
    let mut held = Vec::new();
    for _ in 0..200 {
        signal(&first.child, "STOP");
        // Let requests already on the wire land, so what is still running
        // is really held by the frozen process.
        tokio::time::sleep(Duration::from_millis(150)).await;
        if store
            .queue_stats(flowchat_startup::now())
            .await
            .unwrap()
            .running
            > 0
        {
            for (job_id, _) in &jobs {
                let job = store.get_job(job_id).await.unwrap().unwrap();
                if job.status == JobStatus::Running {
                    held.push(job_id.clone());
                }
            }
            if !held.is_empty() {
                break;
            }
        }
        signal(&first.child, "CONT");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        !held.is_empty(),
        "the first drain was never caught in the middle of a job"
    );
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    // A second drain takes over; held jobs come back once their lease expires.
    let _second = start(&vars, dir.path(), "b").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = store.queue_stats(flowchat_startup::now()).await.unwrap();
        if stats.queued + stats.running + stats.delayed == 0 {
            assert_eq!(stats.dead_letters, 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not drain: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (job_id, conversation_id) in &jobs {
        let job = store.get_job(job_id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        if held.contains(job_id) {
            assert_eq!(
                job.attempts, 2,
                "the job held by the killed drain was claimed again"
            );
        }
        let conversation = store
            .get_conversation(conversation_id)
            .await
            .unwrap()
            .unwrap();
        let roles: Vec<Role> = conversation.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::User, Role::Assistant],
            "exactly one answer for {job_id}"
        );
    }
}
