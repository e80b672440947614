//! The Cloudflare Worker adapter: one `fetch` handler serving every
//! `/api/...` route through `flowchat_api::handle`, like the Vercel
//! functions (`src/lib.rs`) and the dev server do.
//!
//! Per isolate, the first request reads the bindings (`[vars]` and secrets)
//! through `flowchat_config`, checks what only the edge needs ([`settings`]:
//! Upstash store, session secret given), and builds the `AppContext` — an
//! Upstash store over [`transport::FetchTransport`], the
//! [`platform::EdgePlatform`] — which later requests reuse. A configuration
//! error answers 500 problem+json naming the variable (and is logged), and is
//! read again on the next request.
//!
//! A request is converted to `http::Request<Bytes>` by
//! `flowchat_api::read_limited` (a declared `Content-Length` over the route's
//! limit is refused unread), with `ClientIp` from `CF-Connecting-IP` (or
//! `TRUSTED_IP_HEADER`); the
//! answer goes back as a fixed body, or as a `ReadableStream` for the SSE
//! route, so events reach the client as the drain writes them.
//!
//! Only [`settings`] builds natively (for its tests); the Worker itself is
//! wasm32 only. Build it with `edge/build.sh`, run it with `scripts/edge-dev`.

pub mod settings;

#[cfg(target_arch = "wasm32")]
mod logging;
#[cfg(target_arch = "wasm32")]
mod platform;
#[cfg(target_arch = "wasm32")]
mod transport;
#[cfg(target_arch = "wasm32")]
mod worker_entry;
