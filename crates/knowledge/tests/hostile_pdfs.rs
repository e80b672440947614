//! Hostile documents against the readers (security findings H2 and M1):
//! a decompression bomb fails as a plain message without the memory going
//! with it, a reader over its memory limit or its deadline is ended and
//! reaped while the caller carries on, a timed-out in-process reader stops
//! and gives its place back, and ordinary documents read the same in a
//! reader process as in this one.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use flowchat_knowledge::KnowledgeError;
use flowchat_knowledge::extract::{ExtractSettings, Extractor, Isolation};
use flowchat_knowledge::testing::{encrypted_pdf, pdf_with_pages};
use lopdf::{Document, Object, Stream, dictionary};

const MIB: usize = 1024 * 1024;

/// Tests that start reader processes or measure this process run one at a
/// time, so "no reader left" and peak memory mean what they say.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn settings(timeout: Duration, memory_limit_mb: u64) -> ExtractSettings {
    ExtractSettings {
        isolation: Isolation::Subprocess,
        timeout,
        memory_limit_mb,
        concurrency: 2,
    }
}

fn reader_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flowchat-extract"))
}

fn in_child(timeout: Duration, memory_limit_mb: u64) -> Extractor {
    Extractor::subprocess(settings(timeout, memory_limit_mb), reader_program())
}

fn in_process(timeout: Duration) -> Extractor {
    Extractor::in_process(settings(timeout, 512))
}

/// `pages` pages whose `/Contents` list one Flate stream `references`
/// times; the stream decodes to `content`, repeated to `decoded_bytes`.
/// Compressed as it is written: no buffer of the decoded size is made.
fn pdf_with_shared_content(
    content: &[u8],
    decoded_bytes: usize,
    references: usize,
    pages: usize,
) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    let block: Vec<u8> = content
        .iter()
        .copied()
        .cycle()
        .take(content.len() * (64 * 1024 / content.len()).max(1))
        .collect();
    let mut written = 0;
    while written < decoded_bytes {
        let n = block.len().min(decoded_bytes - written);
        encoder.write_all(&block[..n]).unwrap();
        written += n;
    }
    let compressed = encoder.finish().unwrap();

    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let mut stream = Stream::new(dictionary! {}, compressed);
    stream.dict.set("Filter", "FlateDecode");
    let content_id = doc.add_object(Object::Stream(stream));
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
                "Contents" => vec![Object::Reference(content_id); references],
            })
            .into()
        })
        .collect();
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => pages as i64,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// The finding's file: one 256 MiB Flate stream of zeros, listed four
/// times as a page's contents; about 260 KB.
fn decompression_bomb() -> Vec<u8> {
    pdf_with_shared_content(&[0], 256 * MIB, 4, 1)
}

/// This process's peak resident memory so far, in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Reader processes this process started that have not been reaped.
fn readers_left() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            ppid == Some(me)
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("flowchat-extract"))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn the_bomb_is_small() {
    let bomb = decompression_bomb();
    assert!(bomb.len() < 400 * 1024, "{} bytes", bomb.len());
}

