//! Reading the model's answer: its `[n]` markers become citations of the
//! sources it was given, each with the excerpt closest to the claim.

use std::collections::{HashMap, HashSet};

use flowchat_domain::model::{AnswerMode, ChatAnswer};

use crate::extractive::cite;
use crate::index::Passage;
use crate::query::{is_content_word, words};

/// Turns the model's answer text into a ChatAnswer (mode Generative): citations for the sources the text cites as [n] (n within 1..=sources.len(), in order of first appearance, deduplicated, each Citation.index = n); if the text cites none, no citations. Out-of-range [n] are ignored. Excerpts as extractive answers build them.
///
/// Only what the text cites becomes a citation: listing every source given
/// to the model would claim support the answer never drew on. `[1, 2]` is
/// read as `[1][2]`, since models write both. Each excerpt is the passage's
/// part closest to the claim that cites it, so the reader can check that claim.
pub fn generative_answer(text: &str, sources: &[Passage]) -> ChatAnswer {
    let answer = text.trim();
    let runs = citation_runs(answer);

    let mut order: Vec<u32> = Vec::new();
    let mut terms: HashMap<u32, HashSet<String>> = HashMap::new();
    for (k, run) in runs.iter().enumerate() {
        let cited: Vec<u32> = run
            .numbers
            .iter()
            .copied()
            .filter(|&n| n >= 1 && (n as usize) <= sources.len())
            .collect();
        if cited.is_empty() {
            continue;
        }
        let before_start = if k == 0 { 0 } else { runs[k - 1].end };
        let after_end = runs.get(k + 1).map_or(answer.len(), |r| r.start);
        let mut claim = content_words(&answer[before_start..run.start]);
        if claim.is_empty() {
            // "[2] says that …": the claim follows its marker.
            claim = content_words(&answer[run.end..after_end]);
        }
        for n in cited {
            if !terms.contains_key(&n) {
                order.push(n);
            }
            terms.entry(n).or_default().extend(claim.iter().cloned());
        }
    }

    let citations = order
        .into_iter()
        .map(|n| cite(n, &sources[n as usize - 1], &terms[&n]))
        .collect();
    ChatAnswer {
        answer: answer.to_owned(),
        citations,
        mode: AnswerMode::Generative,
        context: sources.to_vec(),
    }
}

const MAX_MARKER_BYTES: usize = 64;

/// A group of adjacent markers, such as `[1][3]` or `[1, 3]`, and where it lies.
struct CitationRun {
    start: usize,
    end: usize,
    numbers: Vec<u32>,
}

/// The citation markers of `text`, adjacent ones grouped because they back
/// the same claim.
fn citation_runs(text: &str) -> Vec<CitationRun> {
    let mut runs: Vec<CitationRun> = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find('[') {
        let start = from + offset;
        match parse_marker(&text[start..]) {
            Some((len, numbers)) => {
                let end = start + len;
                match runs.last_mut() {
                    Some(last) if text[last.end..start].trim().is_empty() => {
                        last.end = end;
                        last.numbers.extend(numbers);
                    }
                    _ => runs.push(CitationRun {
                        start,
                        end,
                        numbers,
                    }),
                }
                from = end;
            }
            None => from = start + 1,
        }
    }
    runs
}

/// `[n]` or `[n, m, …]` at the start of `text`: its length in bytes and numbers.
fn parse_marker(text: &str) -> Option<(usize, Vec<u32>)> {
    // Markers are short; looking further would make a text full of `[`
    // quadratic to scan.
    let window = &text.as_bytes()[..text.len().min(MAX_MARKER_BYTES)];
    let inner_end = window.iter().position(|&b| b == b']')?;
    let inner = &text[1..inner_end];
    let mut numbers = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        numbers.push(part.parse().ok()?);
    }
    Some((inner_end + 1, numbers))
}

fn content_words(text: &str) -> HashSet<String> {
    words(text).filter(|w| is_content_word(w)).collect()
}
