//! Rate-limit windows: one row per key, window length and window start,
//! counting hits. Checks are evaluated first and counted only when every
//! one allows the hit, inside the caller's transaction, so a chat or upload
//! submission refused for any reason counts nothing. The arithmetic is in
//! [`crate::rate`].

use std::sync::atomic::Ordering;

use flowchat_domain::Timestamp;
use rusqlite::{Connection, params};

use super::{Inner, SqliteStore, immediate};
use crate::codec::corrupt;
use crate::rate;
use crate::{RateCheck, RateDecision, StoreError};

/// How often (in the callers' time) stale rate-limit windows are swept.
const RATE_SWEEP_EVERY_MS: i64 = 60_000;

/// One rate check evaluated inside a transaction, ready to be counted.
pub(super) struct Evaluated<'a> {
    check: &'a RateCheck,
    window_ms: i64,
    current_start: i64,
    decision: RateDecision,
}

/// Evaluates every check without counting. `Err(decision)` is the first refusal.
pub(super) fn evaluate<'a>(
    conn: &Connection,
    checks: &'a [RateCheck],
    now: Timestamp,
) -> Result<Result<Vec<Evaluated<'a>>, RateDecision>, StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT window_start, hits FROM rate_windows
         WHERE key = ?1 AND window_ms = ?2 AND window_start IN (?3, ?4)",
    )?;
    let mut evaluated = Vec::with_capacity(checks.len());
    for check in checks {
        let windows = rate::windows(check.rule, now);
        let (mut current, mut previous) = (0u64, 0u64);
        let mut rows = select.query(params![
            check.key,
            windows.window_ms,
            windows.current_start,
            windows.previous_start
        ])?;
        while let Some(row) = rows.next()? {
            let start: i64 = row.get(0)?;
            let hits: i64 = row.get(1)?;
            let hits = u64::try_from(hits).map_err(|_| corrupt("rate counter", hits))?;
            if start == windows.current_start {
                current = hits;
            } else {
                previous = hits;
            }
        }
        let decision = rate::decide(check.rule, now, current, previous);
        if !decision.allowed {
            return Ok(Err(decision));
        }
        evaluated.push(Evaluated {
            check,
            window_ms: windows.window_ms,
            current_start: windows.current_start,
            decision,
        });
    }
    Ok(Ok(evaluated))
}

/// Counts one hit on every evaluated check and returns the combined decision;
/// now and then deletes windows too old to matter (older than the previous one).
pub(super) fn count(
    conn: &Connection,
    inner: &Inner,
    evaluated: &[Evaluated<'_>],
    now: Timestamp,
) -> Result<RateDecision, StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO rate_windows (key, window_ms, window_start, hits) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (key, window_ms, window_start) DO UPDATE SET hits = hits + 1",
    )?;
    for e in evaluated {
        upsert.execute(params![e.check.key, e.window_ms, e.current_start])?;
    }
    let now_ms = now.as_millis();
    if !evaluated.is_empty() && now_ms >= inner.next_rate_sweep.load(Ordering::Relaxed) {
        inner.next_rate_sweep.store(
            now_ms.saturating_add(RATE_SWEEP_EVERY_MS),
            Ordering::Relaxed,
        );
        conn.prepare_cached("DELETE FROM rate_windows WHERE window_start + 2 * window_ms <= ?1")?
            .execute([now_ms])?;
    }
    let decisions: Vec<RateDecision> = evaluated.iter().map(|e| e.decision).collect();
    Ok(rate::combine(&decisions, now))
}

/// See [`rate`] for the arithmetic: all checks are evaluated in one write
/// transaction and counted only if every one allows the hit.
pub(super) async fn hit(
    store: &SqliteStore,
    checks: &[RateCheck],
    now: Timestamp,
) -> Result<RateDecision, StoreError> {
    let checks = checks.to_vec();
    store
        .run(move |conn, inner| {
            let tx = immediate(conn)?;
            let evaluated = match evaluate(&tx, &checks, now)? {
                Ok(evaluated) => evaluated,
                Err(refused) => return Ok(refused),
            };
            let decision = count(&tx, inner, &evaluated, now)?;
            tx.commit()?;
            Ok(decision)
        })
        .await
}
