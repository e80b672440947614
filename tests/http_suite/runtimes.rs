//! The four runtimes, each started behind a base URL over one shared store:
//! Upstash (the real gateway over a throwaway redis-server), namespaced per
//! instance.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use flowchat_domain::Platform;
use flowchat_drain::DrainIdentity;
use flowchat_gateway::testing::TestGateway;
use flowchat_startup::NativePlatform;
use tokio::sync::watch;

use crate::vercel_router::{self, VercelRouter};

pub const SECRET: &str = "http-suite-secret-http-suite-secret-0123";
pub const ADMIN: &str = "http-suite-admin-token-0123456789";
pub const ALLOWED_ORIGIN: &str = "http://localhost:5173";

pub const POLICY: &str = "# Remote work policy\n\n## Equipment\n\nThe company provides a laptop, a monitor and a headset for home offices. \
Employees may claim a one-time allowance of 150 euros for a desk chair.\n\n## Working hours\n\n\
Core hours are 10:00 to 16:00 in the local time zone.\n";
pub const EXPENSES: &str = "Expense guidelines\n\nMeals during business travel are reimbursed up to 40 euros per day. \
Keep every receipt and submit expenses within 30 days.\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    DevServer,
    Vercel,
    Lambda,
    Worker,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::DevServer => "dev server",
            Runtime::Vercel => "Vercel functions",
            Runtime::Lambda => "AWS Lambda",
            Runtime::Worker => "Cloudflare Worker",
        })
    }
}

/// What an instance is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Namespace A: a drain answers, the shared folder is indexed, limits
    /// are generous.
    Primary,
    /// Namespace B: no drain (jobs stay queued), low rate limits.
    Secondary,
}

/// The variables one instance runs with (and its drain, for the primary).
pub type Env = BTreeMap<String, String>;

/// The store and the folders every instance of one runtime shares.
pub struct Stack {
    pub gateway: TestGateway,
    pub dir: tempfile::TempDir,
    pub docs: PathBuf,
    pub web: PathBuf,
    run_id: String,
}

