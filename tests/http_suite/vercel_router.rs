//! Vercel's routing in front of the function binaries, as the platform
//! applies it (and `vercel dev` imitates it): `flowchat-vercel-router`
//! (`crates/vercel-router`), the same router `scripts/vercel-dev` runs.

pub use flowchat_vercel_router::{VercelRouter, start};
