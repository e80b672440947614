//! The answer given when no language model is configured.
//!
//! It is built only from retrieved passages: the sentences that share the most
//! words with the question, quoted as written and cited, after a plain note
//! that no language model is configured. When no passage shares a word with
//! the question it says so instead of quoting something unrelated. Nothing is
//! paraphrased or invented, and the same input always gives the same answer.

use std::collections::HashSet;

use flowchat_domain::model::{AnswerMode, ChatAnswer, Citation};

use crate::index::Passage;
use crate::query::{query_terms, words};

/// The longest quote (and citation excerpt), in characters.
pub const MAX_QUOTE_CHARS: usize = 300;

/// The most passages one extractive answer quotes.
pub const MAX_QUOTED_PASSAGES: usize = 3;

const NO_MODEL_INTRO: &str = "No language model is configured, so this answer only quotes the \
documents. The passages that best match your question:";

const NOTHING_FOUND: &str = "No language model is configured, so answers can only quote the \
documents, and no passage in the documents matches this question. Try the words the documents \
would use, or add a document that covers it.";

/// An extractive answer to `question` from `passages` (best first).
pub fn extractive_answer(question: &str, passages: &[Passage]) -> ChatAnswer {
    let terms: HashSet<String> = query_terms(question).into_iter().collect();
    let picks = pick_quotes(&terms, passages);
    if picks.is_empty() {
        return ChatAnswer {
            answer: NOTHING_FOUND.to_owned(),
            citations: Vec::new(),
            mode: AnswerMode::Extractive,
        };
    }

    let mut answer = String::from(NO_MODEL_INTRO);
    answer.push_str("\n\n");
    let mut sources = String::from("Sources:");
    let mut citations = Vec::with_capacity(picks.len());
    for (i, (passage, quote)) in picks.into_iter().enumerate() {
        let n = i as u32 + 1;
        answer.push_str(&format!("> {quote} [{n}]\n\n"));
        sources.push_str(&format!("\n[{n}] {}", source_label(passage)));
        citations.push(citation(n, passage, quote));
    }
    answer.push_str(&sources);
    ChatAnswer {
        answer,
        citations,
        mode: AnswerMode::Extractive,
    }
}

/// `passage` cited as `[index]`. Shared with generative answers so a reader
/// sees the same fields whichever way the answer was made.
pub(crate) fn citation(index: u32, passage: &Passage, excerpt: String) -> Citation {
    Citation {
        index,
        document_id: passage.document_id.clone(),
        source: passage.source.clone(),
        chunk: passage.chunk,
        page: passage.page,
        heading: passage.heading.clone(),
        score: passage.score,
        excerpt,
    }
}

/// The excerpt shown under a citation: the passage's sentences that share
/// the most `terms`, as extractive quotes are picked, so the reader sees the
/// part that backs the claim. With no shared term it falls back to the
/// passage's opening rather than leaving the reader nothing to check.
pub(crate) fn excerpt(terms: &HashSet<String>, text: &str) -> String {
    if let Some((_, quote)) = best_quote(terms, text) {
        return quote;
    }
    let mut opening = sentences(text).join(" ");
    if opening.is_empty() {
        // Only headings or fences: better raw text than an empty excerpt.
        opening = text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    truncate(&opening, MAX_QUOTE_CHARS)
}

/// "guide.md — Guide > Install, page 3": enough to find the passage.
fn source_label(passage: &Passage) -> String {
    let mut label = passage.source.clone();
    let mut sep = " — ";
    if let Some(heading) = &passage.heading {
        label.push_str(sep);
        label.push_str(heading);
        sep = ", ";
    }
    if let Some(page) = passage.page {
        label.push_str(&format!("{sep}page {page}"));
    }
    label
}

/// The passages worth quoting, with their quotes, in the order given.
fn pick_quotes<'p>(terms: &HashSet<String>, passages: &'p [Passage]) -> Vec<(&'p Passage, String)> {
    if terms.is_empty() {
        return Vec::new();
    }
    let scored: Vec<(&Passage, usize, String)> = passages
        .iter()
        .filter_map(|p| best_quote(terms, &p.text).map(|(overlap, quote)| (p, overlap, quote)))
        .collect();
    let best = scored
        .iter()
        .map(|(_, overlap, _)| *overlap)
        .max()
        .unwrap_or(0);
    // A passage matching far fewer of the question's words than the best one
    // is more likely noise than help.
    let floor = best.div_ceil(2).max(1);
    let mut quoted: Vec<(&Passage, String)> = Vec::new();
    for (passage, overlap, quote) in scored {
        if overlap < floor {
            continue;
        }
        // Overlapping chunks repeat sentences: quote each text once.
        if quoted
            .iter()
            .any(|(_, q)| q.contains(quote.trim_end_matches('…')) || quote.contains(q.as_str()))
        {
            continue;
        }
        quoted.push((passage, quote));
        if quoted.len() == MAX_QUOTED_PASSAGES {
            break;
        }
    }
    quoted
}

