//! Which piece of a passage answers the question.
//!
//! Every unit of the passage (see `units`) is scored by the question terms
//! it holds: compared as stems ("checks" finds "check"), each weighted by
//! how rare it is among the units being quoted, so the line holding the
//! question's one unusual word beats the sentence repeating its common ones.
//! The quote is the run of up to [`WINDOW_UNITS`] units, starting at one that
//! holds a term, that covers the most weight: the answer often follows the
//! sentence restating the question, and a definition the line naming it.
//! Then the unit that adds the most missing terms and a lead-in line join
//! it when they fit.
//!
//! The window size and the order of these steps were chosen on the git-doc
//! evaluation (`scripts/eval`, docs/benchmarks.md), which is also where they
//! are measured, so its figures flatter them a little.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

use super::MAX_QUOTE_CHARS;
use super::units::Unit;
use crate::query::words;

/// The most consecutive units a quote's core holds.
const WINDOW_UNITS: usize = 3;

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// A folded word reduced to its stem: "checks", "checking" → "check".
fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

fn stems_of(text: &str) -> HashSet<String> {
    words(text).map(|w| stem(&w)).collect()
}

/// The question's terms as stems, each with its weight.
pub(super) struct QuestionTerms {
    weights: HashMap<String, f64>,
}

impl QuestionTerms {
    /// `terms` (folded question words, see `query_terms`) weighted by their
    /// rarity among `texts`, the units that may be quoted:
    /// `1 + ln((n + 1) / (units holding it + 1))`.
    pub(super) fn new<'t>(terms: &HashSet<String>, texts: impl Iterator<Item = &'t str>) -> Self {
        let stems: HashSet<String> = terms.iter().map(|t| stem(t)).collect();
        let mut holding: HashMap<&str, usize> = stems.iter().map(|s| (s.as_str(), 0)).collect();
        let mut n = 0usize;
        for text in texts {
            n += 1;
            for s in stems_of(text) {
                if let Some(count) = holding.get_mut(s.as_str()) {
                    *count += 1;
                }
            }
        }
        let weights = holding
            .into_iter()
            .map(|(s, count)| {
                let weight = 1.0 + ((n as f64 + 1.0) / (count as f64 + 1.0)).ln();
                (s.to_owned(), weight)
            })
            .collect();
        QuestionTerms { weights }
    }

    /// The summed weight of the terms in `stems`, added in a fixed order so
    /// the same input always scores the same (a set's order changes from
    /// process to process, and float addition is not associative).
    fn score(&self, stems: &HashSet<String>) -> f64 {
        let mut weights: Vec<f64> = stems
            .iter()
            .filter_map(|s| self.weights.get(s))
            .copied()
            .collect();
        weights.sort_by(f64::total_cmp);
        weights.iter().sum()
    }
}

/// The quote chosen from one passage.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Span {
    /// The summed weight of the question terms the quote holds.
    pub score: f64,
    pub quote: String,
    /// The Markdown heading line in force where the quote starts.
    pub heading: Option<(usize, String)>,
}

/// The best span of `text` for `terms`, or `None` when no unit holds a
/// question term.
#[cfg(test)]
pub(super) fn best_span(terms: &QuestionTerms, text: &str) -> Option<Span> {
    best_span_in(terms, &super::units::units(text))
}

