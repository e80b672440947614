//! HTML to Markdown-ish text, so the Markdown chunker finds its sections.
//!
//! Parsing uses `scraper`, i.e. html5ever, the spec-compliant HTML5 parser
//! of Servo: real-world tag soup parses the way a browser parses it, and
//! character references (`&amp;`, `&eacute;`, `&#8217;`) come out decoded.
//! (`tl` builds faster but is not spec-compliant and is barely maintained;
//! scraper's build — html5ever, selectors, cssparser — is moderate.) We walk
//! its DOM ourselves; no CSS selectors are used.
//!
//! What is kept and how it is written:
//!
//! - the `<title>`, as a `#` heading on top, unless the page's first heading
//!   is an `<h1>` saying the same;
//! - `<h1>`–`<h6>` as `#`–`######` headings (one line each);
//! - paragraphs and other blocks as paragraphs separated by blank lines,
//!   `<br>` as a line break;
//! - list items as `- ` lines (nested lists indented by two spaces per
//!   level, up to [`MAX_LIST_INDENT`] levels: deeper items are indented like
//!   the deepest, so hostile nesting cannot make the output grow with the
//!   square of the input);
//! - table rows as one line each, cells joined with ` | `;
//! - `<pre>` as fenced code blocks, whitespace kept.
//!
//! What is dropped: `<head>` (except the title), scripts, styles,
//! `<noscript>`, `<template>`, forms and their controls, embedded media and
//! `<svg>`, navigation (`<nav>`, `role="navigation"`/`"search"`), asides, and
//! elements marked `hidden`. `<header>` and `<footer>` are dropped when they
//! are page chrome, i.e. not inside an `<article>`, `<main>` or `<section>`
//! (inside one, they are that section's own header, often its title).
//!
//! Text that would change the Markdown structure (a paragraph starting with
//! `#`, a line of `---` that would make the paragraph above a heading, a
//! line starting with a code fence or an HTML tag) gets a backslash in front,
//! so only real HTML headings become heading paths.

use ego_tree::NodeId;
use ego_tree::iter::Edge;
use scraper::{Html, Node};

/// Nested list levels that get their own indentation; deeper ones share the
/// last. Markdown readers seldom show more, and it keeps the output linear in
/// the input (each item costs at most `2 × MAX_LIST_INDENT + 2` bytes of
/// indentation and marker).
pub(crate) const MAX_LIST_INDENT: usize = 8;

/// The Markdown-ish text of an HTML document (see the module docs).
#[cfg(test)]
pub(crate) fn to_markdown(source: &str) -> String {
    to_markdown_within(source, usize::MAX).expect("no limit")
}

/// [`to_markdown`] that stops writing once the text passes `limit` bytes:
/// `None` when it would be longer.
pub(crate) fn to_markdown_within(source: &str, limit: usize) -> Option<String> {
    let html = Html::parse_document(source);
    let title = title_of(&html);

    let mut w = Writer {
        limit,
        ..Writer::default()
    };
    let mut skip: Option<NodeId> = None;
    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                if skip.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(el) => {
                        let name = el.name();
                        if w.is_dropped(name, el) {
                            skip = Some(node.id());
                            continue;
                        }
                        w.open(node.id(), name, el);
                    }
                    Node::Text(text) => w.text(text),
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if let Some(id) = skip {
                    if id == node.id() {
                        skip = None;
                    }
                    continue;
                }
                if let Node::Element(el) = node.value() {
                    w.close(node.id(), el.name());
                }
            }
        }
        if w.out.len() > limit {
            return None;
        }
    }
    w.flush_paragraph();

    let mut out = String::new();
    if let Some(title) = title {
        let repeated = w
            .first_heading
            .as_ref()
            .is_some_and(|(level, text)| *level == 1 && same_words(text, &title));
        if !repeated {
            out.push_str("# ");
            out.push_str(&title);
            out.push_str("\n\n");
        }
    }
    out.push_str(&w.out);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    (out.len() <= limit).then_some(out)
}

/// The text of the document's first `<title>`, whitespace collapsed.
fn title_of(html: &Html) -> Option<String> {
    let title = html.tree.nodes().find(|n| match n.value() {
        Node::Element(el) => el.name() == "title",
        _ => false,
    })?;
    let mut text = String::new();
    for node in title.descendants() {
        if let Node::Text(t) = node.value() {
            text.push_str(t);
        }
    }
    let text = collapse(&text);
    (!text.is_empty()).then_some(text)
}

