//! Stateless session tokens: `base64url(claims JSON) "." base64url(HMAC-SHA256)`.
//!
//! Stateless so that any function instance can authenticate a request without
//! a store round trip; the price is that a token cannot be revoked before it
//! expires except by rotating `SESSION_SECRET`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::SessionId;
use crate::nickname::Nickname;
use crate::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// How long a session token stays valid.
pub const SESSION_LIFETIME_SECS: i64 = 30 * 24 * 60 * 60;
/// The shortest secret accepted, in bytes.
pub const SESSION_SECRET_MIN_BYTES: usize = 32;

/// The key that signs session tokens. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SessionSecret(Vec<u8>);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SESSION_SECRET must be at least {SESSION_SECRET_MIN_BYTES} bytes long (got {0})")]
pub struct SecretTooShort(pub usize);

impl SessionSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretTooShort> {
        let bytes = bytes.into();
        if bytes.len() < SESSION_SECRET_MIN_BYTES {
            return Err(SecretTooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(rename = "sid")]
    pub session_id: SessionId,
    #[serde(rename = "nick")]
    pub nickname: String,
    /// Expiry, seconds since the epoch.
    #[serde(rename = "exp")]
    pub expires_at_secs: i64,
}

impl SessionClaims {
    pub fn new(session_id: SessionId, nickname: &Nickname, now: Timestamp) -> Self {
        Self {
            session_id,
            nickname: nickname.as_str().to_owned(),
            expires_at_secs: now.as_secs() + SESSION_LIFETIME_SECS,
        }
    }

    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(self.expires_at_secs.saturating_mul(1000))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the session token is malformed")]
    Malformed,
    #[error("the session token's signature is not valid")]
    BadSignature,
    #[error("the session token has expired; create a new session")]
    Expired,
}

pub fn issue(secret: &SessionSecret, claims: &SessionClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = secret.mac();
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{payload}.{signature}")
}

pub fn verify(
    secret: &SessionSecret,
    token: &str,
    now: Timestamp,
) -> Result<SessionClaims, TokenError> {
    let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = secret.mac();
    mac.update(payload.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: SessionClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if now.as_secs() >= claims.expires_at_secs {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> SessionSecret {
        SessionSecret::new(vec![byte; 32]).unwrap()
    }

    fn claims(now: Timestamp) -> SessionClaims {
        SessionClaims::new(
            SessionId::from_random([1; 16]),
            &Nickname::parse("ana").unwrap(),
            now,
        )
    }

    #[test]
    fn round_trips_until_expiry() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let c = claims(now);
        let token = issue(&secret(1), &c);
        assert_eq!(verify(&secret(1), &token, now).unwrap(), c);
        let later = now.plus_secs(SESSION_LIFETIME_SECS);
        assert_eq!(verify(&secret(1), &token, later), Err(TokenError::Expired));
    }

    #[test]
    fn rejects_other_secret_and_tampering() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let token = issue(&secret(1), &claims(now));
        assert_eq!(
            verify(&secret(2), &token, now),
            Err(TokenError::BadSignature)
        );

        // Re-sign nothing, just swap the payload for one with a later expiry.
        let (_, sig) = token.split_once('.').unwrap();
        let mut forged = claims(now);
        forged.expires_at_secs += 1_000_000;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify(&secret(1), &format!("{payload}.{sig}"), now),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "abc", "a.b.c", "!!!.???"] {
            assert!(verify(&secret(1), junk, now).is_err());
        }
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert_eq!(
            SessionSecret::new(b"short".to_vec()).unwrap_err(),
            SecretTooShort(5)
        );
        assert_eq!(format!("{:?}", secret(9)), "SessionSecret(<redacted>)");
    }
}
