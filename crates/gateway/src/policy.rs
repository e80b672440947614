//! Commands the gateway refuses before they reach Redis.
//!
//! - Blocking commands: Upstash cannot run them over REST either, and FlowChat's
//!   consumers must poll; refusing them here keeps local tests honest.
//! - Commands that change the state of the connection they run on (MULTI, SELECT,
//!   CLIENT REPLY, ...): single commands and pipelines share one multiplexed
//!   connection, so such a command would leak into other clients' requests.
//!   Transactions go through `POST /multi-exec`.

use crate::protocol::Args;

/// The error Upstash-protocol clients get for a blocking command.
pub const BLOCKING_ERROR: &str = "ERR blocking commands are not supported over REST";

/// `Err(message)` when the command must not be forwarded.
pub fn check(args: &Args) -> Result<(), String> {
    let name = args[0].to_ascii_uppercase();
    let name = String::from_utf8_lossy(&name);
    match name.as_ref() {
        "BLPOP" | "BRPOP" | "BRPOPLPUSH" | "BLMOVE" | "BLMPOP" | "BZPOPMIN" | "BZPOPMAX"
        | "BZMPOP" | "WAIT" | "WAITAOF" | "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE"
        | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" | "MONITOR" | "SYNC" | "PSYNC" => {
            Err(BLOCKING_ERROR.to_owned())
        }
        "XREAD" if stream_read_blocks(&args[1..]) => Err(BLOCKING_ERROR.to_owned()),
        // XREADGROUP GROUP <group> <consumer> [options] STREAMS ...
        "XREADGROUP" if args.len() > 4 && stream_read_blocks(&args[4..]) => {
            Err(BLOCKING_ERROR.to_owned())
        }
        "MULTI" | "EXEC" | "DISCARD" => Err(format!(
            "ERR {name} is not supported as a single command over REST: send the transaction to /multi-exec"
        )),
        "WATCH" | "UNWATCH" | "SELECT" | "AUTH" | "HELLO" | "RESET" | "QUIT" | "READONLY"
        | "READWRITE" | "REPLCONF" => Err(format!("ERR {name} is not supported over REST")),
        "CLIENT" if client_subcommand_changes_connection(args) => Err(format!(
            "ERR CLIENT {} is not supported over REST",
            subcommand(args)
        )),
        _ => Ok(()),
    }
}

/// Whether the options of XREAD (or of XREADGROUP after its GROUP clause) hold BLOCK.
/// Only the options before STREAMS are read: a stream may be named "BLOCK".
fn stream_read_blocks(options: &[Vec<u8>]) -> bool {
    let mut i = 0;
    while i < options.len() {
        match options[i].to_ascii_uppercase().as_slice() {
            b"BLOCK" => return true,
            b"COUNT" => i += 2,
            b"NOACK" => i += 1,
            // STREAMS, or something Redis will reject itself.
            _ => return false,
        }
    }
    false
}

fn subcommand(args: &Args) -> String {
    args.get(1)
        .map(|sub| String::from_utf8_lossy(&sub.to_ascii_uppercase()).into_owned())
        .unwrap_or_default()
}

fn client_subcommand_changes_connection(args: &Args) -> bool {
    matches!(
        subcommand(args).as_str(),
        "REPLY" | "TRACKING" | "CACHING" | "SETNAME" | "SETINFO" | "NO-EVICT" | "NO-TOUCH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn blocking_commands_are_refused() {
        for words in [
            &["BLPOP", "q", "0"][..],
            &["brpop", "q", "1"],
            &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
            &["BZPOPMIN", "z", "0"],
            &["WAIT", "1", "0"],
            &["SUBSCRIBE", "c"],
            &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
            &["XREAD", "COUNT", "5", "block", "10", "STREAMS", "s", "$"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "1",
                "NOACK",
                "BLOCK",
                "5",
                "STREAMS",
                "s",
                ">",
            ],
        ] {
            assert_eq!(
                check(&args(words)),
                Err(BLOCKING_ERROR.to_owned()),
                "{words:?}"
            );
        }
    }

    #[test]
    fn non_blocking_reads_pass() {
        for words in [
            &["XREAD", "COUNT", "5", "STREAMS", "BLOCK", "0"][..],
            &[
                "XREADGROUP",
                "GROUP",
                "BLOCK",
                "c",
                "COUNT",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            &["LPOP", "q"],
            &["EVAL", "return redis.call('BLPOP', KEYS[1], 0)", "1", "q"],
            &["CLIENT", "ID"],
        ] {
            assert_eq!(check(&args(words)), Ok(()), "{words:?}");
        }
    }

    #[test]
    fn connection_state_commands_are_refused() {
        for words in [
            &["MULTI"][..],
            &["exec"],
            &["WATCH", "k"],
            &["SELECT", "1"],
            &["CLIENT", "REPLY", "OFF"],
            &["HELLO", "3"],
        ] {
            assert!(check(&args(words)).is_err(), "{words:?}");
        }
    }
}
