//! One `flowchat-drain` with no namespace configured serves every
//! namespace with work: a production deployment and a preview deployment
//! (two dev servers without drains of their own, on one Upstash-protocol
//! gateway over a real redis-server) get answers that cite the drain's
//! shared folder, indexed on that same start, per namespace.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestApp, app};
use flowchat_gateway::testing::TestGateway;
use serde_json::Value;

const QUESTION: &str = "How many days of parental leave do employees get?";
const HANDBOOK: &str = "# Handbook\n\n## Leave\n\nEmployees get 120 days of parental leave, \
paid in full. Ask the people team for the form.\n\n## Parking\n\nParking is free on weekends.\n";

/// A deployment: a dev server in `namespace` with no drain of its own.
async fn deployment(gateway: &TestGateway, namespace: &str) -> TestApp {
    app()
        .var("FLOWCHAT_STORE", "upstash")
        .var("UPSTASH_REDIS_REST_URL", &gateway.url())
        .var("UPSTASH_REDIS_REST_TOKEN", gateway.token())
        .var("FLOWCHAT_NAMESPACE", namespace)
        .drain_concurrency(0)
        .spawn()
        .await
}

/// The drain process: the gateway, its own data directory and shared
/// folder (holding only the handbook), and no `FLOWCHAT_NAMESPACE`.
struct DrainProcess {
    dir: tempfile::TempDir,
    gateway_url: String,
    token: String,
}

impl DrainProcess {
    fn new(gateway: &TestGateway) -> Self {
        let dir = tempfile::tempdir().unwrap();
        common::write_doc(&dir.path().join("documents"), "handbook.md", HANDBOOK);
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        DrainProcess {
            dir,
            gateway_url: gateway.url(),
            token: gateway.token().to_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let path = |p: &str| self.dir.path().join(p).display().to_string();
        let vars = [
            ("FLOWCHAT_STORE", "upstash".to_owned()),
            ("UPSTASH_REDIS_REST_URL", self.gateway_url.clone()),
            ("UPSTASH_REDIS_REST_TOKEN", self.token.clone()),
            ("DOCUMENTS_PATH", path("documents")),
            ("FLOWCHAT_DATA_DIR", path("data")),
        ];
        common::drain_command(vars, self.dir.path(), args)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

async fn job(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/api/chat/{id}"), Some(token)).await.body
}

fn assert_answered_from_the_handbook(job: &Value) {
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["citations"][0]["source"], "handbook.md", "{job}");
    assert!(
        job["answer"].as_str().unwrap().contains("120 days"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_once_run_answers_production_and_a_preview_from_the_folder_it_indexed() {
    let gateway = TestGateway::start().await.unwrap();
    let production = deployment(&gateway, "production").await;
    let preview = deployment(&gateway, "preview-feat-leave").await;
    let (prod_token, _) = production.session("Ana").await;
    let (preview_token, _) = preview.session("Bo").await;
    let prod_job = production.submit(&prod_token, QUESTION).await;
    let preview_job = preview.submit(&preview_token, QUESTION).await;

    let drain = DrainProcess::new(&gateway);
    // The operator sees which namespaces wait for a drain.
    let stats = drain.command(&["stats", "--json"]).output().unwrap();
    assert!(stats.status.success(), "{stats:?}");
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        stats["namespaces_with_work"],
        serde_json::json!(["preview-feat-leave", "production"])
    );

    let out = drain
        .command(&["--once", "--max-seconds", "60"])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");

    assert_answered_from_the_handbook(&job(&production, &prod_token, &prod_job).await);
    assert_answered_from_the_handbook(&job(&preview, &preview_token, &preview_job).await);
    // Each namespace indexed the folder into an index of its own.
    for namespace in ["production", "preview-feat-leave"] {
        let index = drain
            .dir
            .path()
            .join("data")
            .join(format!("knowledge-{namespace}.db"));
        assert!(index.exists(), "{} missing; logs: {logs}", index.display());
    }
    // Both namespaces were idle at the end, so both left the registry: the
    // next run reads an empty set and has nothing to open.
    let again = drain.command(&["--once"]).output().unwrap();
    let logs = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{logs}");
    assert!(logs.contains(r#""namespaces":"[]""#), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_drain_picks_up_a_namespace_that_appears_after_it_started() {
    let gateway = TestGateway::start().await.unwrap();
    let drain = DrainProcess::new(&gateway);
    let mut worker = drain.spawn(&["--follow"]);

    let preview = deployment(&gateway, "preview-late").await;
    let (token, _) = preview.session("Cy").await;
    let id = preview.submit(&token, QUESTION).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let answered = loop {
        let j = job(&preview, &token, &id).await;
        if j["status"] == "succeeded" || j["status"] == "failed" {
            break j;
        }
        assert!(Instant::now() < deadline, "never answered: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_answered_from_the_handbook(&answered);

    // SIGTERM stops every namespace's drain and the process exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the drain did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