/// [`best_span`] over units already cut.
pub(super) fn best_span_in(terms: &QuestionTerms, units: &[Unit]) -> Option<Span> {
    let stems: Vec<HashSet<String>> = units.iter().map(|u| relevant(terms, &u.text)).collect();
    let scores: Vec<f64> = stems.iter().map(|s| terms.score(s)).collect();
    let len = |i: usize| units[i].text.chars().count();
    // The best window: most weight; on a tie, the one starting at the
    // stronger unit, then the earlier one.
    let mut best: Option<(f64, f64, usize, usize)> = None;
    for start in (0..units.len()).filter(|&i| scores[i] > 0.0) {
        let mut end = start + 1;
        let mut used = len(start);
        while end < units.len()
            && end < start + WINDOW_UNITS
            && used + 1 + len(end) <= MAX_QUOTE_CHARS
        {
            used += 1 + len(end);
            end += 1;
        }
        let covered: HashSet<String> = stems[start..end].iter().flatten().cloned().collect();
        let score = terms.score(&covered);
        let better = match best {
            None => true,
            Some((s, first, _, _)) => score > s || (score == s && scores[start] > first),
        };
        if better {
            best = Some((score, scores[start], start, end));
        }
    }
    let (_, _, start, end) = best?;
    let mut chosen: Vec<usize> = (start..end).collect();
    let mut covered: HashSet<String> = stems[start..end].iter().flatten().cloned().collect();
    let mut used: usize = chosen.iter().map(|&i| len(i) + 1).sum::<usize>() - 1;

    // The unit that adds the most missing terms, if it fits.
    let addition = (0..units.len())
        .filter(|&j| !chosen.contains(&j) && used + 3 + len(j) <= MAX_QUOTE_CHARS)
        .map(|j| {
            let missing: HashSet<String> = stems[j].difference(&covered).cloned().collect();
            (j, terms.score(&missing))
        })
        .filter(|&(_, gain)| gain > 0.0)
        .fold(None, |best: Option<(usize, f64)>, (j, gain)| match best {
            Some((_, g)) if g >= gain => best,
            _ => Some((j, gain)),
        });
    if let Some((j, _)) = addition {
        chosen.push(j);
        covered.extend(stems[j].iter().cloned());
        used += 3 + len(j);
    }
    // A lead-in ("The options are:") says what a line is about.
    if start > 0
        && units[start - 1].text.ends_with(':')
        && used + 1 + len(start - 1) <= MAX_QUOTE_CHARS
    {
        chosen.push(start - 1);
    }
    chosen.sort_unstable();

    let mut quote = String::new();
    for (k, &i) in chosen.iter().enumerate() {
        if k > 0 {
            quote.push_str(if i == chosen[k - 1] + 1 { " " } else { " … " });
        }
        quote.push_str(&units[i].text);
    }
    let quote = fit(&quote, &covered);
    Some(Span {
        score: terms.score(&covered),
        quote,
        heading: units[start].heading.clone(),
    })
}

/// The stems of `text` that are question terms.
fn relevant(terms: &QuestionTerms, text: &str) -> HashSet<String> {
    stems_of(text)
        .into_iter()
        .filter(|s| terms.weights.contains_key(s))
        .collect()
}

/// `quote` within [`MAX_QUOTE_CHARS`]: when it is longer, the window starts
/// a little before its first question term (marked with a leading "…"),
/// so a long sentence is not quoted without the words that made it win.
fn fit(quote: &str, covered: &HashSet<String>) -> String {
    if quote.chars().count() <= MAX_QUOTE_CHARS {
        return quote.to_owned();
    }
    let first_term = word_starts(quote)
        .find(|&(_, word)| words(word).any(|w| covered.contains(&stem(&w))))
        .map_or(0, |(at, _)| at);
    // About a fifth of the quote as context before the first term.
    let lead = MAX_QUOTE_CHARS / 5;
    let chars_before = quote[..first_term].chars().count();
    if chars_before <= lead {
        return super::truncate(quote, MAX_QUOTE_CHARS);
    }
    let skip = chars_before - lead;
    let start = quote
        .char_indices()
        .nth(skip)
        .map_or(first_term, |(i, _)| i);
    // Start at a word.
    let start = quote[start..]
        .find(char::is_whitespace)
        .map_or(first_term, |i| (start + i).min(first_term));
    let rest = quote[start..].trim_start();
    format!("…{}", super::truncate(rest, MAX_QUOTE_CHARS - 1))
}

