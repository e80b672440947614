//! Spawns a real dev server (store, index, drain, HTTP) on a random port in
//! a temporary data directory, and speaks to it over HTTP like a client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flowchat_devserver::{RunningServer, ServerOptions, start};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const ADMIN: &str = "admin-token-for-tests-0123456789";

pub struct TestApp {
    pub server: Option<RunningServer>,
    pub url: String,
    pub docs: PathBuf,
    /// Every variable the server was started with.
    pub vars: HashMap<String, String>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub struct Builder {
    vars: HashMap<String, String>,
    documents: Vec<(String, String)>,
    drain_concurrency: u32,
    web_dir: Option<PathBuf>,
}

impl Builder {
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn document(mut self, name: &str, text: &str) -> Self {
        self.documents.push((name.to_owned(), text.to_owned()));
        self
    }

    /// 0 runs no drain in the server (a separate `flowchat-drain` does the work).
    pub fn drain_concurrency(mut self, n: u32) -> Self {
        self.drain_concurrency = n;
        self
    }

    /// Serves this folder as the web app instead of the built-in page.
    pub fn web_dir(mut self, dir: &Path) -> Self {
        self.web_dir = Some(dir.to_owned());
        self
    }

    /// Points the drain at a fake Flow server, with quick client retries.
    pub fn flow(mut self, fake: &flowchat_fake_flow::FakeFlow) -> Self {
        for (k, v) in fake.env() {
            self.vars.insert(k.to_owned(), v);
        }
        self.vars
            .entry("LLM_RETRY_BASE_MS".into())
            .or_insert("10".into());
        self
    }

    pub async fn spawn(self) -> TestApp {
        self.try_spawn().await.expect("dev server starts")
    }

    pub async fn try_spawn(self) -> anyhow::Result<TestApp> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let docs = dir.path().join("documents");
        std::fs::create_dir_all(&docs).unwrap();
        for (name, text) in &self.documents {
            write_doc(&docs, name, text);
        }
        let mut vars = self.vars;
        vars.entry("FLOWCHAT_DATA_DIR".into())
            .or_insert(data.display().to_string());
        vars.entry("DOCUMENTS_PATH".into())
            .or_insert(docs.display().to_string());
        vars.entry("SESSION_SECRET".into()).or_insert(SECRET.into());
        vars.entry("RATE_LIMIT_CHAT_PER_MINUTE".into())
            .or_insert("1000".into());
        vars.entry("RATE_LIMIT_IP_PER_MINUTE".into())
            .or_insert("1000".into());
        let config = flowchat_config::drain_config(|k| vars.get(k).cloned()).unwrap();
        let server = start(
            config,
            ServerOptions {
                host: "127.0.0.1".into(),
                port: 0,
                web_dir: self.web_dir,
                drain_concurrency: self.drain_concurrency,
            },
        )
        .await?;
        Ok(TestApp {
            vars,
            url: server.url(),
            server: Some(server),
            docs,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            _dir: dir,
        })
    }
}

pub fn write_doc(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub const POLICY: &str = "# Remote work policy\n\n## Equipment\n\nThe company provides a laptop, a monitor and a headset for home offices. \
Employees may claim a one-time allowance of 150 euros for a desk chair.\n\n## Working hours\n\n\
Core hours are 10:00 to 16:00 in the local time zone.\n";
pub const EXPENSES: &str = "Expense guidelines\n\nMeals during business travel are reimbursed up to 40 euros per day. \
Keep every receipt and submit expenses within 30 days.\n";

pub fn app() -> Builder {
    Builder {
        vars: HashMap::new(),
        documents: vec![
            ("policy.md".into(), POLICY.into()),
            ("expenses.txt".into(), EXPENSES.into()),
        ],
        drain_concurrency: 2,
        web_dir: None,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        Reply::read(res).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Reply {
        Reply::read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Creates a session and returns (token, session_id).
    pub async fn session(&self, nickname: &str) -> (String, String) {
        let r = self
            .post("/api/session", None, json!({"nickname": nickname}))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (
            r.body["token"].as_str().unwrap().to_owned(),
            r.body["session_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Asks without waiting; returns the job id.
    pub async fn submit(&self, token: &str, message: &str) -> String {
        let r = self
            .post("/api/chat", Some(token), json!({"message": message}))
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        r.body["job_id"].as_str().unwrap().to_owned()
    }

    /// Asks and waits for the finished job.
    pub async fn ask(&self, token: &str, message: &str, conversation: Option<&str>) -> Value {
        let mut body = json!({"message": message});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let r = self.post("/api/chat", Some(token), body).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        self.wait_job(token, r.body["job_id"].as_str().unwrap())
            .await
    }

    pub async fn wait_job(&self, token: &str, job_id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            let r = self
                .get(&format!("/api/chat/{job_id}?wait=5"), Some(token))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let status = r.body["status"].as_str().unwrap();
            if status == "succeeded" || status == "failed" {
                return r.body;
            }
        }
        panic!("job {job_id} did not finish");
    }
}

impl Reply {
    async fn read(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status, and returns its body.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(
                !self.body[field].is_null(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id")
        );
        &self.body
    }
}

/// The binary of the `flowchat-drain-bin` package, next to this package's
/// own: `cargo nextest run --workspace` (what `scripts/test` runs) builds
/// both. The drain binary is not a dependency of the dev server's, so that
/// it links no HTTP API.
pub fn drain_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_flowchat-devserver"))
        .with_file_name(format!("flowchat-drain{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p flowchat-drain-bin) or run the whole workspace's tests",
        path.display()
    );
    path
}

/// `flowchat-drain ARGS` with only `vars` (and `PATH`) in its environment,
/// JSON logs at info on stderr, run in `dir` so that it never picks up a
/// developer's `.env`.
pub fn drain_command<K, V>(
    vars: impl IntoIterator<Item = (K, V)>,
    dir: &Path,
    args: &[&str],
) -> std::process::Command
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut command = std::process::Command::new(drain_binary());
    command
        .args(args)
        .env_clear()
        .envs(vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .current_dir(dir);
    command
}
