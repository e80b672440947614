//! PDF loading and chunking, on PDFs generated with lopdf (through
//! `flowchat_knowledge::testing`) and one small Ghostscript-made fixture.

use flowchat_knowledge::testing::{
    TextRun, encrypted_pdf, image_only_pdf, pdf_with_pages, pdf_with_text_runs,
};
use flowchat_knowledge::{
    ChunkSettings, DocumentFormat, KnowledgeError, MAX_FILE_BYTES, check_content, chunk_document,
    load,
};

fn small() -> ChunkSettings {
    ChunkSettings {
        max_tokens: 30,
        overlap_tokens: 5,
    }
}

#[test]
fn pages_are_numbered_and_hyphenated_words_joined() {
    let bytes = pdf_with_pages(&[
        "Alpha page covers infor-\nmation retrieval basics.\nIt also mentions Jean-\nPaul.",
        "Bravo page explains\n\nhow the index is stored on disk.",
        "Charlie page lists the well-\nknown limits of the system.",
    ]);
    assert_eq!(
        check_content("three.pdf", &bytes).unwrap(),
        DocumentFormat::Pdf
    );
    let doc = load("three.pdf", &bytes).unwrap();
    assert_eq!(doc.format, DocumentFormat::Pdf);
    assert_eq!(doc.page_starts.len(), 3);
    assert_eq!(doc.page_count(), Some(3));
    assert_eq!(doc.page_starts[0], 0);
    assert!(
        doc.text.contains("information retrieval basics."),
        "{:?}",
        doc.text
    );
    assert!(!doc.text.contains("infor-"), "{:?}", doc.text);
    // Only a lowercase continuation joins.
    assert!(doc.text.contains("Jean-\nPaul."), "{:?}", doc.text);
    // A gap between lines is a paragraph break.
    assert!(
        doc.text.contains("explains\n\nhow the index"),
        "{:?}",
        doc.text
    );
    assert!(!doc.text.contains('\u{c}'));
    for (i, word) in ["Alpha", "Bravo", "Charlie"].iter().enumerate() {
        assert!(
            doc.text[doc.page_starts[i]..].starts_with(word),
            "page {} starts with {word}: {:?}",
            i + 1,
            doc.text
        );
    }

    let chunks = chunk_document(&doc, &ChunkSettings::default()).unwrap();
    let pages: Vec<Option<u32>> = chunks.iter().map(|c| c.page).collect();
    assert_eq!(pages, vec![Some(1), Some(2), Some(3)], "{chunks:#?}");
    assert!(chunks[0].text.starts_with("Alpha"));
    assert!(chunks[2].text.contains("wellknown"), "{:?}", chunks[2].text);
    let positions: Vec<u32> = chunks.iter().map(|c| c.position).collect();
    assert_eq!(positions, vec![0, 1, 2]);
}

#[test]
fn chunks_never_span_pages_and_positions_run_on() {
    let page = |name: &str| {
        (0..12)
            .map(|i| format!("{name} sentence {i} describes the {name} chapter in detail."))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let texts = [page("first"), page("second"), page("third")];
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let doc = load("long.pdf", &pdf_with_pages(&refs)).unwrap();
    let chunks = chunk_document(&doc, &small()).unwrap();
    assert!(chunks.len() > 6, "{} chunks", chunks.len());
    for chunk in &chunks {
        let page = chunk.page.expect("every PDF chunk has a page") as usize;
        let name = ["first", "second", "third"][page - 1];
        for other in ["first", "second", "third"] {
            assert_eq!(
                chunk.text.contains(other),
                other == name,
                "chunk on page {page} holds only {name} text: {:?}",
                chunk.text
            );
        }
        assert!(chunk.token_count as usize <= small().max_tokens);
    }
    let pages: Vec<u32> = chunks.iter().map(|c| c.page.unwrap()).collect();
    assert!(pages.windows(2).all(|w| w[0] <= w[1]), "{pages:?}");
    assert_eq!(pages.first(), Some(&1));
    assert_eq!(pages.last(), Some(&3));
    let positions: Vec<u32> = chunks.iter().map(|c| c.position).collect();
    assert_eq!(positions, (0..chunks.len() as u32).collect::<Vec<_>>());
}

#[test]
fn blank_pages_keep_the_numbering() {
    let doc = load(
        "gap.pdf",
        &pdf_with_pages(&["Front matter.", "", "Back matter."]),
    )
    .unwrap();
    assert_eq!(doc.page_starts.len(), 3);
    let chunks = chunk_document(&doc, &ChunkSettings::default()).unwrap();
    let pages: Vec<Option<u32>> = chunks.iter().map(|c| c.page).collect();
    assert_eq!(pages, vec![Some(1), Some(3)]);
}

#[test]
fn table_like_layouts_keep_every_cell() {
    let rows = [
        ["Region", "Revenue", "Growth"],
        ["North", "1.2M", "4%"],
        ["South", "0.9M", "-2%"],
        ["East", "2.4M", "11%"],
    ];
    let mut runs = vec![TextRun::new(72.0, 740.0, "Quarterly results by region")];
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let y = 700.0 - r as f32 * 16.0;
            runs.push(TextRun::new(72.0 + c as f32 * 150.0, y, *cell));
        }
    }
    let doc = load("table.pdf", &pdf_with_text_runs(&[runs])).unwrap();
    for cell in rows.iter().flatten() {
        assert!(
            doc.text.contains(cell),
            "{cell} missing from {:?}",
            doc.text
        );
    }
    // Cells of one row stay on one line, in column order.
    let line = doc
        .text
        .lines()
        .find(|l| l.contains("North"))
        .expect("a line with North");
    let (a, b, c) = (
        line.find("North").unwrap(),
        line.find("1.2M").unwrap(),
        line.find("4%").unwrap(),
    );
    assert!(a < b && b < c, "{line:?}");
}

