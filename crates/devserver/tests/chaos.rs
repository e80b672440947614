//! Chaos run (issue 14): chat jobs submitted through the real HTTP API (the
//! dev server, no drain of its own) into the Upstash store (the gateway over
//! a real `redis-server` with an append-only file), answered by several
//! `flowchat-drain --follow` processes over a real Chroma server and the
//! fake Flow server, while
//!
//! - one drain is SIGKILLed and started again every `CHAOS_KILL_EVERY_MS`,
//! - the fake Flow server fails chat and embeddings calls at random
//!   (`CHAOS_FAIL_5XX`, default 10 %, with 500/502/503, and `CHAOS_FAIL_TIMEOUT`,
//!   default 5 %, never answered: the client's read timeout),
//! - Redis is SIGKILLed once and started again on its append-only file
//!   (`appendfsync always`: every acknowledged write survives a crash),
//! - Chroma is killed for `CHAOS_CHROMA_OUTAGE_SECS` and started again; the
//!   drains are not restarted.
//!
//! At the end the store is read directly (not through the API): every
//! acknowledged job must be `succeeded` or `failed` with a dead letter and a
//! reason, every question must be in its conversation exactly once, and every
//! succeeded job must have exactly one assistant message. Then the dead
//! letters are replayed as an operator would (`flowchat-drain dead-letters
//! replay --all`) and the same checks run again. It prints a summary table
//! (`--nocapture`) with the dead-letter reasons and the drains' warnings.
//!
//! The defaults are the short CI run (300 jobs, well under 3 minutes);
//! `scripts/chaos` runs 10,000 in release. Parameters (all optional):
//! `CHAOS_JOBS`, `CHAOS_SESSIONS`, `CHAOS_TURNS`, `CHAOS_DRAINS`,
//! `CHAOS_CONCURRENCY`, `CHAOS_SUBMIT_PER_SECOND` (0 = as fast as the API
//! takes them), `CHAOS_KILL_EVERY_MS`, `CHAOS_REDIS_DOWN_MS`,
//! `CHAOS_CHROMA_OUTAGE_SECS`, `CHAOS_TIMEOUT_SECS`, `CHAOS_SEED`,
//! `CHAOS_DRAIN_MAX_ATTEMPTS`, `CHAOS_SUMMARY` (a file to write the table to).
//! Needs the `flowchat-drain` binary next to the dev server's
//! (`cargo build -p flowchat-drain-bin`), `redis-server`, and Chroma (see
//! `common/chroma.rs`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, Read as _, Seek as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowchat_domain::model::{JobResult, JobStatus, Role};
use flowchat_domain::{ConversationId, JobId, SessionId};
use flowchat_fake_flow::{FakeFlow, Fault, Target};
use flowchat_gateway::GatewayOptions;
use flowchat_knowledge::testing::ChromaServer;
use flowchat_store::Store;
use serde_json::{Value, json};

const QUESTIONS: [&str; 4] = [
    "How much is the allowance for a desk chair?",
    "How much are meals reimbursed per day?",
    "What are the core hours?",
    "Which equipment does the company provide for home offices?",
];

fn param<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not valid")),
        _ => default,
    }
}

#[derive(Debug, Clone)]
struct Params {
    jobs: usize,
    sessions: usize,
    turns: usize,
    drains: usize,
    concurrency: u32,
    submit_per_second: f64,
    kill_every: Duration,
    redis_down: Duration,
    chroma_outage: Duration,
    timeout: Duration,
    seed: u64,
    fail_5xx: f64,
    fail_timeout: f64,
    max_attempts: u32,
}

