//! Reading a document in a reader process (see `child`) that can be
//! stopped: killed at the deadline and reaped, its memory capped by the
//! kernel. Whatever a file does to the parser, the drain only sees a
//! process that ended, and answers the job.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::KnowledgeError;
use crate::extract::child::{CHILD_ARG, ChildLimits};
use crate::extract::wire::{Answer, MAGIC, MAX_LINE_BYTES, Request, valid_page_starts};
use crate::loader::{DocumentFormat, LoadedDocument, MAX_EXTRACTED_TEXT_BYTES};

/// The most of the reader's stderr kept for the log.
const MAX_STDERR_BYTES: usize = 16 * 1024;

/// What a reader process ended with, before it is tied to a file name.
#[derive(Debug)]
pub(crate) enum ChildOutcome {
    Answered(Result<LoadedDocument, KnowledgeError>),
    /// Killed at the deadline (or by its CPU limit).
    TimedOut,
    /// Ended by its address-space limit.
    OutOfMemory,
    /// Could not be started: try again later.
    NotStarted(std::io::Error),
    /// Ended without a usable answer; the detail is for the log.
    Failed(String),
}

/// Reads `bytes` (named `name`, of `format`) in a new reader process of
/// `program`, killing it after `timeout`.
pub(crate) fn read_in_child(
    program: &Path,
    limits: ChildLimits,
    timeout: Duration,
    name: &str,
    format: DocumentFormat,
    bytes: &[u8],
) -> ChildOutcome {
    let mut command = Command::new(program);
    command
        .arg(CHILD_ARG)
        .args(limits.to_args())
        // No secret reaches the process that meets hostile input. One malloc
        // arena: glibc reserves 64 MiB of address space per extra arena,
        // which would count against the address-space limit.
        .env_clear()
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return ChildOutcome::NotStarted(e),
    };
    let pid = child.id();
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill_and_reap(&mut child);
        return ChildOutcome::Failed("the reader's pipes were not set up".into());
    };

    let request = Request {
        name: name.to_owned(),
    };
    let mut head = serde_json::to_vec(&request).unwrap_or_default();
    head.push(b'\n');
    let body = bytes.to_vec();
    // Written on their own threads so a reader that stops reading, or
    // writes a lot, cannot block the drain: they end when the pipes close.
    let writer = std::thread::spawn(move || {
        // A reader that died early closes the pipe; its exit says why.
        let _ = stdin.write_all(&head).and_then(|()| stdin.write_all(&body));
    });
    let answer = std::thread::spawn(move || read_answer(stdout));
    let errors = std::thread::spawn(move || read_capped(stderr, MAX_STDERR_BYTES));

    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = match rx.recv_timeout(timeout) {
        Ok(()) => false,
        Err(_) => {
            // The process is not reaped until the waiter's wait returns,
            // so its pid cannot have been reused.
            kill(pid);
            true
        }
    };
    let status = waiter
        .join()
        .map_err(|_| "the reader's waiter stopped".to_owned())
        .and_then(|status| status.map_err(|e| format!("waiting for the reader failed: {e}")));
    let _ = writer.join();
    let answer = answer
        .join()
        .unwrap_or_else(|_| Err("the answer could not be read".into()));
    let stderr = errors.join().unwrap_or_default();
    let status = match status {
        Ok(status) => status,
        Err(detail) => return ChildOutcome::Failed(detail),
    };
    if timed_out {
        return ChildOutcome::TimedOut;
    }
    classify(status, answer, &stderr, name, format)
}

fn classify(
    status: ExitStatus,
    answer: Result<RawAnswer, String>,
    stderr: &[u8],
    name: &str,
    format: DocumentFormat,
) -> ChildOutcome {
    if status.success() {
        return match answer {
            Ok(answer) => ChildOutcome::Answered(answer.into_document(name, format)),
            Err(detail) => ChildOutcome::Failed(detail),
        };
    }
    let stderr = String::from_utf8_lossy(stderr);
    // Rust aborts with this message when an allocation fails, which is how
    // the address-space limit ends a reader.
    if stderr.contains("memory allocation of") {
        return ChildOutcome::OutOfMemory;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // SIGXCPU: the CPU-seconds backstop of the deadline.
        if status.signal() == Some(24) {
            return ChildOutcome::TimedOut;
        }
    }
    let last_line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    ChildOutcome::Failed(format!(
        "the reader process ended with {status}{}",
        last_line.map(|l| format!(": {l}")).unwrap_or_default()
    ))
}

/// An answer as read, before it is checked against the request.
#[derive(Debug)]
struct RawAnswer {
    answer: Answer,
    text: Vec<u8>,
}

impl RawAnswer {
    fn into_document(
        self,
        name: &str,
        format: DocumentFormat,
    ) -> Result<LoadedDocument, KnowledgeError> {
        match self.answer {
            Answer::Failed(error) => Err(error.into_error(name)),
            Answer::Document { page_starts, .. } => {
                let bad = |detail: &str| KnowledgeError::ReaderFailed {
                    name: name.to_owned(),
                    detail: detail.to_owned(),
                };
                let text = String::from_utf8(self.text).map_err(|_| bad("text not UTF-8"))?;
                if !valid_page_starts(&text, &page_starts) {
                    return Err(bad("page starts out of range"));
                }
                Ok(LoadedDocument {
                    format,
                    text,
                    page_starts,
                })
            }
        }
    }
}

fn read_answer(stdout: impl Read) -> Result<RawAnswer, String> {
    let mut reader = BufReader::new(stdout);
    let mut magic = vec![0u8; MAGIC.len()];
    reader
        .read_exact(&mut magic)
        .map_err(|_| "no answer from the reader".to_owned())?;
    if magic != MAGIC {
        return Err("the reader's answer is not one".into());
    }
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    let answer: Answer =
        serde_json::from_slice(&line).map_err(|e| format!("the answer is not valid: {e}"))?;
    let text_bytes = match &answer {
        Answer::Document { text_bytes, .. } => *text_bytes,
        Answer::Failed(_) => 0,
    };
    // The child enforces the text limit; a larger claim is not believed.
    if text_bytes > MAX_EXTRACTED_TEXT_BYTES + 1024 {
        return Err("the answer's text is over the limit".into());
    }
    let mut text = vec![0u8; text_bytes];
    reader
        .read_exact(&mut text)
        .map_err(|_| "the answer's text was cut short".to_owned())?;
    Ok(RawAnswer { answer, text })
}

/// Up to `limit` bytes of `from`; the rest is read and dropped, so the
/// writer never blocks on a full pipe.
fn read_capped(mut from: impl Read, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let _ = (&mut from).take(limit as u64).read_to_end(&mut kept);
    let _ = std::io::copy(&mut from, &mut std::io::sink());
    kept
}

fn kill(pid: u32) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