#[test]
fn malformed_pdfs_fail_with_a_readable_error() {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    let err = load("broken.pdf", &bytes).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::PdfUnreadable { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("broken.pdf could not be read as a PDF; the file may be damaged"),
        "{err}"
    );
}

#[test]
fn truncated_pdfs_fail_with_a_readable_error() {
    let full = pdf_with_pages(&["Page one text.", "Page two text.", "Page three text."]);
    for cut in [full.len() / 2, full.len() / 3, 40] {
        let err = load("cut.pdf", &full[..cut]).unwrap_err();
        assert!(
            matches!(err, KnowledgeError::PdfUnreadable { .. }),
            "cut at {cut}: {err:?}"
        );
        assert!(err.to_string().contains("could not be read"), "{err}");
    }
}

#[test]
fn encrypted_pdfs_say_they_are_encrypted() {
    let bytes = encrypted_pdf(&["Top secret plans."], "s3cret");
    assert_eq!(
        check_content("locked.pdf", &bytes).unwrap(),
        DocumentFormat::Pdf
    );
    let err = load("locked.pdf", &bytes).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::PdfEncrypted { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("locked.pdf is encrypted (password-protected)"),
        "{message}"
    );
}

#[test]
fn pdfs_encrypted_without_a_user_password_are_read() {
    // "Owner password only": anyone may open it; lopdf decrypts it.
    let bytes = encrypted_pdf(&["Readable despite encryption."], "");
    let doc = load("restricted.pdf", &bytes).unwrap();
    assert!(
        doc.text.contains("Readable despite encryption."),
        "{:?}",
        doc.text
    );
}

#[test]
fn hand_made_encrypt_dictionaries_are_reported_as_encrypted() {
    // A PDF whose trailer points at an /Encrypt dictionary lopdf cannot use.
    let body = "%PDF-1.4\n\
        1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
        2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >> endobj\n\
        3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n\
        4 0 obj << /Length 8 >> stream\ngarbage!\nendstream endobj\n\
        5 0 obj << /Filter /Standard /V 2 /R 3 /Length 128 /P -4 \
        /O <0000000000000000000000000000000000000000000000000000000000000000> \
        /U <0000000000000000000000000000000000000000000000000000000000000000> >> endobj\n";
    let xref_at = body.len();
    let mut offsets = Vec::new();
    for n in 1..=5 {
        offsets.push(body.find(&format!("{n} 0 obj")).unwrap());
    }
    let mut pdf = body.to_owned();
    pdf.push_str("xref\n0 6\n0000000000 65535 f \n");
    for o in offsets {
        pdf.push_str(&format!("{o:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer << /Size 6 /Root 1 0 R /Encrypt 5 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>] >>\nstartxref\n{xref_at}\n%%EOF\n"
    ));
    let err = load("handmade.pdf", pdf.as_bytes()).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::PdfEncrypted { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn image_only_pdfs_have_no_extractable_text() {
    let err = load("scan.pdf", &image_only_pdf()).unwrap_err();
    assert!(matches!(err, KnowledgeError::PdfNoText { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "scan.pdf contains no extractable text — it may be a scanned image; OCR is not supported"
    );
}

#[test]
fn non_pdf_bytes_and_oversized_files_are_refused_before_parsing() {
    let err = load("fake.pdf", b"<html>hello</html>").unwrap_err();
    assert!(
        matches!(err, KnowledgeError::ContentMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "fake.pdf is not a PDF file: it does not start with the %PDF- header"
    );

    let mut huge = b"%PDF-1.4\n".to_vec();
    huge.resize(MAX_FILE_BYTES as usize + 1, b' ');
    let err = load("huge.pdf", &huge).unwrap_err();
    assert!(matches!(err, KnowledgeError::TooLarge { .. }), "{err:?}");
}

#[test]
fn a_ghostscript_pdf_reads_with_pages_and_table_cells() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/handbook.pdf"
    ))
    .unwrap();
    let doc = load("handbook.pdf", &bytes).unwrap();
    assert_eq!(doc.page_starts.len(), 2);
    let page1 = &doc.text[..doc.page_starts[1]];
    let page2 = &doc.text[doc.page_starts[1]..];
    assert!(page1.starts_with("Employee Handbook"), "{page1:?}");
    assert!(page1.contains("the information on it"), "{page1:?}");
    assert!(page2.starts_with("Expense limits"), "{page2:?}");
    for cell in [
        "Item",
        "Limit",
        "Approver",
        "Hotel night",
        "EUR 120",
        "Team lead",
        "Dinner",
        "EUR 45",
    ] {
        assert!(page2.contains(cell), "{cell} missing from {page2:?}");
    }

    let chunks = chunk_document(&doc, &ChunkSettings::default()).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].page, Some(1));
    assert_eq!(chunks[1].page, Some(2));
    assert!(chunks.iter().all(|c| c.heading.is_none()));
}
