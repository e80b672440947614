//! Emulation of Upstash's `allow-key-locking` script flag.
//!
//! Upstash scripts start with `#!lua flags=allow-key-locking` (lock only the
//! script's `KEYS`, not the whole database). Stock redis-server refuses that
//! flag (`ERR Unexpected flag in script shebang: allow-key-locking`), so before
//! a command goes to Redis (`/`, `/pipeline`, `/multi-exec`) the gateway:
//!
//! - `EVAL`/`EVAL_RO` of a source whose first line is a `#!lua` shebang with
//!   `allow-key-locking` in its `flags=` list: sends the source without that
//!   flag (other flags and other shebang tokens stay; `flags=` goes when the
//!   list becomes empty) and remembers `sha1(original) → sha1(rewritten)`.
//! - `EVALSHA`/`EVALSHA_RO` of a digest it remembers: sends the rewritten
//!   digest. Unknown digests pass through: Redis answers `NOSCRIPT`, and the
//!   client falls back to `EVAL`, which teaches the gateway again (this is
//!   what happens after a gateway restart).
//! - `SCRIPT LOAD` of a flagged source: loads the rewritten source, remembers
//!   the digests, and answers with the digest of the *original* source, as
//!   Upstash would. `SCRIPT EXISTS`: remembered digests are mapped.
//!
//! It only emulates the flag: it does not enforce that scripts touch only
//! their `KEYS` (the store's tests check that statically). The map holds one
//! entry per distinct flagged script and is never pruned (a development tool).

use std::collections::HashMap;
use std::sync::Mutex;

use sha1::{Digest, Sha1};

use crate::protocol::Args;

/// The Upstash-only flag.
const FLAG: &str = "allow-key-locking";

/// Rewrites script commands on their way to Redis; shared by every request.
#[derive(Debug, Default)]
pub struct ScriptTranslator {
    /// Lowercase hex digest of a flagged source → that of its rewritten source.
    digests: Mutex<HashMap<String, String>>,
}

impl ScriptTranslator {
    /// Rewrites `args` in place. `Some(digest)` when a successful reply must be
    /// replaced by that digest (`SCRIPT LOAD` of a flagged source).
    pub fn translate(&self, args: &mut Args) -> Option<String> {
        let name = args.first()?.to_ascii_uppercase();
        match name.as_slice() {
            b"EVAL" | b"EVAL_RO" => {
                self.rewrite_source(args.get_mut(1)?);
                None
            }
            b"EVALSHA" | b"EVALSHA_RO" => {
                let digest = args.get_mut(1)?;
                if let Some(rewritten) = self.lookup(digest) {
                    *digest = rewritten.into_bytes();
                }
                None
            }
            b"SCRIPT" => {
                let sub = args.get(1)?.to_ascii_uppercase();
                match sub.as_slice() {
                    b"LOAD" => self.rewrite_source(args.get_mut(2)?),
                    b"EXISTS" => {
                        for digest in args.iter_mut().skip(2) {
                            if let Some(rewritten) = self.lookup(digest) {
                                *digest = rewritten.into_bytes();
                            }
                        }
                        None
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Replaces a flagged source by its rewrite and remembers the digests;
    /// returns the original digest.
    fn rewrite_source(&self, source: &mut Vec<u8>) -> Option<String> {
        let rewritten = strip_flag(source)?;
        let original = sha1_hex(source);
        let new = sha1_hex(&rewritten);
        self.digests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(original.clone(), new);
        *source = rewritten;
        Some(original)
    }

    fn lookup(&self, digest: &[u8]) -> Option<String> {
        let digest = std::str::from_utf8(digest).ok()?.to_ascii_lowercase();
        self.digests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&digest)
            .cloned()
    }
}

/// Lowercase hex SHA-1, as Redis names scripts.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// The source without `allow-key-locking` in its shebang, or `None` when the
/// first line is not a `#!lua` shebang carrying that flag.
fn strip_flag(source: &[u8]) -> Option<Vec<u8>> {
    let end = source
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(source.len());
    let line = std::str::from_utf8(&source[..end]).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut tokens = line.split_ascii_whitespace();
    if tokens.next()? != "#!lua" {
        return None;
    }
    let mut found = false;
    let mut kept = vec!["#!lua".to_owned()];
    for token in tokens {
        match token.strip_prefix("flags=") {
            Some(list) => {
                let flags: Vec<&str> = list
                    .split(',')
                    .filter(|flag| {
                        let ours = *flag == FLAG;
                        found |= ours;
                        !ours
                    })
                    .collect();
                if !flags.iter().all(|flag| flag.is_empty()) {
                    kept.push(format!("flags={}", flags.join(",")));
                }
            }
            None => kept.push(token.to_owned()),
        }
    }
    if !found {
        return None;
    }
    let mut rewritten = kept.join(" ").into_bytes();
    rewritten.extend_from_slice(&source[end..]);
    Some(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(source: &str) -> Option<String> {
        strip_flag(source.as_bytes()).map(|s| String::from_utf8(s).unwrap())
    }

    #[test]
    fn only_the_flag_goes() {
        assert_eq!(
            strip("#!lua flags=allow-key-locking\nreturn 1").as_deref(),
            Some("#!lua\nreturn 1")
        );
        assert_eq!(
            strip("#!lua flags=no-writes,allow-key-locking\nreturn 1").as_deref(),
            Some("#!lua flags=no-writes\nreturn 1")
        );
        assert_eq!(
            strip("#!lua name=x flags=allow-key-locking,allow-oom").as_deref(),
            Some("#!lua name=x flags=allow-oom")
        );
        assert_eq!(strip("#!lua flags=no-writes\nreturn 1"), None);
        assert_eq!(strip("return 1 -- #!lua flags=allow-key-locking"), None);
        assert_eq!(strip("\n#!lua flags=allow-key-locking\n"), None);
        assert_eq!(strip("#!luax flags=allow-key-locking\n"), None);
    }

    #[test]
    fn digests_are_mapped() {
        let scripts = ScriptTranslator::default();
        let source = "#!lua flags=allow-key-locking\nreturn 1";
        let original = sha1_hex(source.as_bytes());
        let rewritten = sha1_hex(b"#!lua\nreturn 1");
        let mut args: Args = vec![b"evalsha".to_vec(), original.clone().into_bytes()];
        assert_eq!(scripts.translate(&mut args), None);
        assert_eq!(args[1], original.as_bytes(), "unknown digests pass through");

        let mut load: Args = vec![
            b"SCRIPT".to_vec(),
            b"load".to_vec(),
            source.as_bytes().to_vec(),
        ];
        assert_eq!(scripts.translate(&mut load), Some(original.clone()));
        assert_eq!(load[2], b"#!lua\nreturn 1");

        assert_eq!(scripts.translate(&mut args), None);
        assert_eq!(args[1], rewritten.as_bytes());
        let mut exists: Args = vec![
            b"SCRIPT".to_vec(),
            b"EXISTS".to_vec(),
            original.to_uppercase().into_bytes(),
            b"abc".to_vec(),
        ];
        scripts.translate(&mut exists);
        assert_eq!(exists[2], rewritten.as_bytes());
        assert_eq!(exists[3], b"abc");
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
