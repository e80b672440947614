//! AWS Lambda: the `flowchat-lambda` binary under the Runtime API emulator
//! (`flowchat_lambda_emulator::LambdaFront`), real HTTP in front of it.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::runtimes::Env;

pub struct Lambda {
    front: flowchat_lambda_emulator::LambdaFront,
}

/// The `flowchat-lambda` binary, next to this package's own binaries:
/// `cargo nextest run --workspace` (what `scripts/test` runs) builds it.
pub fn binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_health_ping"))
        .with_file_name(format!("flowchat-lambda{}", std::env::consts::EXE_SUFFIX))
}

impl Lambda {
    pub async fn start(env: &Env) -> anyhow::Result<Lambda> {
        let binary = binary();
        if !binary.exists() {
            bail!(
                "the Lambda runtime cannot start: {} is missing; build it first (cargo build -p flowchat-lambda) or run the whole workspace's tests",
                binary.display()
            );
        }
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let front = flowchat_lambda_emulator::LambdaFront::start(&binary, &env).await?;
        Ok(Lambda { front })
    }

    pub fn url(&self) -> String {
        self.front.url()
    }

    pub async fn stop(self) {
        self.front.stop().await;
    }
}
