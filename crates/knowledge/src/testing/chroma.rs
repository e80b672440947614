//! A real Chroma server (`chroma run`) for tests, on a free port, with its
//! data in a temporary folder; a test can stop it and start it again on the
//! same port and data (an outage). The executable is `$CHROMA_BIN`, else
//! `chroma` on the PATH, else the workspace's `.venv-chroma/bin/chroma`
//! (`scripts/test` installs it there).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ChromaServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for ChromaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chroma_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CHROMA_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chroma"))
            .find(|c| c.is_file())
    });
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-chroma/bin/chroma");
    on_path
        .or_else(|| venv.is_file().then_some(venv))
        .unwrap_or_else(|| {
            panic!(
                "no Chroma server to test against: set CHROMA_BIN, put `chroma` on the PATH, or \
             `python3 -m venv .venv-chroma && .venv-chroma/bin/pip install chromadb` (scripts/test does)"
            )
        })
}

impl ChromaServer {
    pub async fn start() -> ChromaServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = ChromaServer {
            child: None,
            port,
            binary: chroma_binary(),
            dir: tempfile::tempdir().unwrap(),
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server wrote to its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chroma.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL, as a crash); its data stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("chroma.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("run")
            .arg("--path")
            .arg(self.dir.path().join("data"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .current_dir(self.dir.path())
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let heartbeat = format!("{}/api/v2/heartbeat", self.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(&heartbeat).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited ({status}) before answering; log: {}",
                    self.binary.display(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Chroma did not answer {heartbeat}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
