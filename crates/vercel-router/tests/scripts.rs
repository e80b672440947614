//! `scripts/smoke` against the dev server and against `scripts/vercel-dev`
//! (the 15 function binaries behind `flowchat-vercel-router`, a drain, the
//! gateway over a throwaway redis-server), each on a free port; and
//! `scripts/vercel-dev` leaves no process behind when it gets SIGTERM.
//!
//! They run the workspace's binaries from the target directory, which
//! `scripts/test` builds first (`cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// target/debug (this test runs from target/debug/deps).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_owned()
    } else {
        dir.to_owned()
    }
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins, as scripts/test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_ping(port: u16, child: &mut Child, within: Duration, log: &Path) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = tcp.write_all(
                b"GET /api/health/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let mut answer = String::new();
            let _ = tcp.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited before serving ({status}):\n{}", tail(log));
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered /api/health/ping on port {port} within {within:?}:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn smoke(base: &str) -> Output {
    Command::new(repo().join("scripts/smoke"))
        .arg(base)
        .args(["--timeout", "30"])
        .output()
        .expect("running scripts/smoke (needs python3)")
}

fn assert_passed(output: &Output, against: &str, log: &Path) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/smoke failed against {against} ({}):\n{stdout}\n{stderr}\n--- server log ---\n{}",
        output.status,
        tail(log)
    );
    assert!(stdout.contains("all 9 steps passed"), "{stdout}");
}

fn documents(dir: &Path) -> PathBuf {
    let docs = dir.join("documents");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("policy.md"),
        "# Remote work policy\n\n## Equipment\n\nEmployees may claim a one-time allowance of 150 euros for a desk chair.\n",
    )
    .unwrap();
    docs
}

/// Variables of the caller's environment that would point a child elsewhere.
const FOREIGN: [&str; 8] = [
    "FLOWCHAT_STORE",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "KV_REST_API_URL",
    "KV_REST_API_TOKEN",
    "FLOWCHAT_ENV",
    "LLM_PROVIDER",
    "VECTOR_STORE",
];

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn smoke_passes_against_the_dev_server() {
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(dir.path());
    let port = free_port();
    let log = dir.path().join("devserver.log");
    let mut command = Command::new(binary("flowchat-devserver"));
    for name in FOREIGN {
        command.env_remove(name);
    }
    let child = command
        .args(["--port", &port.to_string(), "--docs-dir"])
        .arg(&docs)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        // No .env and no web/dist from the repository.
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Killed(child);
    wait_for_ping(port, &mut server.0, Duration::from_secs(30), &log);
    let base = format!("http://127.0.0.1:{port}");
    assert_passed(&smoke(&base), "the dev server", &log);
}

#[test]
fn smoke_names_the_failing_step() {
    let port = free_port();
    let output = smoke(&format!("http://127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("FAILED at step 'ping'"),
        "the message names the step: {stderr}"
    );
}

/// `scripts/vercel-dev` in its own process group, killed whole at the end
/// whatever happens.
struct VercelDev {
    child: Child,
}

impl VercelDev {
    fn group(&self) -> String {
        format!("-{}", self.child.id())
    }

    fn group_alive(&self) -> bool {
        Command::new("kill")
            .args(["-0", "--", &self.group()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for VercelDev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &self.group()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn smoke_passes_against_vercel_dev_which_stops_everything_on_sigterm() {
    use std::os::unix::process::CommandExt;

    // Fail here, with the reason, rather than inside the script.
    for name in [
        "health_ping",
        "flowchat-drain",
        "flowchat-gateway",
        "flowchat-vercel-router",
    ] {
        binary(name);
    }
    let dir = tempfile::tempdir().unwrap();
    let docs = documents(dir.path());
    let port = free_port();
    let log = dir.path().join("vercel-dev.log");
    let mut command = Command::new(repo().join("scripts/vercel-dev"));
    for name in FOREIGN {
        command.env_remove(name);
    }
    let namespace = format!("smoke{}", std::process::id());
    let child = command
        .args(["--port", &port.to_string(), "--no-build"])
        .env("CARGO_TARGET_DIR", bin_dir().parent().unwrap())
        .env("DOCUMENTS_PATH", &docs)
        .env("FLOWCHAT_DATA_DIR", dir.path().join("data"))
        .env("FLOWCHAT_NAMESPACE", &namespace)
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("vercel-dev.err")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut dev = VercelDev { child };
    let err_log = dir.path().join("vercel-dev.err");
    wait_for_ping(port, &mut dev.child, Duration::from_secs(60), &err_log);

    let base = format!("http://127.0.0.1:{port}");
    let output = smoke(&base);
    assert_passed(&output, "scripts/vercel-dev", &err_log);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        // (The drain may not have reported yet when readiness is read.)
        stdout.contains(&format!("namespace={namespace} store=upstash ")),
        "the functions share the gateway's store with the drain: {stdout}"
    );

    // SIGTERM to the script alone: it stops every process it started.
    let status = Command::new("kill")
        .args(["-TERM", &dev.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while dev.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "scripts/vercel-dev did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its children may take a moment longer to be reaped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev.group_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !dev.group_alive(),
        "processes of scripts/vercel-dev outlived it:\n{}",
        String::from_utf8_lossy(
            &Command::new("ps")
                .args(["-o", "pid,cmd", "-g", &dev.child.id().to_string()])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the router still listens"
    );
}
