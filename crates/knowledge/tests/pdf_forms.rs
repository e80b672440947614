//! Form XObjects: text inside (nested) forms is read, and forms that draw
//! themselves or nest absurdly deep do not crash the process (pdf-extract
//! recurses into forms without limit; a stack overflow aborts the process).

use flowchat_knowledge::{KnowledgeError, load};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, dictionary};

/// A one-page PDF. `forms[i]` is form `Fm{i}`'s content; every form and the
/// page can draw any form by name: with `own_resources`, each form carries
/// a resources dictionary naming all forms; without, names resolve in the
/// page's resources (which pdf-extract then hands down).
fn pdf_with_forms(page_content: &str, forms: &[String], own_resources: bool) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let form_ids: Vec<ObjectId> = forms.iter().map(|_| doc.new_object_id()).collect();
    let mut xobjects = Dictionary::new();
    for (i, id) in form_ids.iter().enumerate() {
        xobjects.set(format!("Fm{i}"), *id);
    }
    let resources = dictionary! {
        "Font" => dictionary! { "F1" => font_id },
        "XObject" => xobjects,
    };
    for (content, id) in forms.iter().zip(&form_ids) {
        let mut dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        };
        if own_resources {
            dict.set("Resources", resources.clone());
        }
        doc.objects.insert(
            *id,
            Object::Stream(Stream::new(dict, content.as_bytes().to_vec())),
        );
    }
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        page_content.as_bytes().to_vec(),
    ));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => resources,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

fn text_at(y: usize, text: &str) -> String {
    format!("BT /F1 12 Tf 72 {y} Td ({text}) Tj ET\n")
}

#[test]
fn text_in_nested_forms_is_read() {
    let forms = vec![
        format!("{}/Fm1 Do", text_at(700, "outer form text")),
        text_at(680, "inner form text"),
    ];
    for own in [true, false] {
        let bytes = pdf_with_forms(
            &format!("{}/Fm0 Do", text_at(720, "page text")),
            &forms,
            own,
        );
        let doc = load("nested.pdf", &bytes).unwrap();
        for needle in ["page text", "outer form text", "inner form text"] {
            assert!(
                doc.text.contains(needle),
                "{needle} missing: {:?}",
                doc.text
            );
        }
    }
}

#[test]
fn forms_that_draw_themselves_do_not_crash() {
    let cases: Vec<Vec<String>> = vec![
        // Fm0 draws itself.
        vec![format!("{}/Fm0 Do", text_at(700, "self loop"))],
        // Fm0 → Fm1 → Fm0.
        vec![
            format!("{}/Fm1 Do", text_at(700, "loop one")),
            format!("{}/Fm0 Do", text_at(680, "loop two")),
        ],
    ];
    for forms in cases {
        for own in [true, false] {
            let bytes = pdf_with_forms(
                &format!("{}/Fm0 Do", text_at(720, "page text")),
                &forms,
                own,
            );
            let doc = load("loop.pdf", &bytes).unwrap();
            assert!(doc.text.contains("page text"), "{:?}", doc.text);
            assert!(
                doc.text.contains("loop") || doc.text.contains("self"),
                "{:?}",
                doc.text
            );
        }
    }
}

#[test]
fn absurdly_deep_form_chains_are_cut_short() {
    // Fm0 → Fm1 → … → Fm499, each with its own line of text.
    let depth = 500;
    let forms: Vec<String> = (0..depth)
        .map(|i| {
            let next = if i + 1 < depth {
                format!("/Fm{} Do", i + 1)
            } else {
                String::new()
            };
            format!("{}{next}", text_at(700, &format!("level{i}")))
        })
        .collect();
    for own in [true, false] {
        let bytes = pdf_with_forms("/Fm0 Do", &forms, own);
        let doc = match load("deep.pdf", &bytes) {
            Ok(doc) => doc,
            Err(KnowledgeError::PdfTimeout { .. }) => panic!("deep forms took too long"),
            Err(other) => panic!("{other}"),
        };
        // The chain is cut every few dozen levels; what is drawn from the
        // page down to the first cut is read.
        assert!(doc.text.starts_with("level0level1level2"), "{:?}", doc.text);
        let levels = doc.text.matches("level").count();
        assert!(
            (2..=25).contains(&levels),
            "{levels} levels: {:?}",
            doc.text
        );
    }
}

/// Found by fuzzing: a stream that draws itself but whose `/Subtype /Form`
/// is mangled was not seen as a form by the cycle check, while pdf-extract
/// drew it all the same, recursing until the stack overflowed (the process
/// aborted). Every stream a `Do` can name is now checked.
#[test]
fn a_self_drawing_stream_with_a_mangled_subtype_does_not_crash() {
    let bytes = include_bytes!("fixtures/form-cycle-mangled-subtype.pdf");
    // Read or refused, the process survives.
    let _ = load("form-cycle.pdf", bytes);
}
