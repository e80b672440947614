//! The Upstash REST protocol, end to end: a real redis-server per test, the
//! gateway in-process on a free port, HTTP with reqwest.

use std::time::{Duration, Instant};

use flowchat_gateway::testing::TestGateway;
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    fn new(env: &TestGateway) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: env.url(),
            token: env.token().to_owned(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.expect("a JSON answer");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    async fn post_base64(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .header("Upstash-Encoding", "base64")
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.url))
                .bearer_auth(&self.token),
        )
        .await
    }
}

async fn setup() -> (TestGateway, Client) {
    let env = TestGateway::start()
        .await
        .expect("redis-server and the gateway start");
    let client = Client::new(&env);
    (env, client)
}

#[tokio::test]
async fn set_and_get_round_trip() {
    let (_env, c) = setup().await;
    assert_eq!(
        c.post("/", json!(["SET", "greeting", "olá", "EX", 100]))
            .await,
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        c.post("/", json!(["GET", "greeting"])).await,
        (200, json!({"result": "olá"}))
    );
    assert_eq!(
        c.post("/", json!(["TTL", "greeting"])).await.1["result"],
        json!(100)
    );
    assert_eq!(
        c.post("/", json!(["GET", "missing"])).await,
        (200, json!({"result": null}))
    );
    // Numbers become their decimal text.
    c.post("/", json!(["SET", "n", 41])).await;
    assert_eq!(
        c.post("/", json!(["INCRBY", "n", 1])).await,
        (200, json!({"result": 42}))
    );
    assert_eq!(
        c.post("/", json!(["INCRBYFLOAT", "n", 0.5])).await,
        (200, json!({"result": "42.5"}))
    );
    // Arrays stay arrays.
    c.post("/", json!(["RPUSH", "list", "a", "b"])).await;
    assert_eq!(
        c.post("/", json!(["LRANGE", "list", 0, -1])).await,
        (200, json!({"result": ["a", "b"]}))
    );
}

