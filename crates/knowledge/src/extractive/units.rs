//! A passage cut into the pieces an extractive answer can quote.
//!
//! Documentation puts answers in lines, not only in sentences: the option
//! line `-c, --check  checks the syntax only`, a table row, `Timeout: 30 s`,
//! a list item, a line of code. Prose is cut into sentences; each of those
//! lines is a unit of its own (with the lines that continue it), so a quote
//! can be exactly the line that answers instead of the paragraph around it.

/// A quotable piece of a passage, whitespace collapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unit {
    pub text: String,
    /// The Markdown heading line in force where the unit starts, if the
    /// passage has one before it: its level (number of `#`) and text.
    pub heading: Option<(usize, String)>,
}

/// What a line of text is, for cutting it into units.
enum Line<'a> {
    Blank,
    Heading(usize, &'a str),
    Fence,
    /// Starts a unit of its own (list item, option, table row, key: value),
    /// its marker removed where it has one.
    Item(&'a str),
    Prose(&'a str),
}

/// The units of `text` in order. Markdown heading lines and code fences are
/// not units (the heading is in the citation); lines inside a fence are
/// each a unit.
pub(super) fn units(text: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut heading: Option<(usize, String)> = None;
    // The unit being built: its lines, and whether it is prose (cut into
    // sentences) or an item (kept whole when it fits a quote).
    let mut current: Vec<&str> = Vec::new();
    let mut current_is_item = false;
    let mut in_code = false;

    let flush = |current: &mut Vec<&str>,
                 is_item: bool,
                 heading: &Option<(usize, String)>,
                 out: &mut Vec<Unit>| {
        if current.is_empty() {
            return;
        }
        let joined = collapse(&current.join(" "));
        current.clear();
        if joined.is_empty() {
            return;
        }
        let pieces = if is_item && joined.chars().count() <= super::MAX_QUOTE_CHARS {
            vec![joined]
        } else {
            split_sentences(&joined)
        };
        out.extend(pieces.into_iter().map(|text| Unit {
            text,
            heading: heading.clone(),
        }));
    };

    for raw in text.lines() {
        let line = raw.trim();
        if in_code {
            if is_fence(line) {
                in_code = false;
            } else if !line.is_empty() {
                out.push(Unit {
                    text: collapse(line),
                    heading: heading.clone(),
                });
            }
            continue;
        }
        match classify(raw) {
            Line::Blank => flush(&mut current, current_is_item, &heading, &mut out),
            Line::Fence => {
                flush(&mut current, current_is_item, &heading, &mut out);
                in_code = true;
            }
            Line::Heading(level, text) => {
                flush(&mut current, current_is_item, &heading, &mut out);
                heading = Some((level, collapse(text)));
            }
            Line::Item(text) => {
                flush(&mut current, current_is_item, &heading, &mut out);
                current.push(text);
                current_is_item = true;
            }
            Line::Prose(text) => {
                if current.is_empty() {
                    current_is_item = false;
                }
                current.push(text);
            }
        }
    }
    flush(&mut current, current_is_item, &heading, &mut out);
    out
}

fn classify(raw: &str) -> Line<'_> {
    let line = raw.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if is_fence(line) {
        return Line::Fence;
    }
    if let Some(level) = heading_level(line) {
        return Line::Heading(level, line[level..].trim());
    }
    if let Some(item) = list_item(line) {
        return Line::Item(item);
    }
    if is_option(line) || is_columns(raw) || is_key_value(line) {
        return Line::Item(line);
    }
    Line::Prose(line)
}

fn is_fence(line: &str) -> bool {
    line.starts_with("```") || line.starts_with("~~~")
}

/// `## Title` → 2. Six `#` at most, then a space (or nothing).
fn heading_level(line: &str) -> Option<usize> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    ((1..=6).contains(&level) && (rest.is_empty() || rest.starts_with(' '))).then_some(level)
}

/// The text of a list item, quote or table line, without its marker.
fn list_item(line: &str) -> Option<&str> {
    for marker in ["- ", "* ", "+ ", "> ", "• ", "|"] {
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

/// A command-line option: `-c, --check …`, `--output=FILE …`.
fn is_option(line: &str) -> bool {
    let rest = line.strip_prefix("--").or_else(|| line.strip_prefix('-'));
    rest.and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A line laid out in columns (a table row, a definition list as text
/// extracted from a PDF or a man page): a tab, or a run of 2+ spaces,
/// between words.
fn is_columns(raw: &str) -> bool {
    let inner = raw.trim();
    inner.contains('\t') || inner.contains("  ")
}

/// `Key: value`, with a short key (at most four words, no sentence end).
fn is_key_value(line: &str) -> bool {
    let Some((key, value)) = line.split_once(": ") else {
        return false;
    };
    !key.is_empty()
        && !value.trim().is_empty()
        && key.split_whitespace().count() <= 4
        && !key.contains(['.', '!', '?', ','])
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits after `.`, `!`, `?` or `…` followed by whitespace, unless the
/// next word starts in lower case ("e.g. this", "i.e. that", "vs. them"):
/// that is an abbreviation, not a sentence end.
pub(super) fn split_sentences(unit: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = unit.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…') {
            let end = i + c.len_utf8();
            let next_word = unit[end..].trim_start().chars().next();
            if chars.peek().is_some_and(|&(_, n)| n.is_whitespace())
                && !next_word.is_some_and(char::is_lowercase)
            {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        units(text).into_iter().map(|u| u.text).collect()
    }

    #[test]
    fn prose_is_cut_into_sentences_and_lists_into_items() {
        let text =
            "# Title\n\nOne sentence\nwrapped. Two!\n- item one\n- item two\n\n```\ncode\n```";
        assert_eq!(
            texts(text),
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
    fn option_lines_are_units_with_their_continuations() {
        let text = "Usage: asn1Parser [OPTION] FILE\n\
                    Read FILE with ASN.1 definitions and generate\n\
                    a C array.\n\
                    -c, --check  checks the syntax only\n\
                    -o, --output=FILE\n\
                    output file\n\n\
                    Report bugs to the list.";
        assert_eq!(
            texts(text),
            [
                "Usage: asn1Parser [OPTION] FILE Read FILE with ASN.1 definitions and generate a C array.",
                "-c, --check checks the syntax only",
                "-o, --output=FILE output file",
                "Report bugs to the list.",
            ]
        );
    }

    #[test]
    fn table_rows_columns_and_key_values_are_units() {
        let text = "| Setting | Default |\n|---|---|\n| Timeout | 30 s |\n\
                    Port:  8080\nName\tValue\n\nProse, with a colon: goes on. And ends.";
        assert_eq!(
            texts(text),
            [
                "Setting | Default |",
                "---|---|",
                "Timeout | 30 s |",
                "Port: 8080",
                "Name Value",
                "Prose, with a colon: goes on.",
                "And ends.",
            ]
        );
    }

    #[test]
    fn units_know_the_heading_in_force() {
        let text = "Before.\n\n## Install\n\nRun it.\n\n### Linux\n\nUse sudo.";
        let found: Vec<(String, Option<(usize, String)>)> = units(text)
            .into_iter()
            .map(|u| (u.text, u.heading))
            .collect();
        assert_eq!(
            found,
            [
                ("Before.".to_owned(), None),
                ("Run it.".to_owned(), Some((2, "Install".to_owned()))),
                ("Use sudo.".to_owned(), Some((3, "Linux".to_owned()))),
            ]
        );
    }

    #[test]
    fn long_items_are_cut_into_sentences() {
        let long = format!("- {} end. Second part.", "word ".repeat(70));
        let found = texts(&long);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[1], "Second part.");
    }
}
