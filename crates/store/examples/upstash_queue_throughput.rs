//! Measures the Upstash back end's queue: jobs enqueued, then claimed and
//! acknowledged (`claim` + `complete_job`) by concurrent drains, as jobs per
//! second, against a running Upstash-protocol endpoint (the local
//! `flowchat-gateway` in `scripts/bench`). Uses a fresh namespace.
//!
//! `cargo run --release -p flowchat-store --features upstash --example upstash_queue_throughput -- URL TOKEN [JOBS] [DRAINS] [BATCH]`

use std::sync::Arc;
use std::time::Instant;

use flowchat_domain::model::{IngestReport, JobPayload, JobResult};
use flowchat_domain::{JobId, Timestamp};
use flowchat_store::upstash::{Ttls, UpstashStore};
use flowchat_store::{ClaimRequest, NewJob, Store};
use flowchat_upstash::{ReqwestTransport, UpstashClient, UpstashConfig};

fn id_bytes(n: u64, tag: u8) -> [u8; 16] {
    let mut bytes = [tag; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, token) = (args[0].clone(), args[1].clone());
    let jobs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let drains: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let batch: u32 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let config = UpstashConfig::new(url, flowchat_upstash::Token::new(token));
    let client = UpstashClient::new(
        config,
        Arc::new(ReqwestTransport::new().expect("transport")),
    );
    let namespace = format!("bench{}", std::process::id());
    let store = Arc::new(UpstashStore::new(client, &namespace, Ttls::default()));
    store.load_scripts().await.expect("scripts load");
    let now = Timestamp::from_millis(1_800_000_000_000);

    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..drains {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut n = t;
            while n < jobs {
                store
                    .enqueue(NewJob {
                        id: JobId::from_random(id_bytes(n, 1)),
                        owner: None,
                        payload: JobPayload::IngestSharedFolder,
                        now,
                    })
                    .await
                    .expect("enqueue");
                n += drains;
            }
        }));
    }
    for h in handles {
        h.await.expect("enqueue task");
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let requests_before = store.client().requests_sent();
    let mut handles = Vec::new();
    for d in 0..drains {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            loop {
                let claims = store
                    .claim(&ClaimRequest {
                        worker: format!("bench-{d}"),
                        max_jobs: batch,
                        lease_ms: 60_000,
                        max_attempts: 3,
                        now,
                    })
                    .await
                    .expect("claim");
                if claims.is_empty() {
                    return done;
                }
                for claim in claims {
                    store
                        .complete_job(&claim, &JobResult::Ingest(IngestReport::default()), now)
                        .await
                        .expect("complete");
                    done += 1;
                }
            }
        }));
    }
    let mut done = 0;
    for h in handles {
        done += h.await.expect("drain task");
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = store.client().requests_sent() - requests_before;
    println!(
        "upstash queue: enqueued {jobs} in {enqueue_secs:.2}s ({:.0}/s); claimed+acked {done} in {secs:.2}s ({:.0}/s) with {drains} drains, batch {batch}; {:.2} requests per job",
        jobs as f64 / enqueue_secs,
        done as f64 / secs,
        requests as f64 / done.max(1) as f64
    );
}
