use std::time::{SystemTime, UNIX_EPOCH};

use flowchat_domain::{Platform, Timestamp};

/// The system clock as a [`Timestamp`].
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(millis)
}

/// 16 bytes from the operating system's CSPRNG.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is not something a process can recover from.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Clock, RNG and timers for the portable crates on a tokio runtime.
pub struct NativePlatform;

#[async_trait::async_trait]
impl Platform for NativePlatform {
    fn now(&self) -> Timestamp {
        now()
    }

    fn random_bytes(&self) -> [u8; 16] {
        random_bytes()
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}
