//! FlowChat's vocabulary: the types every other crate speaks, the rules that
//! turn untrusted input into those types, session tokens and configuration.
//!
//! Nothing here performs I/O or reads the clock, so the crate builds for
//! `wasm32-unknown-unknown` and every rule is testable without a runtime.
//! Callers pass the current time ([`Timestamp`]) and random bytes in.

pub mod config;
pub mod document_format;
pub mod feedback;
pub mod ids;
pub mod message;
pub mod model;
pub mod nickname;
pub mod platform;
pub mod time;
pub mod token;
pub mod validation;

pub use config::{Config, ConfigError};
pub use feedback::{Feedback, FeedbackComment, FeedbackRating, FeedbackView};
pub use ids::{ConversationId, DocumentId, JobId, SessionId};
pub use message::MessageText;
pub use nickname::Nickname;
pub use platform::Platform;
pub use time::Timestamp;
pub use token::{SessionClaims, SessionSecret, TokenError};
pub use validation::ValidationError;
