//! HTML loading: page chrome and scripts stripped, structure kept as
//! Markdown, so chunks carry heading paths.

use flowchat_knowledge::{ChunkSettings, DocumentFormat, check_content, chunk_document, load};

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intranet-page.html"
    ))
    .unwrap()
}

#[test]
fn chrome_scripts_and_styles_are_stripped() {
    let doc = load("travel.html", &fixture()).unwrap();
    assert_eq!(doc.format, DocumentFormat::Html);
    assert!(doc.page_starts.is_empty());
    for absent in [
        "TRACKING-SCRIPT-TEXT",
        "font-family",
        "SITE-BANNER-TEXT",
        "NAV-MENU-TEXT",
        "RELATED-LINKS-TEXT",
        "SEARCH-BUTTON-TEXT",
        "FOOTER-TEXT",
        "NOSCRIPT-TEXT",
        "TEMPLATE-TEXT",
    ] {
        assert!(
            !doc.text.contains(absent),
            "{absent} leaked into {:?}",
            doc.text
        );
    }
}

#[test]
fn structure_becomes_markdown_with_entities_decoded() {
    let doc = load("travel.html", &fixture()).unwrap();
    let text = &doc.text;
    // The title comes first (it differs from the h1).
    assert!(
        text.starts_with("# Travel Policy – ACME Intranet\n\n# Travel Policy\n"),
        "{text}"
    );
    assert!(text.contains("\n## Booking\n"), "{text}");
    assert!(text.contains("\n### Rail\n"), "{text}");
    assert!(text.contains("ACME & Co. travelling"), "{text}");
    assert!(text.contains("at least 14 days ahead."), "{text}");
    assert!(text.contains("Tier | Hotel | Meals\n"), "{text}");
    assert!(text.contains("A (London, Paris) | €180 | €60\n"), "{text}");
    assert!(text.contains("B (Lyon, Leeds) | €120 | €45"), "{text}");
    assert!(
        text.contains("- Submit claims within 30 days.\n- Attach every receipt — photos are fine."),
        "{text}"
    );
    assert!(
        text.contains("```\nexpense-id: TRV-2024-001\namount:     120.00 EUR\n```"),
        "{text}"
    );
    assert!(!text.contains("&amp;") && !text.contains("&euro;") && !text.contains("&nbsp;"));
}

#[test]
fn chunks_carry_heading_paths() {
    let doc = load("travel.html", &fixture()).unwrap();
    let chunks = chunk_document(
        &doc,
        &ChunkSettings {
            max_tokens: 25,
            overlap_tokens: 0,
        },
    )
    .unwrap();
    let find = |needle: &str| {
        chunks
            .iter()
            .find(|c| c.text.contains(needle))
            .unwrap_or_else(|| panic!("no chunk has {needle:?}: {chunks:#?}"))
    };
    assert_eq!(
        find("first class is allowed").heading.as_deref(),
        Some("Travel Policy > Booking > Rail"),
        "{chunks:#?}"
    );
    assert_eq!(
        find("€180").heading.as_deref(),
        Some("Travel Policy > Expenses")
    );
    assert_eq!(
        find("all employees").heading.as_deref(),
        Some("Travel Policy")
    );
    assert!(chunks.iter().all(|c| c.page.is_none()));
    let positions: Vec<u32> = chunks.iter().map(|c| c.position).collect();
    assert_eq!(positions, (0..chunks.len() as u32).collect::<Vec<_>>());
}

#[test]
fn text_that_looks_like_markdown_does_not_make_headings() {
    let html = "<h1>Real</h1><p># fake heading</p><p>Setext bait<br>---</p><p>&lt;pre&gt; tag talk</p><h2>Second</h2><p>after</p>";
    let doc = load("bait.htm", html.as_bytes()).unwrap();
    let chunks = chunk_document(&doc, &ChunkSettings::default()).unwrap();
    assert_eq!(chunks.len(), 1);
    let headings: Vec<_> = doc.text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headings, vec!["# Real", "## Second"], "{}", doc.text);
    let doc = chunk_document(
        &doc,
        &ChunkSettings {
            max_tokens: 8,
            overlap_tokens: 0,
        },
    )
    .unwrap();
    let after = doc.iter().find(|c| c.text.contains("after")).unwrap();
    assert_eq!(after.heading.as_deref(), Some("Real > Second"));
}

#[test]
fn html_content_checks() {
    assert_eq!(
        check_content("travel.html", &fixture()).unwrap(),
        DocumentFormat::Html
    );
    let err = check_content("notes.html", b"Just some notes, no markup.").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notes.html is not an HTML file"),
        "{err}"
    );
}
