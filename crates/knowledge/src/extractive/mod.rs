//! The answer given when no language model is configured.
//!
//! It is built only from retrieved passages: from each, the span that holds
//! the most of the question's terms, weighted by rarity (see `spans`), where
//! a span is a sentence or a structured line (an option, a table row, a
//! `key: value` line, a list item, a line of code; see `units`), quoted as
//! written and cited, best first, after a plain note that no language model
//! is configured. When no passage shares a word with the question it says so
//! instead of quoting something unrelated. Nothing is paraphrased or
//! invented, and the same input always gives the same answer.

use std::collections::HashSet;

use flowchat_domain::model::{AnswerMode, ChatAnswer, Citation};

use crate::index::Passage;
use crate::query::query_terms;

mod spans;
mod units;

use spans::{QuestionTerms, Span, best_span_in};
use units::{Unit, units};

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
            context: passages.to_vec(),
        };
    }

    let mut answer = String::from(NO_MODEL_INTRO);
    answer.push_str("\n\n");
    let mut sources = String::from("Sources:");
    let mut citations = Vec::with_capacity(picks.len());
    for (i, (passage, span)) in picks.into_iter().enumerate() {
        let n = i as u32 + 1;
        let heading = heading_in_force(passage.heading.as_deref(), span.heading.as_ref());
        answer.push_str(&format!("> {} [{n}]\n\n", span.quote));
        sources.push_str(&format!(
            "\n[{n}] {}",
            source_label(passage, heading.as_deref())
        ));
        citations.push(citation(n, passage, span.quote, heading));
    }
    answer.push_str(&sources);
    ChatAnswer {
        answer,
        citations,
        mode: AnswerMode::Extractive,
        context: passages.to_vec(),
    }
}

/// `passage` cited as `[index]`, quoting `excerpt` under `heading`. Shared
/// with generative answers so a reader sees the same fields whichever way
/// the answer was made.
fn citation(index: u32, passage: &Passage, excerpt: String, heading: Option<String>) -> Citation {
    Citation {
        index,
        document_id: passage.document_id.clone(),
        source: passage.source.clone(),
        chunk: passage.chunk,
        page: passage.page,
        heading,
        score: passage.score,
        excerpt,
    }
}

/// `passage` cited as `[index]` for a generative answer that drew on it for
/// `terms`: the excerpt is the span holding the most of them, as extractive
/// quotes are picked, so the reader sees the part that backs the claim, and
/// the heading is the one in force there. With no shared term the excerpt
/// is the passage's opening rather than nothing to check.
pub(crate) fn cite(index: u32, passage: &Passage, terms: &HashSet<String>) -> Citation {
    let units = units(&passage.text);
    let weights = QuestionTerms::new(terms, units.iter().map(|u| u.text.as_str()));
    if let Some(span) = best_span_in(&weights, &units) {
        let heading = heading_in_force(passage.heading.as_deref(), span.heading.as_ref());
        return citation(index, passage, span.quote, heading);
    }
    let mut opening = units
        .iter()
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if opening.is_empty() {
        // Only headings or fences: better raw text than an empty excerpt.
        opening = passage
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    }
    citation(
        index,
        passage,
        truncate(&opening, MAX_QUOTE_CHARS),
        passage.heading.clone(),
    )
}

/// The heading path in force at a quote: the chunk's path where it starts
/// (`chunk_path`, "Guide > Install") updated with the last heading line
/// inside the chunk before the quote, at its level. Plain text and PDFs have
/// no path, and a `#` line there is not a heading.
fn heading_in_force(chunk_path: Option<&str>, inside: Option<&(usize, String)>) -> Option<String> {
    let (Some(path), Some((level, text))) = (chunk_path, inside) else {
        return chunk_path.map(str::to_owned);
    };
    let mut parts: Vec<&str> = path.split(" > ").collect();
    if parts.last() == Some(&text.as_str()) {
        return Some(path.to_owned());
    }
    parts.truncate(level.saturating_sub(1));
    parts.push(text);
    Some(parts.join(" > "))
}

/// "guide.md — Guide > Install, page 3": enough to find the passage.
fn source_label(passage: &Passage, heading: Option<&str>) -> String {
    let mut label = passage.source.clone();
    let mut sep = " — ";
    if let Some(heading) = heading {
        label.push_str(sep);
        label.push_str(heading);
        sep = ", ";
    }
    if let Some(page) = passage.page {
        label.push_str(&format!("{sep}page {page}"));
    }
    label
}