impl Stack {
    pub async fn start() -> anyhow::Result<Stack> {
        let gateway = TestGateway::start()
            .await
            .context("the Upstash gateway over redis-server")?;
        let dir = tempfile::tempdir()?;
        let docs = dir.path().join("documents");
        std::fs::create_dir_all(&docs)?;
        std::fs::write(docs.join("policy.md"), POLICY)?;
        std::fs::write(docs.join("expenses.txt"), EXPENSES)?;
        // The web app's static files, for the Vercel router.
        let web = dir.path().join("web");
        std::fs::create_dir_all(web.join("assets"))?;
        std::fs::write(
            web.join("index.html"),
            "<!doctype html><title>FlowChat suite app</title>",
        )?;
        std::fs::write(web.join("assets/app-abc123.js"), "console.log('app')")?;
        let run_id = flowchat_startup::random_bytes()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Stack {
            gateway,
            dir,
            docs,
            web,
            run_id,
        })
    }

    pub fn env(&self, role: Role) -> Env {
        let (name, chat, ip) = match role {
            Role::Primary => ("a", "1000", "1000"),
            Role::Secondary => ("b", "3", "12"),
        };
        let data = self.dir.path().join(format!("data-{name}"));
        std::fs::create_dir_all(&data).unwrap();
        let vars = [
            ("FLOWCHAT_STORE", "upstash".to_owned()),
            ("UPSTASH_REDIS_REST_URL", self.gateway.url()),
            ("UPSTASH_REDIS_REST_TOKEN", self.gateway.token().to_owned()),
            ("FLOWCHAT_NAMESPACE", format!("suite{}{name}", self.run_id)),
            ("SESSION_SECRET", SECRET.to_owned()),
            ("ADMIN_TOKEN", ADMIN.to_owned()),
            ("CORS_ORIGINS", ALLOWED_ORIGIN.to_owned()),
            ("RATE_LIMIT_CHAT_PER_MINUTE", chat.to_owned()),
            ("RATE_LIMIT_IP_PER_MINUTE", ip.to_owned()),
            ("MAX_UPLOAD_MB", "1".to_owned()),
            ("DOCUMENTS_PATH", self.docs.display().to_string()),
            ("FLOWCHAT_DATA_DIR", data.display().to_string()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// A drain in this process (the same `flowchat_drain::assemble` the
/// `flowchat-drain` binary runs), following namespace A's queue.
pub struct HarnessDrain {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HarnessDrain {
    pub async fn start(env: &Env) -> anyhow::Result<HarnessDrain> {
        let config = flowchat_config::drain_config(|k| env.get(k).cloned())?;
        let store = flowchat_startup::open_store(&config.app, config.upstash.clone()).await?;
        let platform: Arc<dyn Platform> = Arc::new(NativePlatform);
        let drain = flowchat_drain::assemble(
            &config,
            store,
            platform,
            DrainIdentity {
                worker_id: "http-suite-drain".into(),
                concurrency: 2,
            },
        )
        .await?;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(drain.run(rx));
        Ok(HarnessDrain { shutdown, task })
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A started instance of a runtime.
pub struct Running {
    pub url: String,
    kind: Kind,
}

enum Kind {
    DevServer(flowchat_devserver::RunningServer),
    Vercel(Box<VercelDeployment>),
    Lambda(crate::lambda::Lambda),
    Worker(EdgeDev),
}

impl Running {
    pub async fn stop(self) {
        match self.kind {
            Kind::DevServer(server) => {
                let _ = tokio::time::timeout(Duration::from_secs(15), server.stop()).await;
            }
            Kind::Vercel(deployment) => deployment.stop().await,
            Kind::Lambda(lambda) => lambda.stop().await,
            Kind::Worker(mut worker) => worker.stop(),
        }
    }
}

impl Runtime {
    /// Starts one instance with these variables, or says why it cannot.
    pub async fn start(self, stack: &Stack, env: &Env, role: Role) -> anyhow::Result<Running> {
        match self {
            Runtime::DevServer => {
                let config = flowchat_config::drain_config(|k| env.get(k).cloned())?;
                let server = flowchat_devserver::start(
                    config,
                    flowchat_devserver::ServerOptions {
                        host: "127.0.0.1".into(),
                        port: 0,
                        web_dir: None,
                        // Its own in-process drain answers namespace A; B has none.
                        drain_concurrency: if role == Role::Primary { 2 } else { 0 },
                    },
                )
                .await?;
                Ok(Running {
                    url: server.url(),
                    kind: Kind::DevServer(server),
                })
            }
            Runtime::Vercel => {
                let deployment = VercelDeployment::start(env, &stack.web).await?;
                Ok(Running {
                    url: deployment.router.url(),
                    kind: Kind::Vercel(Box::new(deployment)),
                })
            }
            Runtime::Lambda => {
                let lambda = crate::lambda::Lambda::start(env).await?;
                Ok(Running {
                    url: lambda.url(),
                    kind: Kind::Lambda(lambda),
                })
            }
            Runtime::Worker => {
                let name = if role == Role::Primary { "a" } else { "b" };
                // The primary builds the Worker; the secondary serves that build.
                let worker = EdgeDev::start(
                    env,
                    role == Role::Primary,
                    &Path::new(env!("CARGO_TARGET_TMPDIR"))
                        .join(format!("http-suite-edge-dev-{name}.log")),
                )
                .await?;
                Ok(Running {
                    url: worker.url.clone(),
                    kind: Kind::Worker(worker),
                })
            }
        }
    }

    /// Whether the suite must run its own drain for namespace A (the dev
    /// server has one in-process).
    pub fn needs_harness_drain(self) -> bool {
        self != Runtime::DevServer
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the port.
async fn wait_for_port(port: u16, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

// ---------------------------------------------------------------- Vercel

/// The 15 function binaries (`[[bin]]`s of this package, one per `api/`
/// file), keyed by their route as Vercel derives it from the file path.
pub const FUNCTIONS: [(&str, &str); 15] = [
    ("/api/health/ping", env!("CARGO_BIN_EXE_health_ping")),
    ("/api/health/ready", env!("CARGO_BIN_EXE_health_ready")),
    ("/api/session", env!("CARGO_BIN_EXE_session")),
    ("/api/chat", env!("CARGO_BIN_EXE_chat")),
    ("/api/chat/[id]", env!("CARGO_BIN_EXE_chat_id")),
    (
        "/api/chat/[id]/events",
        env!("CARGO_BIN_EXE_chat_id_events"),
    ),
    (
        "/api/chat/[id]/feedback",
        env!("CARGO_BIN_EXE_chat_id_feedback"),
    ),
    (
        "/api/chat/completions",
        env!("CARGO_BIN_EXE_chat_completions"),
    ),
    ("/api/conversations", env!("CARGO_BIN_EXE_conversations")),
    (
        "/api/conversations/[id]",
        env!("CARGO_BIN_EXE_conversations_id"),
    ),
    ("/api/documents", env!("CARGO_BIN_EXE_documents")),
    (
        "/api/documents/ingest",
        env!("CARGO_BIN_EXE_documents_ingest"),
    ),
    (
        "/api/documents/upload",
        env!("CARGO_BIN_EXE_documents_upload"),
    ),
    ("/api/documents/[id]", env!("CARGO_BIN_EXE_documents_id")),
    ("/api/openapi.json", env!("CARGO_BIN_EXE_openapi_json")),
];

struct Function {
    child: Child,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every function binary on its own port (`VERCEL_DEV_PORT`, as `vercel
/// dev` runs them) behind the router.
pub struct VercelDeployment {
    router: VercelRouter,
    _functions: Vec<Function>,
}

impl VercelDeployment {
    async fn start(env: &Env, web: &Path) -> anyhow::Result<VercelDeployment> {
        let mut functions = Vec::new();
        let mut routes = Vec::new();
        for (route, binary) in FUNCTIONS {
            let port = free_port();
            let child = Command::new(binary)
                .env_clear()
                .envs(env)
                .env("VERCEL_DEV_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting {binary}"))?;
            functions.push(Function { child });
            routes.push((route, port, binary));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, (route, port, binary)) in routes.iter().enumerate() {
            if !wait_for_port(*port, deadline).await {
                let status = functions[i].child.try_wait().ok().flatten();
                bail!("the function for {route} ({binary}) did not listen on {port}: {status:?}");
            }
        }
        let router = vercel_router::start(
            web.to_owned(),
            routes
                .iter()
                .map(|(route, port, _)| (*route, *port))
                .collect(),
        )
        .await?;
        Ok(VercelDeployment {
            router,
            _functions: functions,
        })
    }

    async fn stop(self) {
        self.router.stop().await;
        // The functions are killed as they drop.
    }
}

// ---------------------------------------------------------------- Worker

/// `scripts/edge-dev --port P`: the Worker built and run under `wrangler
/// dev`, in its own process group (killed whole at the end).
pub struct EdgeDev {
    child: Option<Child>,
    pub url: String,
}

/// The first start builds the Worker (wasm32, `worker-build`): generous.
/// `FLOWCHAT_EDGE_START_SECS` overrides it.
fn edge_start_secs() -> u64 {
    std::env::var("FLOWCHAT_EDGE_START_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

impl EdgeDev {
    async fn start(env: &Env, build: bool, log: &Path) -> anyhow::Result<EdgeDev> {
        use std::os::unix::process::CommandExt as _;
        // `FLOWCHAT_EDGE_DEV` names another script taking `--port P` (to
        // check this harness without the Worker's toolchain).
        let script = std::env::var_os("FLOWCHAT_EDGE_DEV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/edge-dev"));
        if !script.exists() {
            bail!(
                "the Worker runtime cannot start: {} is missing (it builds the Worker and runs it under `wrangler dev`)",
                script.display()
            );
        }
        let port = free_port();
        let out = std::fs::File::create(log)?;
        let mut args = vec!["--port".to_owned(), port.to_string()];
        if !build {
            args.push("--no-build".into());
        }
        let child = Command::new(&script)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("running {}", script.display()))?;
        let mut edge = EdgeDev {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let start_secs = edge_start_secs();
        let deadline = Instant::now() + Duration::from_secs(start_secs);
        loop {
            if let Some(status) = edge.child.as_mut().unwrap().try_wait()? {
                let tail = log_tail(log);
                edge.child = None;
                bail!(
                    "the Worker runtime cannot start: scripts/edge-dev exited ({status}) before serving; its output ends with:\n{tail}"
                );
            }
            if let Ok(r) = client
                .get(format!("{}/api/health/ping", edge.url))
                .send()
                .await
                && r.status() == 200
            {
                return Ok(edge);
            }
            if Instant::now() > deadline {
                let tail = log_tail(log);
                edge.stop();
                bail!(
                    "the Worker runtime did not answer /api/health/ping within {start_secs} s; scripts/edge-dev's output ends with:\n{tail}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM to the whole process group (wrangler, workerd, the build),
    /// then SIGKILL to whatever is left.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for EdgeDev {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The error for a runtime that cannot run on this machine.
pub fn cannot_start(runtime: Runtime, role: Role, error: anyhow::Error) -> anyhow::Error {
    anyhow!("{runtime} ({role:?} instance) could not start: {error:#}")
}
