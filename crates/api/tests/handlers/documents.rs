use flowchat_domain::model::{DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus};
use flowchat_domain::{DocumentId, SessionId};
use serde_json::json;

use crate::harness::{ADMIN, api, form, multipart_type};

const HTML: &[u8] =
    b"<!doctype html>\n<html><body><h1>Parking</h1><p>Spots are first come.</p></body></html>\n";

fn private_id(session_id: &str, bytes: &[u8]) -> String {
    let owner = DocumentOwner::Session(SessionId::from_trusted(session_id));
    DocumentId::for_upload(&owner, bytes).to_string()
}

#[tokio::test]
async fn an_upload_is_queued_pending_and_readable_by_its_owner() {
    let api = api().build();
    let (token, session_id) = api.session("ana").await;
    let r = api.upload(&token, "parking.html", HTML).await;
    let id = private_id(&session_id, HTML);
    let body = r.json(202).clone();
    let job_id = body["job_id"].as_str().unwrap();
    let document = json!({
        "id": id,
        "name": "parking.html",
        "scope": "private",
        "status": "pending",
        "chunks": 0,
        "pages": null,
        "origin": "upload",
        "size_bytes": HTML.len(),
        "error": null,
        "updated_at": "2025-01-01T00:00:00Z",
    });
    assert_eq!(
        body,
        json!({"document_id": id, "job_id": job_id, "status": "pending", "document": document})
    );
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/documents/{id}"))
    );
    let job = api
        .get(&format!("/api/chat/{job_id}"))
        .token(&token)
        .send()
        .await;
    assert_eq!(job.json(200)["kind"], "ingest");

    let r = api
        .get(&format!("/api/documents/{id}"))
        .token(&token)
        .send()
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json(200), &document);
    let r = api.get("/api/documents").token(&token).send().await;
    assert_eq!(r.json(200), &json!({"documents": [document]}));

    // The same bytes again are the same document: 200, nothing queued.
    let r = api.upload(&token, "renamed.html", HTML).await;
    assert_eq!(
        r.json(200),
        &json!({"document_id": id, "job_id": null, "status": "pending", "document": document})
    );
    assert!(r.header("location").is_none());
    // The upload alias takes the same form.
    let r = api
        .post("/api/documents/upload")
        .token(&token)
        .body(
            &multipart_type(),
            form(&[("file", Some("a.txt"), b"plain words")]),
        )
        .send()
        .await;
    r.json(202);

    // Private: another session and anonymous callers see nothing.
    let (bob, _) = api.session("bob").await;
    let r = api
        .get(&format!("/api/documents/{id}"))
        .token(&bob)
        .send()
        .await;
    assert_eq!(r.problem(404)["detail"], "no such document");
    api.get(&format!("/api/documents/{id}"))
        .send()
        .await
        .problem(404);
    let r = api.get("/api/documents").send().await;
    assert_eq!(r.json(200), &json!({"documents": []}));
    // The operator sees it.
    api.get(&format!("/api/documents/{id}"))
        .token(ADMIN)
        .send()
        .await
        .json(200);
}

#[tokio::test]
async fn each_format_is_checked_against_its_extension() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    for (name, bytes) in [
        ("a.pdf", &b"%PDF-1.7\n..."[..]),
        ("a.txt", "h\u{e9}llo".as_bytes()),
        ("a.md", b"# x"),
        ("a.markdown", b"# y"),
        ("a.HTM", b"text <p>para</p>"),
    ] {
        api.upload(&token, name, bytes).await.json(202);
    }

    for name in ["tool.exe", "archive.tar.gz", "README", ".md", "notes.md."] {
        let r = api.upload(&token, name, b"text").await;
        let p = r.problem(415);
        assert_eq!(p["type"], "urn:flowchat:problem:unsupported-media-type");
        assert_eq!(
            (p["field"].as_str(), p["rule"].as_str()),
            (Some("file"), Some("extension")),
            "{name}: {p}"
        );
        assert!(p["detail"].as_str().unwrap().contains(".pdf"), "{p}");
    }
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR<p>";
    for (name, bytes, expected) in [
        ("report.pdf", &b"just some text"[..], "%PDF-"),
        ("page.html", &png[..], "HTML"),
        ("page.htm", &b"no markup here"[..], "HTML"),
        ("notes.md", &b"nul\0byte"[..], "UTF-8"),
        ("notes.txt", &b"\xff\xfeu\0t\0f\0"[..], "UTF-8"),
    ] {
        let r = api.upload(&token, name, bytes).await;
        let p = r.problem(415);
        assert_eq!(
            (p["field"].as_str(), p["rule"].as_str()),
            (Some("file"), Some("content")),
            "{name}: {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains(expected),
            "{name}: {p}"
        );
    }
    api.upload(&token, "empty.md", b"")
        .await
        .invalid("file", "length");
    api.upload(&token, "", b"x")
        .await
        .invalid("filename", "required");
}

