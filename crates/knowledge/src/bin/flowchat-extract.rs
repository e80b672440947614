//! A reader process and nothing else, for tests of `flowchat-knowledge`
//! (binaries that read documents are their own reader processes: they call
//! `run_extractor_if_requested` first in `main`).

fn main() {
    flowchat_knowledge::extract::run_extractor_if_requested();
    eprintln!("flowchat-extract: started without a document; it is run by flowchat-knowledge");
    std::process::exit(2);
}
