//! Shows what the API answered to a `router` or `upload` input, for writing
//! seeds and triaging findings:
//! `cargo run --no-default-features --example show -- router corpus/router/seed-documents`

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: show <router|upload> <input file>");
        std::process::exit(2);
    };
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut print = |method: &str, path: &str, status: u16, body: &serde_json::Value| {
        let body = body.to_string();
        let cut: String = body.chars().take(160).collect();
        println!("{method} {path} -> {status} {cut}");
    };
    match target.as_str() {
        "router" => flowchat_fuzz::router::run_traced(&data, &mut print),
        "upload" => flowchat_fuzz::router::run_upload_traced(&data, &mut print),
        other => panic!("no trace for target {other}"),
    }
}
