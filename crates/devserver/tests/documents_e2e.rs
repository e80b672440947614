//! Uploads end to end: each format through the HTTP API, indexed by the
//! drain, then answered from with the right citation; broken PDFs failing
//! with a reason and nothing half-indexed; deletion; isolation between
//! sessions; hybrid retrieval with embeddings from the fake Flow server.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, TestApp, app};
use flowchat_fake_flow::FakeFlow;
use serde_json::Value;

async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let r = app
        .raw(
            app.client
                .post(format!("{}/api/documents", app.url))
                .bearer_auth(token)
                .multipart(form),
        )
        .await;
    (r.status, r.body)
}

/// Uploads and waits until the document is indexed or failed.
async fn upload_and_wait(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload(app, token, name, bytes).await;
    assert_eq!(status, 202, "{body}");
    let id = body["document_id"].as_str().unwrap().to_owned();
    wait_document(app, token, &id).await
}

async fn wait_document(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = app.get(&format!("/api/documents/{id}"), Some(token)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let status = r.body["status"].as_str().unwrap_or_default().to_owned();
        if status == "indexed" || status == "failed" {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "document never finished: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sources(job: &Value) -> Vec<(String, Option<u64>)> {
    job["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["source"].as_str().unwrap().to_owned(), c["page"].as_u64()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_is_uploaded_indexed_and_cited() {
    let app = app().spawn().await;
    let (token, _) = app.session("ana").await;

    let md = upload_and_wait(
        &app,
        &token,
        "garden.md",
        b"# Garden guide\n\n## Watering\n\nWater the tomatoes every morning with rainwater from the blue barrel.\n".to_vec(),
    )
    .await;
    assert_eq!(md["status"], "indexed", "{md}");
    assert!(md["chunks"].as_u64().unwrap() >= 1);
    let job = app
        .ask(&token, "When should the tomatoes be watered?", None)
        .await;
    assert_eq!(sources(&job)[0].0, "garden.md", "{job}");

    let txt = upload_and_wait(
        &app,
        &token,
        "parking.txt",
        b"Visitors park on level minus two, bays 40 to 60.".to_vec(),
    )
    .await;
    assert_eq!(txt["status"], "indexed", "{txt}");
    let job = app.ask(&token, "Where do visitors park?", None).await;
    assert_eq!(sources(&job)[0].0, "parking.txt", "{job}");

    let html = upload_and_wait(
        &app,
        &token,
        "kitchen.html",
        b"<!doctype html><html><head><title>Kitchen</title><script>var secretScript = 1;</script></head><body><nav>Home | About</nav><h1>Kitchen rules</h1><h2>Fridge</h2><p>Label your lunchbox with your name and the date.</p></body></html>".to_vec(),
    )
    .await;
    assert_eq!(html["status"], "indexed", "{html}");
    let job = app
        .ask(&token, "What must I put on my lunchbox label?", None)
        .await;
    let cited = &job["citations"][0];
    assert_eq!(cited["source"], "kitchen.html", "{job}");
    // The heading path at the chunk's start: the page title (a one-chunk page).
    assert!(
        cited["heading"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Kitchen"),
        "{job}"
    );
    assert!(!cited["excerpt"].as_str().unwrap().contains("secretScript"));

    let pdf = flowchat_knowledge::testing::pdf_with_pages(&[
        "Annual report introduction and contents.",
        "The cafeteria opens at seven thirty and closes at fifteen hundred.",
        "Appendix with board members.",
    ]);
    let doc = upload_and_wait(&app, &token, "report.pdf", pdf).await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert_eq!(doc["pages"], 3);
    let job = app.ask(&token, "When does the cafeteria open?", None).await;
    assert_eq!(
        sources(&job)[0],
        ("report.pdf".to_owned(), Some(2)),
        "{job}"
    );
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pdfs_fail_with_a_reason_and_leave_nothing_indexed() {
    let app = app().spawn().await;
    let (token, _) = app.session("ana").await;
    let good = flowchat_knowledge::testing::pdf_with_pages(&["Zebra crossings are painted white."]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut malformed = b"%PDF-1.4\n".to_vec();
    malformed.extend_from_slice(&[0x13; 400]);
    for (name, bytes, reason) in [
        ("truncated.pdf", truncated, "could not be read"),
        ("malformed.pdf", malformed, "could not be read"),
        (
            "scanned.pdf",
            flowchat_knowledge::testing::image_only_pdf(),
            "no extractable text",
        ),
        (
            "locked.pdf",
            flowchat_knowledge::testing::encrypted_pdf(&["The safe code is 1234."], "secret"),
            "encrypted",
        ),
    ] {
        let doc = upload_and_wait(&app, &token, name, bytes).await;
        assert_eq!(doc["status"], "failed", "{name}: {doc}");
        let error = doc["error"].as_str().unwrap();
        assert!(error.to_lowercase().contains(reason), "{name}: {error}");
        assert_eq!(doc["chunks"], 0, "{name}: nothing half-indexed");
    }
    // None of them can be cited.
    let job = app.ask(&token, "zebra crossings painted", None).await;
    assert!(
        sources(&job).iter().all(|(s, _)| !s.ends_with(".pdf")),
        "{job}"
    );
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_uploads_stay_private_and_deletion_removes_every_chunk() {
    let app = app().spawn().await;
    let (ana, _) = app.session("ana").await;
    let (bob, _) = app.session("bob").await;
    let secret =
        b"The vault combination is four seven one nine, written by the quartermaster.".to_vec();
    let doc = upload_and_wait(&app, &ana, "vault.txt", secret.clone()).await;
    assert_eq!(doc["status"], "indexed");
    let id = doc["id"].as_str().unwrap().to_owned();

    let job = app
        .ask(
            &bob,
            "What is the vault combination from the quartermaster?",
            None,
        )
        .await;
    assert!(
        sources(&job).iter().all(|(s, _)| s != "vault.txt"),
        "bob never retrieves it: {job}"
    );
    let list = app.get("/api/documents", Some(&bob)).await;
    assert!(!list.body.to_string().contains("vault.txt"));
    let job = app
        .ask(
            &ana,
            "What is the vault combination from the quartermaster?",
            None,
        )
        .await;
    assert_eq!(sources(&job)[0].0, "vault.txt");

    // Re-upload: the same document, no second copy.
    let (status, body) = upload(&app, &ana, "vault-copy.txt", secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["document_id"], id.as_str());

    let r = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/documents/{id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/documents/{id}"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job_id = r.body["job_id"].as_str().unwrap().to_owned();
    let done = app.wait_job(&ana, &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let job = app
        .ask(
            &ana,
            "What is the vault combination from the quartermaster?",
            None,
        )
        .await;
    assert!(
        sources(&job).iter().all(|(s, _)| s != "vault.txt"),
        "every chunk is gone: {job}"
    );
    let r = app.get(&format!("/api/documents/{id}"), Some(&ana)).await;
    assert_eq!(r.status, 404);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_uploads_are_shared_and_survive_a_folder_scan() {
    let app = app().var("ADMIN_TOKEN", ADMIN).spawn().await;
    let (ana, _) = app.session("ana").await;
    let doc = upload_and_wait(
        &app,
        ADMIN,
        "holidays.md",
        b"# Holidays\n\nThe office closes on the first Monday of August.".to_vec(),
    )
    .await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert_eq!(doc["scope"], "shared");
    let job = app
        .ask(&ana, "When does the office close in August?", None)
        .await;
    assert_eq!(sources(&job)[0].0, "holidays.md", "{job}");

    let r = app
        .raw(
            app.client
                .post(format!("{}/api/documents/ingest", app.url))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(r.status, 202);
    let scan = app
        .wait_job(ADMIN, r.body["job_id"].as_str().unwrap())
        .await;
    assert_eq!(scan["status"], "succeeded");
    let job = app
        .ask(&ana, "When does the office close in August?", None)
        .await;
    assert_eq!(
        sources(&job)[0].0,
        "holidays.md",
        "the scan kept the upload: {job}"
    );
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_embeddings_a_paraphrase_finds_the_upload() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).spawn().await;
    let (token, _) = app.session("ana").await;
    let doc = upload_and_wait(
        &app,
        &token,
        "bikes.md",
        b"# Bicycles\n\nBicycles are stored in the basement shed next to the boiler room.".to_vec(),
    )
    .await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    let job = app.ask(&token, "Where are bicycles stored?", None).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(sources(&job)[0].0, "bikes.md", "{job}");
    let embeddings = fake
        .requests()
        .into_iter()
        .filter(|r| r.target == Some(flowchat_fake_flow::Target::Embeddings))
        .count();
    assert!(embeddings >= 2, "chunks and the question were embedded");
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    app.server.unwrap().stop().await;
}
