//! The sliding-window rate-limit arithmetic every back end shares.
//!
//! Windows are fixed, `window_ms` long and aligned to the Unix epoch. A
//! limit's count at `now` is, as in `@upstash/ratelimit`'s sliding window,
//!
//! ```text
//! count = current + ⌊previous × (window_end − now) / window_ms⌋
//! ```
//!
//! where `current` and `previous` are the hits counted in the current and the
//! previous fixed window (the previous window's hits weighted by how much of
//! it still overlaps the sliding window, rounded down). A hit is allowed when
//! `count < limit`. Integer arithmetic only, so every back end (Rust here, a
//! Lua script on Redis) computes the same decision.
//!
//! Back ends store the two counters; this module turns them into a
//! [`RateDecision`]. Nothing here does I/O, so it builds for wasm32.

use flowchat_domain::Timestamp;

use crate::{RateDecision, RateRule};

/// The shortest `Retry-After` a refusal carries.
pub const MIN_RETRY_AFTER_MS: i64 = 1000;

/// The fixed windows around `now` for one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// The window length actually used (a rule's `window_ms`, at least 1).
    pub window_ms: i64,
    /// Start of the window `now` falls in (inclusive).
    pub current_start: i64,
    /// Start of the window before it.
    pub previous_start: i64,
    /// End of the current window (exclusive), the `reset_at` of a decision.
    pub current_end: i64,
}

/// The current and previous window of `rule` at `now`.
pub fn windows(rule: RateRule, now: Timestamp) -> Windows {
    let window_ms = rule.window_ms.max(1);
    let current_start = now.as_millis().div_euclid(window_ms) * window_ms;
    Windows {
        window_ms,
        current_start,
        previous_start: current_start.saturating_sub(window_ms),
        current_end: current_start.saturating_add(window_ms),
    }
}

