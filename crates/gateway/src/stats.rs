//! Counters behind `GET /__gateway/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counts since start (or since the last reset).
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    commands: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Protocol requests received (`POST /`, `/pipeline`, `/multi-exec`), whatever
    /// their outcome, including refused and unauthorized ones.
    pub requests: u64,
    /// Redis commands forwarded to redis-server on behalf of clients (a pipeline or
    /// transaction of three counts three; the gateway's own MULTI/EXEC wrapping and
    /// commands refused before reaching Redis are not counted).
    pub commands: u64,
}

impl Stats {
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_commands(&self, n: usize) {
        self.commands.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
        }
    }

    /// Sets both counters to zero and returns the counts they had.
    pub fn reset(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.swap(0, Ordering::Relaxed),
            commands: self.commands.swap(0, Ordering::Relaxed),
        }
    }
}
