//! FlowChat's knowledge side: reading documents, cutting them into chunks,
//! indexing and searching them, keeping the shared folder in step with the
//! index, building the prompt for a language model's answer (and citing what
//! it cites), and answering from passages alone when no model is set up.
//!
//! Native only (SQLite, threads, the file system): the drain and the dev
//! server use it; the API functions never touch the index.

pub mod chunking;
pub mod error;
pub mod extractive;
pub mod folder;
pub mod index;
pub mod loader;
pub mod prompt;
pub mod query;
pub mod sqlite;

pub use chunking::{Chunk, ChunkSettings, chunk_document, count_tokens};
pub use error::KnowledgeError;
pub use extractive::extractive_answer;
pub use folder::{FolderSync, MAX_FILE_BYTES, sync_shared_folder};
pub use index::{IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery};
pub use loader::{Format, LoadedDocument, is_supported, load};
pub use prompt::{
    DEFAULT_SYSTEM_PROMPT, Prompt, PromptMessage, PromptRole, PromptSettings, build_prompt,
    generative_answer,
};
pub use sqlite::SqliteIndex;
