//! The calls both providers share: chat, streamed chat and embeddings over
//! OpenAI-shaped endpoints, each one logical call with its own operation id,
//! tracing span and retry loop. A [`Backend`] supplies only what differs:
//! URLs, credentials and the embeddings request shape.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::RequestBuilder;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use tracing::Instrument;

use crate::error::LlmError;
use crate::retry::{AttemptFailure, CredentialSource, Retrier, operation_id};
use crate::settings::GenerationSettings;
use crate::sse::{ChunkError, ChunkEvent, SseDecoder, StreamMeta, decode_chunk};
use crate::transport::HttpCore;
use crate::types::{ChatCompletion, ChatRequest, StreamEvent};
use crate::wire;

#[async_trait::async_trait]
pub(crate) trait Backend: CredentialSource {
    fn provider(&self) -> &'static str;
    fn chat_url(&self) -> &str;
    fn embeddings_url(&self) -> &str;
    fn chat_model(&self) -> &str;
    fn embedding_model(&self) -> &str;
    /// Adds credentials and provider headers for one try, returning the
    /// credential used so a 401 can retire exactly that one.
    async fn authorize(
        &self,
        core: &HttpCore,
        request: RequestBuilder,
        operation_id: &str,
    ) -> Result<(RequestBuilder, Option<String>), AttemptFailure>;
    fn embeddings_body(&self, request: RequestBuilder, inputs: &[String]) -> RequestBuilder;
}

pub(crate) struct Engine<B> {
    pub backend: B,
    pub core: HttpCore,
    pub generation: GenerationSettings,
}

#[derive(Clone, Copy)]
enum Operation {
    Chat,
    ChatStream,
    Embed,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::ChatStream => "chat_stream",
            Operation::Embed => "embed",
        }
    }
}

impl<B: Backend> Engine<B> {
    fn span(&self, operation: Operation, id: &str) -> tracing::Span {
        let model = match operation {
            Operation::Embed => self.backend.embedding_model(),
            _ => self.backend.chat_model(),
        };
        tracing::info_span!(
            "llm_call",
            provider = self.backend.provider(),
            operation = operation.as_str(),
            operation_id = %id,
            model,
        )
    }

    fn chat_body(&self, request: &ChatRequest, stream: bool) -> Value {
        wire::chat_body(
            self.backend.chat_model(),
            &request.messages,
            request.temperature.unwrap_or(self.generation.temperature),
            request
                .max_tokens
                .unwrap_or(self.generation.max_output_tokens),
            stream,
        )
    }

