//! Encoding records for storage and reading them back, shared by the back
//! ends: anything stored that does not read back is `Corrupt`, never a panic.

#[cfg(feature = "sqlite")]
use flowchat_domain::model::{JobKind, JobStatus};

use crate::StoreError;

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a record: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| corrupt(what, e))
}

/// A TTL in whole milliseconds, at least 1.
pub(crate) fn duration_millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

pub(crate) fn to_u32(what: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(what, format!("{value} is out of range")))
}

#[cfg(feature = "sqlite")]
pub(crate) fn parse_status(raw: &str) -> Result<JobStatus, StoreError> {
    JobStatus::parse(raw).ok_or_else(|| corrupt("job status", format!("unknown status {raw:?}")))
}

#[cfg(feature = "sqlite")]
pub(crate) fn parse_kind(raw: &str) -> Result<JobKind, StoreError> {
    JobKind::parse(raw).ok_or_else(|| corrupt("job kind", format!("unknown kind {raw:?}")))
}

/// Refuses a part larger than [`crate::UPLOAD_PART_BYTES`]: on Upstash a
/// bigger one could exceed the request-size limit once encoded, and every
/// back end must refuse what one refuses.
pub(crate) fn check_upload_part(index: u32, bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() > crate::UPLOAD_PART_BYTES {
        return Err(StoreError::Backend(format!(
            "upload part {index} holds {} bytes, more than the {} a part may hold",
            bytes.len(),
            crate::UPLOAD_PART_BYTES
        )));
    }
    Ok(())
}

/// Standard base64 (RFC 4648, padded). Upload parts travel as command
/// arguments, which the Upstash REST API takes as JSON strings: raw bytes
/// that are not UTF-8 cannot be sent.
#[cfg(feature = "upstash")]
pub(crate) mod base64 {
    use ::base64::Engine as _;
    use ::base64::engine::general_purpose::STANDARD;

    pub(crate) fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    /// `None` unless `text` is exactly what [`encode`] writes (canonical,
    /// padded): anything else was not stored by this crate.
    pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
        STANDARD.decode(text).ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rfc_4648_vectors() {
            for (raw, encoded) in [
                ("", ""),
                ("f", "Zg=="),
                ("fo", "Zm8="),
                ("foo", "Zm9v"),
                ("foob", "Zm9vYg=="),
                ("fooba", "Zm9vYmE="),
                ("foobar", "Zm9vYmFy"),
            ] {
                assert_eq!(encode(raw.as_bytes()), encoded);
                assert_eq!(decode(encoded.as_bytes()).as_deref(), Some(raw.as_bytes()));
            }
        }

        #[test]
        fn every_byte_and_length_round_trips() {
            let all: Vec<u8> = (0..=255u8).collect();
            assert_eq!(decode(encode(&all).as_bytes()), Some(all.clone()));
            for len in 0..70 {
                let bytes: Vec<u8> = all.iter().rev().cycle().take(len).copied().collect();
                let text = encode(&bytes);
                assert!(text.is_ascii());
                assert_eq!(decode(text.as_bytes()), Some(bytes), "length {len}");
            }
        }

        #[test]
        fn anything_else_is_refused() {
            for bad in [
                "Zg=", "Zg", "Z===", "Zg==Zg==", "Zh==", "Zm9=", "Zm9v\n", "Zm 9", "Zm9v====",
                "Zm-_", "=Zm9",
            ] {
                assert_eq!(decode(bad.as_bytes()), None, "{bad:?}");
            }
        }
    }
}