#[tokio::test]
async fn malformed_forms_are_refused() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let r = api
        .post("/api/documents")
        .token(&token)
        .json(json!({"file": "x"}))
        .send()
        .await;
    assert!(
        r.problem(415)["detail"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data")
    );
    let r = api
        .post("/api/documents")
        .token(&token)
        .body(&multipart_type(), form(&[("other", Some("a.md"), b"x")]))
        .send()
        .await;
    r.invalid("file", "required");
    let r = api
        .post("/api/documents")
        .token(&token)
        .body(
            &multipart_type(),
            form(&[("file", Some("a.md"), b"x"), ("file", Some("b.md"), b"y")]),
        )
        .send()
        .await;
    r.invalid("file", "count");
    let r = api
        .post("/api/documents")
        .token(&token)
        .body("multipart/form-data", form(&[("file", Some("a.md"), b"x")]))
        .send()
        .await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-multipart"
    );
    let mut cut = form(&[("file", Some("a.md"), b"x")]);
    cut.truncate(cut.len() - 10);
    let r = api
        .post("/api/documents")
        .token(&token)
        .body(&multipart_type(), cut)
        .send()
        .await;
    assert_eq!(
        r.problem(400)["type"],
        "urn:flowchat:problem:malformed-multipart"
    );
}

#[tokio::test]
async fn oversized_files_and_bodies_are_413() {
    let api = api().var("MAX_UPLOAD_MB", "1").build();
    let (token, _) = api.session("ana").await;
    let limit = 1024 * 1024;
    let r = api.upload(&token, "big.txt", &vec![b'a'; limit + 1]).await;
    let p = r.problem(413);
    assert_eq!(p["type"], "urn:flowchat:problem:payload-too-large");
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("file"), Some("size"))
    );
    assert_eq!(p["limit_bytes"], limit);
    api.upload(&token, "fits.txt", &vec![b'a'; limit])
        .await
        .json(202);

    // A body past the file limit plus the multipart allowance, from a
    // runtime that did not cap it.
    let body = form(&[("file", Some("big.txt"), &vec![b'a'; limit + 64 * 1024])]);
    let r = api
        .post("/api/documents")
        .token(&token)
        .body(&multipart_type(), body)
        .send()
        .await;
    let p = r.problem(413);
    assert_eq!(p["limit_bytes"], limit + 64 * 1024);
    assert!(p.get("field").is_none(), "{p}");
}

#[tokio::test]
async fn uploads_need_a_session_or_the_admin_token() {
    let api = api().build();
    let r = api
        .post("/api/documents")
        .body(&multipart_type(), form(&[("file", Some("a.md"), b"# x")]))
        .send()
        .await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    // The operator's uploads are shared: everyone sees them.
    let r = api.upload(ADMIN, "handbook.md", b"# Handbook").await;
    let body = r.json(202);
    assert_eq!(body["document"]["scope"], "shared");
    let id = body["document_id"].as_str().unwrap().to_owned();
    let r = api.get("/api/documents").send().await;
    assert_eq!(r.json(200)["documents"][0]["id"], id.as_str());
    api.get(&format!("/api/documents/{id}"))
        .send()
        .await
        .json(200);
}

