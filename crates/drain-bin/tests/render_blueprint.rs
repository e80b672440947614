//! `render.yaml`, checked offline. Render's JSON schema cannot be fetched
//! here, so this checks the fields FlowChat relies on, for both drain
//! variants (the active one and the one commented out): service types and
//! names, a valid 5-field cron schedule, commands that run `flowchat-drain`
//! with `--once`/`--follow`, the env var group, the Chroma private service's
//! image and disk — and it hands each variant's environment (the image's
//! `ENV`, the group, the service's own variables, a placeholder for every
//! `sync: false` value) to `flowchat_config::drain_config`, the function the
//! drain starts with, so a variable the drain requires in that shape cannot
//! go missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flowchat_domain::config::{StoreKind, VectorStore};
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn blueprint() -> Value {
    serde_yaml::from_str(&read("render.yaml")).expect("render.yaml is YAML")
}

/// Services written as a commented-out block (`  # - type: …` and the
/// lines under it), uncommented and parsed: the variant that is not active
/// must stay valid too.
fn commented_services(text: &str) -> Vec<Value> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("  # - type:") {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            current = Some(format!("  - type:{rest}\n"));
        } else if let (Some(block), Some(rest)) = (current.as_mut(), line.strip_prefix("  #   ")) {
            block.push_str("    ");
            block.push_str(rest);
            block.push('\n');
        } else if let Some(block) = current.take() {
            blocks.push(block);
        }
    }
    blocks.extend(current);
    blocks
        .iter()
        .map(|block| {
            let list: Vec<Value> = serde_yaml::from_str(block)
                .unwrap_or_else(|e| panic!("commented-out service is not YAML: {e}\n{block}"));
            assert_eq!(list.len(), 1, "{block}");
            list.into_iter().next().unwrap()
        })
        .collect()
}

fn str_field<'a>(service: &'a Value, field: &str) -> &'a str {
    service[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing or not a string in {service:?}"))
}

fn name(service: &Value) -> &str {
    str_field(service, "name")
}

/// Every service, active or commented out, with whether it is active.
fn all_services() -> Vec<(Value, bool)> {
    let active = blueprint()["services"]
        .as_sequence()
        .expect("services is a list")
        .clone();
    let commented = commented_services(&read("render.yaml"));
    active
        .into_iter()
        .map(|s| (s, true))
        .chain(commented.into_iter().map(|s| (s, false)))
        .collect()
}

