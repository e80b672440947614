//! Server-Sent Events as OpenAI-style chat streams use them. Network chunks
//! split events (and UTF-8 characters) anywhere, so bytes are buffered until
//! a line is complete; the chunk decoder then turns each event's data into a
//! text delta, nothing, or the end.

use serde_json::Value;

use crate::wire::{self, UpstreamError};

/// The largest event (or line) a stream may send. A chat chunk is a few
/// hundred bytes; without a bound, a provider or proxy streaming one endless
/// line would grow the drain's memory until the answer deadline.
pub(crate) const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Turns a byte stream into the data payloads of complete events.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// Data lines of the event being read, joined by `\n`.
    data: String,
    has_data: bool,
    /// Set once a line or an event passed [`MAX_EVENT_BYTES`]; what was
    /// buffered is dropped and the stream must be given up.
    oversized: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one network chunk; returns the data of every event it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(data) = self.line_done(&line) {
                events.push(data);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES || self.data.len() > MAX_EVENT_BYTES {
            self.line = Vec::new();
            self.data = String::new();
            self.has_data = false;
            self.oversized = true;
        }
        events
    }

    /// Whether the stream sent a line or an event over [`MAX_EVENT_BYTES`].
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// The data of an event the body ended without terminating, if any.
    /// Servers that close right after `data: [DONE]` without the blank line
    /// are common enough to accept.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if let Some(data) = self.line_done(line) {
                return Some(data);
            }
        }
        self.take_event()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return self.take_event();
        }
        if line[0] == b':' {
            return None; // comment, used as keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        // `event`, `id` and `retry` carry nothing the chat stream needs.
        None
    }

    fn take_event(&mut self) -> Option<String> {
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(std::mem::take(&mut self.data))
    }
}

/// What one event of a chat stream means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChunkEvent {
    Delta(String),
    /// Nothing for the reader: role-only deltas, empty `choices` (Azure's
    /// content-filter preamble), usage-only chunks, finish markers.
    Skip,
    Done,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChunkError {
    Malformed(String),
    Upstream(UpstreamError),
}

/// What a stream says about itself besides text, kept across its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamMeta {
    pub model: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

pub(crate) fn decode_chunk(data: &str, meta: &mut StreamMeta) -> Result<ChunkEvent, ChunkError> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(ChunkEvent::Done);
    }
    if data.is_empty() {
        return Ok(ChunkEvent::Skip);
    }
    let value: Value = serde_json::from_str(data)
        .map_err(|e| ChunkError::Malformed(format!("a stream event is not JSON ({e})")))?;
    if let Some(err) = wire::error_object(&value) {
        return Err(ChunkError::Upstream(err));
    }
    if let Some(model) = wire::model_name(&value) {
        meta.model = Some(model);
    }
    let (prompt, completion) = wire::usage(&value);
    meta.prompt_tokens = prompt.or(meta.prompt_tokens);
    meta.completion_tokens = completion.or(meta.completion_tokens);
    let content = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.pointer("/delta/content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    Ok(match content {
        Some(text) => ChunkEvent::Delta(text.to_owned()),
        None => ChunkEvent::Skip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_line_is_dropped_and_flagged_not_buffered() {
        let mut decoder = SseDecoder::new();
        let piece = vec![b'a'; 64 * 1024];
        let mut events = decoder.push(b"data: ");
        for _ in 0..=(MAX_EVENT_BYTES / piece.len()) {
            events.extend(decoder.push(&piece));
        }
        assert!(events.is_empty());
        assert!(decoder.oversized());
        assert!(
            decoder.line.capacity() <= MAX_EVENT_BYTES,
            "the buffer was let go"
        );
    }

    #[test]
    fn ordinary_streams_are_not_flagged() {
        let mut decoder = SseDecoder::new();
        let events = decoder.push(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(events.len(), 2);
        assert!(!decoder.oversized());
    }

    fn all_events(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| d.push(c)).collect();
        out.extend(d.finish());
        out
    }

    #[test]
    fn events_split_across_chunks_are_joined() {
        let whole = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"];
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(all_events(&[a, b]), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(all_events(&bytes), expected);
    }

    #[test]
    fn utf8_split_inside_a_character_survives() {
        let whole = "data: {\"t\":\"olá ção\"}\n\n".as_bytes();
        let cut = whole.iter().position(|&b| b >= 0x80).unwrap() + 1;
        assert_eq!(
            all_events(&[&whole[..cut], &whole[cut..]]),
            vec!["{\"t\":\"olá ção\"}"]
        );
    }

    #[test]
    fn crlf_comments_and_multiple_data_lines() {
        let body = b": keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: line one\r\ndata:line two\r\n\r\n";
        assert_eq!(all_events(&[body]), vec!["line one\nline two"]);
    }

    #[test]
    fn unterminated_last_event_is_returned_by_finish() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"data: [DONE]").is_empty());
        assert_eq!(d.finish().as_deref(), Some("[DONE]"));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn empty_choices_and_missing_content_are_skipped() {
        let mut meta = StreamMeta::default();
        for data in [
            r#"{"choices":[],"prompt_filter_results":[]}"#,
            r#"{"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":null}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"delta":{"content":""}}]}"#,
            "",
        ] {
            assert_eq!(
                decode_chunk(data, &mut meta),
                Ok(ChunkEvent::Skip),
                "{data}"
            );
        }
    }

    #[test]
    fn deltas_model_usage_and_done() {
        let mut meta = StreamMeta::default();
        assert_eq!(
            decode_chunk(
                r#"{"model":"gpt-4o-mini","choices":[{"delta":{"content":"Hel"}}]}"#,
                &mut meta
            ),
            Ok(ChunkEvent::Delta("Hel".into()))
        );
        assert_eq!(
            decode_chunk(
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
                &mut meta
            ),
            Ok(ChunkEvent::Skip)
        );
        assert_eq!(decode_chunk("[DONE]", &mut meta), Ok(ChunkEvent::Done));
        assert_eq!(meta.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            (meta.prompt_tokens, meta.completion_tokens),
            (Some(9), Some(3))
        );
    }

    #[test]
    fn error_events_carry_a_status() {
        let mut meta = StreamMeta::default();
        let err = decode_chunk(
            r#"{"error":{"message":"slow down","code":"429"}}"#,
            &mut meta,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ChunkError::Upstream(UpstreamError {
                status: 429,
                message: "slow down".into()
            })
        );
        let err = decode_chunk(r#"{"error":{"message":"boom"}}"#, &mut meta).unwrap_err();
        assert!(matches!(
            err,
            ChunkError::Upstream(UpstreamError { status: 502, .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut meta = StreamMeta::default();
        assert!(matches!(
            decode_chunk("{not json", &mut meta),
            Err(ChunkError::Malformed(_))
        ));
    }
}
