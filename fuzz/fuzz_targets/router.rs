#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowchat_fuzz::router::run(data));
