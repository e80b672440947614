use flowchat_domain::config::DrainSettings;

/// Delay before the next attempt after `attempts` failed ones: the base
/// doubled per attempt, capped. Deterministic so operators can predict it.
pub fn retry_delay_ms(settings: &DrainSettings, attempts: u32) -> i64 {
    let base = settings.retry_base_secs as i64 * 1000;
    let factor = 1i64 << attempts.saturating_sub(1).min(20);
    base.saturating_mul(factor)
        .min(settings.retry_max_secs as i64 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let s = DrainSettings {
            max_attempts: 5,
            lease_secs: 60,
            retry_base_secs: 2,
            retry_max_secs: 10,
            partial_flush_ms: 250,
            shutdown_grace_secs: 20,
        };
        assert_eq!(retry_delay_ms(&s, 1), 2_000);
        assert_eq!(retry_delay_ms(&s, 2), 4_000);
        assert_eq!(retry_delay_ms(&s, 3), 8_000);
        assert_eq!(retry_delay_ms(&s, 4), 10_000);
        assert_eq!(retry_delay_ms(&s, 60), 10_000);
    }
}