/// The weighted count at `now` from the hits in the current and previous window.
pub fn weighted_count(rule: RateRule, now: Timestamp, current: u64, previous: u64) -> u64 {
    let w = windows(rule, now);
    let left = i128::from(w.current_end - now.as_millis()); // in (0, window_ms]
    let weighted_previous = i128::from(previous) * left / i128::from(w.window_ms);
    let total = i128::from(current) + weighted_previous;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// The decision for one more hit at `now`, given the hits already counted.
///
/// Allowed: `remaining` is what is left after this hit (`limit − count − 1`),
/// `retry_after_ms` is 0. Refused: `remaining` is 0 and `retry_after_ms` is
/// the time until the weighted count drops below the limit if nothing else
/// is counted meanwhile — which may lie beyond `reset_at` when the current
/// window alone already holds `limit` hits — and at least
/// [`MIN_RETRY_AFTER_MS`]. A hit at `now + retry_after_ms` is allowed.
/// `reset_at` is always the end of the current fixed window.
pub fn decide(rule: RateRule, now: Timestamp, current: u64, previous: u64) -> RateDecision {
    let w = windows(rule, now);
    let count = weighted_count(rule, now, current, previous);
    let limit = u64::from(rule.limit);
    let reset_at = Timestamp::from_millis(w.current_end);
    if count < limit {
        return RateDecision {
            allowed: true,
            limit: rule.limit,
            // count < limit ≤ u32::MAX, so this fits.
            remaining: u32::try_from(limit - count - 1).unwrap_or(0),
            reset_at,
            retry_after_ms: 0,
        };
    }
    let allowed_at = first_allowed_at(rule.limit, &w, current, previous);
    let wait = match allowed_at {
        Some(t) => t.saturating_sub(now.as_millis()),
        // A limit of 0 never allows anything: come back after this window.
        None => w.current_end - now.as_millis(),
    };
    RateDecision {
        allowed: false,
        limit: rule.limit,
        remaining: 0,
        reset_at,
        retry_after_ms: wait.max(MIN_RETRY_AFTER_MS),
    }
}

/// The first instant (ms) at which a hit would be allowed, assuming no more
/// hits are counted; `None` when the limit is 0.
fn first_allowed_at(limit: u32, w: &Windows, current: u64, previous: u64) -> Option<i64> {
    if limit == 0 {
        return None;
    }
    let limit = i128::from(limit);
    let window = i128::from(w.window_ms);
    let current = i128::from(current);
    let previous = i128::from(previous);
    let end = i128::from(w.current_end);
    let at = if current < limit {
        // Still in this window: with d ms left, the count is
        // current + ⌊previous·d/window⌋, allowed once previous·d ≤ (limit−current)·window − 1.
        if previous == 0 {
            return Some(w.current_start);
        }
        let d_max = ((limit - current) * window - 1) / previous;
        end - d_max
    } else {
        // This window alone is full; in the next one (d ms before its end)
        // the count is ⌊current·d/window⌋, allowed once current·d ≤ limit·window − 1.
        let d_max = (limit * window - 1) / current;
        end + window - d_max
    };
    Some(i64::try_from(at).unwrap_or(i64::MAX))
}

/// Picks what a multi-check hit returns: the first refusal if any (nothing
/// is counted then), else the allowed decision with the fewest `remaining`.
///
/// With no decisions at all the hit is allowed and unlimited: `limit` and
/// `remaining` are `u32::MAX`, `reset_at` is `now`.
pub fn combine(decisions: &[RateDecision], now: Timestamp) -> RateDecision {
    if let Some(refused) = decisions.iter().find(|d| !d.allowed) {
        return *refused;
    }
    decisions
        .iter()
        .min_by_key(|d| d.remaining)
        .copied()
        .unwrap_or(RateDecision {
            allowed: true,
            limit: u32::MAX,
            remaining: u32::MAX,
            reset_at: now,
            retry_after_ms: 0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a multiple of 60 s

    fn rule(limit: u32, window_ms: i64) -> RateRule {
        RateRule { limit, window_ms }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    #[test]
    fn windows_align_to_the_epoch() {
        let w = windows(rule(1, 10_000), at(12_345));
        assert_eq!(w.current_start, T0 + 10_000);
        assert_eq!(w.previous_start, T0);
        assert_eq!(w.current_end, T0 + 20_000);
    }

    #[test]
    fn previous_window_is_weighted_and_rounded_down() {
        let r = rule(10, 10_000);
        assert_eq!(weighted_count(r, at(10_000), 0, 10), 10);
        assert_eq!(weighted_count(r, at(12_500), 0, 10), 7);
        assert_eq!(weighted_count(r, at(15_000), 3, 10), 8);
        assert_eq!(weighted_count(r, at(19_999), 0, 10), 0);
    }

    #[test]
    fn allowed_decisions_count_this_hit_in_remaining() {
        let d = decide(rule(5, 60_000), at(1), 0, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
        assert_eq!(d.reset_at, at(60_000));
        let d = decide(rule(5, 60_000), at(1), 4, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn retry_after_points_at_the_first_allowed_instant() {
        // Full current window: allowed only once the next window has moved
        // far enough for the weighted count to drop below the limit.
        let r = rule(5, 60_000);
        let now = at(10_000);
        let d = decide(r, now, 5, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 50_001);
        let later = now.plus_millis(d.retry_after_ms);
        assert!(decide(r, later, 0, 5).allowed);
        assert!(!decide(r, later.plus_millis(-1), 0, 5).allowed);

        // Refused only because of the previous window.
        let r = rule(10, 10_000);
        let now = at(12_000); // previous 10 weighted 8, current 2
        let d = decide(r, now, 2, 10);
        assert!(!d.allowed);
        let first = first_allowed_at(10, &windows(r, now), 2, 10).unwrap();
        assert!(decide(r, Timestamp::from_millis(first), 2, 10).allowed);
        assert!(!decide(r, Timestamp::from_millis(first - 1), 2, 10).allowed);
        assert_eq!(
            d.retry_after_ms,
            (first - now.as_millis()).max(MIN_RETRY_AFTER_MS)
        );
    }

    #[test]
    fn a_zero_limit_refuses_until_the_window_ends_at_least() {
        let d = decide(rule(0, 60_000), at(59_900), 0, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, MIN_RETRY_AFTER_MS);
        let d = decide(rule(0, 60_000), at(1_000), 0, 0);
        assert_eq!(d.retry_after_ms, 59_000);
    }

    #[test]
    fn combine_prefers_the_first_refusal_then_the_tightest() {
        let a = decide(rule(2, 60_000), at(0), 0, 0);
        let b = decide(rule(5, 60_000), at(0), 0, 0);
        assert_eq!(combine(&[b, a], at(0)), a);
        let refused = decide(rule(1, 60_000), at(0), 1, 0);
        assert_eq!(combine(&[a, refused, b], at(0)), refused);
        assert!(combine(&[], at(0)).allowed);
    }
}
