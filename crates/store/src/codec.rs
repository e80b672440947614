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
/// that are not UTF-8 cannot be sent. Written out here rather than taken
/// from a crate to keep this crate's dependencies as they are.
#[cfg(feature = "upstash")]
pub(crate) mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
            out.push(sextet(18));
            out.push(sextet(12));
            out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
            out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
        }
        out
    }

    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }

    /// `None` unless `text` is exactly what [`encode`] writes (canonical,
    /// padded): anything else was not stored by this crate.
    pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let quads = text.len() / 4;
        for (i, quad) in text.chunks(4).enumerate() {
            let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if padding > 2 || (padding > 0 && i + 1 != quads) {
                return None;
            }
            let mut n = 0u32;
            for &c in &quad[..4 - padding] {
                n = (n << 6) | value(c)?;
            }
            n <<= 6 * padding as u32;
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            let keep = 3 - padding;
            // Bits below the last full byte must be zero in canonical form.
            if bytes[keep..].iter().any(|&b| b != 0) {
                return None;
            }
            out.extend_from_slice(&bytes[..keep]);
        }
        Some(out)
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
