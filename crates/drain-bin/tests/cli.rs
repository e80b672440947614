//! The command line as an operator first meets it. (The drain's work is
//! tested end to end against a dev server in
//! `crates/devserver/tests/drain_binary.rs`.)

use std::process::Command;

fn drain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_command() {
    let output = drain(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "--once",
        "--follow",
        "stats",
        "dead-letters",
        "reindex",
        "backup",
        "restore",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

#[test]
fn no_mode_is_a_configuration_error() {
    let output = drain(&[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--once"), "{stderr}");
}

#[test]
fn a_malformed_variable_is_named_and_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .arg("--once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DRAIN_MAX_ATTEMPTS", "many")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DRAIN_MAX_ATTEMPTS"), "{stderr}");
}

#[test]
fn scheduled_backups_need_a_drain_pinned_to_one_namespace() {
    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .arg("--follow")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWCHAT_STORE", "upstash")
        // Never reached: the check comes first.
        .env("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:9")
        .env("UPSTASH_REDIS_REST_TOKEN", "a-token-of-some-length")
        .env("BACKUP_EVERY_HOURS", "24")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("BACKUP_EVERY_HOURS") && stderr.contains("FLOWCHAT_NAMESPACE"),
        "{stderr}"
    );
}

#[test]
fn a_namespace_list_on_the_embedded_store_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .arg("--once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWCHAT_NAMESPACE", "production,preview-x")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLOWCHAT_STORE=upstash"), "{stderr}");
}

/// The store and the knowledge index hold chats and private documents: what
/// the drain creates in the data directory is readable by its user only
/// (SQLite files used to be created 0644).
#[cfg(unix)]
#[test]
fn data_files_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let documents = root.path().join("documents");
    std::fs::create_dir(&documents).unwrap();
    std::fs::write(
        documents.join("notes.md"),
        "# Notes\n\nThe kettle is blue.\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flowchat-drain"))
        .arg("--once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLOWCHAT_DATA_DIR", &data)
        .env("DOCUMENTS_PATH", &documents)
        .current_dir(root.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut files = 0;
    let mut pending = vec![data.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                pending.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files >= 2, "the store and the index were created");
}
