#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowchat_fuzz::session_token::run(data));