/// The passages worth quoting with their best spans, best span first.
fn pick_quotes<'p>(terms: &HashSet<String>, passages: &'p [Passage]) -> Vec<(&'p Passage, Span)> {
    if terms.is_empty() {
        return Vec::new();
    }
    let cut: Vec<Vec<Unit>> = passages.iter().map(|p| units(&p.text)).collect();
    // Rarity is judged over everything that may be quoted.
    let weights = QuestionTerms::new(terms, cut.iter().flatten().map(|u| u.text.as_str()));
    let mut scored: Vec<(&Passage, Span)> = passages
        .iter()
        .zip(&cut)
        .filter_map(|(p, units)| best_span_in(&weights, units).map(|span| (p, span)))
        .collect();
    // Best span first; the better-ranked passage wins a tie (stable sort).
    scored.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let Some(best) = scored.first().map(|(_, span)| span.score) else {
        return Vec::new();
    };
    // A span holding far less of the question than the best one is more
    // likely noise than help.
    let floor = best / 2.0;
    let mut quoted: Vec<(&Passage, Span)> = Vec::new();
    for (passage, span) in scored {
        if span.score < floor {
            continue;
        }
        // Overlapping chunks repeat text: quote each once.
        let bare = span.quote.trim_matches('…');
        if quoted
            .iter()
            .any(|(_, q)| q.quote.contains(bare) || span.quote.contains(q.quote.trim_matches('…')))
        {
            continue;
        }
        quoted.push((passage, span));
        if quoted.len() == MAX_QUOTED_PASSAGES {
            break;
        }
    }
    quoted
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

    /// The libtasn1 manual's question (issue 15): the passage holds the
    /// usage line, which shares the most words with the question, and the
    /// option line that answers it, which holds its rare ones.
    #[test]
    fn the_option_line_that_answers_is_quoted() {
        // Page 8 of /usr/share/doc/libtasn1-doc/libtasn1.pdf as the PDF
        // loader reads it.
        let text = "asn1Parser reads a single file with ASN.1 definitions and generates a file \
                    with an array to\nuse with libtasn1 functions.\n\n\
                    Usage: asn1Parser [OPTION] FILE\n\
                    Read FILE with ASN.1 definitions and generate\n\
                    a C array that is used with libtasn1 functions.\n\n\
                    Mandatory arguments to long options are mandatory for short options too.\n\
                    -c, --check checks the syntax only\n\
                    -o, --output=FILE output file\n\
                    -n, --name=NAME array name\n\
                    -h, --help display this help and exit\n\
                    -v, --version output version information and exit\n";
        let passages = vec![passage("libtasn1.pdf", 7, None, text, 3.0)];
        let answer = extractive_answer(
            "Which asn1Parser option only checks the syntax of the ASN.1 definitions file?",
            &passages,
        );
        let quote = &answer.citations[0].excerpt;
        assert!(
            quote.contains("-c, --check checks the syntax only"),
            "{quote}"
        );
    }

    #[test]
    fn the_best_span_comes_first_whatever_the_passage_order() {
        let passages = vec![
            passage("a.md", 0, None, "The VPN is available to everyone.", 3.0),
            passage(
                "b.md",
                0,
                None,
                "To reset the VPN password, open the portal and choose Reset.",
                2.0,
            ),
        ];
        let answer = extractive_answer("How do I reset my VPN password?", &passages);
        let sources: Vec<&str> = answer.citations.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["b.md"], "{answer:#?}");
    }

    #[test]
    fn citations_carry_the_heading_in_force_at_the_quote() {
        let text = "## Install\n\nDownload the installer.\n\n### Linux\n\nRun the installer with sudo on Linux.";
        let passages = vec![passage("guide.md", 1, Some("Guide > Install"), text, 1.0)];
        let answer = extractive_answer("sudo on linux", &passages);
        let c = &answer.citations[0];
        assert_eq!(c.heading.as_deref(), Some("Guide > Install > Linux"));
        assert!(
            answer
                .answer
                .contains("[1] guide.md — Guide > Install > Linux")
        );
        assert_eq!(
            heading_in_force(Some("Guide > Install"), Some(&(2, "Install".into()))).as_deref(),
            Some("Guide > Install")
        );
        assert_eq!(
            heading_in_force(Some("Guide > Install > Linux"), Some(&(2, "Usage".into())))
                .as_deref(),
            Some("Guide > Usage")
        );
        assert_eq!(heading_in_force(None, Some(&(1, "Comment".into()))), None);
    }

    #[test]
    fn page_appears_in_the_source_label() {
        let mut p = passage("manual.pdf", 3, None, "x", 1.0);
        p.page = Some(4);
        assert_eq!(source_label(&p, None), "manual.pdf — page 4");
        assert_eq!(
            source_label(&p, Some("Setup")),
            "manual.pdf — Setup, page 4"
        );
    }
}