impl Params {
    fn from_env() -> Params {
        Params {
            jobs: param("CHAOS_JOBS", 300),
            sessions: param("CHAOS_SESSIONS", 12),
            turns: param("CHAOS_TURNS", 3).max(1),
            drains: param("CHAOS_DRAINS", 3).max(2),
            concurrency: param("CHAOS_CONCURRENCY", 4),
            submit_per_second: param("CHAOS_SUBMIT_PER_SECOND", 60.0),
            kill_every: Duration::from_millis(param("CHAOS_KILL_EVERY_MS", 2000)),
            redis_down: Duration::from_millis(param("CHAOS_REDIS_DOWN_MS", 1000)),
            chroma_outage: Duration::from_secs(param("CHAOS_CHROMA_OUTAGE_SECS", 3)),
            timeout: Duration::from_secs(param("CHAOS_TIMEOUT_SECS", 150)),
            seed: param("CHAOS_SEED", 14),
            fail_5xx: param("CHAOS_FAIL_5XX", 0.10),
            fail_timeout: param("CHAOS_FAIL_TIMEOUT", 0.05),
            max_attempts: param("CHAOS_DRAIN_MAX_ATTEMPTS", 3),
        }
    }
}

// ------------------------------------------------------------------ Redis

/// redis-server with an append-only file fsynced on every write, on a fixed
/// port and folder so that a restart finds its data.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let binary = std::env::var_os("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into());
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (install it, or set REDIS_SERVER_BIN)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !redis_ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, not a clean shutdown.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    // While it loads the append-only file it answers -LOADING instead.
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ----------------------------------------------------------------- drains

/// A `flowchat-drain --follow` process; its JSON log goes to `log`
/// (appended across restarts).
struct DrainProcess {
    child: Child,
    log: PathBuf,
    vars: Vec<(String, String)>,
    dir: PathBuf,
    concurrency: u32,
}

impl DrainProcess {
    fn spawn(vars: Vec<(String, String)>, dir: PathBuf, concurrency: u32) -> DrainProcess {
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("drain.log");
        let child = Self::child(&vars, &dir, &log, concurrency);
        DrainProcess {
            child,
            log,
            vars,
            dir,
            concurrency,
        }
    }

    fn child(vars: &[(String, String)], dir: &Path, log: &Path, concurrency: u32) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        common::drain_command(
            vars.iter().cloned(),
            dir,
            &["--follow", "--concurrency", &concurrency.to_string()],
        )
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("flowchat-drain starts")
    }

    /// SIGKILL, then a new process with the same settings.
    fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::child(&self.vars, &self.dir, &self.log, self.concurrency);
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The log's JSON lines from byte `from` on.
    fn events_since(&self, from: u64) -> Vec<Value> {
        let mut file = std::fs::File::open(&self.log).unwrap();
        file.seek(std::io::SeekFrom::Start(from)).unwrap();
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect()
    }

    /// Jobs this drain answered after byte `from` of its log.
    fn succeeded_since(&self, from: u64) -> usize {
        self.events_since(from)
            .iter()
            .filter(|j| j["message"] == "job processed" && j["succeeded"] == true)
            .count()
    }
}

/// Warnings and errors of every drain's log, by message, and the errors of
/// the failed attempts that were retried, by reason.
fn drain_troubles(drains: &[DrainProcess]) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut by_message = BTreeMap::new();
    let mut retried = BTreeMap::new();
    for event in drains.iter().flat_map(|d| d.events_since(0)) {
        if event["level"] != "WARN" && event["level"] != "ERROR" {
            continue;
        }
        let message = event["message"].as_str().unwrap_or_default().to_owned();
        if message == "job failed; will retry" {
            let error = event["error"].as_str().unwrap_or_default();
            *retried.entry(reason_group(error)).or_default() += 1;
        }
        let level = event["level"].as_str().unwrap_or_default();
        let mut key = format!("{level} {message}");
        if level == "ERROR" {
            let error = reason_group(event["error"].as_str().unwrap_or_default());
            key = format!("{key}: {error}");
        }
        *by_message.entry(key).or_default() += 1;
    }
    (by_message, retried)
}

impl Drop for DrainProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------- submission

#[derive(Debug, Clone)]
struct Submitted {
    job: JobId,
    conversation: ConversationId,
}

#[derive(Default)]
struct Submissions {
    accepted: Mutex<Vec<Submitted>>,
    count: AtomicUsize,
    /// Answers other than 202 (the store was down), by status; 0 = no answer.
    refused: Mutex<BTreeMap<u16, u64>>,
}

