//! docs/openapi.yaml against the API it describes: the document
//! `GET /api/openapi.json` serves is that file; the router's routes and the
//! documented paths are the same set, with the same methods; every problem
//! type `error.rs` can answer with is listed; every `$ref` resolves. What
//! the answers look like is checked against the document by
//! scripts/schemathesis, on a running dev server.

#[allow(dead_code)]
#[path = "handlers/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use http::Method;
use serde_json::Value;

const YAML: &str = include_str!("../../../docs/openapi.yaml");
const ROUTER: &str = include_str!("../src/router.rs");
const ERRORS: &str = include_str!("../src/error.rs");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    serde_yaml::from_str(YAML).expect("docs/openapi.yaml parses")
}

/// `/api/chat/{job_id}/events` → `/api/chat/{}/events`.
fn template(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The paths the portable router serves, from the patterns of its one
/// `match` (`["api", "chat", id] => …`), parameters as `{}`.
fn router_paths() -> BTreeSet<String> {
    let paths: BTreeSet<String> = ROUTER
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("[\"api\"") && l.contains("] =>"))
        .map(|l| {
            let inner = &l[1..l.find(']').unwrap()];
            let segments: Vec<String> = inner
                .split(',')
                .map(str::trim)
                .map(|s| match s.strip_prefix('"') {
                    Some(literal) => literal.trim_end_matches('"').to_owned(),
                    None => "{}".to_owned(),
                })
                .collect();
            format!("/{}", segments.join("/"))
        })
        .collect();
    assert!(paths.len() >= 10, "router.rs patterns not found: {paths:?}");
    paths
}

/// Documented paths the portable router serves (not those marked
/// `x-flowchat-runtimes`, served by one runtime's own function), with their
/// methods in upper case.
fn documented_routes(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("x-flowchat-runtimes").is_none())
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A path with each parameter filled in by a value of the right format.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| match s {
            "{document_id}" => "0123456789abcdef0123456789abcdef",
            s if s.starts_with('{') => "6f9619ff-8b86-4011-b42d-00c04fc964ff",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_served_document_is_docs_openapi_yaml() {
    let api = harness::api().build();
    let reply = api.get("/api/openapi.json").send().await;
    let served = reply.json(200);
    assert_eq!(served, &spec());
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1."));
    let head = api.call(Method::HEAD, "/api/openapi.json").send().await;
    assert_eq!(head.status, 200);
    let post = api.post("/api/openapi.json").send().await;
    post.problem(405);
    assert_eq!(post.header("allow"), Some("GET"));
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_a_route() {
    let documented: BTreeSet<String> = documented_routes(&spec())
        .keys()
        .map(|p| template(p))
        .collect();
    let routed = router_paths();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}; documented paths the router does not serve: {unrouted:?}"
    );
}

/// Each documented path answers an undocumented method with 405 and an
/// `Allow` of exactly the documented methods, and each documented method
/// reaches a handler (whatever it then answers without a token or body).
#[tokio::test]
async fn documented_methods_are_the_routers_methods() {
    let api = harness::api().build();
    for (path, methods) in documented_routes(&spec()) {
        let url = concrete(&path);
        let reply = api.call(Method::PATCH, &url).send().await;
        reply.problem(405);
        let allowed: BTreeSet<String> = reply
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert_eq!(
            allowed, methods,
            "{path}: Allow is not the documented methods"
        );
        for method in &methods {
            let reply = api
                .call(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await;
            assert_ne!(reply.status, 405, "{method} {path}: {}", reply.body);
            let detail = reply.body["detail"].as_str().unwrap_or_default();
            assert!(!detail.starts_with("no route"), "{method} {path}: {detail}");
        }
    }
}

/// Paths documented as served by one runtime's own function are no route
/// of the portable router, as their description says.
#[tokio::test]
async fn runtime_specific_paths_are_not_routed_here() {
    let api = harness::api().build();
    let spec = spec();
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if item.get("x-flowchat-runtimes").is_none() {
            continue;
        }
        seen += 1;
        let reply = api.get(&concrete(path)).send().await;
        reply.problem(404);
        assert!(item["get"]["responses"].get("404").is_some(), "{path}");
    }
    assert_eq!(seen, 1, "only /api/cron/drain is runtime-specific");
}

/// The slugs of `ApiError::slug` in error.rs, from its source.
fn error_slugs() -> BTreeSet<String> {
    let start = ERRORS.find("fn slug(").expect("error.rs has fn slug");
    let body = &ERRORS[start..];
    let end = body[1..].find("\n    fn ").map_or(body.len(), |i| i + 1);
    let slugs: BTreeSet<String> = body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(slugs.len() >= 10, "slugs not found in error.rs: {slugs:?}");
    slugs
}

#[test]
fn every_problem_type_is_documented_and_nothing_else() {
    let spec = spec();
    let documented: BTreeSet<String> =
        spec["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t.as_str()
                    .unwrap()
                    .strip_prefix("urn:flowchat:problem:")
                    .expect("problem types are urn:flowchat:problem:<slug>")
                    .to_owned()
            })
            .collect();
    assert_eq!(documented, error_slugs());
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_operation_answers_problems() {
    let spec = spec();
    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target}: only local references"));
        assert!(spec.pointer(pointer).is_some(), "{target} does not resolve");
    }
    // Every error status is documented as problem+json, directly or through
    // a shared response.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.as_str() < "400" {
                    continue;
                }
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(target) => spec.pointer(&target[1..]).unwrap(),
                    None => response,
                };
                let content = response["content"].as_object();
                let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                // Not ready is the readiness report itself, with its reasons.
                let readiness = path == "/api/health/ready" && status == "503";
                assert!(
                    readiness || types == ["application/problem+json"],
                    "{method} {path} {status}: {types:?}"
                );
            }
        }
    }
}
