//! Document uploads over HTTP: `POST /api/documents` (multipart), reading and
//! deleting one document, body limits, type checks, isolation and rate
//! limits. The in-process drain is off (`drain_concurrency(0)`), so an
//! accepted upload stays `pending` with its ingest job queued: these tests
//! are about what the API accepts and writes, not about indexing.

mod common;

use std::time::Duration;

use common::{ADMIN, POLICY, Reply, TestApp, app};
use flowchat_domain::model::DocumentOwner;
use flowchat_domain::{DocumentId, SessionId};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUNDARY: &str = "----FlowChatTestBoundary7MA4YWxkTrZu0gW";

/// One multipart part: (field name, filename, content).
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!(
                "Content-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

async fn post_form(app: &TestApp, path: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
    let mut req = app
        .client
        .post(format!("{}{path}", app.url))
        .header("content-type", multipart_type())
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    app.raw(req).await
}

async fn upload(app: &TestApp, token: Option<&str>, filename: &str, content: &[u8]) -> Reply {
    post_form(
        app,
        "/api/documents",
        token,
        form(&[("file", Some(filename), content)]),
    )
    .await
}

/// Asserts a 202 for a new upload and returns the document id.
fn accepted(r: &Reply) -> String {
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert!(r.body["job_id"].is_string(), "{}", r.body);
    let id = r.body["document_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/documents/{id}"))
    );
    id
}

async fn document_names(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let r = app.get("/api/documents", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut names: Vec<String> = r.body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Jobs waiting in the queue (nothing claims them: the drain is off).
async fn queued_jobs(app: &TestApp) -> u64 {
    let r = app.get("/api/health/ready", None).await;
    r.body["checks"]["queue"]["queued"].as_u64().unwrap()
}

fn private_id(session_id: &str, bytes: &[u8]) -> String {
    let owner = DocumentOwner::Session(SessionId::from_trusted(session_id));
    DocumentId::for_upload(&owner, bytes).to_string()
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const HTML: &[u8] = b"<!doctype html>\n<html><body><h1>Parking</h1><p>Spots are first come, first served.</p></body></html>\n";

#[tokio::test]
async fn uploads_are_queued_pending_and_readable_by_their_owner() {
    let app = app().drain_concurrency(0).spawn().await;
    let (token, session_id) = app.session("ana").await;
    let before = queued_jobs(&app).await;

    let files: [(&str, &str, &[u8]); 4] = [
        (
            "/api/documents",
            "notes.md",
            b"# Notes\n\nThe office opens at 8.\n",
        ),
        (
            "/api/documents/upload",
            "plain.txt",
            b"Plain text, caf\xc3\xa9 included.\n",
        ),
        ("/api/documents", "parking.html", HTML),
        ("/api/documents/upload", "scan.pdf", PDF),
    ];
    let mut ids = Vec::new();
    for (path, name, bytes) in files {
        let r = post_form(
            &app,
            path,
            Some(&token),
            form(&[("file", Some(name), bytes)]),
        )
        .await;
        let id = accepted(&r);
        assert_eq!(
            id,
            private_id(&session_id, bytes),
            "id is the scoped content hash"
        );
        assert_eq!(r.body["document"]["name"], name);
        assert_eq!(r.body["document"]["scope"], "private");

        // The job is the session's: it can follow it.
        let job_id = r.body["job_id"].as_str().unwrap();
        let job = app.get(&format!("/api/chat/{job_id}"), Some(&token)).await;
        assert_eq!(job.status, 200, "{}", job.body);
        assert_eq!(job.body["kind"], "ingest");
        assert_eq!(job.body["status"], "queued");

        let doc = app.get(&format!("/api/documents/{id}"), Some(&token)).await;
        assert_eq!(doc.status, 200, "{}", doc.body);
        assert_eq!(doc.body["id"], id.as_str());
        assert_eq!(doc.body["name"], name);
        assert_eq!(doc.body["scope"], "private");
        assert_eq!(doc.body["status"], "pending");
        assert_eq!(doc.body["chunks"], 0);
        assert_eq!(doc.body["size_bytes"], bytes.len());
        assert!(doc.body.get("pages").is_some(), "{}", doc.body);
        assert_eq!(doc.body["error"], Value::Null);
        ids.push(id);
    }
    assert_eq!(queued_jobs(&app).await, before + 4);
    assert_eq!(
        document_names(&app, Some(&token)).await,
        [
            "expenses.txt",
            "notes.md",
            "parking.html",
            "plain.txt",
            "policy.md",
            "scan.pdf"
        ]
    );
    // The shared set alone without a token; every entry has `pages`.
    assert_eq!(
        document_names(&app, None).await,
        ["expenses.txt", "policy.md"]
    );
    let list = app.get("/api/documents", None).await;
    assert!(
        list.body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("pages").is_some())
    );
    // Anonymous callers cannot read a private document.
    app.get(&format!("/api/documents/{}", ids[0]), None)
        .await
        .problem(404);
    // Methods.
    let r = app
        .send(
            Method::PUT,
            &format!("/api/documents/{}", ids[0]),
            Some(&token),
            None,
        )
        .await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    let r = app.get("/api/documents/upload", Some(&token)).await;
    r.problem(405);
    app.get("/api/documents/not-an-id", Some(&token))
        .await
        .problem(400);
}

#[tokio::test]
async fn same_bytes_again_are_the_same_document() {
    let app = app().drain_concurrency(0).spawn().await;
    let (ana, _) = app.session("ana").await;
    let (ben, _) = app.session("ben").await;
    let bytes = b"# Travel\n\nBook trains over flights under 500 km.\n";

    let first = accepted(&upload(&app, Some(&ana), "travel.md", bytes).await);
    let jobs = queued_jobs(&app).await;

    // Again, even under another name: the existing record, nothing queued.
    for name in ["travel.md", "copy-of-travel.md"] {
        let r = upload(&app, Some(&ana), name, bytes).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["document_id"], first.as_str());
        assert_eq!(r.body["job_id"], Value::Null);
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["document"]["name"], "travel.md");
    }
    assert_eq!(queued_jobs(&app).await, jobs);
    assert_eq!(
        document_names(&app, Some(&ana)).await,
        ["expenses.txt", "policy.md", "travel.md"]
    );

    // The same bytes from another session are another document.
    let other = accepted(&upload(&app, Some(&ben), "travel.md", bytes).await);
    assert_ne!(other, first);
    assert_eq!(queued_jobs(&app).await, jobs + 1);
}

