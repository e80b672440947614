//! Runs the fake Flow server on its own for benchmarks (`scripts/bench`):
//! prints its base URL, then serves until killed. Test tooling only.

#[tokio::main]
async fn main() {
    let fake = flowchat_fake_flow::FakeFlow::start().await;
    println!("{}", fake.base_url());
    std::future::pending::<()>().await;
}
