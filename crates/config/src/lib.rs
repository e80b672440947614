//! FlowChat's configuration, read in one place.
//!
//! Every environment variable any FlowChat process reads is parsed here,
//! through one reader ([`Env`]) with one error type
//! ([`flowchat_domain::ConfigError`], which names the variable), into the
//! plain settings structs the other crates take as arguments: no other crate
//! reads the environment. The lookup is injected — the process environment
//! natively, `env.var`/`env.secret` in a Cloudflare Worker, a map in tests —
//! so this crate builds for wasm32.
//!
//! Each process reads only what it uses: the API functions read
//! [`app_config`] and [`upstash_config`]; the drain and the dev server also
//! read the language-model settings (feature `llm`) and the Chroma settings
//! (feature `chroma`), together as [`drain_config`] (feature `drain`); the
//! Vercel functions that drain also read [`function_drain_settings`].

mod app;
#[cfg(feature = "chroma")]
mod chroma;
#[cfg(feature = "drain")]
mod drain;
mod env;
#[cfg(feature = "drain")]
mod extract;
mod function_drain;
#[cfg(feature = "llm")]
mod llm;
mod upstash;

pub use app::{app_config, is_namespace};
#[cfg(feature = "chroma")]
pub use chroma::chroma_settings;
#[cfg(feature = "drain")]
pub use drain::{DrainConfig, DrainNamespaces, drain_config};
pub use env::Env;
#[cfg(feature = "drain")]
pub use extract::extract_settings;
pub use flowchat_domain::ConfigError;
pub use function_drain::{
    FUNCTION_MAX_DURATION_SECS, FunctionDrainSettings, HARD_STOP_MARGIN_SECS,
    function_drain_settings,
};
#[cfg(feature = "llm")]
pub use llm::llm_settings;
pub use upstash::{upstash_config, upstash_required};
