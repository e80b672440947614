//! The SAM template at the repository root describes the function this
//! package builds: the fields a deployment relies on are checked here, with
//! no network and no AWS tooling.

use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml at the repository root");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// `!Ref X` parses as a tagged value; the name it refers to.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => tagged.value.as_str().map(str::to_owned),
        _ => None,
    }
}

#[test]
fn the_function_is_the_streaming_flowchat_lambda_binary() {
    let t = template();
    assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
    let function = &t["Resources"]["FlowChatFunction"];
    assert_eq!(function["Type"], "AWS::Serverless::Function");
    assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"], "flowchat-lambda",
        "the binary this package builds"
    );
    let p = &function["Properties"];
    assert_eq!(p["Handler"], "bootstrap");
    assert_eq!(p["Runtime"], "provided.al2023");
    assert_eq!(p["Architectures"][0], "arm64");
    assert_eq!(p["FunctionUrlConfig"]["InvokeMode"], "RESPONSE_STREAM");
    let timeout = t["Globals"]["Function"]["Timeout"]
        .as_u64()
        .or_else(|| p["Timeout"].as_u64())
        .expect("a timeout");
    assert!(
        (26..=900).contains(&timeout),
        "a 25 s event stream must fit, within Lambda's 15 minutes: {timeout}"
    );
}

#[test]
fn the_environment_names_what_the_function_reads() {
    let t = template();
    let vars = &t["Resources"]["FlowChatFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(vars["FLOWCHAT_ENV"], "production");
    assert_eq!(
        vars["FLOWCHAT_STORE"], "upstash",
        "the function refuses sqlite in production"
    );
    for (variable, parameter) in [
        ("FLOWCHAT_NAMESPACE", "Namespace"),
        ("UPSTASH_REDIS_REST_URL", "UpstashRedisRestUrl"),
        ("UPSTASH_REDIS_REST_TOKEN", "UpstashRedisRestToken"),
        ("SESSION_SECRET", "SessionSecret"),
    ] {
        assert_eq!(
            reference(&vars[variable]).as_deref(),
            Some(parameter),
            "{variable} comes from the parameter {parameter}"
        );
        assert!(
            t["Parameters"][parameter].is_mapping(),
            "parameter {parameter} is declared"
        );
    }
    for secret in ["UpstashRedisRestToken", "SessionSecret"] {
        assert_eq!(
            t["Parameters"][secret]["NoEcho"],
            Value::Bool(true),
            "{secret} is not echoed"
        );
    }
}
