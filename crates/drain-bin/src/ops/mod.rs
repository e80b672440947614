//! Operations on the knowledge index: rebuild it from the documents folder
//! (`reindex`), back it up with the folder and restore both (`backup`), and
//! back it up on a schedule from the worker drain (`scheduled`); and remove
//! the documents of sessions that are over (`cleanup`).

mod backup;
pub mod cleanup;
mod reindex;
pub mod scheduled;

pub use backup::{backup, restore};
pub use reindex::reindex;
