//! What a user is told when a job fails. Job records, the document catalog
//! and everything the API derives from them (`GET /api/chat/{id}`, its
//! event stream, the 502 of `POST /api/chat/completions`) show these short
//! sentences from a closed set, never the error itself: upstream errors
//! carry URLs (`CHROMA_URL`), hosts, SQL and provider text that are the
//! operator's business. The drain logs the full error next to the job id
//! when it records the failure, so the two can be matched.

use flowchat_knowledge::KnowledgeError;
use flowchat_llm::LlmError;
use flowchat_store::StoreError;

use crate::jobs::JobError;

pub const LLM_UNAVAILABLE: &str = "The language model is unavailable; try again later.";
pub const LLM_TIMEOUT: &str = "The language model took too long to answer; try again later.";
pub const LLM_REFUSED: &str = "The language model could not answer this request.";
pub const LLM_MISCONFIGURED: &str =
    "The language model is not set up correctly on this server; tell its operator.";
pub const INDEX_UNAVAILABLE: &str = "The knowledge index is unavailable; try again later.";
pub const EMBEDDINGS_UNAVAILABLE: &str = "The embedding model is unavailable; try again later.";
pub const EMBEDDINGS_MISCONFIGURED: &str =
    "The embedding model is not set up correctly on this server; tell its operator.";
pub const STORE_UNAVAILABLE: &str = "The service's storage is unavailable; try again later.";
pub const FILE_UNREADABLE: &str = "A file could not be read on the server; try again later.";
pub const UPLOAD_EXPIRED: &str = "The uploaded file is no longer available; upload it again.";
pub const INTERRUPTED: &str = "The job was interrupted; try again later.";

/// The prefix of every message about a document that cannot be read; the
/// loader's own sentence (which names the file and says what is wrong in
/// plain words) follows it.
pub const DOCUMENT_UNREADABLE: &str = "The document could not be read";

impl JobError {
    /// The sentence a user sees for this failure.
    pub fn user_message(&self) -> String {
        match self {
            JobError::Llm(e) => llm_message(e).to_owned(),
            JobError::Knowledge(e) => knowledge_message(e),
            JobError::Store(StoreError::Unavailable(_) | StoreError::Backend(_)) => {
                STORE_UNAVAILABLE.to_owned()
            }
            JobError::Store(StoreError::Corrupt(_)) => INTERRUPTED.to_owned(),
            JobError::ClaimLost => INTERRUPTED.to_owned(),
            JobError::UploadExpired => UPLOAD_EXPIRED.to_owned(),
        }
    }
}

fn llm_message(error: &LlmError) -> &'static str {
    match error {
        LlmError::Timeout(_) => LLM_TIMEOUT,
        LlmError::RateLimited { .. }
        | LlmError::Upstream { .. }
        | LlmError::Connection(_)
        | LlmError::StreamInterrupted(_) => LLM_UNAVAILABLE,
        LlmError::Rejected { .. } | LlmError::InvalidResponse(_) => LLM_REFUSED,
        LlmError::Config(_) | LlmError::Auth { .. } => LLM_MISCONFIGURED,
    }
}

/// Loader errors are written for the person who added the document and
/// say only what is wrong with it; every other knowledge error is about the
/// server and gets a fixed sentence.
fn knowledge_message(error: &KnowledgeError) -> String {
    let readable = |sentence: String| format!("{DOCUMENT_UNREADABLE}: {sentence}");
    match error {
        KnowledgeError::Unsupported { .. }
        | KnowledgeError::TooLarge { .. }
        | KnowledgeError::NotUtf8 { .. }
        | KnowledgeError::Binary { .. }
        | KnowledgeError::Empty { .. }
        | KnowledgeError::ContentMismatch { .. }
        | KnowledgeError::PdfEncrypted { .. }
        | KnowledgeError::PdfNoText { .. }
        | KnowledgeError::PdfTimeout { .. }
        | KnowledgeError::TextTooLarge { .. }
        | KnowledgeError::LoadTimeout { .. }
        | KnowledgeError::DecodedTooLarge { .. }
        | KnowledgeError::ReaderOutOfMemory { .. } => readable(error.to_string()),
        // The parser's or the reader process's own explanation stays in the log.
        KnowledgeError::PdfUnreadable { name, .. } => readable(format!(
            "{name} could not be read as a PDF; the file may be damaged or incomplete"
        )),
        KnowledgeError::ReaderFailed { name, .. } => readable(format!(
            "{name} could not be read; the reader stopped unexpectedly"
        )),
        KnowledgeError::Io { .. } => FILE_UNREADABLE.to_owned(),
        KnowledgeError::Index(_) | KnowledgeError::Settings(_) => INDEX_UNAVAILABLE.to_owned(),
        KnowledgeError::Embedding {
            permanent: false, ..
        } => EMBEDDINGS_UNAVAILABLE.to_owned(),
        KnowledgeError::Embedding {
            permanent: true, ..
        } => EMBEDDINGS_MISCONFIGURED.to_owned(),
        // A failure added to the loaders later: nothing of it is shown
        // until it is listed above.
        #[allow(unreachable_patterns)]
        _ => format!("{DOCUMENT_UNREADABLE}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No message carries what the error carried: URLs, hosts, status
    /// codes, provider text, SQL.
    #[test]
    fn server_failures_say_nothing_of_the_server() {
        let secret = "http://chroma.internal:8000/api/v2 token=abc SELECT * FROM chunks";
        let errors = [
            JobError::Knowledge(KnowledgeError::Index(secret.to_owned())),
            JobError::Knowledge(KnowledgeError::Embedding {
                message: secret.to_owned(),
                permanent: false,
            }),
            JobError::Knowledge(KnowledgeError::Io {
                name: secret.to_owned(),
                source: std::io::Error::other(secret),
            }),
            JobError::Knowledge(KnowledgeError::PdfUnreadable {
                name: "report.pdf".to_owned(),
                detail: secret.to_owned(),
            }),
            JobError::Knowledge(KnowledgeError::ReaderFailed {
                name: "report.pdf".to_owned(),
                detail: secret.to_owned(),
            }),
            JobError::Store(StoreError::Unavailable(secret.to_owned())),
            JobError::Llm(LlmError::Upstream {
                status: 502,
                message: secret.to_owned(),
            }),
            JobError::Llm(LlmError::Connection(secret.to_owned())),
            JobError::Llm(LlmError::Auth {
                status: 401,
                message: secret.to_owned(),
            }),
            JobError::Llm(LlmError::Timeout(secret.to_owned())),
        ];
        for error in errors {
            let message = error.user_message();
            for leak in ["chroma", "8000", "token", "SELECT", "502", "401"] {
                assert!(!message.contains(leak), "{error}: {message}");
            }
        }
    }

    #[test]
    fn a_document_that_cannot_be_read_says_why_in_plain_words() {
        let error = JobError::Knowledge(KnowledgeError::NotUtf8 {
            name: "notes.txt".to_owned(),
        });
        assert_eq!(
            error.user_message(),
            "The document could not be read: notes.txt is not valid UTF-8 text"
        );
    }
}
