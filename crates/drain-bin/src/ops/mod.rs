//! Operations on the knowledge index: rebuild it from the documents folder
//! (`reindex`), back it up with the folder and restore both (`backup`).

mod backup;
mod reindex;

pub use backup::{backup, restore};
pub use reindex::reindex;
