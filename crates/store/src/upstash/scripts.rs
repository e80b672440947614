//! The Lua scripts of the Upstash back end.
//!
//! Each script is `lua/lib.lua` (shared helpers) followed by its own body,
//! after the shebang line that lets Upstash lock only the script's keys
//! instead of the whole database. With that flag every key a script touches
//! must come in `KEYS`; the scripts never build a key name themselves (see
//! the check in the tests below).
//!
//! Stock Redis refuses that flag (`Unexpected flag in script shebang`); the
//! local gateway (`flowchat-gateway`) emulates it, so the store sends the same
//! scripts everywhere.

use std::sync::LazyLock;

use flowchat_upstash::Script;

/// The first line of every script (spelled out in `script!`, which needs a
/// literal; the tests check the two agree).
#[cfg(test)]
pub(crate) const SHEBANG: &str = "#!lua flags=allow-key-locking\n";

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                "#!lua flags=allow-key-locking\n",
                include_str!("lua/lib.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

pub(crate) static SUBMIT_CHAT: LazyLock<Script> = script!("submit_chat.lua");
pub(crate) static HIT_RATE_LIMITS: LazyLock<Script> = script!("hit_rate_limits.lua");
pub(crate) static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");
pub(crate) static RESERVE: LazyLock<Script> = script!("reserve.lua");
pub(crate) static TAKE: LazyLock<Script> = script!("take.lua");
pub(crate) static FAIL: LazyLock<Script> = script!("fail.lua");
pub(crate) static RELEASE: LazyLock<Script> = script!("release.lua");
pub(crate) static COMPLETE: LazyLock<Script> = script!("complete.lua");
pub(crate) static PROGRESS: LazyLock<Script> = script!("progress.lua");
pub(crate) static REPLAY: LazyLock<Script> = script!("replay.lua");
pub(crate) static QUEUE_STATS: LazyLock<Script> = script!("queue_stats.lua");
pub(crate) static DEAD_LETTERS: LazyLock<Script> = script!("dead_letters.lua");
pub(crate) static DELETE_CONVERSATION: LazyLock<Script> = script!("delete_conversation.lua");
pub(crate) static RECORD_FEEDBACK: LazyLock<Script> = script!("record_feedback.lua");
pub(crate) static UPSERT_DOCUMENT: LazyLock<Script> = script!("upsert_document.lua");
pub(crate) static REMOVE_DOCUMENT: LazyLock<Script> = script!("remove_document.lua");
pub(crate) static LIST_DOCUMENTS: LazyLock<Script> = script!("list_documents.lua");
pub(crate) static SUBMIT_UPLOAD: LazyLock<Script> = script!("submit_upload.lua");
pub(crate) static DELETE_DOCUMENT: LazyLock<Script> = script!("delete_document.lua");
pub(crate) static FORGET_DOCUMENT_OWNER: LazyLock<Script> = script!("forget_document_owner.lua");
pub(crate) static FORGET_NAMESPACE: LazyLock<Script> = script!("forget_namespace.lua");

/// Evaluates the rate-limit helper on its own, so tests can compare the Lua
/// arithmetic with [`crate::rate::decide`] on many inputs.
/// KEYS: none. ARGV: limit, window, now, current_start, current_end,
/// current, previous, min retry. Answers {allowed (1/0), remaining, retry_after_ms}.
#[cfg(test)]
pub(crate) static RATE_PROBE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-key-locking\n",
        include_str!("lua/lib.lua"),
        "\n",
        "local a = {}\n",
        "for i = 1, 8 do a[i] = tonumber(ARGV[i]) end\n",
        "local allowed, remaining, wait = rate_decide(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])\n",
        "return {allowed and 1 or 0, remaining, wait}\n",
    ))
});

/// Every script, for [`super::UpstashStore::load_scripts`].
pub(crate) fn all() -> [&'static Script; 20] {
    [
        &SUBMIT_CHAT,
        &HIT_RATE_LIMITS,
        &ENQUEUE,
        &RESERVE,
        &TAKE,
        &FAIL,
        &RELEASE,
        &COMPLETE,
        &PROGRESS,
        &REPLAY,
        &QUEUE_STATS,
        &DEAD_LETTERS,
        &DELETE_CONVERSATION,
        &UPSERT_DOCUMENT,
        &REMOVE_DOCUMENT,
        &LIST_DOCUMENTS,
        &SUBMIT_UPLOAD,
        &DELETE_DOCUMENT,
        &FORGET_DOCUMENT_OWNER,
        &FORGET_NAMESPACE,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands whose key comes after a subcommand.
    const KEY_AFTER_SUBCOMMAND: &[&str] = &["XGROUP", "XINFO"];

    /// Every `redis.call`/`redis.pcall` names its key through `KEYS[...]` or a
    /// `k_*` local bound from KEYS, and every `k_*` local is bound only from
    /// KEYS: no script builds a key name, so all keys are declared.
    #[test]
    fn scripts_only_touch_declared_keys() {
        for script in all() {
            let source = script.source();
            assert!(source.starts_with(SHEBANG), "the shebang comes first");
            assert!(
                source.lines().skip(1).all(|line| !line.starts_with("#!")),
                "one shebang, on the first line"
            );
            for (at, _) in source.match_indices("redis.") {
                let rest = &source[at..];
                let Some(open) = rest.find('(') else { continue };
                let head = &rest[..open];
                if head != "redis.call" && head != "redis.pcall" {
                    continue;
                }
                let args: Vec<&str> = rest[open + 1..]
                    .split(')')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .collect();
                let name = args[0].trim_matches('\'').trim_matches('"');
                let key_at = if name == "XREADGROUP" {
                    args.iter().position(|a| *a == "'STREAMS'").map(|p| p + 1)
                } else if KEY_AFTER_SUBCOMMAND.contains(&name) {
                    Some(2)
                } else {
                    Some(1)
                };
                let Some(key) = key_at.and_then(|at| args.get(at)) else {
                    continue;
                };
                assert!(
                    key.starts_with("k_") || key.starts_with("KEYS["),
                    "{name} in a script uses key expression {key:?}:\n{}",
                    &rest[..rest.find('\n').unwrap_or(rest.len())]
                );
            }
            for line in source.lines() {
                let line = line.trim();
                if let Some(decl) = line.strip_prefix("local k_") {
                    let (_, value) = decl.split_once('=').expect("a k_ local is assigned");
                    assert!(
                        value.split(',').all(|v| v.trim().starts_with("KEYS[")),
                        "k_ locals are bound from KEYS only: {line}"
                    );
                }
            }
        }
    }

    #[test]
    fn scripts_are_distinct() {
        let mut digests: Vec<&str> = all().iter().map(|s| s.sha1()).collect();
        digests.sort_unstable();
        digests.dedup();
        assert_eq!(digests.len(), all().len());
    }
}
