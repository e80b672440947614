//! Every failure a handler can answer with, and the one place that maps each
//! to an HTTP status and an `application/problem+json` body (RFC 9457).

use flowchat_domain::ValidationError;
use flowchat_store::{RateDecision, StoreError};
use http::{HeaderValue, Response, StatusCode, header};

use crate::response::{Body, insert_rate_limit_headers, json};
use crate::views::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(ValidationError),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("send the body as {expected} (Content-Type was {found})")]
    UnsupportedMediaType {
        expected: &'static str,
        found: String,
    },
    /// An uploaded file of a type we do not take, or whose content does not
    /// match its extension: `field` and `rule` say which.
    #[error("{0}")]
    UnsupportedFile(ValidationError),
    #[error("the multipart body is malformed: {0}")]
    MalformedMultipart(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the file is larger than {limit} bytes (MAX_UPLOAD_MB)")]
    FileTooLarge { limit: usize },
    /// A session's upload while it holds `limit` documents.
    #[error(
        "this session already holds {limit} documents, the most it may keep (MAX_DOCUMENTS_PER_SESSION); delete one to upload another"
    )]
    DocumentQuota { limit: u32 },
    /// A session's upload that would take its documents past `limit` bytes.
    #[error(
        "this file ({file_bytes} bytes) would take this session's documents past {limit} bytes (MAX_BYTES_PER_SESSION; {held} bytes held); delete some to make room"
    )]
    StorageQuota {
        limit: u64,
        held: u64,
        file_bytes: u64,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    /// The deployment cannot do what was asked where it runs (the Vercel
    /// cron drain with the embedded index): the detail says what to change.
    #[error("{0}")]
    RemoteIndexRequired(String),
    #[error("too many requests; try again in {} s", retry_after_secs(decision))]
    RateLimited {
        decision: RateDecision,
        /// Seconds until the current window resets, for `RateLimit-Reset`.
        reset_secs: i64,
    },
    /// Too many followers open at once: `setting` names the limit.
    #[error(
        "at most {limit} followers (event streams, waiting reads, synchronous completions) may be open at once per {scope} ({setting}); close one or try again in {retry_after_secs} s"
    )]
    TooManyFollowers {
        scope: &'static str,
        limit: u32,
        setting: &'static str,
        retry_after_secs: u32,
    },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    UpstreamFailed(String),
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable,
    /// A setting the endpoint needs is missing: the detail names it.
    #[error("{0}")]
    NotConfigured(String),
    /// Details are logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn retry_after_secs(d: &RateDecision) -> i64 {
    ((d.retry_after_ms + 999) / 1000).max(1)
}

/// How many seconds a client should wait after a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    pub(crate) fn rate_limited(decision: RateDecision, now: flowchat_domain::Timestamp) -> Self {
        let reset_secs = ((decision.reset_at.millis_since(now)).max(0) + 999) / 1000;
        ApiError::RateLimited {
            decision,
            reset_secs,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::MalformedJson(_)
            | ApiError::MalformedMultipart(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedFile(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::PayloadTooLarge { .. }
            | ApiError::FileTooLarge { .. }
            | ApiError::StorageQuota { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::DocumentQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RemoteIndexRequired(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } | ApiError::TooManyFollowers { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable | ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type's short name; the full `type` is
    /// `urn:flowchat:problem:<slug>` (listed in docs/api.md).
    fn slug(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation",
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::MalformedMultipart(_) => "malformed-multipart",
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedFile(_) => {
                "unsupported-media-type"
            }
            ApiError::PayloadTooLarge { .. } | ApiError::FileTooLarge { .. } => "payload-too-large",
            ApiError::DocumentQuota { .. } => "document-quota",
            ApiError::StorageQuota { .. } => "storage-quota",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::RemoteIndexRequired(_) => "remote-index-required",
            ApiError::RateLimited { .. } | ApiError::TooManyFollowers { .. } => "rate-limited",
            ApiError::Timeout(_) => "timeout",
            ApiError::UpstreamFailed(_) => "job-failed",
            ApiError::Unavailable => "unavailable",
            ApiError::NotConfigured(_) => "not-configured",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "Invalid request field",
            ApiError::MalformedJson(_) => "Malformed JSON body",
            ApiError::MalformedMultipart(_) => "Malformed multipart body",
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedFile(_) => {
                "Unsupported media type"
            }
            ApiError::PayloadTooLarge { .. } => "Request body too large",
            ApiError::FileTooLarge { .. } => "File too large",
            ApiError::DocumentQuota { .. } => "Too many documents",
            ApiError::StorageQuota { .. } => "Storage quota exceeded",
            ApiError::Unauthorized(_) => "Authentication required",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::RemoteIndexRequired(_) => "This deployment cannot drain in a function",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::TooManyFollowers { .. } => "Too many open followers",
            ApiError::Timeout(_) => "Timed out",
            ApiError::UpstreamFailed(_) => "The job failed",
            ApiError::Unavailable => "Service unavailable",
            ApiError::NotConfigured(_) => "Not configured",
            ApiError::Internal(_) => "Internal error",
        }
    }
}

/// The one place an [`ApiError`] becomes a response: its status, the
/// problem+json body and the headers the status calls for. Public for the
/// routes that live outside the router (the Vercel cron drain).
pub fn problem_response(error: &ApiError, request_id: &str) -> Response<Body> {
    let status = error.status();
    let mut problem = Problem {
        problem_type: format!("urn:flowchat:problem:{}", error.slug()),
        title: error.title(),
        status: status.as_u16(),
        detail: error.to_string(),
        request_id,
        field: None,
        rule: None,
        limit_bytes: None,
    };
    match error {
        ApiError::Validation(v) | ApiError::UnsupportedFile(v) => {
            problem.field = Some(&v.field);
            problem.rule = Some(v.rule);
        }
        ApiError::PayloadTooLarge { limit } => problem.limit_bytes = Some(*limit),
        ApiError::FileTooLarge { limit } => {
            problem.field = Some("file");
            problem.rule = Some("size");
            problem.limit_bytes = Some(*limit);
        }
        ApiError::DocumentQuota { .. } => {
            problem.field = Some("file");
            problem.rule = Some("documents-per-session");
        }
        ApiError::StorageQuota { limit, .. } => {
            problem.field = Some("file");
            problem.rule = Some("bytes-per-session");
            problem.limit_bytes = Some(usize::try_from(*limit).unwrap_or(usize::MAX));
        }
        _ => {}
    }
    let mut response = json(status, &problem);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    match error {
        ApiError::RateLimited {
            decision,
            reset_secs,
        } => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(decision)),
            );
            insert_rate_limit_headers(headers, decision, *reset_secs);
        }
        ApiError::TooManyFollowers {
            limit,
            retry_after_secs,
            ..
        } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            headers.insert("ratelimit-limit", HeaderValue::from(*limit));
        }
        ApiError::Unavailable => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        ApiError::Unauthorized(_) => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        ApiError::MethodNotAllowed { allow, .. } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        _ => {}
    }
    response
}
