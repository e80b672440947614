//! The one retry policy every call shares: what is worth another try, how
//! long to wait, and when a 401 earns a fresh credential. The loops around
//! an attempt ask [`Retrier::plan`] after each failure, so streaming (which
//! must also tell its reader to start over) and plain calls follow the same
//! rules.

use std::time::{Duration, SystemTime};

use crate::error::LlmError;
use crate::settings::HttpSettings;

/// How one try failed, as far as retrying is concerned.
#[derive(Debug)]
pub(crate) enum AttemptFailure {
    /// Worth another try; `retry_after` is the server's own wish, which
    /// replaces the computed backoff.
    Retryable {
        error: LlmError,
        retry_after: Option<Duration>,
    },
    Permanent(LlmError),
    /// A 401 with `credential`: a fresh credential may fix it, once.
    Unauthorized {
        error: LlmError,
        credential: Option<String>,
    },
}

impl AttemptFailure {
    pub fn retryable(error: LlmError) -> Self {
        AttemptFailure::Retryable {
            error,
            retry_after: None,
        }
    }
}

/// Lets the policy drop a credential that drew a 401.
#[async_trait::async_trait]
pub(crate) trait CredentialSource: Send + Sync {
    /// Forgets `credential` if it is still the current one; false when no
    /// other credential can be obtained (a static API key).
    async fn invalidate(&self, credential: Option<&str>) -> bool;
}

pub(crate) struct Retrier<'a> {
    http: &'a HttpSettings,
    tries: u32,
    retries: u32,
    refreshed: bool,
}

impl<'a> Retrier<'a> {
    pub fn new(http: &'a HttpSettings) -> Self {
        Retrier {
            http,
            tries: 0,
            retries: 0,
            refreshed: false,
        }
    }

    /// Call before every try.
    pub fn start_try(&mut self) {
        self.tries += 1;
    }

    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// After a failed try: `Ok(delay)` when another try should follow after
    /// `delay`, or the error to report. The refresh after a 401 is not a
    /// backoff retry: it does not wait and does not use up `max_retries`.
    pub async fn plan(
        &mut self,
        failure: AttemptFailure,
        credentials: &dyn CredentialSource,
    ) -> Result<Duration, LlmError> {
        match failure {
            AttemptFailure::Permanent(error) => Err(error),
            AttemptFailure::Unauthorized { error, credential } => {
                if self.refreshed || !credentials.invalidate(credential.as_deref()).await {
                    return Err(error);
                }
                self.refreshed = true;
                tracing::warn!(
                    attempt = self.tries,
                    status = 401,
                    "the credential was refused; retrying once with a fresh one"
                );
                Ok(Duration::ZERO)
            }
            AttemptFailure::Retryable { error, retry_after } => {
                if self.retries >= self.http.max_retries {
                    return Err(error.gave_up_after(self.tries));
                }
                self.retries += 1;
                let delay = match retry_after {
                    Some(wish) => wish.min(Duration::from_millis(self.http.retry_max_ms)),
                    None => backoff_delay(
                        self.retries,
                        self.http.retry_base_ms,
                        self.http.retry_max_ms,
                        random_u64(),
                    ),
                };
                tracing::warn!(
                    attempt = self.tries,
                    status = error.status(),
                    delay_ms = delay.as_millis() as u64,
                    error = %error,
                    "language model call failed; retrying"
                );
                Ok(delay)
            }
        }
    }
}

/// The upper bound of the wait before retry number `retry` (1-based):
/// exponential, capped so a long outage does not turn into hour-long sleeps.
pub(crate) fn backoff_cap(retry: u32, base_ms: u64, max_ms: u64) -> u64 {
    let factor = 1u64
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}

/// "Full jitter": uniform in `[0, cap]`, so many clients failing together do
/// not retry in lockstep.
pub(crate) fn backoff_delay(retry: u32, base_ms: u64, max_ms: u64, random: u64) -> Duration {
    let cap = backoff_cap(retry, base_ms, max_ms);
    Duration::from_millis(random % (cap.saturating_add(1)).max(1))
}

/// A `Retry-After` value: delay seconds or an HTTP date (past dates mean
/// "now").
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's wish from the headers; Azure and OpenAI also send a
/// millisecond-precise `retry-after-ms`, preferred when present.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms.min(1e12) as u64));
    }
    parse_retry_after(text("retry-after")?, SystemTime::now())
}