#[tokio::test]
async fn base64_encoding_covers_every_string_but_ok() {
    let (_env, c) = setup().await;
    // JSON can't carry raw bytes: let Lua write a lone 0xff byte.
    let (status, _) = c
        .post(
            "/",
            json!([
                "EVAL",
                "redis.call('SET', KEYS[1], string.char(255)) return 1",
                1,
                "bin"
            ]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        c.post_base64("/", json!(["GET", "bin"])).await,
        (200, json!({"result": "/w=="}))
    );
    assert_eq!(
        c.post("/", json!(["GET", "bin"])).await,
        (200, json!({"result": "\u{fffd}"}))
    );
    // The bare status OK is never encoded; other statuses and values are.
    assert_eq!(
        c.post_base64("/", json!(["SET", "k", "OK"])).await,
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        c.post_base64("/", json!(["GET", "k"])).await,
        (200, json!({"result": "T0s="}))
    );
    assert_eq!(
        c.post_base64("/", json!(["PING"])).await,
        (200, json!({"result": "UE9ORw=="}))
    );
    // Recursively in arrays; integers and nil untouched.
    c.post("/", json!(["HSET", "h", "f", "v"])).await;
    assert_eq!(
        c.post_base64("/", json!(["HGETALL", "h"])).await,
        (200, json!({"result": ["Zg==", "dg=="]}))
    );
    // Errors are never encoded.
    assert_eq!(
        c.post_base64("/", json!(["GET", "h"])).await,
        (
            400,
            json!({"error": "WRONGTYPE Operation against a key holding the wrong kind of value"})
        )
    );
    assert_eq!(
        c.post_base64("/", json!(["MGET", "missing", "k"])).await,
        (200, json!({"result": [null, "T0s="]}))
    );
    assert_eq!(
        c.post_base64(
            "/pipeline",
            json!([["GET", "bin"], ["SET", "x", "y"], ["HLEN", "h"]])
        )
        .await,
        (
            200,
            json!([{"result": "/w=="}, {"result": "OK"}, {"result": 1}])
        )
    );
}

#[tokio::test]
async fn bad_or_missing_token_is_unauthorized() {
    let (env, c) = setup().await;
    let unauthorized = (401, json!({"error": "Unauthorized"}));
    let url = format!("{}/", env.url());
    let body = json!(["SET", "k", "v"]);
    assert_eq!(c.send(c.http.post(&url).json(&body)).await, unauthorized);
    assert_eq!(
        c.send(c.http.post(&url).bearer_auth("wrong").json(&body))
            .await,
        unauthorized
    );
    let almost = format!("{}x", env.token());
    assert_eq!(
        c.send(c.http.post(&url).bearer_auth(almost).json(&body))
            .await,
        unauthorized
    );
    assert_eq!(
        c.send(
            c.http
                .post(&url)
                .header("Authorization", env.token())
                .json(&body)
        )
        .await,
        unauthorized
    );
    for path in ["/pipeline", "/multi-exec"] {
        assert_eq!(
            c.send(
                c.http
                    .post(format!("{}{path}", env.url()))
                    .json(&json!([["PING"]]))
            )
            .await,
            unauthorized
        );
    }
    assert_eq!(
        c.send(c.http.get(format!("{}/__gateway/stats", env.url())))
            .await,
        unauthorized
    );
    // Nothing was written.
    assert_eq!(
        c.post("/", json!(["EXISTS", "k"])).await.1,
        json!({"result": 0})
    );
}

#[tokio::test]
async fn redis_errors_are_400() {
    let (_env, c) = setup().await;
    let (status, body) = c.post("/", json!(["GET"])).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "ERR wrong number of arguments for 'get' command"})
    );
    let (status, body) = c.post("/", json!(["NOSUCHCOMMAND", "x"])).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR unknown command")
    );
    // A runtime error is a 400 too.
    c.post("/", json!(["SET", "s", "text"])).await;
    let (status, body) = c.post("/", json!(["INCR", "s"])).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "ERR value is not an integer or out of range"})
    );
    // A script's own error.
    let (status, body) = c
        .post(
            "/",
            json!([
                "EVAL",
                "return redis.error_reply('MYERR custom failure')",
                0
            ]),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "MYERR custom failure"}))
    );
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let (env, c) = setup().await;
    for body in [
        json!({"cmd": "GET"}),
        json!([]),
        json!([["GET", "k"]]),
        json!(["GET", null]),
        json!(["SET", "k", true]),
    ] {
        let (status, answer) = c.post("/", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().starts_with("ERR "),
            "{answer}"
        );
    }
    for path in ["/pipeline", "/multi-exec"] {
        for body in [
            json!(["GET", "k"]),
            json!([]),
            json!([[]]),
            json!([["GET", {}]]),
        ] {
            let (status, answer) = c.post(path, body.clone()).await;
            assert_eq!(status, 400, "{path} {body}");
            assert!(answer["error"].is_string());
        }
    }
    let (status, answer) = c
        .send(
            c.http
                .post(format!("{}/", env.url()))
                .bearer_auth(env.token())
                .body("[\"GET\", "),
        )
        .await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("JSON"));
    // Unknown routes and methods answer JSON too.
    assert_eq!(c.post("/nope", json!(["PING"])).await.0, 404);
    assert_eq!(c.get("/").await.0, 405);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let env = TestGateway::start_with(|options| options.max_request_bytes = 1024)
        .await
        .unwrap();
    let c = Client::new(&env);
    let big = "x".repeat(2000);
    let (status, body) = c.post("/", json!(["SET", "k", big])).await;
    assert_eq!(status, 413);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR max request size exceeded"),
        "{body}"
    );
    // Also without a declared length (chunked), over a raw socket.
    let addr = env.gateway.addr;
    let token = env.token().to_owned();
    let head = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        for chunk in ["[\"SET\",\"k\",\"", big.as_str(), "\"]"] {
            request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        request.push_str("0\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("ERR max request size exceeded"), "{head}");
    assert_eq!(
        c.post("/", json!(["EXISTS", "k"])).await.1,
        json!({"result": 0})
    );
    assert_eq!(c.post("/", json!(["SET", "k", "small"])).await.0, 200);
}

#[tokio::test]
async fn pipeline_answers_each_command_in_order() {
    let (_env, c) = setup().await;
    c.post("/", json!(["SET", "text", "abc"])).await;
    let (status, body) = c
        .post(
            "/pipeline",
            json!([
                ["SET", "a", 1],
                ["INCR", "a"],
                ["INCR", "text"],
                ["GET", "a"],
                ["BLPOP", "q", 0],
                ["NOSUCHCOMMAND"],
                ["GET", "missing"]
            ]),
        )
        .await;
    assert_eq!(status, 200);
    let entries = body.as_array().unwrap();
    assert_eq!(entries.len(), 7);
    assert_eq!(entries[0], json!({"result": "OK"}));
    assert_eq!(entries[1], json!({"result": 2}));
    assert_eq!(
        entries[2],
        json!({"error": "ERR value is not an integer or out of range"})
    );
    assert_eq!(entries[3], json!({"result": "2"}));
    assert_eq!(
        entries[4],
        json!({"error": flowchat_gateway::BLOCKING_ERROR})
    );
    assert!(
        entries[5]["error"]
            .as_str()
            .unwrap()
            .starts_with("ERR unknown command")
    );
    assert_eq!(entries[6], json!({"result": null}));
}

#[tokio::test]
async fn multi_exec_is_atomic() {
    let (_env, c) = setup().await;
    c.post("/", json!(["SET", "text", "abc"])).await;
    let (status, body) = c
        .post(
            "/multi-exec",
            json!([
                ["SET", "a", "1"],
                ["INCR", "a"],
                ["INCR", "text"],
                ["MGET", "a", "text"]
            ]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            {"result": "OK"},
            {"result": 2},
            {"error": "ERR value is not an integer or out of range"},
            {"result": ["2", "abc"]}
        ])
    );
    // Base64 applies inside transactions too.
    assert_eq!(
        c.post_base64("/multi-exec", json!([["SET", "b", "x"], ["GET", "b"]]))
            .await,
        (200, json!([{"result": "OK"}, {"result": "eA=="}]))
    );
}

