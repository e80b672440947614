//! Converts docs/openapi.yaml to the JSON that `GET /api/openapi.json`
//! serves. Done here, on the build machine, so no runtime carries a YAML
//! parser (the Worker's wasm32 build included) and the served document can
//! never drift from the file: a YAML mistake fails the build, naming the line.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let source = manifest.join("../../docs/openapi.yaml");
    println!("cargo::rerun-if-changed={}", source.display());
    let yaml = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let document: serde_json::Value = serde_yaml::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", source.display()));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("openapi.json");
    let json = serde_json::to_vec(&document).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&out, json).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