#[tokio::test]
async fn uploads_count_against_the_ip_write_limit() {
    let api = api().var("RATE_LIMIT_IP_PER_MINUTE", "1").build();
    let (token, _) = api.session("ana").await;
    api.upload(&token, "a.md", b"# a").await.json(202);
    let r = api.upload(&token, "b.md", b"# b").await;
    r.problem(429);
    assert!(r.header("retry-after").is_some());
    // Nothing was kept of the refused upload.
    let r = api.get("/api/documents").token(&token).send().await;
    assert_eq!(r.json(200)["documents"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn deleting_documents() {
    let api = api().build();
    let (token, session_id) = api.session("ana").await;
    api.upload(&token, "mine.md", b"# mine").await.json(202);
    let id = private_id(&session_id, b"# mine");
    let path = format!("/api/documents/{id}");

    let (bob, _) = api.session("bob").await;
    api.delete(&path).token(&bob).send().await.problem(404);
    api.delete(&path).send().await.problem(401);

    let r = api.delete(&path).token(&token).send().await;
    let body = r.json(202);
    let job_id = body["job_id"].as_str().unwrap();
    assert_eq!(
        body,
        &json!({"document_id": id, "job_id": job_id, "status": "deleting"})
    );
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/chat/{job_id}"))
    );
    api.get(&path).token(&token).send().await.problem(404);
    api.delete(&path).token(&token).send().await.problem(404);

    // A shared document needs the admin token.
    let shared = DocumentRecord {
        id: DocumentId::parse("00000000000000000000000000000abc", "id").unwrap(),
        name: "policy.md".to_owned(),
        owner: DocumentOwner::Shared,
        size_bytes: 10,
        status: DocumentStatus::Indexed,
        chunks: 2,
        pages: None,
        origin: DocumentOrigin::Folder,
        error: None,
        updated_at: api.now(),
    };
    api.store.upsert_document(&shared).await.unwrap();
    let path = "/api/documents/00000000000000000000000000000abc";
    let r = api.get(path).send().await;
    assert_eq!(r.json(200)["origin"], "folder");
    let r = api.delete(path).token(&token).send().await;
    assert_eq!(r.problem(403)["type"], "urn:flowchat:problem:forbidden");
    api.delete(path).token(ADMIN).send().await.json(202);

    api.get("/api/documents/XYZ")
        .send()
        .await
        .invalid("document_id", "format");
    let r = api.call(http::Method::PUT, path).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    let r = api.delete("/api/documents").send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
}

#[tokio::test]
async fn rescanning_the_shared_folder_is_for_operators() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let r = api.post("/api/documents/ingest").token(ADMIN).send().await;
    let body = r.json(202);
    let job_id = body["job_id"].as_str().unwrap();
    assert_eq!(body, &json!({"job_id": job_id, "status": "queued"}));
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("/api/chat/{job_id}"))
    );
    let r = api.post("/api/documents/ingest").token(&token).send().await;
    r.problem(401);
    api.post("/api/documents/ingest").send().await.problem(401);
    let r = api.get("/api/documents/ingest").token(ADMIN).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));

    let api = crate::harness::api().without("ADMIN_TOKEN").build();
    let r = api.post("/api/documents/ingest").token(ADMIN).send().await;
    let p = r.problem(403);
    assert!(p["detail"].as_str().unwrap().contains("ADMIN_TOKEN"), "{p}");
}

/// The shared folder indexes a legacy-charset page that declares its
/// charset; an upload of the same page is taken too (it was once a 415).
#[tokio::test]
async fn a_page_in_a_declared_legacy_charset_is_accepted() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let page = b"<html><head><meta charset=\"windows-1252\"><title>Caf\xe9</title></head>\
                 <body><p>Le caf\xe9 ouvre \xe0 8 h.</p></body></html>";
    let r = api.upload(&token, "cafe.htm", page).await;
    assert_eq!(r.json(202)["document"]["name"], "cafe.htm");
    // Without the declaration the same bytes are not UTF-8: refused.
    let undeclared = b"<html><body><p>Le caf\xe9 ouvre.</p></body></html>";
    let r = api.upload(&token, "cafe2.htm", undeclared).await;
    let p = r.problem(415);
    assert_eq!(p["rule"], "content");
    assert!(p["detail"].as_str().unwrap().contains("charset"), "{p}");
}

