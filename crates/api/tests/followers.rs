//! Hostile followers: one session (or one address) opening event streams
//! and waiting reads until the store is polled to death. Each test holds
//! real responses open (`flowchat_api::handle` over the sqlite store) and
//! lets them go the way a client does, by dropping them.
//!
//! The platform's clock moves only when a follower sleeps; once `stuck`,
//! `sleep_ms` never returns, so a follower that starts waiting stays open
//! until the test drops it (a client that goes away). Nothing here depends
//! on timing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use flowchat_api::{AppContext, Body, ClientIp, Platform};
use flowchat_domain::Timestamp;
use flowchat_store::Store;
use http::{Method, Request, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

const SECRET: &str = "test-secret-test-secret-test-secret-0123";
const IP: &str = "203.0.113.7";

struct StuckPlatform {
    now_ms: AtomicI64,
    counter: AtomicU64,
    /// Whether a sleep lasts forever.
    stuck: AtomicBool,
    /// How many followers are stuck inside `sleep_ms`, i.e. holding a slot
    /// and waiting for the job to change.
    sleeping: AtomicU64,
    asleep: Notify,
}

#[async_trait::async_trait]
impl Platform for StuckPlatform {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms.load(Ordering::SeqCst))
    }

    fn random_bytes(&self) -> [u8; 16] {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        bytes
    }

    async fn sleep_ms(&self, ms: u64) {
        if !self.stuck.load(Ordering::SeqCst) {
            self.now_ms.fetch_add(ms as i64, Ordering::SeqCst);
            tokio::task::yield_now().await;
            return;
        }
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        self.asleep.notify_one();
        std::future::pending::<()>().await;
    }
}

struct Api {
    ctx: AppContext,
    platform: Arc<StuckPlatform>,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

fn api(vars: &[(&str, &str)]) -> Arc<Api> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("SESSION_SECRET".to_owned(), SECRET.to_owned());
    let dir = tempfile::tempdir().unwrap();
    let config = flowchat_config::app_config(|k| map.get(k).cloned()).unwrap();
    let secret = config.session_secret.clone().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        flowchat_store::sqlite::SqliteStore::open(dir.path().join("store.sqlite3")).unwrap(),
    );
    let platform = Arc::new(StuckPlatform {
        now_ms: AtomicI64::new(1_735_689_600_000),
        counter: AtomicU64::new(0),
        stuck: AtomicBool::new(false),
        sleeping: AtomicU64::new(0),
        asleep: Notify::new(),
    });
    let ctx = AppContext::new(config, store.clone(), platform.clone(), secret);
    Arc::new(Api {
        ctx,
        platform,
        store,
        _dir: dir,
    })
}

fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    ip: &str,
    body: Option<Value>,
) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let bytes = match body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let mut req = builder.body(bytes).unwrap();
    req.extensions_mut().insert(ClientIp(ip.to_owned()));
    req
}

/// The response, body still unread: an event stream stays open (and holds
/// its slot) for as long as it is kept.
async fn open(
    api: &Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    ip: &str,
) -> Response<Body> {
    flowchat_api::handle(&api.ctx, request(method, path, token, ip, None)).await
}

async fn json_of(response: Response<Body>) -> Value {
    let bytes = response.into_body().collect().await;
    serde_json::from_slice(&bytes).unwrap()
}

async fn session(api: &Api, nickname: &str) -> String {
    let req = request(
        Method::POST,
        "/api/session",
        None,
        "198.51.100.1",
        Some(json!({ "nickname": nickname })),
    );
    let r = flowchat_api::handle(&api.ctx, req).await;
    assert_eq!(r.status(), 201);
    json_of(r).await["token"].as_str().unwrap().to_owned()
}

/// A queued chat job of `token`'s session (nothing answers it).
async fn queued_job(api: &Api, token: &str) -> String {
    let req = request(
        Method::POST,
        "/api/chat",
        Some(token),
        "198.51.100.1",
        Some(json!({ "message": "anyone there?" })),
    );
    let r = flowchat_api::handle(&api.ctx, req).await;
    assert_eq!(r.status(), 202);
    json_of(r).await["job_id"].as_str().unwrap().to_owned()
}

