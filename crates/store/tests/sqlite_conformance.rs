//! The conformance suite on the SQLite back end. Every store lives in its own
//! file under a temporary directory; a second handle opens the same file with
//! its own connection, as a second drain process would.

use std::sync::atomic::{AtomicUsize, Ordering};

use flowchat_store::conformance::{Harness, async_trait};
use flowchat_store::sqlite::SqliteStore;

struct SqliteHarness {
    dir: tempfile::TempDir,
    files: AtomicUsize,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            files: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    type S = SqliteStore;

    async fn fresh(&self) -> SqliteStore {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(self.dir.path().join(format!("store-{n}.db"))).expect("open a new store")
    }

    async fn second_handle(&self, of: &SqliteStore) -> SqliteStore {
        SqliteStore::open(of.path()).expect("open the same store again")
    }
}

flowchat_store::conformance_tests!(SqliteHarness::new());

/// The whole suite again in one go on one harness, so the checks also hold
/// when several stores share a directory.
#[test]
fn all_checks_in_sequence() {
    let harness = SqliteHarness::new();
    flowchat_store::conformance::block_on(flowchat_store::conformance::run_all(&harness));
}