/// The best quote from a passage and how many question terms it holds:
/// up to two of its sentences sharing the most terms, in text order.
fn best_quote(terms: &HashSet<String>, text: &str) -> Option<(usize, String)> {
    let sentences = sentences(text);
    let overlaps: Vec<usize> = sentences.iter().map(|s| overlap(terms, s)).collect();
    let mut ranked: Vec<usize> = (0..sentences.len()).filter(|&i| overlaps[i] > 0).collect();
    // Most terms first; earlier sentences win ties.
    ranked.sort_by_key(|&i| (std::cmp::Reverse(overlaps[i]), i));
    let &first = ranked.first()?;

    let mut chosen = vec![first];
    if let Some(&second) = ranked.get(1) {
        let len = |i: usize| sentences[i].chars().count();
        if len(first) + len(second) + 3 <= MAX_QUOTE_CHARS {
            chosen.push(second);
            chosen.sort_unstable();
        }
    }
    let mut quote = String::new();
    for (k, &i) in chosen.iter().enumerate() {
        if k > 0 {
            quote.push_str(if i == chosen[k - 1] + 1 { " " } else { " … " });
        }
        quote.push_str(&sentences[i]);
    }
    // The terms of all chosen sentences together.
    let covered = overlap(terms, &quote);
    Some((covered, truncate(&quote, MAX_QUOTE_CHARS)))
}

/// How many distinct question terms `sentence` contains.
fn overlap(terms: &HashSet<String>, sentence: &str) -> usize {
    words(sentence)
        .filter(|w| terms.contains(w))
        .collect::<HashSet<_>>()
        .len()
}