    /// Runs `attempt` until it succeeds or `retrier`'s policy gives up
    /// (`retrier` then tells how many tries were made). Streaming keeps its
    /// own loop because it must also tell its reader to start over.
    async fn retrying<T, F, Fut>(
        &self,
        retrier: &mut Retrier<'_>,
        mut attempt: F,
    ) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptFailure>>,
    {
        loop {
            retrier.start_try();
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(failure) => match retrier.plan(failure, &self.backend).await {
                    Ok(delay) => tokio::time::sleep(delay).await,
                    Err(error) => return Err(error),
                },
            }
        }
    }

    /// Runs one whole chat call (every try and every wait between tries)
    /// within the answer deadline.
    async fn within_answer_deadline<T>(
        &self,
        call: impl Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        let limit = Duration::from_millis(self.core.http.answer_timeout_ms);
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout(format!(
                "no complete answer within the {} ms allowed for one",
                self.core.http.answer_timeout_ms
            ))),
        }
    }

    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatCompletion, LlmError> {
        let id = operation_id();
        let body = self.chat_body(request, false);
        async {
            let started = Instant::now();
            let mut retrier = Retrier::new(&self.core.http);
            let result = self
                .within_answer_deadline(self.retrying(&mut retrier, || self.try_chat(&body, &id)))
                .await;
            let tries = retrier.tries();
            let result = result.map(|p| self.completion(p, &id, tries));
            log_outcome(&result, tries, started);
            result
        }
        .instrument(self.span(Operation::Chat, &id))
        .await
    }

    async fn try_chat(
        &self,
        body: &Value,
        id: &str,
    ) -> Result<wire::ParsedCompletion, AttemptFailure> {
        let request = self
            .core
            .client
            .post(self.backend.chat_url())
            .header(ACCEPT, "application/json")
            .json(body);
        let (request, credential) = self.backend.authorize(&self.core, request, id).await?;
        let response = self.core.send(request, credential.as_deref()).await?;
        let bytes = self.core.read_all(response).await?;
        wire::parse_completion(&bytes).map_err(|e| self.core.body_failure(e, credential.as_deref()))
    }

    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
        on_event: &mut (dyn for<'e> FnMut(StreamEvent<'e>) + Send),
    ) -> Result<ChatCompletion, LlmError> {
        let id = operation_id();
        let body = self.chat_body(request, true);
        async {
            let started = Instant::now();
            let mut retrier = Retrier::new(&self.core.http);
            let mut text = String::new();
            let mut delivered = false;
            let call = async {
                loop {
                    retrier.start_try();
                    text.clear();
                    let outcome = self
                        .try_stream(&body, &id, &mut |delta: &str| {
                            text.push_str(delta);
                            delivered = true;
                            on_event(StreamEvent::Delta(delta));
                        })
                        .await;
                    match outcome {
                        Ok(meta) => break Ok(meta),
                        Err(failure) => match retrier.plan(failure, &self.backend).await {
                            Ok(delay) => {
                                // Told before the wait, so a reader can clear the
                                // partial answer instead of showing stale text.
                                if delivered {
                                    on_event(StreamEvent::Restart);
                                    delivered = false;
                                }
                                tokio::time::sleep(delay).await;
                            }
                            Err(error) => break Err(error),
                        },
                    }
                }
            };
            let result = self.within_answer_deadline(call).await;
            let result = result.map(|meta| {
                let parsed = wire::ParsedCompletion {
                    content: std::mem::take(&mut text),
                    model: meta.model,
                    prompt_tokens: meta.prompt_tokens,
                    completion_tokens: meta.completion_tokens,
                };
                self.completion(parsed, &id, retrier.tries())
            });
            log_outcome(&result, retrier.tries(), started);
            result
        }
        .instrument(self.span(Operation::ChatStream, &id))
        .await
    }

    async fn try_stream(
        &self,
        body: &Value,
        id: &str,
        emit: &mut (dyn FnMut(&str) + Send),
    ) -> Result<StreamMeta, AttemptFailure> {
        let request = self
            .core
            .client
            .post(self.backend.chat_url())
            .header(ACCEPT, "text/event-stream")
            .json(body);
        let (request, credential) = self.backend.authorize(&self.core, request, id).await?;
        let credential = credential.as_deref();
        let response = self.core.send(request, credential).await?;

        // Some gateways ignore `stream: true` and answer in one piece.
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if is_json {
            let bytes = self.core.read_all(response).await?;
            let parsed = wire::parse_completion(&bytes)
                .map_err(|e| self.core.body_failure(e, credential))?;
            if !parsed.content.is_empty() {
                emit(&parsed.content);
            }
            return Ok(StreamMeta {
                model: parsed.model,
                prompt_tokens: parsed.prompt_tokens,
                completion_tokens: parsed.completion_tokens,
            });
        }

        let mut stream = response.bytes_stream();
        let mut decoder = SseDecoder::new();
        let mut meta = StreamMeta::default();
        loop {
            let next = tokio::time::timeout(self.core.read_timeout(), stream.next())
                .await
                .map_err(|_| {
                    AttemptFailure::retryable(LlmError::Timeout(format!(
                        "the answer stream stalled for {} ms",
                        self.core.http.read_timeout_ms
                    )))
                })?;
            let chunk = match next {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(self.core.transport_failure(&e, true)),
                None => {
                    let ended = decoder
                        .finish()
                        .is_some_and(|data| decode_chunk(&data, &mut meta) == Ok(ChunkEvent::Done));
                    if ended {
                        return Ok(meta);
                    }
                    return Err(AttemptFailure::retryable(LlmError::StreamInterrupted(
                        "the connection closed before the answer was complete".to_owned(),
                    )));
                }
            };
            for data in decoder.push(&chunk) {
                match decode_chunk(&data, &mut meta) {
                    Ok(ChunkEvent::Delta(text)) => emit(&text),
                    Ok(ChunkEvent::Skip) => {}
                    Ok(ChunkEvent::Done) => return Ok(meta),
                    Err(ChunkError::Malformed(m)) => {
                        return Err(AttemptFailure::Permanent(LlmError::InvalidResponse(m)));
                    }
                    Err(ChunkError::Upstream(e)) => {
                        return Err(self.core.upstream_failure(e, credential));
                    }
                }
            }
            if decoder.oversized() {
                return Err(AttemptFailure::Permanent(LlmError::InvalidResponse(
                    format!(
                        "the answer stream sent an event over {} bytes",
                        crate::sse::MAX_EVENT_BYTES
                    ),
                )));
            }
        }
    }

    pub async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(self.generation.embedding_batch.max(1)) {
            let batch_vectors = self.embed_batch(batch).await?;
            if let (Some(first), Some(next)) = (vectors.first(), batch_vectors.first())
                && first.len() != next.len()
            {
                return Err(LlmError::InvalidResponse(format!(
                    "embedding dimensions changed between batches ({} then {})",
                    first.len(),
                    next.len()
                )));
            }
            vectors.extend(batch_vectors);
        }
        Ok(vectors)
    }

    /// One batch is one logical call: its own operation id and retries.
    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let id = operation_id();
        async {
            let started = Instant::now();
            let mut retrier = Retrier::new(&self.core.http);
            let result = self
                .retrying(&mut retrier, || self.try_embed(batch, &id))
                .await;
            let tries = retrier.tries();
            match &result {
                Ok(_) => tracing::debug!(
                    inputs = batch.len(),
                    attempts = tries,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "embeddings received"
                ),
                Err(error) => tracing::warn!(
                    inputs = batch.len(),
                    attempts = tries,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    error = %error,
                    "embeddings failed"
                ),
            }
            result
        }
        .instrument(self.span(Operation::Embed, &id))
        .await
    }

    async fn try_embed(&self, batch: &[String], id: &str) -> Result<Vec<Vec<f32>>, AttemptFailure> {
        let request = self
            .core
            .client
            .post(self.backend.embeddings_url())
            .header(ACCEPT, "application/json");
        let request = self.backend.embeddings_body(request, batch);
        let (request, credential) = self.backend.authorize(&self.core, request, id).await?;
        let response = self.core.send(request, credential.as_deref()).await?;
        let bytes = self.core.read_all(response).await?;
        wire::parse_embeddings(&bytes, batch.len())
            .map_err(|e| self.core.body_failure(e, credential.as_deref()))
    }

    fn completion(
        &self,
        parsed: wire::ParsedCompletion,
        id: &str,
        attempts: u32,
    ) -> ChatCompletion {
        ChatCompletion {
            content: parsed.content,
            model: parsed
                .model
                .unwrap_or_else(|| self.backend.chat_model().to_owned()),
            prompt_tokens: parsed.prompt_tokens,
            completion_tokens: parsed.completion_tokens,
            operation_id: id.to_owned(),
            attempts,
        }
    }
}