#[tokio::test]
async fn discarded_transaction_is_one_error() {
    let (_env, c) = setup().await;
    // A syntax error while queueing discards everything.
    let (status, body) = c
        .post(
            "/multi-exec",
            json!([["SET", "a", "1"], ["GET"], ["SET", "b", "2"]]),
        )
        .await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with("EXECABORT"), "{message}");
    assert!(message.contains("wrong number of arguments"), "{message}");
    assert_eq!(
        c.post("/", json!(["EXISTS", "a", "b"])).await,
        (200, json!({"result": 0}))
    );
    // So does a command the gateway refuses.
    let (status, body) = c
        .post("/multi-exec", json!([["SET", "a", "1"], ["BLPOP", "q", 0]]))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("EXECABORT"));
    assert!(body["error"].as_str().unwrap().contains("blocking"));
    assert_eq!(
        c.post("/", json!(["EXISTS", "a"])).await.1,
        json!({"result": 0})
    );
    // And the transaction connection is healthy afterwards.
    assert_eq!(
        c.post("/multi-exec", json!([["SET", "a", "1"], ["GET", "a"]]))
            .await,
        (200, json!([{"result": "OK"}, {"result": "1"}]))
    );
}

#[tokio::test]
async fn blocking_and_connection_state_commands_are_refused() {
    let (_env, c) = setup().await;
    let refused = (400, json!({"error": flowchat_gateway::BLOCKING_ERROR}));
    for command in [
        json!(["BLPOP", "q", 0]),
        json!(["BRPOP", "q", 1]),
        json!(["BLMOVE", "a", "b", "LEFT", "RIGHT", 0]),
        json!(["BZPOPMIN", "z", 0]),
        json!(["BZPOPMAX", "z", 0]),
        json!(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]),
        json!([
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            1,
            "BLOCK",
            10,
            "STREAMS",
            "s",
            ">"
        ]),
        json!(["WAIT", 1, 0]),
        json!(["SUBSCRIBE", "channel"]),
    ] {
        assert_eq!(c.post("/", command.clone()).await, refused, "{command}");
    }
    // Without BLOCK, stream reads work.
    c.post("/", json!(["XADD", "s", "*", "f", "v"])).await;
    let (status, body) = c
        .post("/", json!(["XREAD", "COUNT", 10, "STREAMS", "s", "0"]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"][0][0], json!("s"));
    // Commands that would change the shared connection are refused.
    for command in [
        json!(["MULTI"]),
        json!(["SELECT", 1]),
        json!(["WATCH", "k"]),
        json!(["CLIENT", "REPLY", "OFF"]),
    ] {
        let (status, body) = c.post("/", command.clone()).await;
        assert_eq!(status, 400, "{command}");
        assert!(
            body["error"].as_str().unwrap().starts_with("ERR "),
            "{body}"
        );
    }
    assert_eq!(
        c.post("/", json!(["PING"])).await,
        (200, json!({"result": "PONG"}))
    );
}

#[tokio::test]
async fn evalsha_reports_noscript_and_runs_loaded_scripts() {
    let (_env, c) = setup().await;
    let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let (status, body) = c.post("/", json!(["EVALSHA", sha, 1, "n", 5])).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("NOSCRIPT"),
        "{body}"
    );
    let (status, body) = c.post("/", json!(["SCRIPT", "LOAD", script])).await;
    assert_eq!(status, 200);
    let sha = body["result"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 40);
    assert_eq!(
        c.post("/", json!(["EVALSHA", sha, 1, "n", 5])).await,
        (200, json!({"result": 5}))
    );
    assert_eq!(
        c.post("/", json!(["EVAL", script, 1, "n", 2])).await,
        (200, json!({"result": 7}))
    );
}

