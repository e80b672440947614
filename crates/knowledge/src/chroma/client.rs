//! Talking to the server: paths, requests, and errors that say which
//! server answered what to which request.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Inner;
use crate::error::KnowledgeError;

/// The longest error body quoted in a message.
const MAX_QUOTED: usize = 300;

/// An error and its causes, one line ("error sending request: connection
/// refused").
pub(super) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The readable part of an error answer: Chroma's `message` (or the body),
/// cut to [`MAX_QUOTED`] characters.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let text = match serde_json::from_str::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            message: Some(message),
            ..
        }) => message,
        Ok(ErrorAnswer {
            error: Some(error), ..
        }) => error,
        _ => body.trim().to_owned(),
    };
    if text.chars().count() > MAX_QUOTED {
        let cut: String = text.chars().take(MAX_QUOTED).collect();
        format!("{cut}…")
    } else if text.is_empty() {
        "no details".to_owned()
    } else {
        text
    }
}

impl Inner {
    pub(super) fn database_path(&self) -> String {
        let s = &self.settings;
        format!("/api/v2/tenants/{}/databases/{}", s.tenant, s.database)
    }

    pub(super) fn collections_path(&self) -> String {
        format!("{}/collections", self.database_path())
    }

    pub(super) fn records_path(&self, operation: &str) -> String {
        format!(
            "{}/{}/{operation}",
            self.collections_path(),
            self.collection_id
        )
    }

    /// Sends one request; only transport failures are errors here.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, String), KnowledgeError> {
        let url = &self.settings.url;
        let mut request = self.client.request(method.clone(), format!("{url}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                KnowledgeError::Index(format!(
                    "Chroma at {url} did not answer {method} {path} within {} ms",
                    self.settings.timeout_ms
                ))
            } else {
                KnowledgeError::Index(format!("cannot reach Chroma at {url}: {}", chain(&e)))
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            KnowledgeError::Index(format!(
                "Chroma at {url}: reading the answer to {method} {path} failed: {}",
                chain(&e)
            ))
        })?;
        Ok((status, text))
    }

    /// An error for an unsuccessful status.
    pub(super) fn check(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        body: &str,
    ) -> Result<(), KnowledgeError> {
        if status.is_success() {
            return Ok(());
        }
        let url = &self.settings.url;
        let detail = error_message(body);
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                " (check CHROMA_TOKEN and the tenant and database it may use)"
            }
            _ => "",
        };
        Err(KnowledgeError::Index(format!(
            "Chroma at {url} answered {status} to {method} {path}: {detail}{hint}"
        )))
    }

    /// Sends one request and reads a successful JSON answer.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, KnowledgeError> {
        let (status, text) = self.send(method.clone(), path, body).await?;
        self.check(method.as_str(), path, status, &text)?;
        serde_json::from_str(&text).map_err(|e| {
            KnowledgeError::Index(format!(
                "Chroma at {} sent an answer to {method} {path} that FlowChat cannot read: {e}",
                self.settings.url
            ))
        })
    }

    pub(super) async fn ensure_database(&self) -> Result<(), KnowledgeError> {
        let path = self.database_path();
        let (status, body) = self.send(Method::GET, &path, None).await?;
        if status != StatusCode::NOT_FOUND {
            return self.check("GET", &path, status, &body);
        }
        let create = format!("/api/v2/tenants/{}/databases", self.settings.tenant);
        let (status, body) = self
            .send(
                Method::POST,
                &create,
                Some(json!({"name": self.settings.database})),
            )
            .await?;
        // 409: someone else created it meanwhile.
        if status == StatusCode::CONFLICT {
            return Ok(());
        }
        self.check("POST", &create, status, &body)?;
        tracing::info!(database = %self.settings.database, "created the Chroma database");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_quoted_briefly() {
        assert_eq!(
            error_message(r#"{"error":"NotFoundError","message":"Collection [x] does not exist"}"#),
            "Collection [x] does not exist"
        );
        assert_eq!(error_message(""), "no details");
        assert_eq!(
            error_message(&"x".repeat(1000)).chars().count(),
            MAX_QUOTED + 1
        );
    }
}
