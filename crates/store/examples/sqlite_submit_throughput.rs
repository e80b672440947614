//! Measures chat submissions per second on the SQLite back end: each one is
//! the full `submit_chat` transaction (two rate checks, ownership check,
//! message append, job insert), issued from concurrent tasks the way API
//! requests arrive.
//!
//! `cargo run --release -p flowchat-store --features sqlite --example sqlite_submit_throughput [-- TOTAL TASKS]`

use std::sync::Arc;
use std::time::Instant;

use flowchat_domain::{ConversationId, JobId, SessionId, Timestamp};
use flowchat_store::sqlite::SqliteStore;
use flowchat_store::{
    ChatSubmission, ConversationTarget, RateCheck, RateRule, Store, SubmitOutcome,
};

fn id_bytes(n: u64, tag: u8) -> [u8; 16] {
    let mut bytes = [tag; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let tasks: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("open"));
    let sessions = 100u64;
    let now = Timestamp::from_millis(1_800_000_000_000);

    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            let mut n = t;
            while n < total {
                let session = SessionId::from_random(id_bytes(n % sessions, 1));
                let submission = ChatSubmission {
                    session: session.clone(),
                    conversation: ConversationTarget::New {
                        id: ConversationId::from_random(id_bytes(n, 2)),
                        title: "How many days of leave do I get?".to_owned(),
                    },
                    message: "How many days of leave do I get after two years?".to_owned(),
                    job_id: JobId::from_random(id_bytes(n, 3)),
                    rate_checks: vec![
                        RateCheck {
                            key: format!("chat:session:{session}"),
                            rule: RateRule::per_minute(1_000_000),
                        },
                        RateCheck {
                            key: format!("chat:ip:10.0.0.{}", n % 50),
                            rule: RateRule::per_minute(1_000_000),
                        },
                    ],
                    now: now.plus_millis(i64::try_from(n).unwrap_or(0) / 10),
                };
                match store.submit_chat(submission).await.expect("submit_chat") {
                    SubmitOutcome::Accepted { .. } => accepted += 1,
                    other => panic!("unexpected {other:?}"),
                }
                n += tasks;
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for handle in handles {
        accepted += handle.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "{accepted} submissions from {tasks} tasks in {:.2} s: {:.0} per second",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64()
    );
}
