//! How many followers — event streams, `?wait=` reads and synchronous
//! completions, each polling the store for up to 25 s — one session and one
//! client address may hold open at once.
//!
//! The count lives in this process: exact, free (no store round trip), and
//! a slot is given back by dropping its [`FollowerSlot`], which every exit
//! path does, a client that goes away included (the runtime drops the
//! response stream or the handler's future). A serverless instance counts
//! only its own connections, and one that serves a single request at a time
//! (Lambda, Vercel functions) never refuses; there the platform's
//! concurrency limit and the 25 s lifetime of a follower are the bound
//! (docs/security.md says so).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use flowchat_domain::SessionId;

use crate::error::ApiError;

/// Seconds a refused client is told to wait: a follower lasts at most 25 s,
/// most end far sooner (when the answer arrives).
pub(crate) const FOLLOWER_RETRY_AFTER_SECS: u32 = 5;

#[derive(Default)]
struct Counts {
    sessions: HashMap<String, u32>,
    ips: HashMap<String, u32>,
}

pub(crate) struct Followers {
    per_session: u32,
    per_ip: u32,
    counts: Mutex<Counts>,
}

impl Followers {
    pub(crate) fn new(per_session: u32, per_ip: u32) -> Self {
        Self {
            per_session,
            per_ip,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Counting is plain arithmetic that cannot panic midway, so a poisoned
    /// lock still holds consistent counts.
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more follower of `session` (none for an operator or
    /// an anonymous caller) from `ip_key`, or the limit it would exceed.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        session: Option<&SessionId>,
        ip_key: &str,
    ) -> Result<FollowerSlot, ApiError> {
        let mut counts = self.counts();
        let session = session.map(|s| s.to_string());
        if let Some(session) = &session
            && counts.sessions.get(session).copied().unwrap_or(0) >= self.per_session
        {
            return Err(ApiError::TooManyFollowers {
                scope: "session",
                limit: self.per_session,
                setting: "MAX_FOLLOWERS_PER_SESSION",
                retry_after_secs: FOLLOWER_RETRY_AFTER_SECS,
            });
        }
        if counts.ips.get(ip_key).copied().unwrap_or(0) >= self.per_ip {
            return Err(ApiError::TooManyFollowers {
                scope: "client address",
                limit: self.per_ip,
                setting: "MAX_FOLLOWERS_PER_IP",
                retry_after_secs: FOLLOWER_RETRY_AFTER_SECS,
            });
        }
        if let Some(session) = &session {
            *counts.sessions.entry(session.clone()).or_insert(0) += 1;
        }
        *counts.ips.entry(ip_key.to_owned()).or_insert(0) += 1;
        Ok(FollowerSlot {
            followers: self.clone(),
            session,
            ip_key: ip_key.to_owned(),
        })
    }

    /// Open followers of `session` and of `ip_key` (for tests and logs).
    #[cfg(test)]
    fn open(&self, session: &str, ip_key: &str) -> (u32, u32) {
        let counts = self.counts();
        (
            counts.sessions.get(session).copied().unwrap_or(0),
            counts.ips.get(ip_key).copied().unwrap_or(0),
        )
    }
}

/// One open follower; dropping it gives the slot back.
pub(crate) struct FollowerSlot {
    followers: Arc<Followers>,
    session: Option<String>,
    ip_key: String,
}

fn release(map: &mut HashMap<String, u32>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            // Empty entries would otherwise pile up, one per client ever seen.
            map.remove(key);
        }
    }
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        let mut counts = self.followers.counts();
        if let Some(session) = &self.session {
            release(&mut counts.sessions, session);
        }
        release(&mut counts.ips, &self.ip_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let followers = Arc::new(Followers::new(2, 3));
        let ana = SessionId::from_trusted("ana");
        let ben = SessionId::from_trusted("ben");
        let a1 = followers.acquire(Some(&ana), "ip").unwrap();
        let _a2 = followers.acquire(Some(&ana), "ip").unwrap();
        let refused = followers.acquire(Some(&ana), "ip").err().unwrap();
        assert!(
            refused.to_string().contains("MAX_FOLLOWERS_PER_SESSION"),
            "{refused}"
        );
        let _b1 = followers.acquire(Some(&ben), "ip").unwrap();
        let refused = followers.acquire(None, "ip").err().unwrap();
        assert!(
            refused.to_string().contains("MAX_FOLLOWERS_PER_IP"),
            "{refused}"
        );
        assert_eq!(followers.open("ana", "ip"), (2, 3));
        drop(a1);
        assert_eq!(followers.open("ana", "ip"), (1, 2));
        let _a3 = followers.acquire(Some(&ana), "ip").unwrap();
        let _other = followers.acquire(None, "other-ip").unwrap();
    }

    #[test]
    fn nothing_is_kept_once_every_slot_is_back() {
        let followers = Arc::new(Followers::new(1, 1));
        let ana = SessionId::from_trusted("ana");
        drop(followers.acquire(Some(&ana), "ip").unwrap());
        let counts = followers.counts();
        assert!(counts.sessions.is_empty() && counts.ips.is_empty());
    }
}