/// Each whitespace-separated word of `text` with its byte offset.
fn word_starts(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_whitespace()
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::query_terms;

    fn question(q: &str, text: &str) -> QuestionTerms {
        let terms: HashSet<String> = query_terms(q).into_iter().collect();
        let units = crate::extractive::units::units(text);
        QuestionTerms::new(&terms, units.iter().map(|u| u.text.as_str()))
    }

    #[test]
    fn stems_match_inflections() {
        assert_eq!(stem("checks"), stem("check"));
        assert_eq!(stem("checking"), stem("check"));
        assert_eq!(stem("definitions"), stem("definition"));
    }

    #[test]
    fn the_line_with_the_rare_terms_wins() {
        let text = "Usage: asn1Parser [OPTION] FILE\n\
                    Read FILE with ASN.1 definitions and generate a C array that is used\n\
                    with libtasn1 functions.\n\
                    -c, --check  checks the syntax only\n\
                    -o, --output=FILE  output file\n\
                    -n, --name=NAME  array name\n";
        let q = "Which asn1Parser option only checks the syntax of the ASN.1 definitions file?";
        let span = best_span(&question(q, text), text).unwrap();
        assert!(
            span.quote.contains("-c, --check checks the syntax only"),
            "{}",
            span.quote
        );
    }

    #[test]
    fn a_long_sentence_is_quoted_around_its_terms() {
        let text = format!(
            "{} the frobnicator resets the widget cache {}.",
            "filler ".repeat(80),
            "padding ".repeat(40)
        );
        let span = best_span(&question("frobnicator widget cache", &text), &text).unwrap();
        assert!(span.quote.chars().count() <= MAX_QUOTE_CHARS);
        assert!(span.quote.starts_with('…'), "{}", span.quote);
        assert!(
            span.quote.contains("frobnicator resets the widget cache"),
            "{}",
            span.quote
        );
    }

    #[test]
    fn a_second_unit_brings_missing_terms() {
        let text = "The proxy port is 3128. Lunch is at noon. The canteen opens at eight. \
                    Parking is free. Proxy credentials come from the vault.";
        let span = best_span(&question("proxy port credentials", text), text).unwrap();
        assert_eq!(
            span.quote,
            "The proxy port is 3128. Lunch is at noon. The canteen opens at eight. … \
             Proxy credentials come from the vault."
        );
    }

    #[test]
    fn the_sentences_after_the_best_one_come_with_it() {
        let text = "Unrelated intro. Running gc on a shared clone is unsafe. It is safe, \
                    however, to run git gc --local. Another topic.";
        let span = best_span(&question("shared clone gc", text), text).unwrap();
        assert!(
            span.quote
                .contains("It is safe, however, to run git gc --local."),
            "{}",
            span.quote
        );
    }

    #[test]
    fn abbreviations_do_not_end_sentences() {
        assert_eq!(
            super::super::units::split_sentences("Use a verb, e.g. fix it. Then stop."),
            ["Use a verb, e.g. fix it.", "Then stop."]
        );
    }

    #[test]
    fn the_same_input_always_gives_the_same_span() {
        let text = "Alpha beta. Gamma delta. Beta gamma. Delta alpha.";
        let terms = question("alpha beta gamma delta", text);
        let first = best_span(&terms, text);
        for _ in 0..20 {
            let again = question("alpha beta gamma delta", text);
            assert_eq!(best_span(&again, text), first);
        }
    }

    #[test]
    fn a_lead_in_line_comes_with_the_line_it_introduces() {
        let text = "Timeouts are set per request.\n\nThe limits are:\n\n- uploads: 20 MiB\n- questions: 4000 characters";
        let span = best_span(&question("upload limit size", text), text).unwrap();
        assert!(
            span.quote.starts_with("The limits are: uploads: 20 MiB"),
            "{}",
            span.quote
        );
    }
}
