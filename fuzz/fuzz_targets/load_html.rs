#![no_main]

libfuzzer_sys::fuzz_target!(
    init: flowchat_fuzz::loaders::warm_up(),
    |data: &[u8]| flowchat_fuzz::loaders::run_html(data)
);
