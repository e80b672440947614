//! `sse`: what the drain reads from a language model — a chat stream's
//! Server-Sent Events (`SseDecoder`, then `decode_chunk` per event) and the
//! bodies of non-streamed answers, embeddings and errors (`wire`), from
//! flowchat-llm's own source files (see `lib.rs`).
//!
//! Input: byte 0 picks the network chunk size and how many embeddings were
//! asked for; the rest is the body. Properties: the events do not depend on
//! how the body was split into chunks (events and UTF-8 characters split
//! anywhere); an upstream error's status is 400–599; embeddings come back
//! as many as asked, all of one dimension.

use crate::llm_sse::{ChunkError, ChunkEvent, SseDecoder, StreamMeta, decode_chunk};
use crate::wire;

/// Every event of `body` fed in chunks of `size` bytes (whole when 0).
fn events(body: &[u8], size: usize) -> Vec<String> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    if size == 0 {
        out.extend(decoder.push(body));
    } else {
        for piece in body.chunks(size) {
            out.extend(decoder.push(piece));
        }
    }
    out.extend(decoder.finish());
    out
}

pub fn run(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let whole = events(body, 0);
    let split = events(body, 1 + (control & 0x0f) as usize);
    assert_eq!(whole, split, "events depend on where the stream was split");

    let mut meta = StreamMeta::default();
    for data in &whole {
        match decode_chunk(data, &mut meta) {
            Ok(ChunkEvent::Done) => break,
            Ok(ChunkEvent::Delta(text)) => assert!(!text.is_empty()),
            Ok(ChunkEvent::Skip) | Err(ChunkError::Malformed(_)) => {}
            Err(ChunkError::Upstream(e)) => {
                assert!((400..600).contains(&e.status), "status {}", e.status)
            }
        }
    }

    if let Err(wire::BodyError::Upstream(e)) = wire::parse_completion(body) {
        assert!((400..600).contains(&e.status), "status {}", e.status);
    }
    let expected = 1 + (control >> 4) as usize % 4;
    if let Ok(vectors) = wire::parse_embeddings(body, expected) {
        assert_eq!(vectors.len(), expected);
        let dims = vectors[0].len();
        assert!(dims > 0 && vectors.iter().all(|v| v.len() == dims));
    }
    let _ = wire::error_detail(body);
}
