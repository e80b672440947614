//! The `flowchat-drain` binary as operators run it: a dev server (with no
//! drain of its own) takes questions over HTTP, the binary answers them from
//! a fake Flow server through the same sqlite files — as a cron job, as a
//! worker stopped by SIGTERM, and as a worker killed outright.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestApp, app};
use flowchat_fake_flow::{FakeFlow, Fault, Target};
use serde_json::{Value, json};

const CHAIR: &str = "How much is the allowance for a desk chair?";

fn drain_command(app: &TestApp, args: &[&str]) -> Command {
    let dir = std::path::Path::new(&app.vars["FLOWCHAT_DATA_DIR"]);
    common::drain_command(&app.vars, dir, args)
}

fn run(app: &TestApp, args: &[&str]) -> Output {
    std::fs::create_dir_all(&app.vars["FLOWCHAT_DATA_DIR"]).unwrap();
    drain_command(app, args).output().unwrap()
}

fn spawn(app: &TestApp, args: &[&str]) -> Child {
    drain_command(app, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn job(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/api/chat/{id}"), Some(token)).await.body
}

/// Waits until `check` accepts the job, or fails the test after `secs`.
async fn wait_until(
    app: &TestApp,
    token: &str,
    id: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(app, token, id).await;
        if check(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job never reached the expected state: {j}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the drain did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A dev server with no drain of its own (plus `var`, if any), a long answer
/// from `fake` asked for, and a `--follow` drain midway through it (the job's
/// partial text is visible): the app, the token, the job id and the drain.
async fn follow_mid_job(
    fake: &FakeFlow,
    var: Option<(&str, &str)>,
) -> (TestApp, String, String, Child) {
    let mut builder = app()
        .flow(fake)
        .drain_concurrency(0)
        .var("PARTIAL_FLUSH_MS", "50");
    if let Some((k, v)) = var {
        builder = builder.var(k, v);
    }
    let app = builder.spawn().await;
    let (token, _) = app.session("ana").await;
    let id = app.submit(&token, &format!("{CHAIR} [[fake:long]]")).await;

    let child = spawn(&app, &["--follow"]);
    wait_until(&app, &token, &id, 30, |j| j["partial"].is_string()).await;
    (app, token, id, child)
}

async fn assistant_messages(app: &TestApp, token: &str, job: &Value) -> usize {
    let conversation = job["conversation_id"].as_str().unwrap();
    let r = app
        .get(&format!("/api/conversations/{conversation}"), Some(token))
        .await;
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_drains_the_queue_then_exits() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).drain_concurrency(0).spawn().await;
    let (token, _) = app.session("ana").await;
    let ids = [
        app.submit(&token, CHAIR).await,
        app.submit(&token, "What are the core hours?").await,
    ];

    let started = Instant::now();
    let output = run(&app, &["--once", "--max-seconds", "60"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "exits when the queue is empty"
    );
    for id in &ids {
        let j = job(&app, &token, id).await;
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["mode"], "generative");
    }
    // An empty queue: exits at once.
    let output = run(&app, &["--once"]);
    assert!(output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(!logs.contains(flowchat_fake_flow::CLIENT_SECRET));

    let stats = run(&app, &["stats", "--json"]);
    assert!(stats.status.success());
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["queue"]["queued"], 0);
    assert!(
        stats["heartbeat"]["worker"]
            .as_str()
            .unwrap()
            .starts_with("drain-")
    );
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    app.server.unwrap().stop().await;
}

/// A first deploy needs no admin call: every start scans the shared folder
/// (by content hash) before answering, `--once` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_indexes_the_shared_folder_before_answering() {
    let app = app().drain_concurrency(0).spawn().await;
    common::write_doc(
        &app.docs,
        "parking.md",
        "# Parking\n\nVisitors park on level minus two; the barrier code is 4711.\n",
    );
    let (token, _) = app.session("ana").await;
    let id = app
        .submit(&token, "What is the parking barrier code?")
        .await;

    let output = run(&app, &["--once"]);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{logs}");
    assert!(logs.contains("shared documents folder indexed"), "{logs}");
    let answered = job(&app, &token, &id).await;
    assert_eq!(answered["status"], "succeeded", "{answered}");
    assert_eq!(cited_sources(&answered)[0], "parking.md", "{answered}");
    assert!(answered.to_string().contains("4711"), "{answered}");

    // An unchanged folder: nothing is indexed again.
    let again = run(&app, &["--once"]);
    let logs = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{logs}");
    assert!(logs.contains("\"added\":0"), "{logs}");
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).drain_concurrency(0).spawn().await;
    let (token, _) = app.session("ana").await;
    fake.push_fault(
        Target::Chat,
        Fault::Status {
            status: 400,
            retry_after_secs: None,
        },
    );
    let id = app.submit(&token, CHAIR).await;
    assert!(run(&app, &["--once"]).status.success());
    assert_eq!(job(&app, &token, &id).await["status"], "failed");

    let list = run(&app, &["dead-letters", "list", "--json"]);
    assert!(list.status.success());
    let letters: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(letters[0]["job_id"], id.as_str());
    assert_eq!(letters[0]["error"], flowchat_drain::messages::LLM_REFUSED);

    let replay = run(&app, &["dead-letters", "replay", &id]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(run(&app, &["--once"]).status.success());
    let j = job(&app, &token, &id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(assistant_messages(&app, &token, &j).await, 1);
    let list = run(&app, &["dead-letters", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&list.stdout).unwrap(),
        json!([])
    );

    // Replaying what is not a dead letter says so and fails.
    let again = run(&app, &["dead-letters", "replay", &id]);
    assert_eq!(again.status.code(), Some(1));
    let bad = run(&app, &["dead-letters", "replay", "not-a-job-id"]);
    assert_eq!(bad.status.code(), Some(2));
    app.server.unwrap().stop().await;
}

/// Readers' feedback, as operators list it: with the question, the answer
/// and its sources, newest first; text shortens the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_listed_for_operators() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).drain_concurrency(0).spawn().await;
    let (token, _) = app.session("ana").await;
    let id = app.submit(&token, CHAIR).await;
    assert!(run(&app, &["--once"]).status.success());
    let answered = job(&app, &token, &id).await;
    assert_eq!(answered["status"], "succeeded", "{answered}");

    let empty = run(&app, &["feedback", "list"]);
    assert_success(&empty);
    assert_eq!(stdout(&empty).trim(), "no feedback");

    let r = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/chat/{id}/feedback"),
            Some(&token),
            Some(json!({"rating": "down", "comment": "Out of date."})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    let list = run(&app, &["feedback", "list", "--json", "--limit", "5"]);
    assert_success(&list);
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["job_id"], id.as_str());
    assert_eq!(listed[0]["rating"], "down");
    assert_eq!(listed[0]["comment"], "Out of date.");
    assert_eq!(listed[0]["question"], CHAIR);
    assert_eq!(listed[0]["answer"], answered["answer"]);
    assert_eq!(listed[0]["citations"], answered["citations"]);

    let text = run(&app, &["feedback", "list"]);
    assert_success(&text);
    let text = stdout(&text);
    assert!(text.contains("👎 down"), "{text}");
    assert!(text.contains(CHAIR), "{text}");
    assert!(text.contains("comment:  Out of date."), "{text}");
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2_and_name_the_variable() {
    let fake = FakeFlow::start().await;
    let app = app().flow(&fake).drain_concurrency(0).spawn().await;
    let mut command = drain_command(&app, &["--once"]);
    command.env_remove("FLOW_TENANT");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLOW_TENANT"), "{stderr}");
    assert!(!stderr.contains(flowchat_fake_flow::CLIENT_SECRET));

    let output = run(&app, &[]);
    assert_eq!(output.status.code(), Some(2), "no mode given");
    app.server.unwrap().stop().await;
}

/// The drain signs no session tokens, so production needs no
/// `SESSION_SECRET` for it (the API functions do require one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_drains_start_without_a_session_secret() {
    let app = app().drain_concurrency(0).spawn().await;
    let (token, _) = app.session("prod").await;
    let id = app.submit(&token, CHAIR).await;
    for args in [&["stats", "--json"][..], &["--once"][..]] {
        let mut command = drain_command(&app, args);
        command
            .env("FLOWCHAT_ENV", "production")
            .env_remove("SESSION_SECRET");
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("SESSION_SECRET"), "{stderr}");
    }
    let done = job(&app, &token, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_job_finish_within_the_grace_period() {
    let fake = FakeFlow::start().await;
    fake.set_stream_chunk_delay_ms(30);
    let (app, token, id, mut child) = follow_mid_job(&fake, None).await;
    signal(&child, "TERM");
    let status = wait_exit(&mut child, 30);
    assert!(status.success(), "{status:?}");
    let j = job(&app, &token, &id).await;
    assert_eq!(
        j["status"], "succeeded",
        "finished within the grace period: {j}"
    );
    assert_eq!(assistant_messages(&app, &token, &j).await, 1);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_a_job_that_cannot_finish_in_time() {
    let fake = FakeFlow::start().await;
    fake.set_stream_chunk_delay_ms(200);
    let (app, token, id, mut child) =
        follow_mid_job(&fake, Some(("DRAIN_SHUTDOWN_GRACE_SECONDS", "1"))).await;
    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, 30);
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "stopped after the grace period"
    );
    let j = job(&app, &token, &id).await;
    assert_eq!(j["status"], "queued", "released, not lost: {j}");
    assert!(
        j.get("partial").is_none(),
        "the released attempt's text is dropped: {j}"
    );

    // Another drain takes it at once (no lease to wait for) and finishes it.
    fake.set_stream_chunk_delay_ms(0);
    assert!(run(&app, &["--once"]).status.success());
    let j = job(&app, &token, &id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(assistant_messages(&app, &token, &j).await, 1);
    app.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_is_reclaimed_and_completed_once() {
    let fake = FakeFlow::start().await;
    fake.set_stream_chunk_delay_ms(200);
    let (app, token, id, mut child) =
        follow_mid_job(&fake, Some(("DRAIN_LEASE_SECONDS", "2"))).await;
    signal(&child, "KILL");
    wait_exit(&mut child, 10);
    let j = job(&app, &token, &id).await;
    assert_eq!(
        j["status"], "running",
        "the dead drain's claim stands until its lease ends: {j}"
    );

    fake.set_stream_chunk_delay_ms(0);
    // Once the dead drain's lease has ended, another drain takes the job.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(run(&app, &["--once"]).status.success());
    let j = job(&app, &token, &id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2);
    assert_eq!(assistant_messages(&app, &token, &j).await, 1);
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    app.server.unwrap().stop().await;
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cited_sources(job: &Value) -> Vec<String> {
    job["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap().to_owned())
        .collect()
}

/// Fails the test with the drain's stderr unless it exited with success.
#[track_caller]
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Uploads a private document (`vault.txt`) as `token` and waits until the
/// drain has indexed it, calling `each_poll` at every poll.
async fn upload_vault_and_wait(app: &TestApp, token: &str, mut each_poll: impl FnMut()) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(
            b"The vault combination is four seven one nine, says the quartermaster.".to_vec(),
        )
        .file_name("vault.txt"),
    );
    let r = app
        .raw(
            app.client
                .post(format!("{}/api/documents", app.url))
                .bearer_auth(token)
                .multipart(form),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["document_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .get(&format!("/api/documents/{id}"), Some(token))
        .await
        .body["status"]
        != "indexed"
    {
        assert!(Instant::now() < deadline, "the upload was never indexed");
        each_poll();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes `app`'s knowledge index and its shared `policy.md`: what a restore
/// must bring back. Returns the data folder.
fn lose_index_and_a_shared_file(app: &TestApp) -> std::path::PathBuf {
    let data = std::path::PathBuf::from(&app.vars["FLOWCHAT_DATA_DIR"]);
    std::fs::remove_file(data.join("knowledge-dev.db")).unwrap();
    std::fs::remove_file(app.docs.join("policy.md")).unwrap();
    data
}

/// A new server on `first`'s files answers `token` from both the uploaded
/// `vault.txt` and the shared `policy.md`.
async fn second_server_answers_from_both(first: &TestApp, token: &str) {
    let second = app()
        .var("FLOWCHAT_DATA_DIR", &first.vars["FLOWCHAT_DATA_DIR"])
        .var("DOCUMENTS_PATH", &first.vars["DOCUMENTS_PATH"])
        .spawn()
        .await;
    let job = second
        .ask(
            token,
            "What is the vault combination from the quartermaster?",
            None,
        )
        .await;
    assert_eq!(
        cited_sources(&job).first().map(String::as_str),
        Some("vault.txt"),
        "{job}"
    );
    let job = second.ask(token, CHAIR, None).await;
    assert_eq!(
        cited_sources(&job).first().map(String::as_str),
        Some("policy.md"),
        "{job}"
    );
    second.server.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_reindex_keep_every_document() {
    let mut first = app().spawn().await;
    let (ana, _) = first.session("ana").await;
    upload_vault_and_wait(&first, &ana, || {}).await;
    first.server.take().unwrap().stop().await;

    // Back up, lose the index and a shared file, restore.
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("flowchat.tar");
    let archive_arg = archive.display().to_string();
    let out = run(&first, &["backup", "--out", &archive_arg]);
    assert_success(&out);
    assert!(stdout(&out).contains("2 document(s)"), "{}", stdout(&out));
    let data = lose_index_and_a_shared_file(&first);

    // A damaged archive is refused before anything is written.
    let mut damaged = std::fs::read(&archive).unwrap();
    let at = damaged.len() / 3;
    damaged[at] ^= 0x55;
    let damaged_path = scratch.path().join("damaged.tar");
    std::fs::write(&damaged_path, damaged).unwrap();
    let out = run(
        &first,
        &["restore", "--from", &damaged_path.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !data.join("knowledge-dev.db").exists(),
        "nothing restored from a damaged backup"
    );

    let out = run(&first, &["restore", "--from", &archive_arg]);
    assert_success(&out);
    assert!(first.docs.join("policy.md").exists());

    // Rebuild the folder's documents; the private upload stays.
    let out = run(&first, &["reindex"]);
    assert_success(&out);
    assert!(stdout(&out).contains("reindexed"), "{}", stdout(&out));

    // A new server on the same files answers from both.
    second_server_answers_from_both(&first, &ana).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_indexed_without_vectors_are_embedded_when_the_drain_starts() {
    let fake = FakeFlow::start().await;
    // Indexed by words only: no embeddings provider in the dev server.
    let app = app().drain_concurrency(0).spawn().await;
    let with_embeddings = |args: &[&str]| {
        let mut command = drain_command(&app, args);
        for (k, v) in fake.env() {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = with_embeddings(&["--once"]);
    assert_success(&out);
    let embedded: usize = fake
        .requests()
        .iter()
        .filter(|r| r.target == Some(Target::Embeddings))
        .map(|r| r.body["input"].as_array().map_or(1, Vec::len))
        .sum();
    assert!(embedded >= 2, "both shared documents' chunks were embedded");

    // Everything has vectors of the configured model now: nothing to redo.
    let before = fake.count(Target::Embeddings);
    assert!(with_embeddings(&["--once"]).status.success());
    assert_eq!(fake.count(Target::Embeddings), before);
    assert_eq!(fake.header_problems(), Vec::<String>::new());
    app.server.unwrap().stop().await;
}

/// The tar archives in `dir`, sorted (their names sort by time).
fn archive_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A worker with a disk backs itself up on a schedule (`BACKUP_EVERY_HOURS`;
/// here the tests' `--backup-every-secs`), keeps the newest `BACKUP_KEEP`
/// archives, and the newest restores the index — a private upload the
/// worker indexed while backing up included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_backs_up_on_a_schedule_keeps_the_newest_and_restores() {
    let mut first = app().drain_concurrency(0).spawn().await;
    let scratch = tempfile::tempdir().unwrap();
    let backups = scratch.path().join("backups");
    let log_path = scratch.path().join("drain.log");
    let mut worker = drain_command(&first, &["--follow", "--backup-every-secs", "1"])
        .env("BACKUP_KEEP", "2")
        .env("BACKUP_DIR", &backups)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let watch = |seen: &mut std::collections::BTreeSet<String>| {
        for name in archive_names(&backups) {
            if name.ends_with(".tar") {
                // flowchat-<namespace>-<YYYYMMDDTHHMMSSZ>.tar
                assert!(name.starts_with("flowchat-dev-2"), "{name}");
                assert_eq!(name.len(), "flowchat-dev-".len() + 20, "{name}");
                seen.insert(name);
            }
        }
    };

    // An upload, indexed by the worker while it backs up every second.
    let (ana, _) = first.session("ana").await;
    upload_vault_and_wait(&first, &ana, || watch(&mut seen)).await;
    // Two more backups: the later one began after the upload was indexed.
    watch(&mut seen);
    let wanted = (seen.len() + 2).max(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < wanted {
        assert!(
            Instant::now() < deadline,
            "no scheduled backups: {seen:?}\n{}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        watch(&mut seen);
    }
    signal(&worker, "TERM");
    assert!(wait_exit(&mut worker, 30).success());
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("scheduled backup written"), "{logs}");
    assert!(logs.contains("old backup pruned"), "{logs}");
    assert!(!logs.contains("scheduled backup failed"), "{logs}");

    // Only the newest two are kept, whole (no partial file is left).
    let kept = archive_names(&backups);
    assert_eq!(kept.len(), 2, "{kept:?} of {seen:?}");
    assert!(kept.iter().all(|n| n.ends_with(".tar")), "{kept:?}");
    let newest_two: Vec<String> = seen.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(kept, newest_two);

    // Lose the index and a shared file; restore from the newest archive.
    first.server.take().unwrap().stop().await;
    lose_index_and_a_shared_file(&first);
    let newest = backups.join(kept.last().unwrap());
    let out = run(
        &first,
        &["restore", "--from", &newest.display().to_string()],
    );
    assert_success(&out);
    assert!(first.docs.join("policy.md").exists());

    // A new server on the restored files answers from both.
    second_server_answers_from_both(&first, &ana).await;
}