/// Sends `count` questions for one session, `turns` per conversation, at the
/// pace `due(k)` gives; retries a refused one until it is accepted.
#[allow(clippy::too_many_arguments)]
async fn submit_session(
    client: reqwest::Client,
    url: String,
    token: String,
    jobs: Vec<usize>,
    turns: usize,
    due: impl Fn(usize) -> Instant,
    log: Arc<Submissions>,
) {
    let mut conversation: Option<String> = None;
    for (turn, &k) in jobs.iter().enumerate() {
        tokio::time::sleep_until(due(k).into()).await;
        let mut body = json!({"message": QUESTIONS[k % QUESTIONS.len()]});
        if turn % turns != 0
            && let Some(c) = &conversation
        {
            body["conversation_id"] = json!(c);
        }
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries < 2000, "job {k} was never accepted");
            let sent = client
                .post(format!("{url}/api/chat"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            let status = match sent {
                Ok(r) if r.status().as_u16() == 202 => {
                    let r: Value = r.json().await.unwrap();
                    let id = r["conversation_id"].as_str().unwrap().to_owned();
                    log.accepted.lock().unwrap().push(Submitted {
                        job: JobId::parse(r["job_id"].as_str().unwrap(), "job_id").unwrap(),
                        conversation: ConversationId::parse(&id, "conversation_id").unwrap(),
                    });
                    log.count.fetch_add(1, Ordering::Relaxed);
                    conversation = Some(id);
                    break;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    // A 4xx here is a bug in the run, not chaos.
                    assert!(
                        status >= 500,
                        "job {k}: {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                    status
                }
                Err(_) => 0,
            };
            *log.refused.lock().unwrap().entry(status).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits (up to `limit`) until no acknowledged job is queued or running.
async fn wait_final(store: &dyn Store, submitted: &[Submitted], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut open: Vec<&Submitted> = submitted.iter().collect();
    while !open.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for s in open {
            match store.get_job(&s.job).await {
                Ok(Some(job)) if !matches!(job.status, JobStatus::Queued | JobStatus::Running) => {}
                _ => still.push(s),
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

// ----------------------------------------------------------------- report

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Dead-letter reasons grouped: digits and quoted details folded together.
fn reason_group(error: &str) -> String {
    let folded: String = error
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    folded.chars().take(140).collect()
}

#[derive(Default)]
struct Verdict {
    succeeded: usize,
    failed: usize,
    /// Not final, missing, or a question not in its conversation.
    lost: Vec<String>,
    duplicated: Vec<String>,
    /// Failed without a dead letter or a reason.
    unexplained: Vec<String>,
    reasons: BTreeMap<String, usize>,
    dead: Vec<JobId>,
    /// Succeeded with an answer that cites nothing (every question here is
    /// answered by the documents).
    without_sources: usize,
    orphans: usize,
    latencies_ms: Vec<i64>,
    last_finished_ms: i64,
}

async fn verify(store: &dyn Store, sessions: &[SessionId], submitted: &[Submitted]) -> Verdict {
    let mut v = Verdict::default();
    let dead: HashMap<JobId, String> = store
        .dead_letters(submitted.len() as u32 + 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.job_id, d.error))
        .collect();
    let mut status: HashMap<JobId, JobStatus> = HashMap::new();
    for s in submitted {
        let Some(job) = store.get_job(&s.job).await.unwrap() else {
            v.lost.push(format!("{}: no job record", s.job));
            continue;
        };
        status.insert(s.job.clone(), job.status);
        match job.status {
            JobStatus::Succeeded => {
                v.succeeded += 1;
                if let Some(JobResult::Chat(answer)) = &job.result
                    && answer.citations.is_empty()
                {
                    v.without_sources += 1;
                }
                v.latencies_ms
                    .push(job.updated_at.millis_since(job.created_at));
                v.last_finished_ms = v.last_finished_ms.max(job.updated_at.as_millis());
            }
            JobStatus::Failed => {
                v.failed += 1;
                v.dead.push(s.job.clone());
                v.last_finished_ms = v.last_finished_ms.max(job.updated_at.as_millis());
                let reason = job.error.clone().unwrap_or_default();
                match dead.get(&s.job) {
                    Some(e) if !e.trim().is_empty() && !reason.trim().is_empty() => {
                        *v.reasons.entry(reason_group(e)).or_default() += 1;
                    }
                    _ => v.unexplained.push(format!("{}: {job:?}", s.job)),
                }
            }
            other => v.lost.push(format!("{}: still {other:?}", s.job)),
        }
    }
    v.latencies_ms.sort_unstable();

    // Every conversation of every session, read whole.
    let mut questions: HashMap<JobId, usize> = HashMap::new();
    let mut answers: HashMap<JobId, usize> = HashMap::new();
    for session in sessions {
        for summary in store.list_conversations(session).await.unwrap() {
            let conversation = store
                .get_conversation(&summary.id)
                .await
                .unwrap()
                .expect("a listed conversation exists");
            for m in &conversation.messages {
                let Some(job) = &m.job_id else {
                    v.duplicated
                        .push(format!("{}: a message without a job", summary.id));
                    continue;
                };
                match m.role {
                    Role::User => *questions.entry(job.clone()).or_default() += 1,
                    Role::Assistant => *answers.entry(job.clone()).or_default() += 1,
                }
            }
        }
    }
    for s in submitted {
        let asked = questions.get(&s.job).copied().unwrap_or(0);
        let answered = answers.get(&s.job).copied().unwrap_or(0);
        if asked != 1 {
            v.lost.push(format!(
                "{} in {}: question stored {asked} times",
                s.job, s.conversation
            ));
        }
        match status.get(&s.job) {
            Some(JobStatus::Succeeded) if answered == 0 => v
                .lost
                .push(format!("{}: succeeded without an answer", s.job)),
            Some(JobStatus::Failed) if answered > 0 => v
                .duplicated
                .push(format!("{}: failed but answered {answered} times", s.job)),
            _ if answered > 1 => v
                .duplicated
                .push(format!("{}: answered {answered} times", s.job)),
            _ => {}
        }
    }
    // Questions the API stored but could not acknowledge (the store went
    // down between the write and the answer): they must be processed too.
    let known: std::collections::HashSet<&JobId> = submitted.iter().map(|s| &s.job).collect();
    for (job, asked) in &questions {
        if known.contains(job) {
            continue;
        }
        v.orphans += asked;
        let answered = answers.get(job).copied().unwrap_or(0);
        match store.get_job(job).await.unwrap().map(|j| j.status) {
            Some(JobStatus::Succeeded) if answered == 1 => {}
            Some(JobStatus::Failed) if answered == 0 => {}
            other => v.lost.push(format!(
                "unacknowledged {job}: {other:?}, answered {answered} times"
            )),
        }
    }
    for (job, n) in &answers {
        if !questions.contains_key(job) {
            v.duplicated
                .push(format!("{job}: {n} answers to no question"));
        }
    }
    v
}

// ------------------------------------------------------------------- run

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_run_loses_no_job_and_answers_each_once() {
    let p = Params::from_env();
    let mut redis = Redis::start();
    let token = format!("chaos-token-{}", redis.port);
    let gateway =
        flowchat_gateway::start(GatewayOptions::new(redis.url(), &token).with_free_port())
            .await
            .unwrap();
    let mut chroma = Some(ChromaServer::start().await);
    let chroma_url = chroma.as_ref().unwrap().url();
    let fake = FakeFlow::start().await;
    fake.set_record_requests(false);

    let namespace = "chaos";
    let max_attempts = p.max_attempts.to_string();
    let app = common::app()
        .flow(&fake)
        .var("FLOWCHAT_STORE", "upstash")
        .var("UPSTASH_REDIS_REST_URL", &gateway.url())
        .var("UPSTASH_REDIS_REST_TOKEN", &token)
        .var("FLOWCHAT_NAMESPACE", namespace)
        .var("VECTOR_STORE", "chroma")
        .var("CHROMA_URL", &chroma_url)
        .var("CHROMA_TIMEOUT_MS", "2000")
        .var("RATE_LIMIT_CHAT_PER_MINUTE", "1000000")
        .var("RATE_LIMIT_IP_PER_MINUTE", "1000000")
        // A call the fake never answers times out after a second.
        .var("LLM_READ_TIMEOUT_MS", "1000")
        .var("LLM_CONNECT_TIMEOUT_MS", "1000")
        // A killed drain's jobs come back after 3 s.
        .var("DRAIN_LEASE_SECONDS", "3")
        .var("DRAIN_MAX_ATTEMPTS", &max_attempts)
        .var("DRAIN_SHUTDOWN_GRACE_SECONDS", "5")
        .drain_concurrency(0)
        .spawn()
        .await;
    let lookup = |k: &str| app.vars.get(k).cloned();
    let config = flowchat_config::app_config(lookup).unwrap();
    let store =
        flowchat_startup::upstash_store(&config, flowchat_config::upstash_config(lookup).unwrap())
            .unwrap();

    // Faults from here on: the dev server indexed the folder without them.
    let faults = [
        (
            p.fail_5xx * 0.4,
            Fault::Status {
                status: 500,
                retry_after_secs: None,
            },
        ),
        (
            p.fail_5xx * 0.3,
            Fault::Status {
                status: 502,
                retry_after_secs: None,
            },
        ),
        (
            p.fail_5xx * 0.3,
            Fault::Status {
                status: 503,
                retry_after_secs: None,
            },
        ),
        (p.fail_timeout, Fault::Hang),
    ];
    fake.set_random_faults(Target::Chat, &faults, p.seed);
    fake.set_random_faults(Target::Embeddings, &faults, p.seed.wrapping_add(1));

    let work = tempfile::tempdir().unwrap();
    let drain_vars = |i: usize| -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = app
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.retain(|(k, _)| k != "FLOWCHAT_DATA_DIR");
        let data = work.path().join(format!("drain{i}/data"));
        vars.push(("FLOWCHAT_DATA_DIR".into(), data.display().to_string()));
        vars.push(("HOSTNAME".into(), format!("chaos{i}")));
        vars
    };
    let mut drains: Vec<DrainProcess> = (0..p.drains)
        .map(|i| {
            DrainProcess::spawn(
                drain_vars(i),
                work.path().join(format!("drain{i}")),
                p.concurrency,
            )
        })
        .collect();
    let stable_pids: Vec<u32> = drains[1..].iter().map(|d| d.child.id()).collect();

    let mut sessions = Vec::new();
    for s in 0..p.sessions {
        sessions.push(app.session(&format!("chaos{s}")).await);
    }
    let session_ids: Vec<SessionId> = sessions
        .iter()
        .map(|(_, id)| SessionId::parse(id, "session_id").unwrap())
        .collect();

    // ---- submit, and make trouble until every job is done
    let started = Instant::now();
    let started_ms = flowchat_startup::now().as_millis();
    let log = Arc::new(Submissions::default());
    let rate = p.submit_per_second;
    let due = move |k: usize| {
        if rate > 0.0 {
            started + Duration::from_secs_f64(k as f64 / rate)
        } else {
            started
        }
    };
    let mut submitters = tokio::task::JoinSet::new();
    for (s, (session_token, _)) in sessions.iter().enumerate() {
        let jobs: Vec<usize> = (s..p.jobs).step_by(p.sessions).collect();
        submitters.spawn(submit_session(
            app.client.clone(),
            app.url.clone(),
            session_token.clone(),
            jobs,
            p.turns,
            due,
            log.clone(),
        ));
    }

    let mut kills = 0u32;
    let mut next_kill = started + p.kill_every;
    let mut redis_restarts = 0u32;
    let mut redis_down_for = Duration::ZERO;
    let mut chroma_task: Option<tokio::task::JoinHandle<(ChromaServer, Duration)>> = None;
    let mut chroma_outage_started = false;
    let mut chroma_down_for = Duration::ZERO;
    // Where each never-restarted drain's log stood when Chroma came back.
    let mut recovered_at: Option<Vec<u64>> = None;
    let mut probes_sent = false;
    let probes = 2 * p.drains * p.concurrency as usize;
    let mut submitted_all = None;
    let finished = loop {
        assert!(
            started.elapsed() < p.timeout,
            "the run did not finish within {:?}: {:?}",
            p.timeout,
            store.queue_stats(flowchat_startup::now()).await
        );
        while let Some(done) = submitters.try_join_next() {
            done.expect("a submitter panicked");
        }
        if submitters.is_empty() && submitted_all.is_none() {
            submitted_all = Some(started.elapsed());
        }
        if Instant::now() >= next_kill {
            drains[0].kill_and_restart();
            kills += 1;
            // Not quite periodic, so kills land at every point of a job.
            let jitter = (kills as u64 * 7919 % 500) as i64 - 250;
            next_kill = Instant::now()
                + Duration::from_millis((p.kill_every.as_millis() as i64 + jitter).max(100) as u64);
        }
        let accepted = log.count.load(Ordering::Relaxed);
        let pending = match store.queue_stats(flowchat_startup::now()).await {
            Ok(s) => Some(s.queued + s.delayed + s.running),
            Err(_) => None,
        };
        let done_share = pending
            .map(|q| accepted.saturating_sub(q as usize) as f64 / p.jobs as f64)
            .unwrap_or(0.0);
        // Redis crashes once, a third of the way through.
        if redis_restarts == 0 && done_share >= 0.3 {
            let down = Instant::now();
            redis.kill();
            tokio::time::sleep(p.redis_down).await;
            redis.spawn();
            redis_down_for = down.elapsed();
            redis_restarts += 1;
            continue;
        }
        // Chroma goes away at 60 %, for some seconds.
        if !chroma_outage_started && done_share >= 0.6 {
            chroma_outage_started = true;
            let mut server = chroma.take().expect("Chroma is ours until the outage");
            let outage = p.chroma_outage;
            chroma_task = Some(tokio::spawn(async move {
                let down = Instant::now();
                server.stop();
                tokio::time::sleep(outage).await;
                server.restart().await;
                (server, down.elapsed())
            }));
        }
        if let Some(task) = chroma_task.take_if(|t| t.is_finished()) {
            let (server, down_for) = task.await.unwrap();
            chroma = Some(server);
            chroma_down_for = down_for;
            recovered_at = Some(drains[1..].iter().map(DrainProcess::log_len).collect());
        }
        // After the outage, a few more questions: the drains that were never
        // restarted must answer them from Chroma again.
        if recovered_at.is_some() && !probes_sent && submitters.is_empty() {
            probes_sent = true;
            let now = Instant::now();
            for k in 0..probes {
                let s = k % p.sessions;
                submitters.spawn(submit_session(
                    app.client.clone(),
                    app.url.clone(),
                    sessions[s].0.clone(),
                    vec![p.jobs + k],
                    1,
                    move |_| now,
                    log.clone(),
                ));
            }
        }
        if probes_sent
            && submitters.is_empty()
            && redis_restarts > 0
            && pending == Some(0)
            && log.count.load(Ordering::Relaxed) >= p.jobs + probes
        {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Jobs left by the last kill come back within a lease; wait for every
    // acknowledged job to be final before judging.
    let submitted = log.accepted.lock().unwrap().clone();
    wait_final(&store, &submitted, Duration::from_secs(30)).await;
    let stable_after_recovery: usize = match &recovered_at {
        Some(offsets) => drains[1..]
            .iter()
            .zip(offsets)
            .map(|(d, &from)| d.succeeded_since(from))
            .sum(),
        None => 0,
    };
    for d in &mut drains[1..] {
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "a drain that was never killed exited"
        );
    }
    let still_same: Vec<u32> = drains[1..].iter().map(|d| d.child.id()).collect();
    assert_eq!(still_same, stable_pids);

    let v = verify(&store, &session_ids, &submitted).await;

    // The operator's remedy (docs/operations.md): replay every dead letter
    // with the drain binary; the drains still running answer them (the
    // faults of the fake Flow server stay on, the kills are over).
    let after_replay = if v.dead.is_empty() {
        None
    } else {
        let out = common::drain_command(
            drains[1].vars.iter().cloned(),
            &drains[1].dir,
            &["dead-letters", "replay", "--all"],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_final(&store, &submitted, Duration::from_secs(120)).await;
        Some(verify(&store, &session_ids, &submitted).await)
    };
    let refused = log.refused.lock().unwrap().clone();
    let chat_calls = fake.count(Target::Chat);
    let embed_calls = fake.count(Target::Embeddings);
    let injected = |t| {
        fake.random_faults_injected(t)
            .into_iter()
            .map(|(f, n)| match f {
                Fault::Hang => ("timeout".to_owned(), n),
                Fault::Status { status, .. } => (status.to_string(), n),
                other => (format!("{other:?}"), n),
            })
            .fold(BTreeMap::<String, u64>::new(), |mut m, (k, n)| {
                *m.entry(k).or_default() += n;
                m
            })
    };
    let gw = gateway.stats();
    let wall_ms = v.last_finished_ms - started_ms;
    let rows: Vec<(String, String)> = vec![
        (
            "jobs submitted (acknowledged 202)".into(),
            submitted.len().to_string(),
        ),
        (
            "  of which after the Chroma outage (probes)".into(),
            probes.to_string(),
        ),
        (
            "submissions refused while the store was down (retried)".into(),
            format!("{refused:?}"),
        ),
        (
            "questions stored but not acknowledged (processed too)".into(),
            v.orphans.to_string(),
        ),
        ("answered (succeeded)".into(), v.succeeded.to_string()),
        (
            "  of which citing no source (searched without a question vector)".into(),
            v.without_sources.to_string(),
        ),
        ("dead-lettered".into(), v.failed.to_string()),
        ("**lost**".into(), format!("**{}**", v.lost.len())),
        (
            "**duplicated assistant messages**".into(),
            format!("**{}**", v.duplicated.len()),
        ),
        (
            "drains (× concurrency)".into(),
            format!("{} × {}", p.drains, p.concurrency),
        ),
        (
            "drain SIGKILLs (and restarts)".into(),
            format!("{kills}, every ~{} ms", p.kill_every.as_millis()),
        ),
        (
            "Redis SIGKILLs (appendonly yes, appendfsync always)".into(),
            format!(
                "{redis_restarts}, down {:.1} s",
                redis_down_for.as_secs_f64()
            ),
        ),
        (
            "Chroma outage (killed → answering again)".into(),
            format!("{:.1} s", chroma_down_for.as_secs_f64()),
        ),
        (
            "jobs answered by never-restarted drains after Chroma came back".into(),
            stable_after_recovery.to_string(),
        ),
        (
            "fake Flow chat calls / faults injected".into(),
            format!("{chat_calls} / {:?}", injected(Target::Chat)),
        ),
        (
            "fake Flow embeddings calls / faults injected".into(),
            format!("{embed_calls} / {:?}", injected(Target::Embeddings)),
        ),
        (
            "gateway requests / Redis commands".into(),
            format!("{} / {}", gw.requests, gw.commands),
        ),
        (
            "submitting took".into(),
            format!(
                "{:.1} s (paced at {} jobs/s)",
                submitted_all.unwrap_or_default().as_secs_f64(),
                p.submit_per_second
            ),
        ),
        (
            "wall time: first submission → last job finished".into(),
            format!("{:.1} s", wall_ms as f64 / 1000.0),
        ),
        (
            "after `flowchat-drain dead-letters replay --all`".into(),
            match &after_replay {
                None => "nothing to replay".into(),
                Some(r) => format!(
                    "{} replayed: {} answered, {} dead-lettered, {} lost, {} duplicated",
                    v.dead.len(),
                    r.succeeded - v.succeeded,
                    r.failed,
                    r.lost.len(),
                    r.duplicated.len()
                ),
            },
        ),
        (
            "run time until the queue was empty".into(),
            format!("{:.1} s", finished.as_secs_f64()),
        ),
        (
            "job latency (202 → answered), p50 / p95 / max".into(),
            format!(
                "{:.2} s / {:.2} s / {:.2} s",
                percentile(&v.latencies_ms, 50.0) as f64 / 1000.0,
                percentile(&v.latencies_ms, 95.0) as f64 / 1000.0,
                v.latencies_ms.last().copied().unwrap_or(0) as f64 / 1000.0
            ),
        ),
    ];
    let mut table = String::from("| what | value |\n| --- | --- |\n");
    for (k, val) in &rows {
        table.push_str(&format!("| {k} | {val} |\n"));
    }
    table.push_str("\n| dead-letter reason | jobs |\n| --- | --- |\n");
    for (reason, n) in &v.reasons {
        table.push_str(&format!("| {} | {n} |\n", reason.replace('|', "\\|")));
    }
    let (by_message, retried) = drain_troubles(&drains);
    table.push_str("\n| failed attempt, retried (drain logs) | attempts |\n| --- | --- |\n");
    for (reason, n) in &retried {
        table.push_str(&format!("| {} | {n} |\n", reason.replace('|', "\\|")));
    }
    table.push_str("\n| drain log warning or error | lines |\n| --- | --- |\n");
    for (message, n) in &by_message {
        table.push_str(&format!("| {} | {n} |\n", message.replace('|', "\\|")));
    }
    // What the drains logged about the first dead-lettered jobs.
    for job in v.dead.iter().take(5) {
        table.push_str(&format!("\nlog of dead-lettered job {job}:\n"));
        for (i, d) in drains.iter().enumerate() {
            for e in d.events_since(0) {
                if e["span"]["job_id"].as_str() == Some(job.as_str()) {
                    table.push_str(&format!(
                        "- drain {i} attempt {} {} {} {}\n",
                        e["span"]["attempt"],
                        e["level"].as_str().unwrap_or_default(),
                        e["message"].as_str().unwrap_or_default(),
                        e["error"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    println!("\n{table}");
    if let Ok(path) = std::env::var("CHAOS_SUMMARY")
        && !path.is_empty()
    {
        std::fs::write(path, &table).unwrap();
    }

    assert!(
        v.lost.is_empty(),
        "lost: {:#?}",
        &v.lost[..v.lost.len().min(20)]
    );
    assert!(
        v.duplicated.is_empty(),
        "duplicated: {:#?}",
        &v.duplicated[..v.duplicated.len().min(20)]
    );
    assert!(
        v.unexplained.is_empty(),
        "failed without a reason: {:#?}",
        &v.unexplained[..v.unexplained.len().min(20)]
    );
    assert_eq!(v.succeeded + v.failed, submitted.len());
    if let Some(r) = &after_replay {
        assert!(r.lost.is_empty(), "lost after replay: {:#?}", r.lost);
        assert!(
            r.duplicated.is_empty(),
            "duplicated after replay: {:#?}",
            r.duplicated
        );
        assert_eq!(r.succeeded + r.failed, submitted.len());
        assert!(r.succeeded > v.succeeded, "no replayed job was answered");
    }
    assert!(kills > 0 && redis_restarts == 1);
    assert!(
        stable_after_recovery > 0,
        "no drain that stayed up answered after Chroma came back"
    );
    let injected_chat: u64 = injected(Target::Chat).values().sum();
    assert!(injected_chat > 0, "no fault was injected");
    // A healthy run answers nearly everything: chaos may dead-letter some
    // jobs, never most of them.
    assert!(
        v.succeeded * 2 > submitted.len(),
        "only {} of {} answered",
        v.succeeded,
        submitted.len()
    );

    for d in &drains[1..] {
        let _ = Command::new("kill")
            .args(["-TERM", &d.child.id().to_string()])
            .status();
    }
    drop(drains);
    drop(app);
}
