//! FlowChat's fuzz targets, as plain functions: each `run(&[u8])` feeds one
//! input to the real parsing entry points and asserts what must hold for
//! any input (besides not panicking). The libFuzzer binaries in
//! `fuzz_targets/` call them; `tests/corpus.rs` replays the kept corpus
//! through them on stable, so a regression seed fails `cargo test` too.
//!
//! See docs/fuzzing.md for the targets, how to run them and the results.

pub mod fts_query;
pub mod loaders;
pub mod router;
pub mod session_token;
pub mod sse;

mod runtime;

/// A target's entry point: one input, no result (a failure panics).
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("router", router::run),
    ("upload", router::run_upload),
    ("session_token", session_token::run),
    ("load_text", loaders::run_text),
    ("load_html", loaders::run_html),
    ("load_pdf", loaders::run_pdf),
    ("fts_query", fts_query::run),
    ("sse", sse::run),
];

// flowchat-llm's stream and body parsers are private to it; they are
// compiled here from its own source files, so the exact code the drain runs
// is fuzzed without widening that crate's API. `wire` and `types` are the
// paths those files import.
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/llm/src/sse.rs"]
mod llm_sse;
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/llm/src/wire.rs"]
mod wire;
mod types {
    pub(crate) use flowchat_llm::ChatMessage;
}
