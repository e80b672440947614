//! Where documents are read, and the time, memory and concurrency they get.
//!
//! Parsers meet files from anyone who can upload, and `pdf-extract` in
//! particular is not hardened: a 261 KB PDF once asked for 1.4 GB and took
//! the drain (and, in the dev server, the API) down on every retry, and a
//! 113 KB one kept a core busy long after it was given up on. So a document
//! is read, by default, in a **reader process**: the drain's own binary
//! started again with a sentinel argument (see
//! [`run_extractor_if_requested`]), with an empty environment, an
//! address-space limit (`EXTRACT_MEMORY_LIMIT_MB`), a CPU-time limit, killed
//! and reaped at the deadline (`EXTRACT_TIMEOUT_SECONDS`). At most
//! `EXTRACT_CONCURRENCY` documents are read at once.
//!
//! Where no reader process can be started (library use, other crates'
//! tests, `EXTRACT_ISOLATION=in-process`), documents are read on a thread of
//! this process under the same deadline and concurrency limit, where a
//! timed-out reader keeps its place until it really ends (see `budget`).
//! Either way the PDF reader decodes streams within a budget (see
//! `pdf::inflate`), so a decompression bomb fails as a plain message.

mod budget;
mod child;
mod subprocess;
mod wire;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use budget::{BudgetFailure, Slots, run_with_budget};
pub(crate) use budget::{ReadLimits, panic_message};
use child::ChildLimits;
use subprocess::{ChildOutcome, read_in_child};

use crate::error::KnowledgeError;
use crate::folder::MAX_FILE_BYTES;
use crate::loader::{DocumentFormat, LoadedDocument, format_of};

/// `EXTRACT_TIMEOUT_SECONDS` by default: how long reading one document may
/// take.
pub const DEFAULT_TIMEOUT_SECS: u64 = 20;
/// `EXTRACT_MEMORY_LIMIT_MB` by default: the reader process's address space.
/// Address space, not resident memory: the binary, its libraries and thread
/// stacks count too (60–100 MiB before any document). With one reader at a
/// time, the drain and its reader stay under 300 MB on the worst inputs
/// (a 512 MB host).
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 256;
/// `EXTRACT_CONCURRENCY` by default: documents read at once per process.
pub const DEFAULT_CONCURRENCY: usize = 1;

/// How many timeouts a document waits at most for a reader process's place.
const MAX_QUEUED_TIMEOUTS: u32 = 16;

/// Where documents are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In a reader process, when the binary can be one (it called
    /// [`run_extractor_if_requested`]); else as [`Isolation::InProcess`].
    Subprocess,
    /// On a thread of this process.
    InProcess,
}