/// Sizes and timings only: prompts and answers stay out of info-level logs.
fn log_outcome(result: &Result<ChatCompletion, LlmError>, attempts: u32, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(c) => tracing::info!(
            attempts,
            elapsed_ms,
            prompt_tokens = c.prompt_tokens,
            completion_tokens = c.completion_tokens,
            answer_chars = c.content.chars().count(),
            "language model answered"
        ),
        Err(error) => tracing::warn!(
            attempts,
            elapsed_ms,
            status = error.status(),
            permanent = error.is_permanent(),
            error = %error,
            "language model call failed"
        ),
    }
}

/// Implements `ChatModel` and `Embedder` for a client whose `engine` field is
/// an [`Engine`]: the providers differ only in their `Backend`, so the trait
/// impls are written once here.
macro_rules! engine_client {
    ($client:ty) => {
        #[async_trait::async_trait]
        impl $crate::types::ChatModel for $client {
            fn provider(&self) -> &'static str {
                $crate::engine::Backend::provider(&self.engine.backend)
            }

            fn model(&self) -> &str {
                $crate::engine::Backend::chat_model(&self.engine.backend)
            }

            async fn chat(
                &self,
                request: &$crate::types::ChatRequest,
            ) -> Result<$crate::types::ChatCompletion, $crate::error::LlmError> {
                self.engine.chat(request).await
            }

            async fn chat_stream(
                &self,
                request: &$crate::types::ChatRequest,
                on_event: &mut (dyn for<'e> FnMut($crate::types::StreamEvent<'e>) + Send),
            ) -> Result<$crate::types::ChatCompletion, $crate::error::LlmError> {
                self.engine.chat_stream(request, on_event).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::types::Embedder for $client {
            fn provider(&self) -> &'static str {
                $crate::engine::Backend::provider(&self.engine.backend)
            }

            fn model(&self) -> &str {
                $crate::engine::Backend::embedding_model(&self.engine.backend)
            }

            async fn embed(
                &self,
                inputs: &[String],
            ) -> Result<Vec<Vec<f32>>, $crate::error::LlmError> {
                self.engine.embed(inputs).await
            }
        }
    };
}
pub(crate) use engine_client;