fn drain_service(kind: &str) -> (Value, bool) {
    let found: Vec<_> = all_services()
        .into_iter()
        .filter(|(s, _)| s["type"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one `type: {kind}` drain service");
    found.into_iter().next().unwrap()
}

// --- Cron expressions --------------------------------------------------------

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A standard 5-field cron expression (minute hour day-of-month month
/// day-of-week; `*`, numbers, names, ranges, lists, steps), the form Render
/// documents for cron jobs.
fn valid_cron(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("{} fields, expected 5", fields.len()));
    }
    let specs: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, &MONTHS, 1),
        (0, 7, &DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(specs) {
        let value = |raw: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(raw)) {
                return Ok(i as u32 + first);
            }
            let n: u32 = raw.parse().map_err(|_| format!("`{raw}` in `{field}`"))?;
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} outside {min}-{max} in `{field}`"))
            }
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(s) if s >= 1 => {}
                    _ => return Err(format!("step `{step}` in `{field}`")),
                }
            }
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((a, b)) => {
                    if value(a)? > value(b)? {
                        return Err(format!("range `{range}` runs backwards"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_cron_checker_knows_good_from_bad() {
    for good in [
        "* * * * *",
        "*/10 * * * *",
        "0 12 * * *",
        "*/60 * * * MON-FRI",
        "5,35 0-6/2 1 JAN-MAR 0",
    ] {
        assert_eq!(valid_cron(good), Ok(()), "{good}");
    }
    for bad in [
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "@hourly",
        "every minute",
    ] {
        assert!(valid_cron(bad).is_err(), "{bad}");
    }
}

// --- Commands ----------------------------------------------------------------

/// The command a service runs: `dockerCommand` on the docker runtime (the
/// image's CMD when absent), `startCommand` on a native runtime.
fn command(service: &Value) -> Vec<String> {
    let line = match service["runtime"].as_str() {
        Some("docker") => match service["dockerCommand"].as_str() {
            Some(line) => line.to_owned(),
            None => dockerfile_cmd().join(" "),
        },
        _ => str_field(service, "startCommand").to_owned(),
    };
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let program = words.first().map(String::as_str).unwrap_or_default();
    assert!(
        program == "flowchat-drain" || program.ends_with("/flowchat-drain"),
        "{} runs `{line}`, not flowchat-drain",
        name(service)
    );
    words
}

/// The final image's `CMD` (exec form).
fn dockerfile_cmd() -> Vec<String> {
    let text = read("Dockerfile");
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("CMD "))
        .expect("the Dockerfile has a CMD");
    serde_yaml::from_str(line.trim_start_matches("CMD ")).expect("CMD in exec form")
}

/// The final image's `ENV` values, which a service on the docker runtime
/// starts with before Render's variables are applied.
fn dockerfile_env() -> BTreeMap<String, String> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let final_stage = text.rsplit("\nFROM ").next().unwrap();
    let mut env = BTreeMap::new();
    for line in final_stage.lines().filter(|l| l.starts_with("ENV ")) {
        for pair in line["ENV ".len()..].split_whitespace() {
            let (key, value) = pair.split_once('=').expect("ENV key=value");
            env.insert(key.to_owned(), value.trim_matches('"').to_owned());
        }
    }
    env
}

fn flag_value(words: &[String], flag: &str) -> Option<u64> {
    let at = words.iter().position(|w| w == flag)?;
    Some(
        words
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number")),
    )
}

// --- Environments ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Value(String),
    /// `sync: false`: entered in the dashboard.
    Prompt,
    /// Another service's property (`fromService`).
    FromService(String),
}

fn read_vars(
    list: &Value,
    groups: &BTreeMap<String, Vec<(String, Source)>>,
    into: &mut Vec<(String, Source)>,
) {
    for var in list.as_sequence().expect("envVars is a list") {
        if let Some(group) = var["fromGroup"].as_str() {
            let vars = groups
                .get(group)
                .unwrap_or_else(|| panic!("envVarGroup `{group}` is not defined"));
            into.extend(vars.iter().cloned());
            continue;
        }
        let key = var["key"]
            .as_str()
            .expect("an env var has a key")
            .to_owned();
        let source = if let Some(v) = var.get("value") {
            match v {
                Value::String(s) => Source::Value(s.clone()),
                Value::Number(n) => Source::Value(n.to_string()),
                Value::Bool(b) => Source::Value(b.to_string()),
                other => panic!("{key}: value {other:?}"),
            }
        } else if var["sync"].as_bool() == Some(false) {
            Source::Prompt
        } else if let Some(from) = var.get("fromService") {
            Source::FromService(str_field(from, "name").to_owned())
        } else {
            panic!("{key}: no value, `sync: false` or fromService")
        };
        into.push((key, source));
    }
}

fn groups() -> BTreeMap<String, Vec<(String, Source)>> {
    let mut groups = BTreeMap::new();
    for group in blueprint()["envVarGroups"]
        .as_sequence()
        .expect("envVarGroups is a list")
    {
        let mut vars = Vec::new();
        read_vars(&group["envVars"], &BTreeMap::new(), &mut vars);
        groups.insert(str_field(group, "name").to_owned(), vars);
    }
    groups
}

/// What the drain of `service` sees: the image's ENV (docker runtime), then
/// the service's variables in order (the group where it is referenced).
fn environment(service: &Value) -> BTreeMap<String, Source> {
    let mut env: BTreeMap<String, Source> = BTreeMap::new();
    if service["runtime"].as_str() == Some("docker") {
        for (key, value) in dockerfile_env() {
            env.insert(key, Source::Value(value));
        }
    }
    let mut vars = Vec::new();
    read_vars(&service["envVars"], &groups(), &mut vars);
    assert!(
        service["envVars"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["fromGroup"].as_str() == Some("flowchat")),
        "{} takes the `flowchat` group",
        name(service)
    );
    env.extend(vars);
    env
}

/// `drain_config` over `env`, with a plausible value for every `sync: false`
/// variable (a URL for `*_URL`, a long token otherwise).
fn drain_config_of(
    env: &BTreeMap<String, Source>,
) -> Result<flowchat_config::DrainConfig, flowchat_domain::ConfigError> {
    flowchat_config::drain_config(|key: &str| match env.get(key)? {
        Source::Value(v) => Some(v.clone()),
        Source::Prompt | Source::FromService(_) if key.ends_with("_URL") => {
            Some("https://placeholder.example.com".to_owned())
        }
        Source::Prompt | Source::FromService(_) => {
            Some("placeholder-0123456789abcdef0123456789abcdef".to_owned())
        }
    })
}

// --- The Blueprint -------------------------------------------------------------

#[test]
fn services_have_known_types_and_unique_names() {
    let services = all_services();
    let mut names = std::collections::BTreeSet::new();
    for (service, _) in &services {
        let kind = str_field(service, "type");
        assert!(
            ["web", "worker", "pserv", "cron", "keyvalue", "redis"].contains(&kind),
            "unknown service type {kind}"
        );
        assert!(
            names.insert(name(service).to_owned()),
            "duplicate {}",
            name(service)
        );
        let runtime = str_field(service, "runtime");
        assert!(
            ["docker", "image", "rust"].contains(&runtime),
            "{}: runtime {runtime}",
            name(service)
        );
        if runtime == "docker" {
            let dockerfile = service["dockerfilePath"].as_str().unwrap_or("./Dockerfile");
            assert!(repo().join(dockerfile).is_file(), "{dockerfile} exists");
            let context = service["dockerContext"].as_str().unwrap_or(".");
            assert!(
                repo().join(context).join("Cargo.lock").is_file(),
                "context {context} is the workspace"
            );
        }
    }
    // One variant is active, the other commented out, and a cron drain
    // never runs next to its Chroma-less worker twin.
    let (_, cron_active) = drain_service("cron");
    let (_, worker_active) = drain_service("worker");
    assert_ne!(
        cron_active, worker_active,
        "exactly one drain variant is active"
    );
}

#[test]
fn the_cron_drain_runs_once_a_minute_within_its_interval() {
    let (cron, _) = drain_service("cron");
    let schedule = str_field(&cron, "schedule");
    assert_eq!(valid_cron(schedule), Ok(()), "schedule `{schedule}`");
    let words = command(&cron);
    assert!(words.iter().any(|w| w == "--once"), "{words:?}");
    assert!(!words.iter().any(|w| w == "--follow"), "{words:?}");
    // Render starts no run while one is active: the budget stays under the
    // interval, leaving time for start-up (store, folder scan).
    let interval = match schedule.split_whitespace().next().unwrap() {
        "*" => 60,
        minute => match minute.strip_prefix("*/") {
            Some(k) => 60 * k.parse::<u64>().unwrap(),
            None => 3600,
        },
    };
    let budget = flag_value(&words, "--max-seconds").expect("--max-seconds is set");
    assert!(
        budget + 10 <= interval,
        "--max-seconds {budget} vs a {interval} s schedule"
    );
    assert!(cron.get("disk").is_none(), "Render cron jobs have no disk");
}

#[test]
fn the_cron_drain_has_everything_the_chroma_shape_requires() {
    let (cron, _) = drain_service("cron");
    let env = environment(&cron);
    for key in [
        "UPSTASH_REDIS_REST_URL",
        "UPSTASH_REDIS_REST_TOKEN",
        "CHROMA_URL",
    ] {
        assert!(
            matches!(env.get(key), Some(Source::Prompt | Source::FromService(_))),
            "{key} is entered in the dashboard or wired from a service, never committed: {:?}",
            env.get(key)
        );
    }
    let config =
        drain_config_of(&env).unwrap_or_else(|e| panic!("the cron drain would not start: {e}"));
    assert_eq!(config.app.store, StoreKind::Upstash);
    assert!(config.upstash.is_some());
    assert_eq!(config.app.vector_store, VectorStore::Chroma);
    assert!(config.chroma.is_some(), "CHROMA_URL");
    assert!(
        config.embeddings.is_some(),
        "Chroma needs an embeddings provider"
    );
    assert_eq!(
        config.namespaces,
        flowchat_config::DrainNamespaces::All,
        "production and every preview"
    );
    // The documents baked into the image are the ones indexed at start.
    assert_eq!(config.app.documents_path, "/app/documents");
}

#[test]
fn the_chroma_service_is_private_with_a_pinned_image_and_a_disk() {
    let services = all_services();
    let (chroma, active) = services
        .iter()
        .find(|(s, _)| s["type"].as_str() == Some("pserv"))
        .expect("a pserv for Chroma");
    let (_, cron_active) = drain_service("cron");
    assert_eq!(*active, cron_active, "Chroma is active with the cron drain");
    assert_eq!(str_field(chroma, "runtime"), "image");
    let url = str_field(&chroma["image"], "url");
    let (image, tag) = url.rsplit_once(':').expect("a tagged image");
    assert!(image.ends_with("chromadb/chroma"), "{url}");
    assert!(
        tag != "latest" && tag.chars().next().unwrap().is_ascii_digit(),
        "pinned: {url}"
    );
    let disk = &chroma["disk"];
    assert!(str_field(disk, "name").len() > 1);
    assert!(str_field(disk, "mountPath").starts_with('/'));
    assert!(disk["sizeGB"].as_u64().unwrap_or(0) >= 1);
}

#[test]
fn the_worker_drain_follows_with_its_index_on_the_disk() {
    let (worker, _) = drain_service("worker");
    let words = command(&worker);
    assert!(words.iter().any(|w| w == "--follow"), "{words:?}");
    assert!(!words.iter().any(|w| w == "--once"), "{words:?}");
    let env = environment(&worker);
    let config =
        drain_config_of(&env).unwrap_or_else(|e| panic!("the worker would not start: {e}"));
    assert_eq!(config.app.store, StoreKind::Upstash);
    assert_eq!(config.app.vector_store, VectorStore::Sqlite);
    let mount = str_field(&worker["disk"], "mountPath");
    assert_eq!(
        config.app.data_dir, mount,
        "the sqlite index lives on the disk"
    );
    // Its scheduled backups cover one namespace's index.
    assert!(config.backups.every_hours.is_some());
    assert_eq!(config.namespaces.single(), Some("production"));
    // Jobs in flight finish or are released before Render kills the process.
    let grace = u64::from(config.app.drain.shutdown_grace_secs);
    let delay = worker["maxShutdownDelaySeconds"].as_u64().unwrap_or(30);
    assert!(
        grace < delay,
        "grace {grace} s vs Render's {delay} s shutdown delay"
    );
}

#[test]
fn the_group_commits_no_secret() {
    for (key, source) in &groups()["flowchat"] {
        if ["TOKEN", "SECRET", "PASSWORD", "_KEY", "CLIENT_ID"]
            .iter()
            .any(|s| key.contains(s))
        {
            assert_eq!(*source, Source::Prompt, "{key} must be `sync: false`");
        }
    }
}

#[test]
fn the_commented_block_reader_uncomments_what_it_should() {
    let text = "services:\n  - type: cron\n    name: a\n  # comment\n  # - type: worker\n  #   name: b\n  #   envVars:\n  #     - key: X\n  #       value: \"1\"\n";
    let services = commented_services(text);
    assert_eq!(services.len(), 1);
    assert_eq!(name(&services[0]), "b");
    assert_eq!(services[0]["envVars"][0]["value"].as_str(), Some("1"));
}
