//! Rate limits: one counter per key and fixed window, checked and counted
//! by Lua (the arithmetic of [`crate::rate`], written again in
//! `lua/lib.lua` and pinned to it by a test). The same checks run inside the
//! chat and upload submission scripts.

use flowchat_domain::Timestamp;
use flowchat_upstash::{Arg, Value};

use super::replies::{count, tagged, unexpected};
use super::{UpstashStore, scripts};
use crate::rate;
use crate::{RateCheck, RateDecision, StoreError};

/// Extra time a rate counter lives past the window that still needs it.
const RATE_COUNTER_SLACK_MS: i64 = 1000;

impl UpstashStore {
    /// Keys and per-check arguments of rate checks, as the scripts take them.
    pub(super) fn rate_parts(
        &self,
        checks: &[RateCheck],
        now: Timestamp,
    ) -> (Vec<String>, Vec<Arg>) {
        let mut keys = Vec::with_capacity(checks.len() * 2);
        let mut args = Vec::with_capacity(checks.len() * 5);
        for check in checks {
            let w = rate::windows(check.rule, now);
            keys.push(self.keys.rate(&check.key, w.window_ms, w.current_start));
            keys.push(self.keys.rate(&check.key, w.window_ms, w.previous_start));
            args.push(Arg::from(check.rule.limit));
            args.push(Arg::from(w.window_ms));
            args.push(Arg::from(w.current_start));
            args.push(Arg::from(w.current_end));
            // The current window's counter is read until the next window ends.
            let ttl = w.current_end.saturating_add(w.window_ms) - now.as_millis();
            args.push(Arg::from(ttl.saturating_add(RATE_COUNTER_SLACK_MS).max(1)));
        }
        (keys, args)
    }
}

/// Reads a rate script's answer: `{'ok', remaining...}` or
/// `{'limited', index, retry_after_ms}`; `Err(refusal)` for a refusal.
pub(super) fn rate_outcome(
    parts: &mut std::vec::IntoIter<Value>,
    status: &str,
    checks: &[RateCheck],
    now: Timestamp,
) -> Result<Result<RateDecision, RateDecision>, StoreError> {
    let decision = |check: &RateCheck, allowed, remaining, retry_after_ms| RateDecision {
        allowed,
        limit: check.rule.limit,
        remaining,
        reset_at: Timestamp::from_millis(rate::windows(check.rule, now).current_end),
        retry_after_ms,
    };
    match status {
        "ok" => {
            let mut decisions = Vec::with_capacity(checks.len());
            for check in checks {
                let remaining = count(parts.next().unwrap_or(Value::Nil), "remaining hits")?;
                decisions.push(decision(
                    check,
                    true,
                    u32::try_from(remaining).unwrap_or(u32::MAX),
                    0,
                ));
            }
            Ok(Ok(rate::combine(&decisions, now)))
        }
        "limited" => {
            let index = count(parts.next().unwrap_or(Value::Nil), "refusing check")?;
            let wait = count(parts.next().unwrap_or(Value::Nil), "retry after")?;
            let check = usize::try_from(index)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| checks.get(i))
                .ok_or_else(|| unexpected("rate", index))?;
            Ok(Err(decision(
                check,
                false,
                0,
                i64::try_from(wait).unwrap_or(i64::MAX),
            )))
        }
        other => Err(unexpected("rate", other)),
    }
}

/// One script: every check evaluated with the [`rate`] arithmetic (in
/// Lua), then all counted or none. No request at all without checks.
pub(super) async fn hit(
    store: &UpstashStore,
    checks: &[RateCheck],
    now: Timestamp,
) -> Result<RateDecision, StoreError> {
    if checks.is_empty() {
        return Ok(rate::combine(&[], now));
    }
    let (keys, rate_args) = store.rate_parts(checks, now);
    let mut args = vec![
        Arg::from(now.as_millis()),
        Arg::from(rate::MIN_RETRY_AFTER_MS),
        Arg::from(checks.len()),
    ];
    args.extend(rate_args);
    let reply = store
        .eval(&scripts::HIT_RATE_LIMITS, keys, args, false)
        .await?;
    let (status, mut parts) = tagged(reply, "rate")?;
    Ok(match rate_outcome(&mut parts, &status, checks, now)? {
        Ok(decision) | Err(decision) => decision,
    })
}

#[cfg(test)]
mod tests {
    use flowchat_gateway::testing::TestGateway;

    use super::*;
    use crate::RateRule;
    use crate::upstash::replies::array;
    use crate::upstash::test_store as store;

    const T0: i64 = 1_800_000_000_000;

    /// A small deterministic generator (64-bit LCG) for probe inputs.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n.max(1)
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[usize::try_from(self.below(items.len() as u64)).unwrap()]
        }
    }

    /// The Lua decision equals `rate::decide` on every input tried: limits
    /// from 0 to a million, windows from 1 ms to a day, counts around and
    /// far beyond the limit, and instants all over the window.
    #[tokio::test]
    async fn lua_rate_arithmetic_matches_rust() {
        let env = TestGateway::start().await.expect("a gateway");
        let store = store(&env, "rate-probe");
        let mut rng = Lcg(42);
        let mut cases = Vec::new();
        for _ in 0..3000 {
            let window = rng.pick(&[1, 2, 7, 1000, 9_999, 10_000, 60_000, 3_600_000, 86_400_000]);
            let limit: u32 = rng.pick(&[0, 1, 2, 3, 5, 10, 60, 999, 1_000_000]);
            let near = u64::from(limit);
            let mut count = || match rng.below(4) {
                0 => 0,
                1 => near.saturating_sub(rng.below(3)),
                2 => near + rng.below(3),
                _ => rng.below(near * 3 + 5),
            };
            let (current, previous) = (count(), count());
            let offset = i64::try_from(rng.below(u64::try_from(window).unwrap() * 3)).unwrap();
            let now = Timestamp::from_millis(T0 + offset - window);
            cases.push((
                RateRule {
                    limit,
                    window_ms: window,
                },
                now,
                current,
                previous,
            ));
        }
        for chunk in cases.chunks(500) {
            let calls = chunk
                .iter()
                .map(|(rule, now, current, previous)| {
                    let w = rate::windows(*rule, *now);
                    (
                        Vec::new(),
                        vec![
                            Arg::from(rule.limit),
                            Arg::from(w.window_ms),
                            Arg::from(now.as_millis()),
                            Arg::from(w.current_start),
                            Arg::from(w.current_end),
                            Arg::from(*current),
                            Arg::from(*previous),
                            Arg::from(rate::MIN_RETRY_AFTER_MS),
                        ],
                    )
                })
                .collect();
            let replies = store
                .eval_many(&scripts::RATE_PROBE, calls)
                .await
                .expect("probe");
            for ((rule, now, current, previous), reply) in chunk.iter().zip(replies) {
                let parts = array(reply.expect("probe reply"), "probe").unwrap();
                let got: Vec<i64> = parts.iter().map(|v| v.as_i64().unwrap()).collect();
                let want = rate::decide(*rule, *now, *current, *previous);
                assert_eq!(
                    got,
                    vec![
                        i64::from(want.allowed),
                        i64::from(want.remaining),
                        want.retry_after_ms
                    ],
                    "rule {rule:?} at {} with current {current}, previous {previous}",
                    now.as_millis() - T0
                );
            }
        }
    }
}
