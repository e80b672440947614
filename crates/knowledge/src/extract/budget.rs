//! Bounds for reading in this process: a limit on readers running at once
//! that only a reader that has really ended gives back, a time limit on
//! waiting for one, and a flag that asks a reader to stop.
//!
//! A thread cannot be killed. A reader given up on at its deadline keeps
//! running until it finishes, so it keeps its [`Permit`] until then: at most
//! [`Slots::new`]'s number of readers ever run, however many time out
//! (security finding M1: timed-out PDF threads piled up, each keeping a core
//! busy). The PDF reader checks its [`Cancel`] flag between pages, so a
//! timed-out one stops at the next page.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The reader thread's stack: pdf-extract recurses per nested form (bounded
/// by the `forms` module). Only touched pages of the stack cost memory.
pub(crate) const READER_STACK_BYTES: usize = 32 * 1024 * 1024;

/// How many readers may run at once, in this process.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

/// One reader's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Slots>);

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// A place, waiting at most `wait` for one.
    pub(crate) fn acquire(self: &Arc<Self>, wait: Duration) -> Option<Permit> {
        let deadline = Instant::now() + wait;
        // The count stays right even if a holder panicked.
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used >= self.max {
            let left = deadline.checked_duration_since(Instant::now())?;
            used = self
                .freed
                .wait_timeout(used, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *used += 1;
        Some(Permit(Arc::clone(self)))
    }

    /// Readers running now (for tests and logs).
    pub(crate) fn in_use(&self) -> usize {
        *self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(PoisonError::into_inner);
        *used = used.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// Asks a reader to stop early; it checks at points where stopping is
/// cheap.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What one reading may do: when to stop, and how large a page's content
/// may be to be parsed (parsing takes up to ~130 times that in memory).
#[derive(Debug, Clone)]
pub(crate) struct ReadLimits {
    pub(crate) cancel: Cancel,
    pub(crate) max_page_content: usize,
}

impl ReadLimits {
    /// In a reader process, whose address-space limit is the backstop.
    pub(crate) fn reader_process() -> ReadLimits {
        ReadLimits {
            cancel: Cancel::default(),
            max_page_content: crate::pdf::inflate::MAX_PAGE_CONTENT_BYTES,
        }
    }

    /// In this process, where nothing else bounds the memory a page takes.
    pub(crate) fn in_process(cancel: Cancel) -> ReadLimits {
        ReadLimits {
            cancel,
            max_page_content: crate::pdf::inflate::MAX_PAGE_CONTENT_BYTES_IN_PROCESS,
        }
    }
}

/// Why running a job under a budget did not give its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BudgetFailure {
    /// Still running when the time was up (asked to stop; left running).
    TimedOut,
    /// The job panicked; the panic message.
    Panicked(String),
    /// No thread could be started.
    NoThread(String),
}

/// Runs `job` on a new thread (with [`READER_STACK_BYTES`] of stack) under
/// `catch_unwind` and waits at most `budget` for it. `permit` is held by the
/// thread and given back when the job really ends. On timeout the job's
/// [`Cancel`] is set and its result will be dropped.
pub(crate) fn run_with_budget<T, F>(
    budget: Duration,
    permit: Option<Permit>,
    job: F,
) -> Result<T, BudgetFailure>
where
    T: Send + 'static,
    F: FnOnce(&Cancel) -> T + Send + 'static,
{
    let cancel = Cancel::default();
    let flag = cancel.clone();
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("document-reader".into())
        .stack_size(READER_STACK_BYTES)
        .spawn(move || {
            let _permit = permit;
            let result =
                catch_unwind(AssertUnwindSafe(|| job(&flag))).map_err(|p| panic_message(&*p));
            // The receiver is gone after a timeout; nobody wants the result.
            let _ = tx.send(result);
        })
        .map_err(|e| BudgetFailure::NoThread(format!("could not start a reader thread: {e}")))?;
    match rx.recv_timeout(budget) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(BudgetFailure::Panicked(message)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            cancel.cancel();
            Err(BudgetFailure::TimedOut)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(BudgetFailure::Panicked("the reader thread stopped".into()))
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown error".to_owned());
    format!("the PDF reader failed: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_reports_timeouts_and_panics() {
        let slow = run_with_budget(Duration::from_millis(50), None, |_: &Cancel| {
            std::thread::sleep(Duration::from_secs(2));
            1
        });
        assert_eq!(slow, Err(BudgetFailure::TimedOut));
        let boom = run_with_budget(Duration::from_secs(5), None, |_: &Cancel| -> u8 {
            panic!("kaboom")
        });
        assert_eq!(
            boom,
            Err(BudgetFailure::Panicked(
                "the PDF reader failed: kaboom".into()
            ))
        );
        assert_eq!(
            run_with_budget(Duration::from_secs(5), None, |_: &Cancel| 7),
            Ok(7)
        );
    }

    /// M1: a reader given up on keeps its place until it really ends, so
    /// timed-out readers cannot pile up; a cancelled one stops when it
    /// next looks at its flag.
    #[test]
    fn a_timed_out_reader_keeps_its_place_until_it_ends() {
        let slots = Slots::new(1);
        let (stopped_tx, stopped_rx) = mpsc::channel();
        let permit = slots.acquire(Duration::ZERO).unwrap();
        let result = run_with_budget(Duration::from_millis(50), Some(permit), move |cancel| {
            while !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Still busy a little after being asked to stop.
            std::thread::sleep(Duration::from_millis(300));
            stopped_tx.send(()).unwrap();
        });
        assert_eq!(result, Err(BudgetFailure::TimedOut));
        // The timed-out reader still runs: no place for another.
        assert_eq!(slots.in_use(), 1);
        assert!(slots.acquire(Duration::from_millis(20)).is_none());
        // Once it ends, its place is free again.
        stopped_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let again = slots.acquire(Duration::from_secs(10));
        assert!(again.is_some());
        drop(again);
        assert_eq!(slots.in_use(), 0);
    }
}