/// Sentences of a chunk, whitespace collapsed. Paragraph breaks, list items
/// and table rows end a sentence; Markdown heading lines and code fences are
/// left out (the heading is already in the citation).
fn sentences(text: &str) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, units: &mut Vec<String>| {
        if !current.trim().is_empty() {
            units.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        current.clear();
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with("```")
            || line.starts_with("~~~")
        {
            flush(&mut current, &mut units);
            continue;
        }
        if let Some(item) = list_item(line) {
            flush(&mut current, &mut units);
            current.push_str(item);
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    flush(&mut current, &mut units);
    units.iter().flat_map(|u| split_sentences(u)).collect()
}

/// The text of a list item, quote or table line, without its marker.
fn list_item(line: &str) -> Option<&str> {
    for marker in ["- ", "* ", "+ ", "> ", "|"] {
        if let Some(rest) = line.strip_prefix(marker) {
            return Some(rest.trim());
        }
    }
    let digits = line.find(|c: char| !c.is_ascii_digit())?;
    if digits > 0 {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(rest.trim());
        }
    }
    None
}

/// Splits after `.`, `!`, `?` or `…` followed by whitespace.
fn split_sentences(unit: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = unit.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…') {
            let end = i + c.len_utf8();
            if chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) {
                let sentence = unit[start..end].trim();
                if !sentence.is_empty() {
                    out.push(sentence.to_owned());
                }
                start = end;
            }
        }
    }
    let rest = unit[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// `text` cut to at most `max` characters at a word boundary, ending in "…".
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max - 1).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    let trimmed = at_word.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
    format!("{trimmed}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowchat_domain::DocumentId;

    fn passage(source: &str, chunk: u32, heading: Option<&str>, text: &str, score: f64) -> Passage {
        Passage {
            document_id: DocumentId::for_content(source.as_bytes()),
            source: source.to_owned(),
            chunk,
            page: None,
            heading: heading.map(str::to_owned),
            text: text.to_owned(),
            score,
        }
    }

    #[test]
    fn quotes_and_cites_the_relevant_passage() {
        let passages = vec![
            passage(
                "guide.md",
                2,
                Some("Guide > Install > Linux"),
                "## Linux\n\nFirst download the package. To install the VPN client on Linux, \
                 run the installer with sudo. Then reboot.",
                4.2,
            ),
            passage(
                "menu.md",
                0,
                None,
                "Lunch is served at noon on weekdays.",
                0.3,
            ),
        ];
        let answer = extractive_answer("How do I install the VPN on Linux?", &passages);
        assert_eq!(answer.mode, AnswerMode::Extractive);
        assert!(answer.answer.starts_with("No language model is configured"));
        assert_eq!(answer.citations.len(), 1, "{answer:#?}");
        let c = &answer.citations[0];
        assert_eq!(c.index, 1);
        assert_eq!(c.source, "guide.md");
        assert_eq!(c.chunk, 2);
        assert_eq!(c.heading.as_deref(), Some("Guide > Install > Linux"));
        assert_eq!(c.score, 4.2);
        assert!(
            c.excerpt.contains("install the VPN client on Linux"),
            "{}",
            c.excerpt
        );
        assert!(!c.excerpt.contains("Lunch"));
        assert!(
            answer.answer.contains(&format!("> {} [1]", c.excerpt)),
            "{}",
            answer.answer
        );
        assert!(
            answer
                .answer
                .contains("[1] guide.md — Guide > Install > Linux")
        );
        assert!(!answer.answer.contains("menu.md"));
    }

    #[test]
    fn refuses_noise_and_empty_results() {
        let passages = vec![passage("menu.md", 0, None, "Lunch is served at noon.", 1.0)];
        for answer in [
            extractive_answer("How do I configure the VPN?", &passages),
            extractive_answer("How do I configure the VPN?", &[]),
            extractive_answer("o que é isso?", &passages),
        ] {
            assert!(answer.citations.is_empty());
            assert!(answer.answer.contains("No language model is configured"));
            assert!(
                answer
                    .answer
                    .contains("no passage in the documents matches")
            );
            assert!(!answer.answer.contains("Lunch"));
        }
    }

    #[test]
    fn quotes_are_short_deduplicated_and_numbered_in_order() {
        let long = format!("The VPN {} ends here.", "policy word ".repeat(60));
        let shared = "Use the VPN when working remotely from home.";
        let passages = vec![
            passage("a.md", 0, None, &long, 3.0),
            passage("b.md", 1, None, shared, 2.0),
            passage("b.md", 2, None, shared, 1.9), // overlap repeat
            passage(
                "c.txt",
                0,
                None,
                "The VPN portal address is vpn.example.com today.",
                1.0,
            ),
            passage("d.txt", 0, None, "VPN VPN VPN.", 0.5),
        ];
        let answer = extractive_answer("vpn", &passages);
        let sources: Vec<&str> = answer.citations.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["a.md", "b.md", "c.txt"]);
        let indexes: Vec<u32> = answer.citations.iter().map(|c| c.index).collect();
        assert_eq!(indexes, [1, 2, 3]);
        for c in &answer.citations {
            assert!(
                c.excerpt.chars().count() <= MAX_QUOTE_CHARS,
                "{}",
                c.excerpt
            );
        }
        assert!(answer.citations[0].excerpt.ends_with('…'));
        assert!(!answer.citations[0].excerpt.ends_with(" …"));
        let again = extractive_answer("vpn", &passages);
        assert_eq!(answer, again);
    }

    #[test]
    fn sentences_follow_paragraphs_and_lists() {
        let text =
            "# Title\n\nOne sentence\nwrapped. Two!\n- item one\n- item two\n\n```\ncode\n```";
        assert_eq!(
            sentences(text),
            [
                "One sentence wrapped.",
                "Two!",
                "item one",
                "item two",
                "code"
            ]
        );
    }

    #[test]
    fn page_appears_in_the_source_label() {
        let mut p = passage("manual.pdf", 3, None, "x", 1.0);
        p.page = Some(4);
        assert_eq!(source_label(&p), "manual.pdf — page 4");
        p.heading = Some("Setup".into());
        assert_eq!(source_label(&p), "manual.pdf — Setup, page 4");
    }
}
