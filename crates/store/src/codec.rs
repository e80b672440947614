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
