//! Load script for docs/benchmarks.md (driven by `scripts/bench`).
//!
//! - `submit URL CONCURRENCY SECONDS`: chat submissions per second.
//! - `latency URL COUNT [MAX_GAP_MS]`: time from `POST /api/chat` to a
//!   finished answer followed with `GET /api/chat/{id}?wait=`, one question
//!   at a time; with a gap, a pseudo-random pause of up to MAX_GAP_MS before
//!   each question (a drain that polls then finds the queue idle).
//! - `drain-wait URL`: wait for the queue to empty, report answers per second.
//! - `cold-start BINARY RUNS`: start a function binary, time until its
//!   first answer to `GET /api/health/ping`.
//!
//! Every loop is bounded in count and time and talks only to 127.0.0.1.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name}: n={} p50={:.2} ms p95={:.2} ms p99={:.2} ms max={:.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 95.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

async fn session(client: &reqwest::Client, url: &str, nickname: &str) -> String {
    let r: Value = client
        .post(format!("{url}/api/session"))
        .json(&json!({"nickname": nickname}))
        .send()
        .await
        .expect("session request")
        .json()
        .await
        .expect("session body");
    r["token"]
        .as_str()
        .expect("token (raise RATE_LIMIT_IP_PER_MINUTE?)")
        .to_owned()
}

const QUESTIONS: [&str; 4] = [
    "How much is the desk chair allowance?",
    "What are the core hours?",
    "How much are meals reimbursed per day?",
    "When must expenses be submitted?",
];

async fn submit(url: String, concurrency: usize, seconds: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        let (accepted, refused) = (accepted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let token = session(&client, &url, &format!("load{worker}")).await;
            let mut conversation: Option<String> = None;
            let mut i = 0usize;
            while Instant::now() < deadline {
                let mut body = json!({"message": QUESTIONS[i % QUESTIONS.len()]});
                if let Some(c) = &conversation {
                    body["conversation_id"] = json!(c);
                }
                i += 1;
                let res = client
                    .post(format!("{url}/api/chat"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 202 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if conversation.is_none() {
                            let v: Value = r.json().await.unwrap_or_default();
                            conversation = v["conversation_id"].as_str().map(str::to_owned);
                        }
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    println!(
        "submit: concurrency={concurrency} accepted={n} refused={} elapsed={elapsed:.1}s rate={:.0}/s",
        refused.load(Ordering::Relaxed),
        n as f64 / elapsed
    );
}

async fn latency(url: String, count: usize, max_gap_ms: u64) {
    let client = reqwest::Client::new();
    let token = session(&client, &url, "latency").await;
    let mut samples = Vec::with_capacity(count);
    let budget = Instant::now() + Duration::from_secs(300);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..count {
        if Instant::now() > budget {
            break;
        }
        if max_gap_ms > 0 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            tokio::time::sleep(Duration::from_millis((seed >> 33) % max_gap_ms)).await;
        }
        let started = Instant::now();
        let r: Value = client
            .post(format!("{url}/api/chat"))
            .bearer_auth(&token)
            .json(&json!({"message": QUESTIONS[i % QUESTIONS.len()]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["job_id"].as_str().expect("job id").to_owned();
        loop {
            let job: Value = client
                .get(format!("{url}/api/chat/{id}?wait=5"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["status"] == "succeeded" || job["status"] == "failed" {
                break;
            }
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    report("post-to-answer", samples);
}

/// Waits for the dev server's drain to empty the queue (bounded to 10 min)
/// and reports how fast it answered the backlog.
async fn drain_wait(url: String) {
    let client = reqwest::Client::new();
    let pending = |v: &Value| {
        let q = &v["checks"]["queue"];
        q["queued"].as_u64().unwrap_or(0)
            + q["running"].as_u64().unwrap_or(0)
            + q["delayed"].as_u64().unwrap_or(0)
    };
    let ready = |client: reqwest::Client, url: String| async move {
        client
            .get(format!("{url}/api/health/ready"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let started = Instant::now();
    let backlog = pending(&ready(client.clone(), url.clone()).await);
    while started.elapsed() < Duration::from_secs(600) {
        if pending(&ready(client.clone(), url.clone()).await) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "drain backlog: jobs={backlog} elapsed={elapsed:.1}s rate={:.0}/s",
        backlog as f64 / elapsed
    );
}

async fn cold_start(binary: String, runs: usize) {
    let client = reqwest::Client::new();
    let data = std::env::temp_dir().join(format!("flowchat-coldstart-{}", std::process::id()));
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .env("VERCEL_DEV_PORT", port.to_string())
            .env("FLOWCHAT_DATA_DIR", &data)
            .env(
                "SESSION_SECRET",
                "bench-secret-bench-secret-bench-secret-00",
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answered = false;
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/api/health/ping"))
                .send()
                .await
                && r.status() == 200
            {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let _ = child.kill();
        let _ = child.wait();
        assert!(answered, "{binary} did not answer");
        samples.push(elapsed);
    }
    let _ = std::fs::remove_dir_all(&data);
    report("cold-start", samples);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "submit" => {
            submit(
                arg(1),
                arg(2).parse().unwrap_or(32),
                arg(3).parse().unwrap_or(10),
            )
            .await
        }
        "latency" => {
            latency(
                arg(1),
                arg(2).parse().unwrap_or(200),
                arg(3).parse().unwrap_or(0),
            )
            .await
        }
        "drain-wait" => drain_wait(arg(1)).await,
        "cold-start" => cold_start(arg(1), arg(2).parse().unwrap_or(30)).await,
        _ => eprintln!(
            "usage: loadgen submit URL CONCURRENCY SECONDS | latency URL COUNT [MAX_GAP_MS] | drain-wait URL | cold-start BINARY RUNS"
        ),
    }
}