/// H2 in this process: the bomb fails the document with a plain message,
/// and memory stays far below what decoding it would take (1 GiB and more).
#[test]
fn a_decompression_bomb_fails_in_process_with_a_plain_message() {
    let _serial = serial();
    let bomb = decompression_bomb();
    let err = in_process(Duration::from_secs(60))
        .load("bomb.pdf", &bomb)
        .unwrap_err();
    assert!(
        matches!(err, KnowledgeError::DecodedTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "bomb.pdf expands to more than 64 MiB when decompressed, which is over the limit; \
         the file may be damaged or built to exhaust memory"
    );
    let peak = peak_rss_bytes();
    assert!(
        peak < 400 * MIB as u64,
        "peak RSS {} MiB",
        peak / MIB as u64
    );
}

/// H2 in a reader process: the same plain message, the caller untouched.
#[test]
fn a_decompression_bomb_fails_in_a_reader_process() {
    let _serial = serial();
    let bomb = decompression_bomb();
    let err = in_child(Duration::from_secs(60), 512)
        .load("bomb.pdf", &bomb)
        .unwrap_err();
    assert!(
        matches!(err, KnowledgeError::DecodedTooLarge { .. }),
        "{err:?}"
    );
    assert!(readers_left().is_empty());
}

/// Within every cap, a page of tiny drawing operators still takes ~100
/// times its size to parse: the reader process meets its address-space
/// limit, dies, and the caller reports it.
#[test]
fn a_reader_over_its_memory_limit_is_ended_and_reported() {
    let _serial = serial();
    let hungry = pdf_with_shared_content(b"0 0 m\n", 3 * MIB + MIB / 2, 1, 1);
    let err = in_child(Duration::from_secs(120), 160)
        .load("hungry.pdf", &hungry)
        .unwrap_err();
    assert!(
        matches!(err, KnowledgeError::ReaderOutOfMemory { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "hungry.pdf needs more than 160 MiB of memory to read and was given up on; \
         the file may be damaged or unusually complex"
    );
    assert!(readers_left().is_empty());
}

/// A PDF that takes minutes (2,000 pages drawing one 900 KiB content
/// stream, under every page cap).
fn slow_pdf() -> Vec<u8> {
    pdf_with_shared_content(b"0 0 m 1 1 l S\n", 900 * 1024, 1, 2000)
}

/// M1 with a reader process: killed at the deadline and reaped; nothing of
/// it is left running.
#[test]
fn a_slow_reader_process_is_killed_at_the_deadline() {
    let _serial = serial();
    let slow = slow_pdf();
    let extractor = in_child(Duration::from_secs(2), 512);
    let started = Instant::now();
    let err = extractor.load("slow.pdf", &slow).unwrap_err();
    assert!(
        matches!(err, KnowledgeError::PdfTimeout { seconds: 2, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(readers_left(), Vec::<u32>::new());
    assert_eq!(extractor.readers_running(), 0);
}

/// M1 in this process: the timed-out reader is asked to stop, stops at the
/// next page, and only then gives its place back (it kept it meanwhile).
#[test]
fn a_slow_in_process_reader_stops_and_then_frees_its_place() {
    let _serial = serial();
    let slow = slow_pdf();
    let extractor = in_process(Duration::from_secs(2));
    let err = extractor.load("slow.pdf", &slow).unwrap_err();
    assert!(matches!(err, KnowledgeError::PdfTimeout { .. }), "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while extractor.readers_running() > 0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out reader did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Text, Markdown and HTML have a deadline too.
#[test]
fn text_formats_have_a_deadline() {
    let page = format!(
        "<html><body>{}</body></html>",
        "<p>word word</p>".repeat(300_000)
    );
    let err = in_process(Duration::from_millis(1))
        .load("slow.html", page.as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, KnowledgeError::LoadTimeout { seconds: 0, .. }),
        "{err:?}"
    );
}

/// Ordinary documents (and ordinary failures) read the same in a reader
/// process as in this one.
#[test]
fn ordinary_documents_read_the_same_in_a_reader_process() {
    let _serial = serial();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let handbook = std::fs::read(fixtures.join("handbook.pdf")).unwrap();
    let intranet = std::fs::read(fixtures.join("intranet-page.html")).unwrap();
    let documents: Vec<(&str, Vec<u8>)> = vec![
        ("handbook.pdf", handbook),
        ("intranet-page.html", intranet),
        (
            "pages.pdf",
            pdf_with_pages(&["First page text.", "", "Third page, café."]),
        ),
        ("notes.md", b"# Notes\r\n\r\nSome text.\r\n".to_vec()),
        ("plain.txt", "caf\u{e9} and more".as_bytes().to_vec()),
        ("locked.pdf", encrypted_pdf(&["hidden"], "secret")),
        ("owner-only.pdf", encrypted_pdf(&["readable"], "")),
        ("fake.pdf", b"<html>not a pdf</html>".to_vec()),
        ("binary.txt", b"a\0b".to_vec()),
        ("empty.md", b"  \n".to_vec()),
        ("deck.pptx", b"x".to_vec()),
    ];
    let child = in_child(Duration::from_secs(60), 512);
    let here = in_process(Duration::from_secs(60));
    assert!(child.is_subprocess() && !here.is_subprocess());
    for (name, bytes) in &documents {
        let a = here.load(name, bytes).map_err(|e| e.to_string());
        let b = child.load(name, bytes).map_err(|e| e.to_string());
        assert_eq!(a, b, "{name}");
    }
    let handbook = child.load("handbook.pdf", &documents[0].1).unwrap();
    assert!(handbook.page_starts.len() > 1);
    assert!(readers_left().is_empty());
}

/// The drain trusts nothing its reader says or does: no answer, a failing
/// reader, or one that cannot be started are failures to report (the last
/// one worth retrying), never a crash or a hang.
#[test]
fn a_reader_without_a_valid_answer_is_a_failure() {
    let _serial = serial();
    let reader = |program: &str| {
        Extractor::subprocess(settings(Duration::from_secs(10), 512), program.into())
            .load("notes.md", b"# Notes")
            .unwrap_err()
    };
    for program in ["/bin/true", "/bin/false"] {
        let err = reader(program);
        assert!(
            matches!(err, KnowledgeError::ReaderFailed { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "notes.md could not be read; the reader stopped unexpectedly"
        );
    }
    assert!(matches!(
        reader("/nonexistent/flowchat-reader"),
        KnowledgeError::Io { .. }
    ));
}

/// Object streams (which lopdf inflates while loading, so they are decoded
/// by the load filter within the budget) still read as before.
#[test]
fn pdfs_with_object_streams_read_as_before() {
    let plain = pdf_with_pages(&["Alpha page.", "Beta page."]);
    let mut doc = Document::load_mem(&plain).unwrap();
    let mut packed = Vec::new();
    let options = lopdf::SaveOptions::builder()
        .use_object_streams(true)
        .use_xref_streams(true)
        .build();
    doc.save_with_options(&mut packed, options).unwrap();
    assert!(
        packed.windows(b"/ObjStm".len()).any(|w| w == b"/ObjStm"),
        "the fixture has no object stream"
    );
    let reader = in_process(Duration::from_secs(60));
    let expected = reader.load("plain.pdf", &plain).unwrap();
    let packed = reader.load("packed.pdf", &packed).unwrap();
    assert_eq!(packed.text, expected.text);
    assert_eq!(packed.page_starts, expected.page_starts);
}

/// Found by fuzzing: a page that is its own `/Parent` and has no
/// `/MediaBox` (610 bytes). pdf-extract looks for the box up the `/Parent`
/// links with no cycle check: optimised, reading spun inside that one page
/// until the deadline, and an in-process reader, which checks its deadline
/// between pages, never stopped and kept its place for good; unoptimised,
/// the walk overflowed the stack and aborted the process. The link that
/// closes the cycle is now cut before extraction.
#[test]
fn a_page_that_is_its_own_parent_is_read_promptly() {
    let bytes = include_bytes!("fixtures/page-own-parent.pdf");
    let extractor = in_process(Duration::from_secs(5));
    let result = extractor.load("own-parent.pdf", bytes);
    assert!(
        !matches!(result, Err(KnowledgeError::PdfTimeout { .. })),
        "{result:?}"
    );
    assert_eq!(extractor.readers_running(), 0);
}