/// Tag soup once took the markup check about 20 s per 1.2 MB; it is judged
/// in one pass now (no timing here: a slow check shows as a slow suite).
#[tokio::test]
async fn tag_soup_is_judged_in_one_pass() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let soup = "<a ".repeat(400 * 1024);
    assert!(soup.len() >= 1_200_000);
    api.upload(&token, "soup.html", soup.as_bytes())
        .await
        .json(202);
    let unknown = "<zz ".repeat(300 * 1024);
    let r = api.upload(&token, "soup2.html", unknown.as_bytes()).await;
    assert_eq!(r.problem(415)["rule"], "content");
}

/// An upload is counted against the IP's write limit before its body is
/// looked at: hostile bodies refused with 415 (1.2 MB of tag soup whose
/// markup check was once quadratic) use up the limit like accepted ones,
/// so they cannot be repeated without end. They were once refused before
/// being counted: the fourth request here got 200, not 429.
#[tokio::test]
async fn refused_uploads_are_counted_by_the_ip_limit() {
    let api = api().var("RATE_LIMIT_IP_PER_MINUTE", "3").build();
    let (token, _) = api.session("ana").await;
    let soup = "<a ".repeat(400 * 1024);
    assert!(soup.len() >= 1_200_000);
    api.upload(&token, "soup.html", soup.as_bytes())
        .await
        .json(202);
    let unknown = "<zz ".repeat(300 * 1024);
    for _ in 0..2 {
        let r = api.upload(&token, "soup2.html", unknown.as_bytes()).await;
        assert_eq!(r.problem(415)["rule"], "content");
    }
    let r = api.upload(&token, "soup.html", soup.as_bytes()).await;
    assert_eq!(r.problem(429)["type"], "urn:flowchat:problem:rate-limited");
    assert!(r.header("retry-after").is_some());
    // Malformed bodies and wrong media types count too.
    api.platform.advance_secs(120);
    for _ in 0..3 {
        api.upload(&token, "", b"x").await.problem(400);
    }
    api.upload(&token, "late.md", b"# late").await.problem(429);
}

/// A refused upload stores no byte: the rate check comes before the parts
/// are written. It once came after, and the parts of a refused re-upload
/// of a failed document (whose record exists) were kept.
#[tokio::test]
async fn a_rate_limited_upload_stores_no_parts() {
    let api = api().var("RATE_LIMIT_IP_PER_MINUTE", "1").build();
    let (token, session_id) = api.session("ana").await;
    let bytes = b"# retried\n\nafter a failure";
    api.upload(&token, "retried.md", bytes).await.json(202);
    let id = DocumentId::parse(&private_id(&session_id, bytes), "id").unwrap();
    // The drain gave up on it: the record is failed, its parts deleted.
    let mut record = api.store.get_document(&id).await.unwrap().unwrap();
    record.status = DocumentStatus::Failed;
    record.error = Some("could not be read".to_owned());
    api.store.upsert_document(&record).await.unwrap();
    api.store.delete_upload(&id, 1).await.unwrap();

    api.upload(&token, "retried.md", bytes).await.problem(429);
    assert_eq!(api.store.get_upload(&id, 1).await.unwrap(), None);
    assert_eq!(api.store.get_document(&id).await.unwrap(), Some(record));
    let other = b"# another";
    api.upload(&token, "other.md", other).await.problem(429);
    let other_id = DocumentId::parse(&private_id(&session_id, other), "id").unwrap();
    assert_eq!(api.store.get_upload(&other_id, 1).await.unwrap(), None);
}