/// How documents are read (`EXTRACT_*`, read by `flowchat-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractSettings {
    pub isolation: Isolation,
    /// The longest reading one document may take.
    pub timeout: Duration,
    /// The reader process's address-space limit, in MiB.
    pub memory_limit_mb: u64,
    /// Documents read at once in this process.
    pub concurrency: usize,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        ExtractSettings {
            isolation: Isolation::Subprocess,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            memory_limit_mb: DEFAULT_MEMORY_LIMIT_MB,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Reads documents with given settings. [`crate::load`] uses the process's
/// one (see [`configure`]); tests build their own.
#[derive(Debug)]
pub struct Extractor {
    settings: ExtractSettings,
    /// The binary to start as a reader process; `None` reads in-process.
    program: Option<PathBuf>,
    slots: Arc<Slots>,
}

impl Extractor {
    /// Reads in this process, whatever `settings.isolation` says.
    pub fn in_process(settings: ExtractSettings) -> Extractor {
        Extractor::new(settings, None)
    }

    /// Reads in reader processes of `program`, a binary that calls
    /// [`run_extractor_if_requested`] first thing.
    pub fn subprocess(settings: ExtractSettings, program: PathBuf) -> Extractor {
        Extractor::new(settings, Some(program))
    }

    fn new(settings: ExtractSettings, program: Option<PathBuf>) -> Extractor {
        let slots = Slots::new(settings.concurrency);
        Extractor {
            settings,
            program,
            slots,
        }
    }

    /// Whether documents are read in reader processes.
    pub fn is_subprocess(&self) -> bool {
        self.program.is_some()
    }

    /// Reads `bytes` as the format named by `name`'s extension, within the
    /// deadline. Blocks: call from a blocking thread.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedDocument, KnowledgeError> {
        let format = format_of(name)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(KnowledgeError::TooLarge {
                name: name.to_owned(),
                size_bytes: bytes.len() as u64,
                limit_bytes: MAX_FILE_BYTES,
            });
        }
        let timeout = self.settings.timeout;
        // A reader process ends by its deadline, so a place frees up within
        // one timeout per document ahead; an in-process reader may never
        // end, so waiting for one is bounded by a single timeout. Either
        // way, a job that waited too long is retried later, not held.
        let wait = match self.program {
            Some(_) => timeout.saturating_mul(MAX_QUEUED_TIMEOUTS),
            None => timeout,
        };
        let permit = self.slots.acquire(wait).ok_or_else(|| busy(name))?;
        let result = match &self.program {
            Some(program) => {
                let outcome =
                    read_in_child(program, self.child_limits(), timeout, name, format, bytes);
                drop(permit);
                self.child_result(name, format, outcome)
            }
            None => {
                let (owned_name, owned) = (name.to_owned(), bytes.to_vec());
                run_with_budget(timeout, Some(permit), move |cancel| {
                    let limits = ReadLimits::in_process(cancel.clone());
                    crate::loader::read(&owned_name, &owned, &limits)
                })
                .unwrap_or_else(|failure| Err(self.budget_error(name, format, failure)))
            }
        };
        // The user's message leaves the detail out; the log keeps it.
        if let Err(KnowledgeError::ReaderFailed { detail, .. }) = &result {
            tracing::warn!(%detail, document = name, "a document reader failed");
        }
        result
    }

    fn child_limits(&self) -> ChildLimits {
        let timeout = self.settings.timeout.as_secs().max(1);
        ChildLimits {
            address_space_bytes: self.settings.memory_limit_mb.saturating_mul(1024 * 1024),
            // A backstop: the deadline kills it first.
            cpu_seconds: timeout.saturating_add(5),
            parent_pid: std::process::id(),
        }
    }

    fn child_result(
        &self,
        name: &str,
        format: DocumentFormat,
        outcome: ChildOutcome,
    ) -> Result<LoadedDocument, KnowledgeError> {
        match outcome {
            ChildOutcome::Answered(result) => result,
            ChildOutcome::TimedOut => Err(self.timeout_error(name, format)),
            ChildOutcome::OutOfMemory => Err(KnowledgeError::ReaderOutOfMemory {
                name: name.to_owned(),
                limit_bytes: self.settings.memory_limit_mb.saturating_mul(1024 * 1024),
            }),
            ChildOutcome::NotStarted(source) => {
                tracing::warn!(error = %source, "could not start a document reader process");
                Err(KnowledgeError::Io {
                    name: name.to_owned(),
                    source,
                })
            }
            ChildOutcome::Failed(detail) => Err(KnowledgeError::ReaderFailed {
                name: name.to_owned(),
                detail,
            }),
        }
    }

    fn budget_error(
        &self,
        name: &str,
        format: DocumentFormat,
        failure: BudgetFailure,
    ) -> KnowledgeError {
        match failure {
            BudgetFailure::TimedOut => self.timeout_error(name, format),
            BudgetFailure::NoThread(detail) => KnowledgeError::Io {
                name: name.to_owned(),
                source: std::io::Error::other(detail),
            },
            BudgetFailure::Panicked(detail) => match format {
                DocumentFormat::Pdf => KnowledgeError::PdfUnreadable {
                    name: name.to_owned(),
                    detail,
                },
                _ => KnowledgeError::ReaderFailed {
                    name: name.to_owned(),
                    detail,
                },
            },
        }
    }

    fn timeout_error(&self, name: &str, format: DocumentFormat) -> KnowledgeError {
        let (name, seconds) = (name.to_owned(), self.settings.timeout.as_secs());
        match format {
            DocumentFormat::Pdf => KnowledgeError::PdfTimeout { name, seconds },
            _ => KnowledgeError::LoadTimeout { name, seconds },
        }
    }

    /// Readers running now (timed-out in-process ones included).
    pub fn readers_running(&self) -> usize {
        self.slots.in_use()
    }
}

fn busy(name: &str) -> KnowledgeError {
    KnowledgeError::Io {
        name: name.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "every document reader is busy",
        ),
    }
}

/// The binary to start as a reader process: this one, when its `main`
/// called [`run_extractor_if_requested`].
static READER_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// The process's extractor, built on first use or by [`configure`].
static EXTRACTOR: RwLock<Option<Arc<Extractor>>> = RwLock::new(None);

/// Call first thing in `main` of every binary that reads documents (the
/// drain, the dev server, functions that drain). Started as a reader
/// process, the binary reads one document and exits here; otherwise this
/// returns at once and documents will be read in reader processes of this
/// binary.
pub fn run_extractor_if_requested() {
    child::serve_if_requested();
    let program = if cfg!(target_os = "linux") && std::path::Path::new("/proc/self/exe").exists() {
        // Still the running binary if the file was replaced by a deploy.
        Some(PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe().ok()
    };
    if let Some(program) = program {
        let _ = READER_PROGRAM.set(program);
    }
}

/// Sets how this process reads documents (from `flowchat-config`'s
/// `EXTRACT_*` settings). Readers already running keep their settings.
pub fn configure(settings: ExtractSettings) {
    let extractor = Arc::new(build(settings));
    tracing::debug!(
        subprocess = extractor.is_subprocess(),
        "document readers configured"
    );
    *EXTRACTOR.write().unwrap_or_else(PoisonError::into_inner) = Some(extractor);
}

fn build(settings: ExtractSettings) -> Extractor {
    match (settings.isolation, READER_PROGRAM.get()) {
        (Isolation::Subprocess, Some(program)) => Extractor::subprocess(settings, program.clone()),
        _ => Extractor::in_process(settings),
    }
}

/// The process's extractor.
pub fn extractor() -> Arc<Extractor> {
    if let Some(extractor) = EXTRACTOR
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(extractor);
    }
    let mut slot = EXTRACTOR.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(slot.get_or_insert_with(|| Arc::new(build(ExtractSettings::default()))))
}
