//! Client tests over a hand-rolled [`Transport`] that replays canned HTTP
//! answers and records what was sent. This is the network boundary, so the
//! client's own logic (encoding, decoding, retries, fallbacks) runs for real.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value as Json, json};

use crate::{
    Command, CommandError, Script, Sleeper, Token, Transport, TransportError, TransportResponse,
    UpstashClient, UpstashConfig, UpstashError, Value, cmd,
};

const TOKEN: &str = "tok-SECRET-4242";
const URL: &str = "https://eu1-test.upstash.io";

/// One request as the transport saw it.
#[derive(Debug, Clone)]
struct Sent {
    url: String,
    headers: Vec<(String, String)>,
    body: Json,
    timeout: Duration,
}

#[derive(Default)]
struct Canned {
    replies: Mutex<VecDeque<Result<TransportResponse, TransportError>>>,
    sent: Mutex<Vec<Sent>>,
}

impl Canned {
    fn new(replies: Vec<Result<TransportResponse, TransportError>>) -> Arc<Self> {
        Arc::new(Canned {
            replies: Mutex::new(replies.into()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Transport for Canned {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<TransportResponse, TransportError> {
        self.sent.lock().unwrap().push(Sent {
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body: serde_json::from_slice(&body).expect("the client sends JSON"),
            timeout,
        });
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("a canned reply for every request")
    }
}

#[derive(Default)]
struct RecordingSleeper(Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        self.0.lock().unwrap().push(duration);
    }
}

fn http(status: u16, body: Json) -> Result<TransportResponse, TransportError> {
    Ok(TransportResponse {
        status,
        body: serde_json::to_vec(&body).unwrap(),
    })
}

fn result(v: Json) -> Result<TransportResponse, TransportError> {
    http(200, json!({ "result": v }))
}

fn b64(s: &str) -> Json {
    Json::String(BASE64.encode(s))
}

fn client(replies: Vec<Result<TransportResponse, TransportError>>) -> (UpstashClient, Arc<Canned>) {
    let canned = Canned::new(replies);
    let config = UpstashConfig::new(format!("{URL}/"), Token::new(TOKEN));
    (UpstashClient::new(config, canned.clone()), canned)
}

#[tokio::test]
async fn sends_json_array_with_auth_and_base64_encoding() {
    let (c, t) = client(vec![result(b64("v"))]);
    let v = c
        .cmd(
            Command::new("SET")
                .arg("k")
                .arg(&b"v"[..])
                .arg("EX")
                .arg(100),
        )
        .await
        .unwrap();
    assert_eq!(v.as_str(), Some("v"));
    let sent = t.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, URL);
    assert_eq!(sent[0].body, json!(["SET", "k", "v", "EX", "100"]));
    assert_eq!(sent[0].timeout, Duration::from_secs(5));
    let header = |name: &str| {
        sent[0]
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("Authorization"), Some(format!("Bearer {TOKEN}")));
    assert_eq!(header("Upstash-Encoding").as_deref(), Some("base64"));
    assert_eq!(c.requests_sent(), 1);
}

#[tokio::test]
async fn decodes_ok_nil_int_and_binary() {
    let raw = [0u8, 159, 146, 150];
    let (c, _) = client(vec![
        result(json!("OK")),
        result(json!(null)),
        result(json!(7)),
        result(Json::String(BASE64.encode(raw))),
    ]);
    assert_eq!(c.cmd(cmd!("SET", "k", "v")).await.unwrap(), Value::Ok);
    assert!(c.cmd_read(cmd!("GET", "missing")).await.unwrap().is_nil());
    assert_eq!(c.cmd(cmd!("INCR", "n")).await.unwrap().as_i64(), Some(7));
    let v = c.cmd_read(cmd!("GET", "blob")).await.unwrap();
    assert_eq!(v.as_bytes(), Some(&raw[..]));
}

#[tokio::test]
async fn decodes_nested_xreadgroup_reply() {
    let (c, _) = client(vec![result(json!([[
        b64("fc:dev:jobs"),
        [[b64("1700000000000-0"), [b64("job"), b64("j-1")]]]
    ]]))]);
    let v = c
        .cmd(cmd!(
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            10,
            "STREAMS",
            "fc:dev:jobs",
            ">"
        ))
        .await
        .unwrap();
    let streams = v.into_array().unwrap();
    let stream = streams[0].clone().into_array().unwrap();
    assert_eq!(stream[0].as_str(), Some("fc:dev:jobs"));
    let entry = stream[1].clone().into_array().unwrap()[0]
        .clone()
        .into_array()
        .unwrap();
    assert_eq!(entry[0].as_str(), Some("1700000000000-0"));
    let fields = entry[1].clone().into_array().unwrap();
    assert_eq!(fields[1].as_str(), Some("j-1"));
}

#[tokio::test]
async fn unauthorized_on_401() {
    let (c, _) = client(vec![http(401, json!({"error": "Unauthorized"}))]);
    let err = c.cmd_read(cmd!("GET", "k")).await.unwrap_err();
    assert_eq!(err, UpstashError::Unauthorized);
    assert!(err.to_string().contains("token"));
    assert!(!err.is_retryable());
    assert_eq!(c.requests_sent(), 1, "401 is not retried");
}

#[tokio::test]
async fn error_400_is_a_command_error() {
    let msg = "WRONGTYPE Operation against a key holding the wrong kind of value";
    let (c, _) = client(vec![http(400, json!({ "error": msg }))]);
    let err = c.cmd_read(cmd!("LPUSH", "k", "v")).await.unwrap_err();
    assert_eq!(err, UpstashError::Command(msg.into()));
    assert!(!err.is_retryable());
    assert_eq!(c.requests_sent(), 1);
}

#[tokio::test]
async fn too_large_from_413_or_message() {
    let (c, _) = client(vec![
        http(413, json!({"error": "Payload Too Large"})),
        http(
            400,
            json!({"error": "ERR max request size exceeded. Limit: 10485760 bytes, Actual: 10485999 bytes"}),
        ),
    ]);
    assert_eq!(
        c.cmd(cmd!("SET", "k", "v")).await.unwrap_err(),
        UpstashError::TooLarge
    );
    assert_eq!(
        c.cmd(cmd!("SET", "k", "v")).await.unwrap_err(),
        UpstashError::TooLarge
    );
}

#[tokio::test]
async fn protocol_errors_for_unexpected_shapes() {
    let (c, _) = client(vec![
        Ok(TransportResponse {
            status: 200,
            body: b"<html>oops</html>".to_vec(),
        }),
        http(200, json!({"nothing": 1})),
        result(json!("not base64!")),
        http(404, json!("Not Found")),
        Ok(TransportResponse {
            status: 404,
            body: b"Not Found".to_vec(),
        }),
    ]);
    for _ in 0..5 {
        let err = c.cmd_read(cmd!("GET", "k")).await.unwrap_err();
        assert!(matches!(err, UpstashError::Protocol(_)), "{err:?}");
    }
}

#[tokio::test]
async fn not_utf8_argument_is_refused_before_sending() {
    let (c, t) = client(vec![]);
    let err = c
        .cmd(Command::new("SET").arg("k").arg(vec![0xc3u8, 0x28]))
        .await
        .unwrap_err();
    assert_eq!(err, UpstashError::NotUtf8Argument);
    assert!(err.to_string().contains("base64"));
    let err = c
        .pipeline(vec![
            cmd!("GET", "a"),
            Command::new("SET").arg(&[0xffu8][..]),
        ])
        .await
        .unwrap_err();
    assert_eq!(err, UpstashError::NotUtf8Argument);
    assert!(t.sent().is_empty());
}

#[tokio::test]
async fn evalsha_falls_back_to_eval_on_noscript() {
    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let (c, t) = client(vec![
        http(
            400,
            json!({"error": "NOSCRIPT No matching script. Please use EVAL."}),
        ),
        result(json!(5)),
    ]);
    let v = c
        .eval(&script, &["counter".into()], &[5.into()], false)
        .await
        .unwrap();
    assert_eq!(v, Value::Int(5));
    let sent = t.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body,
        json!(["EVALSHA", script.sha1(), "1", "counter", "5"])
    );
    assert_eq!(
        sent[1].body,
        json!(["EVAL", script.source(), "1", "counter", "5"])
    );
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn evalsha_hit_is_one_round_trip() {
    let script = Script::new("return 1");
    let (c, t) = client(vec![result(json!(1))]);
    let v = c.eval(&script, &[], &[], true).await.unwrap();
    assert_eq!(v, Value::Int(1));
    assert_eq!(t.sent()[0].body, json!(["EVALSHA", script.sha1(), "0"]));
    assert_eq!(c.requests_sent(), 1);
}

#[tokio::test]
async fn script_errors_are_not_retried_or_refallen_back() {
    let script = Script::new("error");
    let (c, _) = client(vec![
        http(400, json!({"error": "NOSCRIPT No matching script."})),
        http(400, json!({"error": "ERR Error compiling script"})),
    ]);
    let err = c.eval(&script, &[], &[], true).await.unwrap_err();
    assert_eq!(
        err,
        UpstashError::Command("ERR Error compiling script".into())
    );
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn pipeline_returns_mixed_results_in_order() {
    let (c, t) = client(vec![http(
        200,
        json!([
            {"result": "OK"},
            {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
            {"result": b64("v")},
            {"result": [b64("a"), null]}
        ]),
    )]);
    let replies = c
        .pipeline(vec![
            cmd!("SET", "k", "v"),
            cmd!("LPUSH", "k", "x"),
            cmd!("GET", "k"),
            cmd!("MGET", "a", "b"),
        ])
        .await
        .unwrap();
    let sent = t.sent();
    assert_eq!(sent[0].url, format!("{URL}/pipeline"));
    assert_eq!(
        sent[0].body,
        json!([
            ["SET", "k", "v"],
            ["LPUSH", "k", "x"],
            ["GET", "k"],
            ["MGET", "a", "b"]
        ])
    );
    assert_eq!(replies[0], Ok(Value::Ok));
    assert_eq!(
        replies[1],
        Err(CommandError {
            message: "WRONGTYPE Operation against a key holding the wrong kind of value".into()
        })
    );
    assert_eq!(replies[2].as_ref().unwrap().as_str(), Some("v"));
    assert_eq!(
        replies[3],
        Ok(Value::Array(vec![Value::Bytes(b"a".to_vec()), Value::Nil]))
    );
}

#[tokio::test]
async fn pipeline_answer_count_must_match() {
    let (c, _) = client(vec![http(200, json!([{"result": "OK"}]))]);
    let err = c
        .pipeline(vec![cmd!("SET", "a", "1"), cmd!("SET", "b", "2")])
        .await
        .unwrap_err();
    assert!(matches!(err, UpstashError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn empty_batches_send_nothing() {
    let (c, _) = client(vec![]);
    assert!(c.pipeline(vec![]).await.unwrap().is_empty());
    assert!(c.multi_exec(vec![]).await.unwrap().is_empty());
    assert_eq!(c.requests_sent(), 0);
}

#[tokio::test]
async fn multi_exec_posts_to_its_endpoint() {
    let (c, t) = client(vec![http(200, json!([{"result": 1}, {"result": 1}]))]);
    let replies = c
        .multi_exec(vec![cmd!("INCR", "a"), cmd!("EXPIRE", "a", 60)])
        .await
        .unwrap();
    assert_eq!(t.sent()[0].url, format!("{URL}/multi-exec"));
    assert_eq!(replies, vec![Ok(Value::Int(1)), Ok(Value::Int(1))]);
}

#[tokio::test]
async fn multi_exec_discarded_is_one_command_error() {
    let (c, _) = client(vec![http(
        400,
        json!({"error": "EXECABORT Transaction discarded because of previous errors."}),
    )]);
    let err = c
        .multi_exec(vec![cmd!("SET", "a", "1"), cmd!("NOSUCHCMD")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstashError::Command("EXECABORT Transaction discarded because of previous errors.".into())
    );
}

fn unavailable() -> Result<TransportResponse, TransportError> {
    http(503, json!({"error": "Service Unavailable"}))
}

#[tokio::test]
async fn reads_are_retried_on_5xx() {
    let (c, _) = client(vec![unavailable(), result(b64("v"))]);
    let v = c.cmd_read(cmd!("GET", "k")).await.unwrap();
    assert_eq!(v.as_str(), Some("v"));
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn writes_are_not_retried_on_5xx() {
    let (c, _) = client(vec![unavailable(), result(json!(1))]);
    let err = c.cmd(cmd!("INCR", "n")).await.unwrap_err();
    assert!(
        matches!(&err, UpstashError::Transport(m) if m.contains("503")),
        "{err:?}"
    );
    assert!(
        err.is_retryable(),
        "the caller may still answer 503 Retry-After"
    );
    assert_eq!(c.requests_sent(), 1);
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let (c, _) = client(vec![
        unavailable(),
        unavailable(),
        unavailable(),
        result(json!(1)),
    ]);
    let err = c.cmd_read(cmd!("GET", "k")).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(c.requests_sent(), 3, "one attempt plus max_retries (2)");
}

#[tokio::test]
async fn pipelines_and_transactions_retry_only_when_idempotent() {
    let ok = || http(200, json!([{"result": 1}]));
    let (c, _) = client(vec![
        unavailable(),
        unavailable(),
        ok(),
        unavailable(),
        ok(),
    ]);
    assert!(c.pipeline(vec![cmd!("INCR", "a")]).await.is_err());
    assert!(c.multi_exec(vec![cmd!("INCR", "a")]).await.is_err());
    assert_eq!(c.requests_sent(), 2);
    c.pipeline_idempotent(vec![cmd!("GET", "a")]).await.unwrap();
    assert_eq!(c.requests_sent(), 3);
    c.multi_exec_idempotent(vec![cmd!("SET", "a", "1")])
        .await
        .unwrap();
    assert_eq!(c.requests_sent(), 5);
}

#[tokio::test]
async fn scripts_retry_only_when_idempotent() {
    let script = Script::new("return 1");
    let (c, _) = client(vec![unavailable(), unavailable(), result(json!(1))]);
    assert!(c.eval(&script, &[], &[], false).await.is_err());
    assert_eq!(c.requests_sent(), 1);
    assert_eq!(
        c.eval(&script, &[], &[], true).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(c.requests_sent(), 3);
}

#[tokio::test]
async fn timeouts_retry_only_safe_calls() {
    let (c, _) = client(vec![
        Err(TransportError::Timeout),
        Err(TransportError::Timeout),
        result(json!(3)),
    ]);
    assert_eq!(
        c.cmd(cmd!("INCR", "n")).await.unwrap_err(),
        UpstashError::Timeout
    );
    assert_eq!(
        c.cmd_read(cmd!("GET", "n")).await.unwrap().as_i64(),
        Some(3)
    );
    assert_eq!(c.requests_sent(), 3);
}

#[tokio::test]
async fn connect_failures_retry_even_writes() {
    // Nothing was sent, so a retry cannot apply the write twice.
    let (c, _) = client(vec![
        Err(TransportError::Connect("connection refused".into())),
        result(json!(1)),
    ]);
    assert_eq!(c.cmd(cmd!("INCR", "n")).await.unwrap(), Value::Int(1));
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn backoff_goes_through_the_sleeper() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let (c, _) = client(vec![unavailable(), unavailable(), result(json!(1))]);
    let c = c
        .with_sleeper(sleeper.clone())
        .with_retry_backoff(Duration::from_millis(10));
    c.cmd_read(cmd!("GET", "k")).await.unwrap();
    assert_eq!(
        *sleeper.0.lock().unwrap(),
        vec![Duration::from_millis(10), Duration::from_millis(20)]
    );
}

#[tokio::test]
async fn ping_accepts_any_reply() {
    let (c, t) = client(vec![result(b64("PONG"))]);
    c.ping().await.unwrap();
    assert_eq!(t.sent()[0].body, json!(["PING"]));
}

#[tokio::test]
async fn script_load_checks_the_digest() {
    let script = Script::new("return 1");
    let (c, t) = client(vec![result(b64(script.sha1())), result(b64("0000"))]);
    c.script_load(&script).await.unwrap();
    assert_eq!(t.sent()[0].body, json!(["SCRIPT", "LOAD", "return 1"]));
    assert!(matches!(
        c.script_load(&script).await,
        Err(UpstashError::Protocol(_))
    ));
}

#[tokio::test]
async fn no_error_ever_shows_the_token() {
    // Servers and transports that (wrongly) echo the token.
    let echo = format!("bad header Authorization: Bearer {TOKEN}");
    let (c, _) = client(vec![
        http(401, json!({"error": "Unauthorized"})),
        http(400, json!({ "error": echo })),
        http(500, json!({ "error": echo })),
        Err(TransportError::Other(echo.clone())),
        Err(TransportError::Connect(echo.clone())),
        Err(TransportError::Connect(echo.clone())),
        Err(TransportError::Connect(echo.clone())),
        Err(TransportError::Timeout),
        http(413, json!({})),
        http(200, json!([{ "error": echo }])),
    ]);
    let mut errors: Vec<String> = Vec::new();
    let mut record = |e: UpstashError| errors.push(format!("{e} {e:?}"));
    for _ in 0..4 {
        record(c.cmd(cmd!("GET", "k")).await.unwrap_err());
    }
    record(c.cmd(cmd!("GET", "k")).await.unwrap_err()); // 3 connect failures
    record(c.cmd(cmd!("GET", "k")).await.unwrap_err());
    record(c.cmd(cmd!("GET", "k")).await.unwrap_err());
    record(
        c.cmd(Command::new("SET").arg(vec![0xffu8]))
            .await
            .unwrap_err(),
    );
    let replies = c.pipeline(vec![cmd!("GET", "k")]).await.unwrap();
    let e = replies[0].clone().unwrap_err();
    errors.push(format!("{e} {e:?}"));
    errors.push(format!("{c:?} {:?}", c.config()));
    assert_eq!(errors.len(), 10);
    for shown in &errors {
        assert!(!shown.contains(TOKEN), "token leaked: {shown}");
    }
    assert!(errors[1].contains("<redacted>"), "{}", errors[1]);
}
