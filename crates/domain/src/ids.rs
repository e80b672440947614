//! Identifiers. Sessions, conversations and jobs are random UUIDs made from
//! caller-supplied random bytes (this crate cannot reach an RNG on every
//! target); documents are named by the hash of their content, so the same
//! bytes always get the same id and re-ingesting them is a no-op.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validation::ValidationError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random (version 4) id from 16 random bytes.
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string())
            }

            /// Parses an id received from a client; `field` names it in the error.
            pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
                uuid::Uuid::try_parse(raw)
                    .map(|u| Self(u.hyphenated().to_string()))
                    .map_err(|_| {
                        ValidationError::new(field, "format", format!("{field} must be a UUID"))
                    })
            }

            /// Wraps an id read back from our own storage, where it was
            /// written only after parsing.
            pub fn from_trusted(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// A chat session: the identity behind a nickname and a session token.
    SessionId
);
uuid_id!(
    /// A conversation thread owned by one session.
    ConversationId
);
uuid_id!(
    /// A unit of drain work (a chat answer, an ingest).
    JobId
);

/// A document, named by the SHA-256 of its bytes (first 128 bits, hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocumentId(String);

impl DocumentId {
    pub fn for_content(bytes: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(bytes))
    }

    /// The id of an upload: the content hash within its owner's scope. A
    /// shared upload is named like the same file in the shared folder; a
    /// private one also hashes the session, so two sessions uploading the
    /// same bytes get two documents — and answering "already exists" can
    /// never tell one session what another uploaded.
    pub fn for_upload(owner: &crate::model::DocumentOwner, bytes: &[u8]) -> Self {
        match owner {
            crate::model::DocumentOwner::Shared => Self::for_content(bytes),
            crate::model::DocumentOwner::Session(session) => {
                let mut hasher = Sha256::new();
                hasher.update(b"session\0");
                hasher.update(session.as_str().as_bytes());
                hasher.update(b"\0");
                hasher.update(bytes);
                Self::from_digest(&hasher.finalize())
            }
        }
    }

    fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(&digest[..16]))
    }

    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
        if raw.len() == 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                field,
                "format",
                format!("{field} must be 32 lowercase hexadecimal characters"),
            ))
        }
    }

    pub fn from_trusted(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DocumentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_v4_uuids_and_round_trip() {
        let id = JobId::from_random([7; 16]);
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(JobId::parse(id.as_str(), "job_id").unwrap(), id);
    }

    #[test]
    fn parse_normalises_case_and_rejects_garbage() {
        let upper = "6F9619FF-8B86-4011-B42D-00C04FC964FF";
        assert_eq!(
            SessionId::parse(upper, "id").unwrap().as_str(),
            upper.to_lowercase()
        );
        let err = ConversationId::parse("../etc/passwd", "conversation_id").unwrap_err();
        assert_eq!(err.field, "conversation_id");
        assert_eq!(err.rule, "format");
    }

    #[test]
    fn document_id_is_content_hash() {
        let a = DocumentId::for_content(b"hello");
        assert_eq!(a, DocumentId::for_content(b"hello"));
        assert_ne!(a, DocumentId::for_content(b"hello!"));
        assert_eq!(a.as_str(), "2cf24dba5fb0a30e26e83b2ac5b9e29e");
        assert!(DocumentId::parse(a.as_str(), "id").is_ok());
        assert!(DocumentId::parse("XYZ", "id").is_err());

        use crate::model::DocumentOwner;
        assert_eq!(DocumentId::for_upload(&DocumentOwner::Shared, b"hello"), a);
        let alice = DocumentOwner::Session(SessionId::from_trusted("a"));
        let bob = DocumentOwner::Session(SessionId::from_trusted("b"));
        let mine = DocumentId::for_upload(&alice, b"hello");
        assert_eq!(mine, DocumentId::for_upload(&alice, b"hello"));
        assert_ne!(mine, a);
        assert_ne!(mine, DocumentId::for_upload(&bob, b"hello"));
    }
}
