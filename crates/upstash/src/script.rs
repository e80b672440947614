//! Lua scripts, addressed by their SHA-1.
//!
//! A script is sent as `EVALSHA` first, which costs only the 40-character
//! digest on the wire; only when Redis answers `NOSCRIPT` (first use, or after
//! a `SCRIPT FLUSH` or failover) is the full source sent with `EVAL`, which
//! also caches it for the next call. The digest is computed once, here.

use sha1::{Digest, Sha1};

/// A Lua script and its SHA-1 (lowercase hex), ready for `EVALSHA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    source: String,
    sha1: String,
}

impl Script {
    /// Wrap Lua source and compute its digest.
    ///
    /// Keep the source byte-for-byte stable: Redis caches scripts by digest.
    pub fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let sha1 = hex::encode(Sha1::digest(source.as_bytes()));
        Script { source, sha1 }
    }

    /// The Lua source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The lowercase hex SHA-1 Redis knows the script by.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_redis() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        assert_eq!(
            Script::new("return 1").sha1(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        assert_eq!(Script::new("return 1").source(), "return 1");
    }
}
