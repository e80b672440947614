//! Fixture builders for tests: small PDFs made with `lopdf`, in memory, and
//! (with the `chroma` feature) a real Chroma server to test against.
//!
//! Compiled for this crate's tests and, with the `testing` feature, for other
//! crates' tests (`flowchat-knowledge = { …, features = ["testing"] }` in
//! their `[dev-dependencies]`). Not for production code.
//!
//! Text is set in Helvetica with WinAnsi encoding: characters outside
//! Latin-1 come out as `?`.

#[cfg(feature = "chroma")]
mod chroma;
#[cfg(feature = "chroma")]
pub use chroma::ChromaServer;

use lopdf::content::{Content, Operation};
use lopdf::{
    Document, EncryptionState, EncryptionVersion, Object, Permissions, Stream, dictionary,
};

/// US Letter, in points.
const PAGE_WIDTH: f32 = 612.0;
const PAGE_HEIGHT: f32 = 792.0;
const FONT_SIZE: f32 = 12.0;
const LEADING: f32 = 14.0;
const MARGIN: f32 = 72.0;

/// A text run placed on a page: `x`, `y` (points from the bottom left) and
/// the text, in 12 pt Helvetica.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRun {
    pub x: f32,
    pub y: f32,
    pub text: String,
}

impl TextRun {
    pub fn new(x: f32, y: f32, text: impl Into<String>) -> Self {
        Self {
            x,
            y,
            text: text.into(),
        }
    }
}

/// A PDF with one page per entry of `pages`. Each page's text is set line by
/// line from the top left (a `\n` starts a new line; an empty line leaves a
/// gap, which text extraction reads as a paragraph break). Long lines are not
/// wrapped. An empty page text gives a blank page.
pub fn pdf_with_pages(pages: &[&str]) -> Vec<u8> {
    save(build(&page_runs(pages), false))
}

/// A PDF with one page per entry of `pages`, each holding the given text runs
/// at their positions (for column and table layouts).
pub fn pdf_with_text_runs(pages: &[Vec<TextRun>]) -> Vec<u8> {
    save(build(pages, false))
}

/// A one-page PDF whose page only draws an image: what a scanner produces.
/// It has no extractable text.
pub fn image_only_pdf() -> Vec<u8> {
    save(build(&[Vec::new()], true))
}

/// Like [`pdf_with_pages`], encrypted (RC4, 128-bit key) so that opening it
/// needs `user_password`.
pub fn encrypted_pdf(pages: &[&str], user_password: &str) -> Vec<u8> {
    let mut doc = build(&page_runs(pages), false);
    let id = Object::string_literal(b"flowchat-fixture".to_vec());
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
    let state = EncryptionState::try_from(EncryptionVersion::V2 {
        document: &doc,
        owner_password: "flowchat-owner",
        user_password,
        key_length: 128,
        permissions: Permissions::all(),
    })
    .expect("encryption parameters");
    doc.encrypt(&state).expect("encrypt the fixture");
    save(doc)
}

fn page_runs(pages: &[&str]) -> Vec<Vec<TextRun>> {
    pages
        .iter()
        .map(|page| {
            page.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| {
                    TextRun::new(MARGIN, PAGE_HEIGHT - MARGIN - i as f32 * LEADING, line)
                })
                .collect()
        })
        .collect()
}

fn build(pages: &[Vec<TextRun>], with_image: bool) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let mut resources = dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    };
    if with_image {
        // A 96×96 grey "scan" of noise, Flate-compressed like real scans.
        let side: u32 = 96;
        let mut seed: u32 = 0x2545_f491;
        let pixels = (0..side * side)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 24) as u8
            })
            .collect();
        let mut image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => side as i64,
                "Height" => side as i64,
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
            },
            pixels,
        );
        image.compress().expect("compress the image");
        let image_id = doc.add_object(image);
        resources.set("XObject", dictionary! { "Im1" => image_id });
    }
    let resources_id = doc.add_object(resources);

    let mut kids = Vec::with_capacity(pages.len());
    for runs in pages {
        let mut operations = Vec::new();
        if with_image {
            operations.extend([
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![
                        400.into(),
                        0.into(),
                        0.into(),
                        500.into(),
                        100.into(),
                        150.into(),
                    ],
                ),
                Operation::new("Do", vec!["Im1".into()]),
                Operation::new("Q", vec![]),
            ]);
        }
        for run in runs {
            operations.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), FONT_SIZE.into()]),
                Operation::new("Td", vec![run.x.into(), run.y.into()]),
                Operation::new("Tj", vec![Object::string_literal(win_ansi(&run.text))]),
                Operation::new("ET", vec![]),
            ]);
        }
        let content = Content { operations };
        let content_id = doc.add_object(Stream::new(
            dictionary! {},
            content.encode().expect("encode page content"),
        ));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(Object::Reference(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_WIDTH.into(), PAGE_HEIGHT.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc
}

/// Latin-1 bytes for WinAnsi text (close enough for fixtures); other
/// characters become `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c as u32 {
            0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}

fn save(mut doc: Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("write the PDF to memory");
    bytes
}