#[tokio::test]
async fn oversized_bodies_and_files_are_413() {
    let app = app()
        .drain_concurrency(0)
        .var("MAX_UPLOAD_MB", "1")
        .spawn()
        .await;
    let (token, session_id) = app.session("ana").await;
    const MIB: usize = 1024 * 1024;
    let body_limit = MIB + 64 * 1024;

    // A declared Content-Length over the limit is refused before any of the
    // body is sent: the server answers without waiting for it.
    let mut tcp = tokio::net::TcpStream::connect(app.server.as_ref().unwrap().addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/documents HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
        multipart_type(),
        50 * MIB
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("413 before the body was sent");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // Declared size just over the limit, body sent.
    let big = vec![b'a'; body_limit];
    let r = upload(&app, Some(&token), "big.txt", &big).await;
    let p = r.problem(413);
    assert_eq!(p["type"], "urn:flowchat:problem:payload-too-large");
    assert_eq!(p["limit_bytes"], body_limit);

    // A chunked body (no Content-Length) is cut off once it passes the limit.
    let body = form(&[("file", Some("big.txt"), &vec![b'b'; 2 * MIB])]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = app
        .raw(
            app.client
                .post(format!("{}/api/documents", app.url))
                .bearer_auth(&token)
                .header("content-type", multipart_type())
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                ))),
        )
        .await;
    assert_eq!(r.problem(413)["limit_bytes"], body_limit);

    // The body fits (multipart overhead allowance) but the file itself does not.
    let r = upload(&app, Some(&token), "big.txt", &vec![b'c'; MIB + 1]).await;
    let p = r.problem(413);
    assert_eq!(p["field"], "file");
    assert_eq!(p["limit_bytes"], MIB);

    // Nothing was stored for any of them.
    for bytes in [vec![b'a'; body_limit], vec![b'c'; MIB + 1]] {
        app.get(
            &format!("/api/documents/{}", private_id(&session_id, &bytes)),
            Some(&token),
        )
        .await
        .problem(404);
    }
    assert_eq!(
        document_names(&app, Some(&token)).await,
        ["expenses.txt", "policy.md"]
    );

    // Exactly the limit is fine.
    accepted(&upload(&app, Some(&token), "exact.txt", &vec![b'd'; MIB]).await);

    // Other routes keep the small limit.
    let r = app
        .post(
            "/api/chat",
            Some(&token),
            json!({"message": "x".repeat(100 * 1024)}),
        )
        .await;
    assert_eq!(r.problem(413)["limit_bytes"], 64 * 1024);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_nothing_is_written() {
    let app = app().drain_concurrency(0).spawn().await;
    let (token, session_id) = app.session("ana").await;
    let jobs = queued_jobs(&app).await;

    // Extensions we do not take.
    for name in ["tool.exe", "archive.tar.gz", "README", ".md", "notes.md."] {
        let r = upload(&app, Some(&token), name, b"text").await;
        let p = r.problem(415);
        assert_eq!(p["type"], "urn:flowchat:problem:unsupported-media-type");
        assert_eq!(p["rule"], "extension", "{name}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(".pdf"), "{p}");
    }
    // Content that does not match the extension.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR<p>";
    for (name, bytes, expected) in [
        ("report.pdf", &b"just some text"[..], "%PDF-"),
        ("page.html", &png[..], "HTML"),
        ("page.htm", &b"no markup here"[..], "HTML"),
        ("notes.md", &b"nul\0byte"[..], "UTF-8"),
        ("notes.txt", &b"\xff\xfeu\0t\0f\0"[..], "UTF-8"),
    ] {
        let r = upload(&app, Some(&token), name, bytes).await;
        let p = r.problem(415);
        assert_eq!(p["type"], "urn:flowchat:problem:unsupported-media-type");
        assert_eq!(p["rule"], "content", "{name}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{name}: {detail}");
    }
    // An empty file.
    let p = upload(&app, Some(&token), "empty.md", b"")
        .await
        .problem(400)
        .clone();
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("file"), Some("length"))
    );
    // No `file` field.
    let r = post_form(
        &app,
        "/api/documents",
        Some(&token),
        form(&[("document", Some("a.md"), b"# A")]),
    )
    .await;
    let p = r.problem(400);
    assert_eq!(p["type"], "urn:flowchat:problem:validation");
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("file"), Some("required"))
    );
    // A `file` field without a file name, or with one that sanitises to nothing.
    for filename in [None, Some("   "), Some("dir/")] {
        let r = post_form(
            &app,
            "/api/documents",
            Some(&token),
            form(&[("file", filename, b"# A")]),
        )
        .await;
        assert_eq!(r.problem(400)["field"], "filename", "{filename:?}");
    }
    // Two files at once.
    let r = post_form(
        &app,
        "/api/documents",
        Some(&token),
        form(&[
            ("file", Some("a.md"), b"# A"),
            ("file", Some("b.md"), b"# B"),
        ]),
    )
    .await;
    assert_eq!(r.problem(400)["rule"], "count");
    // Not multipart at all.
    let r = app
        .post("/api/documents", Some(&token), json!({"file": "# A"}))
        .await;
    let p = r.problem(415);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{p}"
    );
    // Multipart without a boundary, or cut short.
    let r = app
        .raw(
            app.client
                .post(format!("{}/api/documents", app.url))
                .bearer_auth(&token)
                .header("content-type", "multipart/form-data")
                .body(form(&[("file", Some("a.md"), b"# A")])),
        )
        .await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-multipart"
    );
    let mut cut = form(&[("file", Some("a.md"), b"# A")]);
    cut.truncate(cut.len() - 10);
    let r = post_form(&app, "/api/documents", Some(&token), cut).await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-multipart"
    );
    // No token, a bad token.
    upload(&app, None, "a.md", b"# A").await.problem(401);
    upload(&app, Some("not-a-token"), "a.md", b"# A")
        .await
        .problem(401);

    // Nothing was written by any of it.
    assert_eq!(
        document_names(&app, Some(&token)).await,
        ["expenses.txt", "policy.md"]
    );
    assert_eq!(queued_jobs(&app).await, jobs);
    for bytes in [&b"just some text"[..], &b"# A"[..], &b"text"[..]] {
        app.get(
            &format!("/api/documents/{}", private_id(&session_id, bytes)),
            Some(&token),
        )
        .await
        .problem(404);
    }
}