async fn events(api: &Api, job: &str, token: &str, ip: &str) -> Response<Body> {
    open(
        api,
        Method::GET,
        &format!("/api/chat/{job}/events"),
        Some(token),
        ip,
    )
    .await
}

/// Asserts a 429 problem naming `setting` and `limit`, with `Retry-After`.
async fn assert_refused(response: Response<Body>, setting: &str, limit: u32) {
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/problem+json"
    );
    let retry: u64 = headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=25).contains(&retry), "{retry}");
    assert_eq!(headers.get("ratelimit-limit").unwrap(), &limit.to_string());
    let problem = json_of(response).await;
    assert_eq!(
        problem["type"], "urn:flowchat:problem:rate-limited",
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(setting), "{detail}");
    assert!(detail.contains(&format!("at most {limit} ")), "{detail}");
}

#[tokio::test]
async fn one_session_gets_four_event_streams_and_a_closed_one_is_given_back() {
    let api = api(&[]);
    let token = session(&api, "ana").await;
    let job = queued_job(&api, &token).await;

    let mut open_streams = Vec::new();
    for _ in 0..4 {
        let r = events(&api, &job, &token, IP).await;
        assert_eq!(r.status(), 200);
        open_streams.push(r);
    }
    assert_refused(
        events(&api, &job, &token, IP).await,
        "MAX_FOLLOWERS_PER_SESSION",
        4,
    )
    .await;
    // From another address too: the limit is the session's.
    assert_refused(
        events(&api, &job, &token, "192.0.2.99").await,
        "MAX_FOLLOWERS_PER_SESSION",
        4,
    )
    .await;
    // Long-polling counts as following; a plain read does not.
    let wait = format!("/api/chat/{job}?wait=5");
    assert_refused(
        open(&api, Method::GET, &wait, Some(&token), IP).await,
        "MAX_FOLLOWERS_PER_SESSION",
        4,
    )
    .await;
    let read = open(
        &api,
        Method::GET,
        &format!("/api/chat/{job}"),
        Some(&token),
        IP,
    )
    .await;
    assert_eq!(read.status(), 200);

    // The client closes one: its slot is free again.
    drop(open_streams.pop());
    let r = events(&api, &job, &token, IP).await;
    assert_eq!(r.status(), 200);
    open_streams.push(r);
    assert_refused(
        events(&api, &job, &token, IP).await,
        "MAX_FOLLOWERS_PER_SESSION",
        4,
    )
    .await;

    // Another session is not held back by ana's.
    let ben = session(&api, "ben").await;
    let ben_job = queued_job(&api, &ben).await;
    assert_eq!(events(&api, &ben_job, &ben, IP).await.status(), 200);
}

