//! The drain: the slow half of FlowChat. It claims jobs from the store,
//! retrieves passages from the knowledge index, answers, ingests documents,
//! and records every outcome — retrying with backoff and dead-lettering what
//! keeps failing. The same code runs in the dev server and the drain binary.

mod assemble;
mod backoff;
pub mod cleanup;
mod jobs;
pub mod messages;
mod worker;

pub use assemble::{AssembleError, DrainIdentity, LanguageModels, assemble, assemble_with};
pub use backoff::retry_delay_ms;
pub use jobs::{Answerer, JobError};
pub use worker::{Drain, DrainOptions, PassOutcome};