#[tokio::test]
async fn file_names_are_sanitised() {
    let app = app().drain_concurrency(0).spawn().await;
    let (token, _) = app.session("ana").await;
    for (raw, stored) in [
        ("../../etc/passwd.md", "passwd.md"),
        (r"C:\Users\ana\Q3 plan.TXT", "Q3 plan.TXT"),
        // (Other control characters cannot appear in a part header at all.)
        ("  tab\there.md  ", "tabhere.md"),
    ] {
        let bytes = format!("# {raw}\n");
        let r = upload(&app, Some(&token), raw, bytes.as_bytes()).await;
        accepted(&r);
        assert_eq!(r.body["document"]["name"], stored, "{raw}");
    }
    let long = format!("{}.markdown", "n".repeat(300));
    let r = upload(&app, Some(&token), &long, b"# long").await;
    accepted(&r);
    let name = r.body["document"]["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 200);
    assert!(name.ends_with("n.markdown"));
}

#[tokio::test]
async fn private_documents_are_isolated_and_deletable_by_their_owner() {
    let app = app().drain_concurrency(0).spawn().await;
    let (ana, _) = app.session("ana").await;
    let (ben, _) = app.session("ben").await;
    let id = accepted(&upload(&app, Some(&ana), "secret.md", b"# Salaries\n").await);
    let path = format!("/api/documents/{id}");

    // Another session: a 404 exactly like a missing document.
    let missing = app
        .get(
            "/api/documents/00000000000000000000000000000000",
            Some(&ben),
        )
        .await;
    let hidden = app.get(&path, Some(&ben)).await;
    hidden.problem(404);
    assert_eq!(hidden.body["detail"], missing.problem(404)["detail"]);
    assert_eq!(
        document_names(&app, Some(&ben)).await,
        ["expenses.txt", "policy.md"]
    );
    app.send(Method::DELETE, &path, Some(&ben), None)
        .await
        .problem(404);
    app.send(Method::DELETE, &path, None, None)
        .await
        .problem(401);
    // Still there for its owner.
    assert_eq!(app.get(&path, Some(&ana)).await.status, 200);

    // Shared documents are readable by anyone, deletable only by an operator.
    let shared = app.get("/api/documents", None).await;
    let shared_id = shared.body["documents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get(&format!("/api/documents/{shared_id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "shared");
    assert_eq!(r.body["status"], "indexed");
    app.send(
        Method::DELETE,
        &format!("/api/documents/{shared_id}"),
        Some(&ana),
        None,
    )
    .await
    .problem(403);

    // The owner deletes it: gone from the catalog at once, clean-up queued.
    let jobs = queued_jobs(&app).await;
    let r = app.send(Method::DELETE, &path, Some(&ana), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["document_id"], id.as_str());
    assert_eq!(r.body["status"], "deleting");
    let job_id = r.body["job_id"].as_str().unwrap();
    let job = app.get(&format!("/api/chat/{job_id}"), Some(&ana)).await;
    assert_eq!(job.body["kind"], "delete", "{}", job.body);
    assert_eq!(queued_jobs(&app).await, jobs + 1);
    app.get(&path, Some(&ana)).await.problem(404);
    assert_eq!(
        document_names(&app, Some(&ana)).await,
        ["expenses.txt", "policy.md"]
    );
    app.send(Method::DELETE, &path, Some(&ana), None)
        .await
        .problem(404);
    // Uploading the same bytes again brings it back as a new upload.
    let again = accepted(&upload(&app, Some(&ana), "secret.md", b"# Salaries\n").await);
    assert_eq!(again, id);
}

#[tokio::test]
async fn operator_uploads_are_shared() {
    let app = app()
        .drain_concurrency(0)
        .var("ADMIN_TOKEN", ADMIN)
        .spawn()
        .await;
    let (ana, _) = app.session("ana").await;
    let bytes = b"Holiday calendar\n\nThe office closes on 24 and 25 December.\n";
    let r = upload(&app, Some(ADMIN), "holidays.txt", bytes).await;
    let id = accepted(&r);
    assert_eq!(r.body["document"]["scope"], "shared");
    assert_eq!(id, DocumentId::for_content(bytes).to_string());

    // Visible to everyone, listed for everyone.
    for token in [None, Some(ana.as_str())] {
        let r = app.get(&format!("/api/documents/{id}"), token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["scope"], "shared");
        assert_eq!(
            document_names(&app, token).await,
            ["expenses.txt", "holidays.txt", "policy.md"]
        );
    }
    // The operator reads private documents too.
    let private = accepted(&upload(&app, Some(&ana), "mine.md", b"# mine").await);
    assert_eq!(
        app.get(&format!("/api/documents/{private}"), Some(ADMIN))
            .await
            .status,
        200
    );

    // The same bytes as a shared-folder file are that document.
    let r = upload(&app, Some(ADMIN), "policy-copy.md", POLICY.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["job_id"], Value::Null);
    assert_eq!(r.body["status"], "indexed");
    assert_eq!(r.body["document"]["name"], "policy.md");
    assert_eq!(
        r.body["document_id"],
        DocumentId::for_content(POLICY.as_bytes()).to_string()
    );

    // Sessions cannot delete shared documents; the operator can.
    let path = format!("/api/documents/{id}");
    app.send(Method::DELETE, &path, Some(&ana), None)
        .await
        .problem(403);
    let r = app.send(Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    app.get(&path, None).await.problem(404);
    // And private ones.
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/documents/{private}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
}

#[tokio::test]
async fn uploads_count_against_the_ip_write_limit() {
    let app = app()
        .drain_concurrency(0)
        .var("RATE_LIMIT_IP_PER_MINUTE", "3")
        .spawn()
        .await;
    // One write: the session.
    let (token, session_id) = app.session("ana").await;
    accepted(&upload(&app, Some(&token), "one.md", b"# one").await);
    accepted(&upload(&app, Some(&token), "two.md", b"# two").await);
    let jobs = queued_jobs(&app).await;

    let r = upload(&app, Some(&token), "three.md", b"# three").await;
    r.problem(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));

    // Nothing was written for the refused upload.
    app.get(
        &format!("/api/documents/{}", private_id(&session_id, b"# three")),
        Some(&token),
    )
    .await
    .problem(404);
    assert_eq!(
        document_names(&app, Some(&token)).await,
        ["expenses.txt", "one.md", "policy.md", "two.md"]
    );
    assert_eq!(queued_jobs(&app).await, jobs);
    // Every upload request is counted before its body is read, so even one
    // of an existing document (which would write nothing) is refused now.
    upload(&app, Some(&token), "one.md", b"# one")
        .await
        .problem(429);
}

/// A page in windows-1252 that declares its charset was indexed from the
/// shared folder but refused (415) when uploaded: the API and the loader
/// had two sets of format rules. One set now: the upload is taken, and —
/// with the drain on, unlike the tests above — indexed, its text quoted as
/// the page means it (é, not mojibake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_in_a_declared_legacy_charset_is_uploaded_and_indexed() {
    let app = app().spawn().await;
    let (token, _) = app.session("ana").await;
    // Not UTF-8: 0xE9 is é, 0xE8 è, 0xFB û in windows-1252.
    let page: &[u8] = b"<!doctype html><html><head><meta charset=\"windows-1252\">\
        <title>Terrace caf\xe9</title></head><body><h1>Terrace caf\xe9</h1>\
        <p>The caf\xe9 on the roof terrace serves cr\xe8me br\xfbl\xe9e every Thursday afternoon.</p>\
        </body></html>";
    let id = accepted(&upload(&app, Some(&token), "terrace.htm", page).await);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let doc = loop {
        let r = app.get(&format!("/api/documents/{id}"), Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["status"] != "pending" {
            break r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never indexed: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert!(doc["chunks"].as_u64().unwrap() >= 1, "{doc}");

    let job = app
        .ask(
            &token,
            "Which afternoon does the roof terrace café serve crème brûlée?",
            None,
        )
        .await;
    let citation = &job["citations"][0];
    assert_eq!(citation["source"], "terrace.htm", "{job}");
    let excerpt = citation["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("crème brûlée every Thursday"), "{excerpt}");
    assert!(!excerpt.contains('\u{fffd}'), "{excerpt}");
    app.server.unwrap().stop().await;
}
