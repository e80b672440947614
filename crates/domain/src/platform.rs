//! What a runtime provides that portable code may not take for itself:
//! the time, randomness and timers. Native processes use the system clock,
//! the OS RNG and tokio; a Cloudflare Worker uses `Date.now()`, the Web
//! Crypto API and its own timers. Tests pass deterministic ones.

use crate::Timestamp;

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Platform: Send + Sync {
    fn now(&self) -> Timestamp;
    /// 16 bytes from a cryptographically secure source.
    fn random_bytes(&self) -> [u8; 16];
    async fn sleep_ms(&self, ms: u64);
}
