//! Runs the fake Flow server on its own for benchmarks (`scripts/bench`) and
//! the web app's end-to-end tests: prints its base URL, then serves until
//! killed. `--chunk-delay-ms N` spaces streamed chunks so partial answers can
//! be watched. Test tooling only.

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut chunk_delay_ms = 0;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u64>())) {
            ("--chunk-delay-ms", Some(Ok(ms))) => chunk_delay_ms = ms,
            _ => {
                eprintln!("usage: serve [--chunk-delay-ms N]");
                std::process::exit(2);
            }
        }
    }
    let fake = flowchat_fake_flow::FakeFlow::start().await;
    fake.set_stream_chunk_delay_ms(chunk_delay_ms);
    println!("{}", fake.base_url());
    std::future::pending::<()>().await;
}
