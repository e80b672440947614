//! The Dockerfile's shape and its build context, checked without a
//! container engine: the builder uses the workspace's rust-version on the
//! runtime's Debian release and runs the same build command as the native
//! Render build; the runtime image is slim, runs as a non-root user, keeps
//! its data in the `/data` volume and starts `flowchat-drain`; the build
//! context keeps the workspace and drops build output, local state and
//! secrets.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Instructions as (KEYWORD, arguments), continuation lines joined and
/// comments dropped, split into stages at each FROM.
fn stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(' ').unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push((
                keyword,
                args.split_whitespace().collect::<Vec<_>>().join(" "),
            ));
    }
    stages
}

fn all<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect()
}

fn env_of(stage: &[(String, String)]) -> Vec<(String, String)> {
    all(stage, "ENV")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV key=value");
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn workspace_rust_version() -> String {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("rust-version"))
        .expect("workspace rust-version");
    line.split('"').nth(1).unwrap().to_owned()
}

#[test]
fn the_builder_runs_the_release_build_on_the_workspace_toolchain() {
    let stages = stages();
    assert_eq!(stages.len(), 2, "a builder and a runtime stage");
    let builder = &stages[0];
    let from = all(builder, "FROM")[0];
    let image = from.split_whitespace().next().unwrap();
    let expected = format!("rust:{}-slim-bookworm", workspace_rust_version());
    assert_eq!(image, expected, "the workspace's rust-version");
    assert!(from.ends_with("AS builder"), "{from}");
    let runs = all(builder, "RUN").join(" ");
    assert!(
        runs.contains("cargo build --release --locked -p flowchat-drain-bin"),
        "the build command of the native Render build and of docs/operations.md: {runs}"
    );
    // The binary the package builds is the one the image installs.
    let package =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(package.contains("name = \"flowchat-drain\""));
    assert!(runs.contains("target/release/flowchat-drain "), "{runs}");
}

#[test]
fn the_runtime_image_is_slim_non_root_and_starts_the_drain() {
    let stages = stages();
    let runtime = &stages[1];
    let from = all(runtime, "FROM")[0];
    assert_eq!(
        from, "debian:bookworm-slim",
        "same Debian release as the builder"
    );
    assert!(all(runtime, "RUN").join(" ").contains("ca-certificates"));

    let user = all(runtime, "USER");
    assert_eq!(user.len(), 1, "one USER");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "non-root: {}", user[0]);
    assert!(
        uid.parse::<u32>().is_ok(),
        "numeric, for runAsNonRoot checks: {}",
        user[0]
    );
    assert!(
        all(runtime, "RUN")
            .join(" ")
            .contains(&format!("--uid {uid}")),
        "the user exists"
    );

    let env = env_of(runtime);
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("FLOWCHAT_DATA_DIR"), Some("/data"));
    assert_eq!(get("DOCUMENTS_PATH"), Some("/app/documents"));
    assert_eq!(
        all(runtime, "VOLUME"),
        ["[\"/data\"]"],
        "the data directory is the volume"
    );
    let copies = all(runtime, "COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.ends_with("/src/documents /app/documents")),
        "the shared documents go where DOCUMENTS_PATH points: {copies:?}"
    );
    assert!(
        copies
            .iter()
            .any(|c| c.ends_with(" /usr/local/bin/flowchat-drain")),
        "the binary is on the PATH: {copies:?}"
    );
    // documents/ is optional: the builder makes sure the folder exists.
    assert!(
        all(&stages[0], "RUN")
            .join(" ")
            .contains("mkdir -p documents")
    );

    // A whole command line, no ENTRYPOINT: a platform's command setting
    // means the same whether it replaces CMD or ENTRYPOINT.
    assert!(all(runtime, "ENTRYPOINT").is_empty());
    let cmd: Vec<String> = serde_yaml::from_str(all(runtime, "CMD")[0]).expect("CMD in exec form");
    assert_eq!(cmd, ["flowchat-drain", "--follow"]);
}

/// `.dockerignore` patterns as plain paths or `**/name` (all this file uses).
fn ignored(path: &str, patterns: &[String]) -> bool {
    let mut result = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let matches = if let Some(name) = pattern.strip_prefix("**/") {
            path.split('/').any(|component| component == name)
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            !path.contains('/') && path.ends_with(suffix)
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            !path.contains('/') && path.starts_with(prefix)
        } else {
            path == pattern || path.starts_with(&format!("{pattern}/"))
        };
        if matches {
            result = !negated;
        }
    }
    result
}

#[test]
fn the_build_context_keeps_the_workspace_and_drops_the_rest() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for dropped in [
        ".git",
        "target",
        "target/release/flowchat-drain",
        "web/node_modules",
        "edge/node_modules",
        "web/dist",
        ".venv-chroma",
        "data",
        ".env",
        "flowchat-production.db",
    ] {
        assert!(
            ignored(dropped, &patterns),
            "{dropped} must stay out of the image"
        );
    }
    let mut kept = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "documents/handbook.md".to_owned(),
        "src/lib.rs".to_owned(),
        "api".to_owned(),
        ".env.example".to_owned(),
    ];
    // Every workspace member (cargo resolves them all to build one package).
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if !member.is_empty() && member != "." {
            kept.push(format!("{member}/Cargo.toml"));
            kept.push(format!("{member}/src"));
        }
    }
    for path in kept {
        assert!(!ignored(&path, &patterns), "{path} is needed by the build");
    }
}
