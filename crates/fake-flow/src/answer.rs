//! The fake model: a deterministic answer computed from the prompt, so tests
//! can predict it exactly and can see whether retrieved context (the
//! `<source n="1" ...>` block) reached the model.

/// The answer when the last user message carries no `<source n="1">` block.
pub const NO_ANSWER: &str = "The documents do not contain the answer to this question.";

/// Marker that makes the answer 40 words longer (for long streams).
const LONG_MARKER: &str = "[[fake:long]]";

/// Number of words of source 1 that the answer quotes.
const QUOTED_WORDS: usize = 12;

/// The answer the fake gives when `last_user_message` is the content of the
/// last `user` message of a chat request.
///
/// If the message contains a block `<source n="1" ...>…</source>` (other
/// attributes such as `document="…"` and `location="…"` are allowed, in any
/// order), the answer is `According to [1], <first 12 words of its text>.`;
/// otherwise it is [`NO_ANSWER`]. A block with no text, or a missing
/// `</source>` (then the text runs to the end of the message), is handled
/// leniently. If the message contains `[[fake:long]]`, ` word1 word2 … word40`
/// is appended.
pub fn expected_answer(last_user_message: &str) -> String {
    let mut answer = match first_source_one(last_user_message) {
        Some(inner) => {
            let words: Vec<&str> = inner.split_whitespace().take(QUOTED_WORDS).collect();
            if words.is_empty() {
                NO_ANSWER.to_owned()
            } else {
                format!("According to [1], {}.", words.join(" "))
            }
        }
        None => NO_ANSWER.to_owned(),
    };
    if last_user_message.contains(LONG_MARKER) {
        for i in 1..=40 {
            answer.push_str(&format!(" word{i}"));
        }
    }
    answer
}

/// Inner text of the first `<source ...>` element whose `n` attribute is `1`.
fn first_source_one(text: &str) -> Option<&str> {
    const OPEN: &str = "<source";
    let mut from = 0;
    while let Some(rel) = text[from..].find(OPEN) {
        let after_name = from + rel + OPEN.len();
        let rest = &text[after_name..];
        match rest.chars().next() {
            Some(c) if c.is_whitespace() || c == '>' => {}
            // e.g. `<sources>`: not our element.
            _ => {
                from = after_name;
                continue;
            }
        }
        let tag_len = tag_end(rest)?;
        let attrs = &rest[..tag_len];
        let inner_start = after_name + tag_len + 1;
        if attr_value(attrs, "n").map(str::trim) == Some("1") {
            let inner = &text[inner_start..];
            let end = inner.find("</source>").unwrap_or(inner.len());
            return Some(&inner[..end]);
        }
        from = inner_start;
    }
    None
}

/// Byte index of the `>` that closes a tag, ignoring `>` inside quoted values.
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in rest.as_bytes().iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i),
            None => {}
        }
    }
    None
}

/// Value of attribute `wanted` in the attribute text of a tag. All slicing
/// happens at ASCII delimiters, so any UTF-8 input is safe.
fn attr_value<'a>(attrs: &'a str, wanted: &str) -> Option<&'a str> {
    let b = attrs.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    while i < b.len() {
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let name = &attrs[name_start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = "";
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let start = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = &attrs[start..i];
                if i < b.len() {
                    i += 1;
                }
            } else {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = &attrs[start..i];
            }
        }
        if name == wanted {
            return Some(value);
        }
        i = skip_ws(i);
    }
    None
}

/// Splits `text` into pieces of about one word each, every piece after the
/// first starting with the whitespace that precedes its word, so that the
/// concatenation of the pieces is exactly `text`.
pub(crate) fn split_words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if ws && !prev_ws && i > start {
            pieces.push(&text[start..i]);
            start = i;
        }
        prev_ws = ws;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_first_twelve_words_of_source_one() {
        let msg = "Context:\n<source n=\"2\" document=\"b.md\">other text</source>\n\
                   <source document=\"a > b.md\" n=\"1\" location=\"p. 3\">\n  One two three four five six\n seven eight nine ten eleven twelve thirteen</source>\nQuestion?";
        assert_eq!(
            expected_answer(msg),
            "According to [1], One two three four five six seven eight nine ten eleven twelve."
        );
    }

    #[test]
    fn no_source_and_lookalikes() {
        assert_eq!(expected_answer("What is up?"), NO_ANSWER);
        assert_eq!(expected_answer("<sources n=\"1\">x</sources>"), NO_ANSWER);
        assert_eq!(expected_answer("<source n=\"10\">x</source>"), NO_ANSWER);
        assert_eq!(expected_answer("<source n=\"1\"   "), NO_ANSWER);
        assert_eq!(expected_answer("<source n=\"1\"></source>"), NO_ANSWER);
        assert_eq!(
            expected_answer("<source n='1'>héllo wörld"),
            "According to [1], héllo wörld."
        );
        assert_eq!(
            expected_answer("<source\tn=1>a b</source>"),
            "According to [1], a b."
        );
    }

    #[test]
    fn long_marker_appends_forty_words() {
        let a = expected_answer("[[fake:long]] hi");
        assert!(a.starts_with(NO_ANSWER));
        assert!(a.ends_with(" word39 word40"));
        assert_eq!(a.split_whitespace().count(), 10 + 40);
    }

    #[test]
    fn split_words_concatenates_back() {
        for text in ["According to [1], a  b.", "  lead", "x", "", "ä ö\n ü"] {
            let pieces = split_words(text);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(split_words("a b  c"), vec!["a", " b", "  c"]);
    }
}
