//! Replays every kept input (`corpus/<target>/*` and the regression seeds
//! in `artifacts-found/<target>/*`) through its target on stable Rust, without
//! libFuzzer: `cargo test --manifest-path fuzz/Cargo.toml --no-default-features`.
//! A panic names the file.

use std::path::Path;

#[test]
fn every_kept_input_passes_its_target() {
    flowchat_fuzz::loaders::quiet_pdf_reader_panics();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for (name, run) in flowchat_fuzz::TARGETS {
        let mut files = Vec::new();
        for dir in ["corpus", "artifacts-found"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            files.extend(entries.map(|e| e.expect("a directory entry").path()));
        }
        files.sort();
        assert!(
            !files.is_empty() || !root.join("corpus").exists(),
            "no corpus for target {name}"
        );
        for file in &files {
            let data = std::fs::read(file).expect("read a corpus file");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} failed", file.display());
        }
        println!("{name}: {} inputs", files.len());
        total += files.len();
    }
    assert!(total > 0, "the corpus is empty");
}
