//! Starts real `api/` function binaries the way `vercel dev` does (plain
//! HTTP on `VERCEL_DEV_PORT`) and calls them. They share one sqlite store
//! through the data directory, as they would share Upstash when deployed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Function {
    child: Child,
    url: String,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(binary: &str, data_dir: &std::path::Path) -> Function {
    let port = free_port();
    let child = Command::new(binary)
        .env_clear()
        .env("VERCEL_DEV_PORT", port.to_string())
        .env("FLOWCHAT_DATA_DIR", data_dir)
        .env("SESSION_SECRET", "function-test-secret-0123456789abcdef")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("function binary starts");
    let url = format!("http://127.0.0.1:{port}");
    let function = Function { child, url };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if client
            .get(format!("{}/api/health/ping", function.url))
            .send()
            .await
            .is_ok()
        {
            return function;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{binary} did not start listening");
}

#[tokio::test]
async fn function_binaries_answer_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let ping = start(env!("CARGO_BIN_EXE_health_ping"), dir.path()).await;
    let r = client
        .get(format!("{}/api/health/ping", ping.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    let session = start(env!("CARGO_BIN_EXE_session"), dir.path()).await;
    let r = client
        .post(format!("{}/api/session", session.url))
        .json(&json!({"nickname": "vercel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let chat = start(env!("CARGO_BIN_EXE_chat"), dir.path()).await;
    let r = client
        .post(format!("{}/api/chat", chat.url))
        .bearer_auth(&token)
        .json(&json!({"message": "hello from a function"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job_id = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The dynamic segment arrives as `?id=`, under the file's own path.
    let chat_id = start(env!("CARGO_BIN_EXE_chat_id"), dir.path()).await;
    let r = client
        .get(format!("{}/api/chat/[id]?id={job_id}", chat_id.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job = r.json::<Value>().await.unwrap();
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["status"], "queued", "no drain runs in this test");

    // The event stream is streamed: the first events arrive while the job
    // is still waiting, long before the connection's 25 s are up.
    let events = start(env!("CARGO_BIN_EXE_chat_id_events"), dir.path()).await;
    let mut r = client
        .get(format!("{}/api/chat/[id]/events?id={job_id}", events.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut received = String::new();
    while !received.contains("event: status") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), r.chunk())
            .await
            .expect("events arrive before the stream ends")
            .unwrap()
            .expect("the stream is still open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.starts_with("retry: 1000"), "{received}");
    assert!(received.contains(r#""status":"queued""#), "{received}");
    drop(r);

    // Bodies over the limit are refused before they are read in full.
    let r = client
        .post(format!("{}/api/chat", chat.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
