//! The Worker's [`Platform`]: `Date.now()`, the Web Crypto API, and JS
//! timers (`worker::Delay`). Also the Upstash client's retry [`Sleeper`].

use std::time::Duration;

use flowchat_domain::{Platform, Timestamp};
use flowchat_upstash::Sleeper;
use wasm_bindgen::{JsCast, JsValue};

/// Clock, randomness and timers of a Cloudflare Worker isolate.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgePlatform;

impl EdgePlatform {
    /// The platform, once `crypto.getRandomValues` has been seen to work:
    /// without it no id or token could be made safely.
    pub fn probe() -> Result<Self, JsValue> {
        fill_random(&mut [0u8; 16])?;
        Ok(EdgePlatform)
    }
}

#[async_trait::async_trait(?Send)]
impl Platform for EdgePlatform {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(js_sys::Date::now() as i64)
    }

    fn random_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        // `probe` succeeded when the context was built, and getRandomValues
        // throws only for a wrong array type or more than 65,536 bytes:
        // this cannot fail, and does not depend on any input.
        #[allow(clippy::expect_used)]
        fill_random(&mut bytes).expect("crypto.getRandomValues failed after a successful probe");
        bytes
    }

    async fn sleep_ms(&self, ms: u64) {
        worker::Delay::from(Duration::from_millis(ms)).await;
    }
}

/// Retry pauses of the Upstash client, on a JS timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeSleeper;

#[async_trait::async_trait(?Send)]
impl Sleeper for EdgeSleeper {
    async fn sleep(&self, duration: Duration) {
        worker::Delay::from(duration).await;
    }
}

fn fill_random(bytes: &mut [u8]) -> Result<(), JsValue> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    global.crypto()?.get_random_values_with_u8_array(bytes)?;
    Ok(())
}