#[tokio::test]
async fn a_stream_that_ends_gives_its_slot_back() {
    let api = api(&[("MAX_FOLLOWERS_PER_SESSION", "1")]);
    let token = session(&api, "ana").await;
    let job = queued_job(&api, &token).await;
    let held = events(&api, &job, &token, IP).await;
    assert_refused(
        events(&api, &job, &token, IP).await,
        "MAX_FOLLOWERS_PER_SESSION",
        1,
    )
    .await;
    drop(held);

    // A stream of a failed job ends on its own after the `failed` event.
    let claim = api
        .store
        .claim(&flowchat_store::ClaimRequest {
            worker: "test-drain".to_owned(),
            max_jobs: 1,
            lease_ms: 60_000,
            max_attempts: 1,
            now: api.platform.now(),
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    api.store
        .fail_job(&claim, "no model", None, api.platform.now())
        .await
        .unwrap();
    let finished = events(&api, &job, &token, IP).await;
    assert_eq!(finished.status(), 200);
    let body = finished.into_body().collect().await;
    assert!(String::from_utf8_lossy(&body).contains("event: failed"));
    assert_eq!(events(&api, &job, &token, IP).await.status(), 200);
}

#[tokio::test]
async fn one_address_is_limited_across_sessions_and_an_ipv6_64_is_one_address() {
    let api = api(&[("MAX_FOLLOWERS_PER_IP", "2")]);
    let mut held = Vec::new();
    for (nickname, ip) in [("ana", "2001:db8:1:2::1"), ("ben", "2001:db8:1:2:ffff::7")] {
        let token = session(&api, nickname).await;
        let job = queued_job(&api, &token).await;
        let r = events(&api, &job, &token, ip).await;
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    let cleo = session(&api, "cleo").await;
    let job = queued_job(&api, &cleo).await;
    // A third address of the same /64 is the same client.
    assert_refused(
        events(&api, &job, &cleo, "2001:db8:1:2:abcd::1").await,
        "MAX_FOLLOWERS_PER_IP",
        2,
    )
    .await;
    // The next /64 is someone else.
    assert_eq!(
        events(&api, &job, &cleo, "2001:db8:1:3::1").await.status(),
        200
    );
    drop(held.pop());
    assert_eq!(
        events(&api, &job, &cleo, "2001:db8:1:2:abcd::1")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_waiting_read_holds_a_slot_until_the_client_goes_away() {
    let api = api(&[("MAX_FOLLOWERS_PER_SESSION", "1")]);
    let token = session(&api, "ana").await;
    let job = queued_job(&api, &token).await;
    api.platform.stuck.store(true, Ordering::SeqCst);

    let waiting = {
        let api = api.clone();
        let (token, job) = (token.clone(), job.clone());
        tokio::spawn(async move {
            open(
                &api,
                Method::GET,
                &format!("/api/chat/{job}?wait=25"),
                Some(&token),
                IP,
            )
            .await
        })
    };
    // Inside the wait, it holds the session's only slot.
    while api.platform.sleeping.load(Ordering::SeqCst) == 0 {
        api.platform.asleep.notified().await;
    }
    assert_refused(
        events(&api, &job, &token, IP).await,
        "MAX_FOLLOWERS_PER_SESSION",
        1,
    )
    .await;

    // The client disconnects: the runtime drops the request's future.
    waiting.abort();
    match waiting.await {
        Err(e) => assert!(e.is_cancelled(), "{e}"),
        Ok(r) => panic!("the wait ended by itself: {}", r.status()),
    }
    assert_eq!(events(&api, &job, &token, IP).await.status(), 200);
}

#[tokio::test]
async fn synchronous_completions_are_followers_refused_before_anything_is_written() {
    let api = api(&[("MAX_FOLLOWERS_PER_IP", "1")]);
    let token = session(&api, "ana").await;
    let job = queued_job(&api, &token).await;
    let _held = events(&api, &job, &token, IP).await;
    let before = api.store.queue_stats(api.platform.now()).await.unwrap();

    let req = request(
        Method::POST,
        "/api/chat/completions",
        None,
        IP,
        Some(json!({ "message": "and now?" })),
    );
    assert_refused(
        flowchat_api::handle(&api.ctx, req).await,
        "MAX_FOLLOWERS_PER_IP",
        1,
    )
    .await;
    let after = api.store.queue_stats(api.platform.now()).await.unwrap();
    assert_eq!(after.queued, before.queued, "nothing was queued");
}

/// On serverless each instance counts only the followers it serves itself,
/// so a session spread over fresh instances was never refused. Follower
/// starts are also counted in the store: across instances a session gets at
/// most three times `MAX_FOLLOWERS_PER_SESSION` per 25 s.
#[tokio::test]
async fn followers_spread_over_instances_are_bounded_by_the_store() {
    let api = api(&[]);
    let token = session(&api, "ana").await;
    let job = queued_job(&api, &token).await;
    let path = format!("/api/chat/{job}/events");
    let (mut held, mut instances) = (Vec::new(), Vec::new());
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..10 {
        // A fresh instance over the same store: nothing open in it yet.
        let config = (*api.ctx.config).clone();
        let secret = config.session_secret.clone().unwrap();
        let instance = AppContext::new(config, api.store.clone(), api.platform.clone(), secret);
        for _ in 0..4 {
            let r = flowchat_api::handle(
                &instance,
                request(Method::GET, &path, Some(&token), IP, None),
            )
            .await;
            if r.status() == 200 {
                accepted += 1;
                held.push(r);
            } else {
                assert_eq!(r.status(), 429);
                assert!(r.headers().get("retry-after").is_some());
                let problem = json_of(r).await;
                assert_eq!(problem["type"], "urn:flowchat:problem:rate-limited");
                refused += 1;
            }
        }
        instances.push(instance);
    }
    assert_eq!((accepted, refused), (12, 28));
}
