#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowchat_fuzz::fts_query::run(data));