pub(crate) fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // Jitter only needs to differ between processes, not be secret.
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    })
}

/// A per-call id for the `FlowOperationId` header and the tracing span, kept
/// across retries so the provider's logs and ours can be matched.
pub(crate) fn operation_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = random_u64().to_le_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refreshable(bool);

    #[async_trait::async_trait]
    impl CredentialSource for Refreshable {
        async fn invalidate(&self, _: Option<&str>) -> bool {
            self.0
        }
    }

    fn http(max_retries: u32) -> HttpSettings {
        HttpSettings {
            max_retries,
            retry_base_ms: 100,
            retry_max_ms: 1_000,
            ..HttpSettings::default()
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_cap(1, 100, 1_000), 100);
        assert_eq!(backoff_cap(2, 100, 1_000), 200);
        assert_eq!(backoff_cap(4, 100, 1_000), 800);
        assert_eq!(backoff_cap(5, 100, 1_000), 1_000);
        assert_eq!(backoff_cap(200, 100, 1_000), 1_000);
        assert_eq!(backoff_cap(3, u64::MAX / 2, u64::MAX), u64::MAX);
        assert_eq!(backoff_cap(1, 0, 1_000), 0);
    }

    #[test]
    fn backoff_delay_stays_within_bounds() {
        for retry in 1..10 {
            let cap = backoff_cap(retry, 100, 1_000);
            for random in [0, 1, 99, 100, 12_345, u64::MAX - 1, u64::MAX] {
                let d = backoff_delay(retry, 100, 1_000, random).as_millis() as u64;
                assert!(d <= cap, "retry {retry}: {d} > {cap}");
            }
            // Full range is reachable.
            assert_eq!(
                backoff_delay(retry, 100, 1_000, cap).as_millis() as u64,
                cap
            );
        }
        assert_eq!(backoff_delay(1, 0, 0, 42), Duration::ZERO);
        for _ in 0..100 {
            assert!(backoff_delay(3, 100, 1_000, random_u64()) <= Duration::from_millis(400));
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1_500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn retry_after_ms_header_wins() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
    }

    #[tokio::test]
    async fn retries_stop_after_max_retries() {
        let settings = http(2);
        let mut r = Retrier::new(&settings);
        let fail = || {
            AttemptFailure::retryable(LlmError::Upstream {
                status: 503,
                message: "down".into(),
            })
        };
        r.start_try();
        assert!(r.plan(fail(), &Refreshable(true)).await.unwrap() <= Duration::from_millis(100));
        r.start_try();
        assert!(r.plan(fail(), &Refreshable(true)).await.unwrap() <= Duration::from_millis(200));
        r.start_try();
        let err = r.plan(fail(), &Refreshable(true)).await.unwrap_err();
        assert_eq!(r.tries(), 3);
        assert!(err.to_string().contains("gave up after 3 tries"), "{err}");
    }

    #[tokio::test]
    async fn server_wish_is_capped() {
        let settings = http(3);
        let mut r = Retrier::new(&settings);
        r.start_try();
        let delay = r
            .plan(
                AttemptFailure::Retryable {
                    error: LlmError::RateLimited {
                        message: String::new(),
                        retry_after_ms: Some(60_000),
                    },
                    retry_after: Some(Duration::from_secs(60)),
                },
                &Refreshable(true),
            )
            .await
            .unwrap();
        assert_eq!(delay, Duration::from_millis(1_000));
    }

    #[tokio::test]
    async fn one_refresh_per_call_and_none_without_a_source() {
        let settings = http(0);
        let unauthorized = || AttemptFailure::Unauthorized {
            error: LlmError::Auth {
                status: 401,
                message: "expired".into(),
            },
            credential: Some("t".into()),
        };
        let mut r = Retrier::new(&settings);
        r.start_try();
        assert_eq!(
            r.plan(unauthorized(), &Refreshable(true)).await.unwrap(),
            Duration::ZERO
        );
        r.start_try();
        assert!(matches!(
            r.plan(unauthorized(), &Refreshable(true)).await,
            Err(LlmError::Auth { status: 401, .. })
        ));

        let mut r = Retrier::new(&settings);
        r.start_try();
        assert!(r.plan(unauthorized(), &Refreshable(false)).await.is_err());
    }

    #[test]
    fn operation_ids_are_16_hex_chars_and_differ() {
        let a = operation_id();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, operation_id());
    }
}
