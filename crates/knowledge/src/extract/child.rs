//! The reader process: the same binary started again with [`CHILD_ARG`].
//!
//! It limits itself before reading a byte of the document (address space,
//! CPU seconds, no core dumps, no files written), asks the kernel to kill
//! it when the drain that started it dies, reads one request from stdin,
//! answers on stdout and exits. Its environment is empty: whatever the
//! document makes it do, it holds no secret.

use std::io::{BufRead, BufReader, Read, Write};

use crate::error::KnowledgeError;
use crate::extract::budget::{READER_STACK_BYTES, ReadLimits, panic_message};
use crate::extract::wire::{Answer, MAGIC, MAX_LINE_BYTES, Request, WireError};
use crate::folder::MAX_FILE_BYTES;

/// The first argument that makes a binary the reader process.
pub(crate) const CHILD_ARG: &str = "--flowchat-extract-document";

/// Exit codes of the reader (the answer itself is on stdout).
const EXIT_OK: i32 = 0;
const EXIT_BAD_ARGS: i32 = 64;
const EXIT_NO_LIMITS: i32 = 65;
const EXIT_ORPHAN: i32 = 66;
const EXIT_IO: i32 = 74;

/// The limits a reader process puts on itself; passed as arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildLimits {
    pub address_space_bytes: u64,
    pub cpu_seconds: u64,
    pub parent_pid: u32,
}

impl ChildLimits {
    pub(crate) fn to_args(self) -> [String; 3] {
        [
            self.address_space_bytes.to_string(),
            self.cpu_seconds.to_string(),
            self.parent_pid.to_string(),
        ]
    }

    fn from_args(mut args: impl Iterator<Item = std::ffi::OsString>) -> Option<ChildLimits> {
        let mut next = || args.next()?.to_str()?.parse::<u64>().ok();
        Some(ChildLimits {
            address_space_bytes: next()?,
            cpu_seconds: next()?,
            parent_pid: u32::try_from(next()?).ok()?,
        })
    }
}

/// Runs the reader process when this binary was started as one (and then
/// exits); returns at once otherwise.
pub(crate) fn serve_if_requested() {
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().as_deref() != Some(std::ffi::OsStr::new(CHILD_ARG)) {
        return;
    }
    let code = match ChildLimits::from_args(args) {
        Some(limits) => serve(limits),
        None => EXIT_BAD_ARGS,
    };
    std::process::exit(code);
}

fn serve(limits: ChildLimits) -> i32 {
    if let Err(code) = limit_self(limits) {
        return code;
    }
    let mut stdin = BufReader::new(std::io::stdin().lock());
    let request = match read_request(&mut stdin) {
        Ok(request) => request,
        Err(_) => return EXIT_IO,
    };
    let mut bytes = Vec::new();
    // One byte over the limit is enough to say "too large".
    if stdin
        .take(MAX_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .is_err()
    {
        return EXIT_IO;
    }
    let name = request.name;
    let outcome = read_on_big_stack(name.clone(), bytes);
    match write_answer(&mut std::io::stdout().lock(), outcome) {
        Ok(()) => EXIT_OK,
        Err(_) => EXIT_IO,
    }
}

/// Applies `limits` to this process. Everything after this may meet hostile
/// input.
#[cfg(target_os = "linux")]
fn limit_self(limits: ChildLimits) -> Result<(), i32> {
    use rustix::process::{Resource, Rlimit, getppid, set_parent_process_death_signal, setrlimit};
    let set = |resource, soft: u64, hard: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
    };
    let applied = set(
        Resource::As,
        limits.address_space_bytes,
        limits.address_space_bytes,
    )
    .and_then(|()| {
        set(
            Resource::Cpu,
            limits.cpu_seconds,
            limits.cpu_seconds.saturating_add(1),
        )
    })
    .and_then(|()| set(Resource::Core, 0, 0))
    // The reader writes no file; stdout and stderr are pipes.
    .and_then(|()| set(Resource::Fsize, 0, 0))
    .and_then(|()| set_parent_process_death_signal(Some(rustix::process::Signal::KILL)));
    if applied.is_err() {
        return Err(EXIT_NO_LIMITS);
    }
    // The drain may have died before the death signal was set.
    let parent = getppid().map(|p| p.as_raw_nonzero().get());
    if parent != i32::try_from(limits.parent_pid).ok() {
        return Err(EXIT_ORPHAN);
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn limit_self(limits: ChildLimits) -> Result<(), i32> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let set = |resource, soft: u64, hard: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
    };
    set(
        Resource::Cpu,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(1),
    )
    .and_then(|()| set(Resource::Core, 0, 0))
    .map_err(|_| EXIT_NO_LIMITS)
}

fn read_request(stdin: &mut impl BufRead) -> std::io::Result<Request> {
    let mut line = Vec::new();
    stdin
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    serde_json::from_slice(&line).map_err(std::io::Error::other)
}

/// Reads the document on a thread with room for pdf-extract's recursion.
/// No time limit here: the drain kills this process at its deadline.
fn read_on_big_stack(
    name: String,
    bytes: Vec<u8>,
) -> Result<crate::loader::LoadedDocument, KnowledgeError> {
    let reader = std::thread::Builder::new()
        .name("document-reader".into())
        .stack_size(READER_STACK_BYTES)
        .spawn(move || {
            std::panic::catch_unwind(|| {
                crate::loader::read(&name, &bytes, &ReadLimits::reader_process())
            })
        });
    let failed = |detail: String| KnowledgeError::ReaderFailed {
        name: String::new(),
        detail,
    };
    match reader {
        Ok(handle) => match handle.join() {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) | Err(panic) => Err(failed(panic_message(&*panic))),
        },
        Err(e) => Err(failed(format!("could not start a reader thread: {e}"))),
    }
}

fn write_answer(
    out: &mut impl Write,
    outcome: Result<crate::loader::LoadedDocument, KnowledgeError>,
) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    let (answer, text) = match outcome {
        Ok(doc) => (
            Answer::Document {
                text_bytes: doc.text.len(),
                page_starts: doc.page_starts,
            },
            doc.text,
        ),
        Err(error) => (Answer::Failed(WireError::from_error(&error)), String::new()),
    };
    serde_json::to_writer(&mut *out, &answer).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    out.write_all(text.as_bytes())?;
    out.flush()
}