fn same_words(a: &str, b: &str) -> bool {
    a.split_whitespace()
        .map(str::to_lowercase)
        .eq(b.split_whitespace().map(str::to_lowercase))
}

/// Elements whose content is never text a reader came for.
const DROPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "aside", "form", "button", "input",
    "select", "option", "optgroup", "datalist", "textarea", "output", "svg", "canvas", "iframe",
    "object", "embed", "audio", "video", "map", "dialog",
];

/// Elements that are blocks: they end the paragraph before them and start a
/// new one after.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "hgroup",
    "hr",
    "legend",
    "main",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "ul",
    "header",
    "footer",
    "search",
];

/// Sectioning elements: a `<header>`/`<footer>` inside one belongs to it.
const SECTIONING: &[&str] = &["article", "main", "section"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Paragraph,
    Heading,
    ListItem,
    Row,
    Code,
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Once `out` passes this many bytes, nothing more is written (the
    /// caller gives up on the document).
    limit: usize,
    last: Option<BlockKind>,
    /// Inline text of the block being read; `\n` only from `<br>`.
    inline: String,
    /// Open sectioning elements (see [`SECTIONING`]).
    sectioning: Vec<NodeId>,
    /// Open `<li>`s, and whether each has written its `- ` marker yet.
    items: Vec<(NodeId, bool)>,
    heading: Option<(NodeId, u8)>,
    first_heading: Option<(u8, String)>,
    pre: Option<NodeId>,
    code: String,
    /// The open table row and its cells so far.
    row: Option<(NodeId, Vec<String>)>,
    cell: Option<NodeId>,
}

impl Writer {
    fn is_dropped(&self, name: &str, el: &scraper::node::Element) -> bool {
        if DROPPED.contains(&name) || el.attr("hidden").is_some() {
            return true;
        }
        let chrome_role = match el.attr("role").map(str::to_ascii_lowercase).as_deref() {
            Some("navigation" | "search" | "complementary") => return true,
            Some("banner" | "contentinfo") => true,
            _ => false,
        };
        (chrome_role || name == "header" || name == "footer") && self.sectioning.is_empty()
    }

    /// Inside a heading or table cell, blocks are just word breaks.
    fn inline_only(&self) -> bool {
        self.heading.is_some() || self.cell.is_some() || self.pre.is_some()
    }

    fn open(&mut self, id: NodeId, name: &str, el: &scraper::node::Element) {
        if SECTIONING.contains(&name) {
            self.sectioning.push(id);
        }
        if name == "br" {
            if self.pre.is_some() {
                self.code.push('\n');
            } else if self.inline_only() {
                self.space();
            } else {
                self.inline.push('\n');
            }
            return;
        }
        if name == "img" {
            // Alt text is what the image says in words.
            if let Some(alt) = el.attr("alt").filter(|a| !a.trim().is_empty()) {
                self.space();
                self.push_text(alt);
                self.space();
            }
            return;
        }
        if self.inline_only() {
            if is_block(name) || is_row_or_cell(name) || heading_level(name).is_some() {
                self.space();
            }
            return;
        }
        if let Some(level) = heading_level(name) {
            self.flush_paragraph();
            self.heading = Some((id, level));
        } else if name == "pre" {
            self.flush_paragraph();
            self.pre = Some(id);
        } else if name == "li" {
            self.flush_paragraph();
            self.items.push((id, false));
        } else if name == "tr" {
            self.flush_paragraph();
            self.row = Some((id, Vec::new()));
        } else if (name == "td" || name == "th") && self.row.is_some() {
            self.take_cell();
            self.cell = Some(id);
        } else if is_block(name) {
            self.flush_paragraph();
        }
    }

    fn close(&mut self, id: NodeId, name: &str) {
        if self.sectioning.last() == Some(&id) {
            self.sectioning.pop();
        }
        if self.heading.is_some_and(|(h, _)| h == id) {
            let (_, level) = self.heading.take().expect("checked");
            let text = collapse(&self.inline);
            self.inline.clear();
            if !text.is_empty() {
                if self.first_heading.is_none() {
                    self.first_heading = Some((level, text.clone()));
                }
                let block = format!("{} {}", "#".repeat(level as usize), text);
                self.write_block(BlockKind::Heading, &block);
            }
        } else if self.pre == Some(id) {
            self.pre = None;
            let code = std::mem::take(&mut self.code);
            self.write_code(&code);
        } else if self.cell == Some(id) {
            self.take_cell();
        } else if self.row.as_ref().is_some_and(|(r, _)| *r == id) {
            self.take_cell();
            let (_, cells) = self.row.take().expect("checked");
            let cells: Vec<&str> = cells
                .iter()
                .map(String::as_str)
                .filter(|c| !c.is_empty())
                .collect();
            if !cells.is_empty() {
                let line = escape_line(&cells.join(" | "));
                self.write_block(BlockKind::Row, &line);
            }
        } else if self.items.last().is_some_and(|(i, _)| *i == id) {
            self.flush_paragraph();
            self.items.pop();
        } else if self.inline_only() {
            if is_block(name) || is_row_or_cell(name) || heading_level(name).is_some() {
                self.space();
            }
        } else if is_block(name) {
            self.flush_paragraph();
        }
    }

    /// Ends the open cell (or loose text in a row) as one cell.
    fn take_cell(&mut self) {
        self.cell = None;
        let text = collapse(&self.inline);
        self.inline.clear();
        if let Some((_, cells)) = self.row.as_mut()
            && !text.is_empty()
        {
            cells.push(text);
        }
    }

    fn text(&mut self, text: &str) {
        if self.pre.is_some() {
            self.code.push_str(text);
        } else {
            self.push_text(text);
        }
    }

    /// Appends inline text, collapsing whitespace as a browser renders it.
    fn push_text(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() || c == '\u{a0}' {
                self.space();
            } else if !c.is_control() {
                self.inline.push(c);
            }
        }
    }

    fn space(&mut self) {
        if !self.inline.is_empty() && !self.inline.ends_with([' ', '\n']) {
            self.inline.push(' ');
        }
    }

    /// Writes the inline text read so far as a paragraph or list item.
    fn flush_paragraph(&mut self) {
        if self.row.is_some() {
            // Loose text in a row (outside cells) stays in the row.
            return;
        }
        let lines: Vec<String> = self
            .inline
            .split('\n')
            .map(collapse)
            .filter(|l| !l.is_empty())
            .map(|l| escape_line(&l))
            .collect();
        self.inline.clear();
        if lines.is_empty() {
            return;
        }
        let depth = self.items.len().saturating_sub(1).min(MAX_LIST_INDENT);
        match self.items.last_mut() {
            Some((_, marked)) => {
                let indent = "  ".repeat(depth);
                let first = if *marked {
                    format!("{indent}  ")
                } else {
                    format!("{indent}- ")
                };
                *marked = true;
                let rest = format!("{indent}  ");
                let block = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{}{l}", if i == 0 { &first } else { &rest }))
                    .collect::<Vec<_>>()
                    .join("\n");
                self.write_block(BlockKind::ListItem, &block);
            }
            None => self.write_block(BlockKind::Paragraph, &lines.join("\n")),
        }
    }

    fn write_code(&mut self, code: &str) {
        let code = code.replace("\r\n", "\n").replace('\r', "\n");
        let code = code.trim_matches('\n').trim_end();
        if code.trim().is_empty() {
            return;
        }
        let longest_run = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest_run.max(2) + 1);
        let block = format!("{fence}\n{code}\n{fence}");
        self.write_block(BlockKind::Code, &block);
    }

    fn write_block(&mut self, kind: BlockKind, block: &str) {
        if self.out.len() > self.limit {
            return;
        }
        if !self.out.is_empty() {
            let tight =
                self.last == Some(kind) && matches!(kind, BlockKind::ListItem | BlockKind::Row);
            self.out.push_str(if tight { "\n" } else { "\n\n" });
        }
        self.out.push_str(block);
        self.last = Some(kind);
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn is_block(name: &str) -> bool {
    BLOCKS.contains(&name) || matches!(name, "li" | "pre" | "tr")
}

fn is_row_or_cell(name: &str) -> bool {
    matches!(name, "tr" | "td" | "th")
}

/// Whitespace runs to one space, ends trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Puts a backslash before a text line that Markdown would read as structure:
/// an ATX heading (`#`), a setext underline or rule (`---`, `===`), a code
/// fence, a block quote or an HTML block (which could swallow what follows).
fn escape_line(line: &str) -> String {
    let first = line.chars().next();
    let underline = !line.is_empty() && line.chars().all(|c| matches!(c, '-' | '=' | ' '));
    if underline || matches!(first, Some('#' | '`' | '~' | '<' | '>')) {
        format!("\\{line}")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_lists_tables_and_code() {
        let html = r#"<!DOCTYPE html>
<html><head><title>Travel &amp; Expenses</title><style>p { color: red }</style></head>
<body>
  <header><a href="/">Home</a> | <a href="/about">About us</a></header>
  <nav><ul><li>Menu one</li><li>Menu two</li></ul></nav>
  <main>
    <h2>Booking  travel</h2>
    <p>Book   through the <b>portal</b>.<br>Ask your manager first.</p>
    <ul><li>Trains preferred</li><li>Flights over <i>500&nbsp;km</i>
      <ul><li>Economy only</li></ul></li></ul>
    <table><tr><th>Item</th><th>Limit</th></tr><tr><td><p>Hotel</p></td><td>&euro;120</td></tr></table>
    <pre><code>fn main() {
    println!("hi");
}</code></pre>
    <p># not a heading</p>
  </main>
  <script>var secret = "script text";</script>
  <footer>Copyright footer text</footer>
</body></html>"#;
        let md = to_markdown(html);
        assert_eq!(
            md,
            "# Travel & Expenses\n\n\
             ## Booking travel\n\n\
             Book through the portal.\nAsk your manager first.\n\n\
             - Trains preferred\n\
             - Flights over 500 km\n  \
               - Economy only\n\n\
             Item | Limit\n\
             Hotel | €120\n\n\
             ```\nfn main() {\n    println!(\"hi\");\n}\n```\n\n\
             \\# not a heading\n"
        );
    }

    #[test]
    fn the_title_is_not_repeated_by_an_equal_h1() {
        let md = to_markdown("<title>User  Guide</title><h1>user guide</h1><p>x</p>");
        assert_eq!(md, "# user guide\n\nx\n");
    }

    #[test]
    fn article_headers_are_kept_and_hidden_elements_dropped() {
        let md = to_markdown(
            "<body><div role=navigation>skip me</div><article><header><h1>Post</h1></header>\
             <p hidden>hidden text</p><p>Body</p><footer>By Ann</footer></article></body>",
        );
        assert_eq!(md, "# Post\n\nBody\n\nBy Ann\n");
    }

    #[test]
    fn paragraphs_in_items_and_blocks_in_cells_stay_together() {
        let md = to_markdown(
            "<ul><li><p>First para</p><p>Second para</p></li><li>Two</li></ul>\
             <table><tr><td><h3>Head</h3>cell</td>\
             <td><table><tr><td>in1</td><td>in2</td></tr></table></td></tr></table>",
        );
        assert_eq!(
            md,
            "- First para\n  Second para\n- Two\n\nHead cell | in1 in2\n"
        );
    }

    #[test]
    fn fences_outgrow_backticks_in_code() {
        let md = to_markdown("<pre>a ```` b</pre>");
        assert_eq!(md, "`````\na ```` b\n`````\n");
    }

    #[test]
    fn deep_lists_are_indented_at_most_max_list_indent_levels() {
        let md = to_markdown(&"<ul><li>a".repeat(12));
        let widest = md.lines().map(|l| l.len()).max().unwrap();
        assert_eq!(widest, 2 * MAX_LIST_INDENT + "- a".len(), "{md}");
        assert!(md.starts_with("- a\n  - a\n    - a\n"), "{md}");
        assert_eq!(md.lines().count(), 12);
    }

    #[test]
    fn writing_stops_past_the_limit() {
        let page = "<p>words and more words</p>".repeat(100);
        assert!(to_markdown_within(&page, 100).is_none());
        assert_eq!(
            to_markdown_within(&page, usize::MAX).as_deref(),
            Some(to_markdown(&page).as_str())
        );
    }

    #[test]
    fn empty_documents_give_empty_text() {
        assert_eq!(to_markdown(""), "");
        assert_eq!(to_markdown("<script>x</script><nav>y</nav>"), "");
    }
}