/// Past `MAX_DOCUMENTS_PER_SESSION` an upload is a 429 naming the limit;
/// nothing is written, other sessions are not affected, and deleting a
/// document makes room.
#[tokio::test]
async fn the_document_quota_is_per_session() {
    let api = api().var("MAX_DOCUMENTS_PER_SESSION", "2").build();
    let (token, session_id) = api.session("ana").await;
    api.upload(&token, "one.md", b"# one").await.json(202);
    api.upload(&token, "two.md", b"# two").await.json(202);
    let r = api.upload(&token, "three.md", b"# three").await;
    let p = r.problem(429);
    assert_eq!(p["type"], "urn:flowchat:problem:document-quota");
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("file"), Some("documents-per-session"))
    );
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 documents") && detail.contains("MAX_DOCUMENTS_PER_SESSION"),
        "{detail}"
    );
    let third = DocumentId::parse(&private_id(&session_id, b"# three"), "id").unwrap();
    assert_eq!(api.store.get_document(&third).await.unwrap(), None);
    assert_eq!(api.store.get_upload(&third, 1).await.unwrap(), None);
    let r = api.get("/api/documents").token(&token).send().await;
    assert_eq!(r.json(200)["documents"].as_array().unwrap().len(), 2);
    // The same bytes again are still the existing document, not a refusal.
    api.upload(&token, "one.md", b"# one").await.json(200);

    let (bob, _) = api.session("bob").await;
    api.upload(&bob, "three.md", b"# three").await.json(202);
    // Operators' shared uploads have no quota.
    api.upload(ADMIN, "shared-1.md", b"# s1").await.json(202);
    api.upload(ADMIN, "shared-2.md", b"# s2").await.json(202);
    api.upload(ADMIN, "shared-3.md", b"# s3").await.json(202);

    let one = private_id(&session_id, b"# one");
    api.delete(&format!("/api/documents/{one}"))
        .token(&token)
        .send()
        .await
        .json(202);
    api.upload(&token, "three.md", b"# three").await.json(202);
}

/// Past `MAX_BYTES_PER_SESSION` an upload is a 413 naming the limit in
/// bytes; pending documents count, and nothing is written.
#[tokio::test]
async fn the_byte_quota_is_per_session() {
    let api = api().var("MAX_BYTES_PER_SESSION", "100").build();
    let (token, session_id) = api.session("ana").await;
    let sixty = [b'a'; 60];
    api.upload(&token, "sixty.txt", &sixty).await.json(202);
    let fifty = [b'b'; 50];
    let r = api.upload(&token, "fifty.txt", &fifty).await;
    let p = r.problem(413);
    assert_eq!(p["type"], "urn:flowchat:problem:storage-quota");
    assert_eq!(
        (p["field"].as_str(), p["rule"].as_str()),
        (Some("file"), Some("bytes-per-session"))
    );
    assert_eq!(p["limit_bytes"], 100);
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("MAX_BYTES_PER_SESSION") && detail.contains("60 bytes held"),
        "{detail}"
    );
    let id = DocumentId::parse(&private_id(&session_id, &fifty), "id").unwrap();
    assert_eq!(api.store.get_document(&id).await.unwrap(), None);
    assert_eq!(api.store.get_upload(&id, 1).await.unwrap(), None);
    api.upload(&token, "forty.txt", &[b'c'; 40]).await.json(202);
    // A file larger than the whole quota can never fit.
    let r = api.upload(ADMIN, "big.txt", &[b'd'; 500]).await;
    r.json(202);
}

/// An upload records when its session ends, so the clean-up can find the
/// session's documents once it is over.
#[tokio::test]
async fn an_upload_records_when_its_session_ends() {
    let api = api().build();
    let (token, session_id) = api.session("ana").await;
    api.upload(&token, "mine.md", b"# mine").await.json(202);
    let ends = api
        .now()
        .plus_secs(flowchat_domain::token::SESSION_LIFETIME_SECS);
    assert!(
        api.store
            .expired_document_owners(ends, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api.store
            .expired_document_owners(ends.plus_millis(1), 10)
            .await
            .unwrap(),
        vec![SessionId::from_trusted(session_id)]
    );
}
