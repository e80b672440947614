//! The `<source>` elements of a prompt: a passage fenced so that its text
//! cannot close the fence or pose as instructions, cut to fit when needed.

use crate::chunking::{count_tokens, tokenizer};
use crate::index::Passage;

/// A cut passage shorter than this is more likely to mislead than to help.
const MIN_TRUNCATED_TOKENS: usize = 50;

/// Marks a passage cut to fit, so the model does not take the cut for the end.
const TRUNCATION_MARK: &str = " …";
/// What a source element costs, and whether its passage was cut.
pub(super) struct SourceCost {
    pub(super) tokens: usize,
    pub(super) truncated: bool,
}

/// The `<source>` element for `passage` as source `n` within `room` tokens:
/// whole, or cut if enough of it fits to be useful, or `None`.
pub(super) fn fit_source(n: usize, passage: &Passage, room: usize) -> Option<(String, SourceCost)> {
    let head = source_head(n, passage);
    let text = neutralise(&passage.text);
    let whole = source_block(&head, &text);
    let tokens = count_tokens(&whole);
    if tokens <= room {
        return Some((
            whole,
            SourceCost {
                tokens,
                truncated: false,
            },
        ));
    }

    let frame = count_tokens(&source_block(&head, TRUNCATION_MARK));
    let mut text_room = room.saturating_sub(frame);
    // Token counts of joined text are not quite additive: shrink until the
    // assembled element really fits.
    while text_room >= MIN_TRUNCATED_TOKENS {
        let cut = truncate_tokens(&text, text_room).trim_end();
        let block = source_block(&head, &format!("{cut}{TRUNCATION_MARK}"));
        let tokens = count_tokens(&block);
        if tokens <= room {
            return Some((
                block,
                SourceCost {
                    tokens,
                    truncated: true,
                },
            ));
        }
        text_room = text_room.saturating_sub((tokens - room).max(1));
    }
    None
}

/// `<source n="1" document="a.md" location="page 3">` and its line break.
pub(super) fn source_head(n: usize, passage: &Passage) -> String {
    let location = match (passage.page, &passage.heading) {
        (Some(page), _) => format!("page {page}"),
        (None, Some(heading)) => attribute(heading),
        (None, None) => String::new(),
    };
    let mut head = format!(
        "<source n=\"{n}\" document=\"{}\"",
        attribute(&passage.source)
    );
    if !location.is_empty() {
        head.push_str(&format!(" location=\"{location}\""));
    }
    head.push_str(">\n");
    head
}

pub(super) fn source_block(head: &str, text: &str) -> String {
    format!("{head}{text}\n</source>\n\n")
}

/// An attribute value that cannot end the attribute or the tag, nor break the
/// line the tag is on.
fn attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\u{2028}' | '\u{2029}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Passage text that cannot close its fence or open another: the `<` of
/// anything a reader could take for a `<source>` or `</source>` tag becomes
/// `‹`. Everything else is left as written, so quotes stay faithful.
fn neutralise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '<' && names_source_tag(&text[i + 1..]) {
            out.push('‹');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the text after a `<` reads as a source tag: `source`, `/source`,
/// in any case, with any spacing (or invisible characters) in between.
fn names_source_tag(rest: &str) -> bool {
    let rest = rest.trim_start_matches(is_blank);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.trim_start_matches(is_blank);
    rest.get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("source"))
}

/// Whitespace, and the zero-width characters a reader would not see either.
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{AD}'
        )
}

/// The longest prefix of `text` within `max_tokens` tokens, ending on a
/// token boundary that is also a character boundary.
pub(super) fn truncate_tokens(text: &str, max_tokens: usize) -> &str {
    let tokens = tokenizer().encode_ordinary(text);
    if tokens.len() <= max_tokens {
        return text;
    }
    // Ordinary encoding splits the text's bytes, so the first tokens decode
    // to a byte prefix of it; a token may end inside a character, though.
    let bytes = tokenizer()
        .decode_bytes(&tokens[..max_tokens])
        .unwrap_or_default();
    let mut end = match std::str::from_utf8(&bytes) {
        Ok(prefix) => prefix.len(),
        Err(e) => e.valid_up_to(),
    }
    .min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