fn sha1_hex(text: &str) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A script as the store writes it, for Upstash.
const FLAGGED: &str =
    "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])";

/// Stock Redis refuses `allow-key-locking`; the gateway runs such scripts and
/// answers with the digests Upstash would give.
#[tokio::test]
async fn allow_key_locking_scripts_run_as_on_upstash() {
    let (_env, c) = setup().await;
    let sha = sha1_hex(FLAGGED);
    // Not known yet: NOSCRIPT, as on Upstash.
    let (status, body) = c.post("/", json!(["EVALSHA", sha, 1, "n", 1])).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("NOSCRIPT"),
        "{body}"
    );
    assert_eq!(
        c.post("/", json!(["SCRIPT", "EXISTS", sha])).await,
        (200, json!({"result": [0]}))
    );
    // EVAL teaches the digest.
    assert_eq!(
        c.post("/", json!(["EVAL", FLAGGED, 1, "n", 2])).await,
        (200, json!({"result": 2}))
    );
    assert_eq!(
        c.post("/", json!(["EVALSHA", sha, 1, "n", 3])).await,
        (200, json!({"result": 5}))
    );
    assert_eq!(
        c.post("/", json!(["EVALSHA_RO", sha.to_uppercase(), 1, "n", 3]))
            .await
            .0,
        400,
        "a flagged script without no-writes still writes"
    );
    // A digest nobody taught: NOSCRIPT.
    let (status, body) = c
        .post("/", json!(["EVALSHA", sha1_hex("return 0"), 0]))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("NOSCRIPT"),
        "{body}"
    );

    // SCRIPT LOAD answers the digest of the flagged source.
    let other = "#!lua flags=allow-key-locking\nreturn redis.call('GET', KEYS[1])";
    assert_eq!(
        c.post("/", json!(["script", "load", other])).await,
        (200, json!({"result": sha1_hex(other)}))
    );
    assert_eq!(
        c.post("/", json!(["EVALSHA", sha1_hex(other), 1, "n"]))
            .await,
        (200, json!({"result": "5"}))
    );
    assert_eq!(
        c.post(
            "/",
            json!([
                "SCRIPT",
                "EXISTS",
                sha1_hex(other),
                sha,
                sha1_hex("return 0")
            ])
        )
        .await,
        (200, json!({"result": [1, 1, 0]}))
    );
}

