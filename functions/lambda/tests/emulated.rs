//! The real `flowchat-lambda` binary behind the Lambda Runtime API emulator
//! (`flowchat-lambda-emulator`), spoken to over real HTTP as a browser would
//! speak to its Function URL. The store is a real redis-server behind the
//! Upstash-protocol gateway; the answers come from a real drain (assembled
//! in-process, the same code as the `flowchat-drain` binary) on the same
//! database and namespace.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowchat_gateway::testing::TestGateway;
use flowchat_lambda_emulator::{LambdaFront, Options};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "lambda-test-secret-lambda-test-secret-00";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flowchat-lambda"))
}

fn namespace() -> String {
    let bytes = flowchat_startup::random_bytes();
    let hex: String = bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("lambda{hex}")
}

/// The function's environment, as the SAM template sets it.
fn vars(gateway: &TestGateway, namespace: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("FLOWCHAT_ENV", "production"),
        ("FLOWCHAT_STORE", "upstash"),
        ("UPSTASH_REDIS_REST_URL", &gateway.url()),
        ("UPSTASH_REDIS_REST_TOKEN", gateway.token()),
        ("FLOWCHAT_NAMESPACE", namespace),
        ("SESSION_SECRET", SECRET),
        ("RATE_LIMIT_CHAT_PER_MINUTE", "1000"),
        ("RATE_LIMIT_IP_PER_MINUTE", "1000"),
        ("CORS_ORIGINS", "http://localhost:5173"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    vars
}

struct Drain {
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drain {
    /// A drain on the same Upstash database and namespace as the function,
    /// as `flowchat-drain --follow` on Render would be.
    async fn start(vars: &[(String, String)]) -> Drain {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let lookup = |k: &str| {
            if k == "FLOWCHAT_DATA_DIR" {
                return Some(data_dir.clone());
            }
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let config = flowchat_config::drain_config(lookup).unwrap();
        let store = flowchat_startup::open_store(&config.app, config.upstash.clone())
            .await
            .unwrap();
        let platform: Arc<dyn flowchat_api::Platform> = Arc::new(flowchat_startup::NativePlatform);
        let drain = flowchat_drain::assemble(
            &config,
            store,
            platform,
            flowchat_drain::DrainIdentity {
                worker_id: "lambda-test-drain".into(),
                concurrency: 2,
            },
        )
        .await
        .unwrap();
        let (shutdown, receiver) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(drain.run(receiver));
        Drain {
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn json_of(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Asserts a problem+json answer with `status` and returns it.
fn problem(status: u16, got: &(u16, reqwest::header::HeaderMap, Value)) -> Value {
    let (code, headers, body) = got;
    assert_eq!(*code, status, "{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    for field in ["type", "title", "status", "detail", "request_id"] {
        assert!(!body[field].is_null(), "problem lacks {field}: {body}");
    }
    assert_eq!(
        Some(body["request_id"].as_str().unwrap()),
        headers.get("x-request-id").and_then(|v| v.to_str().ok())
    );
    body.clone()
}

/// The function behind a front with `instances` instances.
async fn front_with_instances(vars: &[(String, String)], instances: usize) -> LambdaFront {
    LambdaFront::start_with(
        binary(),
        vars,
        Options {
            instances,
            ..Options::default()
        },
    )
    .await
    .unwrap()
}

/// Reads an event stream until `done` accepts what has arrived, each chunk
/// within `secs` (else fails with `expect`); returns what arrived.
async fn read_events_until(
    events: &mut reqwest::Response,
    secs: u64,
    expect: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut received = String::new();
    while !done(&received) {
        let chunk = tokio::time::timeout(Duration::from_secs(secs), events.chunk())
            .await
            .expect(expect)
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended early: {received}"));
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    received
}

/// Sends `head` then `body` (none when empty) on a new connection to
/// `address` and reads the whole answer, within 30 s.
async fn raw_exchange(address: &str, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    if !body.is_empty() {
        stream.write_all(body).await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET of `url` with `token` as the bearer.
async fn get_as(client: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    client.get(url).bearer_auth(token).send().await.unwrap()
}

async fn session(client: &reqwest::Client, url: &str, nickname: &str) -> String {
    let r = client
        .post(format!("{url}/api/session"))
        .json(&json!({ "nickname": nickname }))
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_of(r).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_kind_of_answer_through_the_runtime_api() {
    let gateway = TestGateway::start().await.unwrap();
    let namespace = namespace();
    let vars = vars(&gateway, &namespace, &[]);
    let front = LambdaFront::start(binary(), &vars).await.unwrap();
    let url = front.url();
    let client = reqwest::Client::new();

    // Health.
    let (status, headers, body) = json_of(
        client
            .get(format!("{url}/api/health/ping"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(body, json!({"status": "ok"}));

    // Session, then a chat submission.
    let token = session(&client, &url, "lambda").await;
    let r = client
        .post(format!("{url}/api/chat"))
        .bearer_auth(&token)
        .json(&json!({"message": "What are the core hours?"}))
        .send()
        .await
        .unwrap();
    let (status, _, job) = json_of(r).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    assert!(job["conversation_id"].is_string(), "{job}");

    // No drain yet: the job waits, and its stream stays open (25 s), yet
    // the first events arrive at once — the answer is streamed, not
    // buffered until the stream ends.
    let mut events = get_as(&client, format!("{url}/api/chat/{job_id}/events"), &token).await;
    assert_eq!(events.status(), 200);
    let received = read_events_until(
        &mut events,
        5,
        "the first events arrive while the stream is open",
        |received| received.contains("event: status"),
    )
    .await;
    assert!(received.contains(r#""status":"queued""#), "{received}");
    drop(events);

    let drain = Drain::start(&vars).await;
    // The event stream arrives while the drain works, and ends with the
    // answer. A second request (a write) is served meanwhile by another
    // instance: requests queue, they do not fail.
    let mut events = get_as(&client, format!("{url}/api/chat/{job_id}/events"), &token).await;
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let meanwhile = get_as(&client, format!("{url}/api/conversations"), &token).await;
    assert_eq!(meanwhile.status(), 200);
    let received = read_events_until(
        &mut events,
        30,
        "events arrive before the stream ends",
        |received| received.contains("event: answer") || received.contains("event: failed"),
    )
    .await;
    assert!(received.starts_with("retry: "), "{received}");
    assert!(received.contains("event: status"), "{received}");
    assert!(received.contains("event: answer"), "{received}");
    assert!(received.contains(&job_id), "{received}");
    drop(events);

    // The job as JSON agrees.
    let r = get_as(&client, format!("{url}/api/chat/{job_id}"), &token).await;
    let (status, _, body) = json_of(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "succeeded", "{body}");

    // A 4xx names the field, as problem+json.
    let r = client
        .post(format!("{url}/api/chat"))
        .bearer_auth(&token)
        .json(&json!({"message": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(400, &json_of(r).await)["field"], "message");
    let r = client
        .post(format!("{url}/api/session"))
        .json(&json!({"nickname": "<script>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(400, &json_of(r).await)["field"], "nickname");
    let r = client.get(format!("{url}/api/nope")).send().await.unwrap();
    problem(404, &json_of(r).await);

    // A body over the route's limit (64 KiB) is refused by the core with
    // 413 problem+json, by its declared Content-Length.
    let r = client
        .post(format!("{url}/api/chat"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    problem(413, &json_of(r).await);

    // CORS preflight reaches the core too.
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{url}/api/chat"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    drain.stop().await;
    front.stop().await;
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let gateway = TestGateway::start().await.unwrap();
    let namespace = namespace();
    let vars = vars(&gateway, &namespace, &[]);
    let front = front_with_instances(&vars, 1).await;
    let address = front.url().trim_start_matches("http://").to_owned();

    // A Function URL buffers the request before the function runs, so the
    // body is sent; the core then refuses by the declared Content-Length
    // (before reading) with its own 413 problem+json.
    let body = vec![b' '; 70 * 1024];
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let answer = raw_exchange(&address, &head, &body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // Over Lambda's own 6 MB payload limit the platform refuses, unread.
    let head = format!(
        "POST /api/documents HTTP/1.1\r\nhost: {address}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        7 * 1024 * 1024
    );
    let answer = raw_exchange(&address, &head, &[]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    front.stop().await;
}

#[tokio::test]
async fn writes_are_limited_per_source_ip() {
    let gateway = TestGateway::start().await.unwrap();
    let namespace = namespace();
    let vars = vars(&gateway, &namespace, &[("RATE_LIMIT_IP_PER_MINUTE", "3")]);
    let front = front_with_instances(&vars, 2).await;
    let url = front.url();
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let first = from("127.0.0.1");
    for n in 0..3 {
        session(&first, &url, &format!("ip{n}")).await;
    }
    let r = first
        .post(format!("{url}/api/session"))
        .json(&json!({"nickname": "ip3"}))
        .send()
        .await
        .unwrap();
    let refused = json_of(r).await;
    problem(429, &refused);
    let retry: u64 = refused.1["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // A forged forwarding header does not change the address: the limit
    // follows the connection (`requestContext.http.sourceIp`).
    let r = first
        .post(format!("{url}/api/session"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-real-ip", "198.51.100.7")
        .json(&json!({"nickname": "forged"}))
        .send()
        .await
        .unwrap();
    problem(429, &json_of(r).await);

    // Another address has its own allowance.
    let second = from("127.0.0.2");
    session(&second, &url, "other").await;

    front.stop().await;
}

#[tokio::test]
async fn production_refuses_sqlite_naming_the_variable() {
    let output = tokio::process::Command::new(binary())
        .env("FLOWCHAT_ENV", "production")
        .env("FLOWCHAT_STORE", "sqlite")
        .env("SESSION_SECRET", SECRET)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "flowchat-lambda")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLOWCHAT_STORE"), "{stderr}");

    // The emulator reports the failed start instead of hanging.
    let gateway = TestGateway::start().await.unwrap();
    let vars = vars(&gateway, &namespace(), &[("SESSION_SECRET", "short")]);
    let error = LambdaFront::start(binary(), &vars)
        .await
        .err()
        .expect("the function cannot start with a short secret");
    assert!(
        error.to_string().contains("exited during start-up"),
        "{error}"
    );
}

/// A multipart upload is not text: it travels base64-encoded in the event
/// (`isBase64Encoded`), and must reach the core byte for byte.
#[tokio::test]
async fn a_binary_upload_arrives_intact() {
    let gateway = TestGateway::start().await.unwrap();
    let vars = vars(&gateway, &namespace(), &[]);
    let front = front_with_instances(&vars, 1).await;
    let url = front.url();
    let client = reqwest::Client::new();
    let token = session(&client, &url, "uploader").await;

    let mut content = "# Política\n\nNão há café às 10h.\n".repeat(32 * 1024);
    content.push_str("end\n");
    const BOUNDARY: &str = "----FlowChatLambdaBoundary";
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"politica.md\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content.as_bytes());
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let r = client
        .post(format!("{url}/api/documents"))
        .bearer_auth(&token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, upload) = json_of(r).await;
    assert_eq!(status, 202, "{upload}");
    assert_eq!(upload["status"], "pending", "{upload}");
    assert_eq!(
        upload["document"]["size_bytes"].as_u64(),
        Some(content.len() as u64),
        "{upload}"
    );
    assert!(
        content.len() > 1024 * 1024,
        "over a megabyte, base64 in the event"
    );

    let id = upload["document_id"].as_str().unwrap();
    let r = get_as(&client, format!("{url}/api/documents/{id}"), &token).await;
    let (status, _, document) = json_of(r).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["name"], "politica.md", "{document}");

    front.stop().await;
}

#[tokio::test]
async fn outside_lambda_it_says_what_is_missing() {
    let output = tokio::process::Command::new(binary())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("FLOWCHAT_DATA_DIR", "/nonexistent/never-created")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
