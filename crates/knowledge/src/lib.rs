//! FlowChat's knowledge side: reading documents, cutting them into chunks,
//! indexing and searching them, keeping the shared folder in step with the
//! index, building the prompt for a language model's answer (and citing what
//! it cites), and answering from passages alone when no model is set up.
//!
//! Native only (SQLite, threads, the file system): the drain and the dev
//! server use it; the API functions never touch the index.

#[cfg(feature = "chroma")]
pub mod chroma;
pub mod chunking;
pub mod embed;
pub mod error;
pub mod extract;
pub mod extractive;
pub mod folder;
pub mod fusion;
mod html;
pub mod index;
pub mod loader;
mod pdf;
pub mod prompt;
pub mod query;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(feature = "chroma")]
pub use chroma::{ChromaIndex, ChromaSettings, DEFAULT_TIMEOUT_MS as CHROMA_DEFAULT_TIMEOUT_MS};
pub use chunking::{Chunk, ChunkSettings, NEAR_LIMIT_TOKENS, chunk_document, count_tokens};
pub use embed::{ChunkEmbedder, embed_chunks, embed_missing};
pub use error::KnowledgeError;
pub use extractive::extractive_answer;
pub use folder::{
    FolderScan, FolderSync, MAX_FILE_BYTES, sync_shared_folder, sync_shared_folder_with,
};
pub use index::{
    ChunkEmbeddings, IndexedDocument, IndexedSummary, KnowledgeIndex, Passage, SearchQuery,
};
pub use loader::{
    DocumentFormat, LoadedDocument, MAX_EXTRACTED_TEXT_BYTES, PDF_TIME_BUDGET, check_content,
    is_supported, load, sniff,
};
pub use prompt::{
    DEFAULT_SYSTEM_PROMPT, Prompt, PromptMessage, PromptRole, PromptSettings, build_prompt,
    generative_answer,
};
pub use sqlite::SqliteIndex;
