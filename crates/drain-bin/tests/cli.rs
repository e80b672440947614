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