#[tokio::test]
async fn allow_key_locking_scripts_run_in_pipelines_and_transactions() {
    let (_env, c) = setup().await;
    let sha = sha1_hex(FLAGGED);
    let unknown = sha1_hex("return 'unknown'");
    let (status, body) = c
        .post(
            "/pipeline",
            json!([
                ["EVALSHA", sha, 1, "n", 1],
                ["SCRIPT", "LOAD", FLAGGED],
                ["EVALSHA", sha, 1, "n", 2],
                ["EVALSHA", unknown, 0],
                ["EVAL", FLAGGED, 1, "n", 3]
            ]),
        )
        .await;
    assert_eq!(status, 200);
    let entries = body.as_array().unwrap();
    assert!(
        entries[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("NOSCRIPT"),
        "{body}"
    );
    assert_eq!(entries[1], json!({"result": sha}));
    assert_eq!(entries[2], json!({"result": 2}));
    assert!(
        entries[3]["error"]
            .as_str()
            .unwrap()
            .starts_with("NOSCRIPT"),
        "{body}"
    );
    assert_eq!(entries[4], json!({"result": 5}));

    let other = "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])";
    let (status, body) = c
        .post(
            "/multi-exec",
            json!([
                ["SCRIPT", "LOAD", other],
                ["EVALSHA", sha1_hex(other), 1, "m"],
                ["EVALSHA", sha, 1, "n", 10],
                ["EVALSHA", unknown, 0],
                ["EVAL", other, 1, "m"]
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body.as_array().unwrap();
    assert_eq!(entries[0], json!({"result": sha1_hex(other)}));
    assert_eq!(entries[1], json!({"result": 1}));
    assert_eq!(entries[2], json!({"result": 15}));
    assert!(
        entries[3]["error"]
            .as_str()
            .unwrap()
            .starts_with("NOSCRIPT"),
        "{body}"
    );
    assert_eq!(entries[4], json!({"result": 2}));
}

/// Only `allow-key-locking` goes: other flags keep their effect.
#[tokio::test]
async fn other_script_flags_are_kept() {
    let (_env, c) = setup().await;
    let read = "#!lua flags=no-writes,allow-key-locking\nreturn redis.call('GET', KEYS[1])";
    let write = "#!lua flags=no-writes,allow-key-locking\nreturn redis.call('SET', KEYS[1], 'x')";
    c.post("/", json!(["SET", "k", "v"])).await;
    assert_eq!(
        c.post("/", json!(["EVAL", read, 1, "k"])).await,
        (200, json!({"result": "v"}))
    );
    let (status, body) = c.post("/", json!(["EVAL", write, 1, "k"])).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Write commands are not allowed"),
        "{body}"
    );
    let (status, body) = c.post("/", json!(["SCRIPT", "LOAD", write])).await;
    assert_eq!((status, &body["result"]), (200, &json!(sha1_hex(write))));
    let (status, _) = c
        .post("/", json!(["EVALSHA", sha1_hex(write), 1, "k"]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        c.post("/", json!(["GET", "k"])).await,
        (200, json!({"result": "v"}))
    );
}

#[tokio::test]
async fn stats_count_requests_and_commands() {
    let (env, c) = setup().await;
    // Let the start-up PING (not counted) settle, then start from zero.
    let (status, _) = c.post("/__gateway/stats/reset", json!(null)).await;
    assert_eq!(status, 200);
    c.post("/", json!(["SET", "a", 1])).await;
    c.post(
        "/pipeline",
        json!([["GET", "a"], ["INCR", "a"], ["BLPOP", "q", 0]]),
    )
    .await;
    c.post("/multi-exec", json!([["INCR", "a"], ["GET", "a"]]))
        .await;
    c.send(
        c.http
            .post(format!("{}/", env.url()))
            .json(&json!(["GET", "a"])),
    )
    .await;
    assert_eq!(
        c.get("/__gateway/stats").await,
        (200, json!({"requests": 4, "commands": 5}))
    );
    assert_eq!(env.stats().requests, 4);
    // Reset answers with the counts it cleared.
    assert_eq!(
        c.post("/__gateway/stats/reset", json!(null)).await,
        (200, json!({"requests": 4, "commands": 5}))
    );
    assert_eq!(
        c.get("/__gateway/stats").await,
        (200, json!({"requests": 0, "commands": 0}))
    );
}

#[tokio::test]
async fn outage_gives_503_and_recovers_without_restart() {
    let (mut env, c) = setup().await;
    assert_eq!(c.post("/", json!(["SET", "k", "v"])).await.0, 200);
    assert_eq!(c.post("/multi-exec", json!([["INCR", "n"]])).await.0, 200);
    assert_eq!(c.get("/__gateway/health").await.0, 200);

    env.redis.stop();
    for (path, body) in [
        ("/", json!(["GET", "k"])),
        ("/pipeline", json!([["GET", "k"]])),
        ("/multi-exec", json!([["GET", "k"]])),
    ] {
        let started = Instant::now();
        let (status, answer) = c.post(path, body).await;
        assert_eq!(status, 503, "{path}: {answer}");
        assert!(answer["error"].is_string());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(c.get("/__gateway/health").await.0, 503);

    // Back on the same port, empty: the gateway reconnects by itself.
    env.redis.restart().unwrap();
    assert_eq!(
        c.post("/", json!(["SET", "k", "again"])).await,
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        c.post("/pipeline", json!([["GET", "k"]])).await,
        (200, json!([{"result": "again"}]))
    );
    assert_eq!(
        c.post("/multi-exec", json!([["INCR", "n"]])).await,
        (200, json!([{"result": 1}]))
    );

    // A restart nobody noticed (no request during the outage) is recovered too.
    env.redis.restart().unwrap();
    // Give the connection drivers a moment to see the closed sockets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        c.post("/", json!(["GET", "k"])).await,
        (200, json!({"result": null}))
    );
    assert_eq!(
        c.post("/multi-exec", json!([["INCR", "n"]])).await,
        (200, json!([{"result": 1}]))
    );
}

#[tokio::test]
async fn concurrent_transactions_and_commands_do_not_interleave() {
    let (_env, c) = setup().await;
    let c = std::sync::Arc::new(c);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let (status, body) = c
                    .post(
                        "/multi-exec",
                        json!([["INCR", "n"], ["INCR", "n"], ["GET", "n"]]),
                    )
                    .await;
                assert_eq!(status, 200);
                // Both increments and the read ran back to back.
                let first = body[0]["result"].as_i64().unwrap();
                assert_eq!(body[1]["result"].as_i64().unwrap(), first + 1);
                assert_eq!(body[2]["result"], json!((first + 1).to_string()));
            } else {
                assert_eq!(c.post("/", json!(["INCR", "n"])).await.0, 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        c.post("/", json!(["GET", "n"])).await.1,
        json!({"result": "30"})
    );
}

#[tokio::test]
async fn the_binary_serves_on_a_free_port() {
    use std::io::BufRead as _;
    let redis = flowchat_gateway::testing::RedisServer::start().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flowchat-gateway"))
        .args(["--port", "0", "--redis-url", &redis.url()])
        .env("FLOWCHAT_GATEWAY_TOKEN", "cli-token")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("flowchat-gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/"))
        .bearer_auth("cli-token")
        .json(&json!(["ECHO", "hello"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({"result": "hello"}));
    child.kill().unwrap();
    child.wait().unwrap();

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_flowchat-gateway"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("DEVELOPMENT AND TEST TOOL ONLY"), "{help}");
    assert!(help.contains("--redis-url") && help.contains("--token"));
}

/// A redis-server of this test's own that keeps its data in `dir`.
fn persistent_redis(dir: &std::path::Path, port: u16) -> std::process::Child {
    let child = std::process::Command::new(
        std::env::var_os("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into()),
    )
    .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
    .args(["--appendonly", "no", "--enable-debug-command", "local"])
    .args(["--daemonize", "no", "--loglevel", "warning", "--dir"])
    .arg(dir)
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server listens");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// While Redis reads its data back after a restart it answers `LOADING`:
/// that is Redis not ready, answered 503 like an outage so clients retry,
/// never passed on as the command's own failure (which made the chaos run's
/// completions fail until their lease ran out).
#[tokio::test]
async fn redis_loading_its_data_is_an_outage_not_a_failed_command() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = persistent_redis(dir.path(), port);
    let populated = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DEBUG", "POPULATE", "3000000"])
        .output()
        .expect("redis-cli runs");
    assert!(populated.status.success());
    let saved = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SAVE"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&saved.stdout).contains("OK"));
    redis.kill().unwrap();
    redis.wait().unwrap();

    let env = TestGateway::start_with(|options| {
        options.redis_url = format!("redis://127.0.0.1:{port}");
    })
    .await
    .unwrap();
    let c = Client::new(&env);
    let mut redis = persistent_redis(dir.path(), port);
    let mut loading_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let requests = [
            ("/", json!(["GET", "key:1"])),
            ("/pipeline", json!([["GET", "key:1"]])),
            ("/multi-exec", json!([["GET", "key:1"]])),
        ];
        let mut answered = 0;
        for (path, body) in requests {
            let (status, answer) = c.post(path, body).await;
            assert!(
                !answer.to_string().contains("LOADING") || status == 503,
                "{path}: {status} {answer}"
            );
            if status == 503 && answer.to_string().contains("LOADING") {
                loading_seen += 1;
            }
            if status == 200 {
                answered += 1;
            }
        }
        if answered == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "Redis finished loading");
    }
    redis.kill().unwrap();
    redis.wait().unwrap();
    assert!(
        loading_seen > 0,
        "the requests met Redis while it was loading"
    );
}
