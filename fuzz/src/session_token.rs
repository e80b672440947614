//! `session_token`: what turns an `Authorization` header into a session —
//! `bearer_token`, then `token::verify` (signature checked before the claims
//! are parsed) — and the id and nickname parsers a request's path and body
//! go through.
//!
//! Input: the header value as sent. Properties: a token verifies only if
//! its claims, issued again, verify to the same claims; a credential is
//! never empty nor padded; ids that parse are canonical;
//! a nickname that parses issues a token that verifies to it.

use flowchat_api::bearer_token;
use flowchat_domain::token::{self, SessionClaims, SessionSecret};
use flowchat_domain::{ConversationId, DocumentId, JobId, Nickname, SessionId, Timestamp};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::router::SECRET;

/// 2025-01-01T00:00:00Z.
const NOW: Timestamp = Timestamp::from_millis(1_735_689_600_000);

fn verify(secret: &SessionSecret, credential: &str) {
    if let Ok(claims) = token::verify(secret, credential, NOW) {
        assert!(claims.expires_at_secs > NOW.as_secs());
        let again = token::issue(secret, &claims);
        assert_eq!(token::verify(secret, &again, NOW).as_ref(), Ok(&claims));
    }
}

pub fn run(data: &[u8]) {
    let secret = SessionSecret::new(SECRET.as_bytes()).expect("a long enough secret");

    // As a header: the credential the API would verify.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        if let Some(credential) = bearer_token(&headers) {
            assert!(!credential.is_empty());
            assert_eq!(credential, credential.trim());
            verify(&secret, credential);
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a token on its own (another runtime may strip the scheme).
    verify(&secret, text);

    // As path segments and body fields: what parses is in canonical form
    // (parses again to itself), and a document id is as it was given.
    if let Ok(id) = JobId::parse(text, "id") {
        assert_eq!(JobId::parse(id.as_str(), "id").as_ref(), Ok(&id));
    }
    if let Ok(id) = ConversationId::parse(text, "id") {
        assert_eq!(ConversationId::parse(id.as_str(), "id").as_ref(), Ok(&id));
    }
    if let Ok(id) = SessionId::parse(text, "id") {
        assert_eq!(SessionId::parse(id.as_str(), "id").as_ref(), Ok(&id));
    }
    if let Ok(id) = DocumentId::parse(text, "id") {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(nickname) = Nickname::parse(text) {
        let claims = SessionClaims::new(SessionId::from_random([9; 16]), &nickname, NOW);
        let issued = token::issue(&secret, &claims);
        assert_eq!(token::verify(&secret, &issued, NOW), Ok(claims));
    }
}
