//! Reading an uploaded file out of a `multipart/form-data` body and deciding
//! whether we take it: its name (sanitised), its extension and whether its
//! bytes look like what the extension claims.
//!
//! The format rules are [`flowchat_domain::document_format`]'s, the same the
//! knowledge loader applies when the drain indexes the file. The checks are
//! deliberately cheap — one pass over at most the first 64 KiB, whatever the
//! file's size; the drain parses the whole file for real (and marks the
//! document `failed` when it cannot) — and exist to refuse the obvious
//! mismatches at once, with a message naming what was expected, instead of
//! queueing work that can only fail. They run after the request was counted
//! against the rate limit (`routes::documents::upload`).

use bytes::Bytes;
use flowchat_domain::ValidationError;
use flowchat_domain::document_format::DocumentFormat;

use crate::error::ApiError;

/// The multipart field that carries the file.
pub(crate) const FILE_FIELD: &str = "file";

/// The longest stored file name, in characters (extension included).
pub(crate) const MAX_NAME_CHARS: usize = 200;

/// The file part of an upload, as sent.
#[derive(Debug)]
pub(crate) struct FilePart {
    /// The `filename` of the part's `Content-Disposition`, unsanitised.
    pub(crate) filename: Option<String>,
    pub(crate) bytes: Bytes,
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::MalformedMultipart(e.to_string())
}

/// Reads the one `file` field out of a `multipart/form-data` body with the
/// `Content-Type` `content_type`. Other fields are skipped; a second `file`
/// field, a missing one, or a file over `max_file_bytes` is refused.
pub(crate) async fn read_file_part(
    content_type: &str,
    body: Bytes,
    max_file_bytes: usize,
) -> Result<FilePart, ApiError> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| match e {
        multer::Error::NoBoundary => {
            ApiError::MalformedMultipart("the Content-Type has no `boundary` parameter".to_owned())
        }
        other => malformed(other),
    })?;
    let stream = futures_util::stream::once(futures_util::future::ready(Ok::<
        Bytes,
        std::convert::Infallible,
    >(body)));
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut found: Option<FilePart> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some(FILE_FIELD) {
            // Skipped unread: the body as a whole is already bounded.
            continue;
        }
        if found.is_some() {
            return Err(ValidationError::new(
                FILE_FIELD,
                "count",
                "send exactly one `file` field per request",
            )
            .into());
        }
        let filename = field.file_name().map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > max_file_bytes {
                return Err(ApiError::FileTooLarge {
                    limit: max_file_bytes,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        found = Some(FilePart {
            filename,
            bytes: Bytes::from(bytes),
        });
    }
    found.ok_or_else(|| {
        ValidationError::new(
            FILE_FIELD,
            "required",
            "send the document as a multipart/form-data field named `file` (with a filename)",
        )
        .into()
    })
}

/// Characters that change how text is displayed without being visible
/// (bidirectional overrides and marks): they could make a name like
/// `evil<U+202E>txt.exe` display as `evilexe.txt`.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The name a document is stored under: the last path component only
/// (`/` and `\` both separate), control and bidirectional-format characters
/// removed, trimmed, at most [`MAX_NAME_CHARS`] characters with the
/// extension kept. Returns it with its format; an empty name is a 400, an
/// extension we do not take a 415.
pub(crate) fn sanitise_filename(raw: Option<&str>) -> Result<(String, DocumentFormat), ApiError> {
    let required = || {
        ApiError::from(ValidationError::new(
            "filename",
            "required",
            "the `file` part needs a file name ending in one of the supported extensions",
        ))
    };
    let raw = raw.ok_or_else(required)?;
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    let name = cleaned.trim();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        return Err(required());
    }
    let format = DocumentFormat::from_name(name).ok_or_else(|| {
        ApiError::UnsupportedFile(ValidationError::new(
            "file",
            "extension",
            format!(
                "`{}` is not a supported file type; the file name must end in one of {}",
                truncate_chars(name, 60),
                DocumentFormat::supported_list()
            ),
        ))
    })?;
    let name = if name.chars().count() > MAX_NAME_CHARS {
        // `from_name` found an extension, so there is a dot.
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let keep = MAX_NAME_CHARS - ext.chars().count() - 1;
        format!("{}.{ext}", truncate_chars(stem, keep).trim_end())
    } else {
        name.to_owned()
    };
    Ok((name, format))
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Refuses an empty file (400) and content that does not match `format`
/// (415, saying what was expected and what is wrong).
pub(crate) fn check_content(
    name: &str,
    format: DocumentFormat,
    bytes: &[u8],
) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Err(ValidationError::new("file", "length", "the file is empty").into());
    }
    format.check(bytes).map_err(|mismatch| {
        ApiError::UnsupportedFile(ValidationError::new(
            "file",
            "content",
            format!(
                "the content of `{}` does not match its extension: expected {}, but {mismatch}",
                truncate_chars(name, 60),
                format.expected_content()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn read(content_type: &str, body: &[u8], max: usize) -> Result<FilePart, ApiError> {
        read_file_part(content_type, Bytes::copy_from_slice(body), max)
            .now_or_never()
            .expect("a body in memory never waits")
    }

    fn part(boundary: &str, disposition: &str, content: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn end(boundary: &str) -> Vec<u8> {
        format!("--{boundary}--\r\n").into_bytes()
    }

    #[test]
    fn reads_the_file_field_and_skips_others() {
        let b = "XyZ123";
        let mut body = b"preamble is ignored\r\n".to_vec();
        body.extend(part(b, r#"name="note""#, b"hello"));
        body.extend(part(b, r#"name="file"; filename="a.md""#, b"# Title\n"));
        body.extend(end(b));
        let got = read(&format!("multipart/form-data; boundary={b}"), &body, 100).unwrap();
        assert_eq!(got.filename.as_deref(), Some("a.md"));
        assert_eq!(&got.bytes[..], b"# Title\n");
    }

    #[test]
    fn boundary_may_be_quoted_and_appear_in_content() {
        let b = "a'b(c)d+e,f";
        // The boundary inside a line (not right after CRLF) is content.
        let content = b"line --a'b(c)d+e,f not a boundary\r\n-- also \r\n-a'b(c)d+e,f\r\nend\r\n";
        let mut body = part(b, r#"name="file"; filename="x.txt""#, content);
        body.extend(end(b));
        let got = read(
            &format!("multipart/form-data; boundary=\"{b}\""),
            &body,
            1000,
        )
        .unwrap();
        assert_eq!(&got.bytes[..], content);
        // Unquoted, and the parameter name in any case.
        let b = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let mut body = part(b, r#"name="file"; filename="y.txt""#, b"--\r\n--");
        body.extend(end(b));
        let got = read(
            &format!("Multipart/Form-Data; charset=utf-8; Boundary={b}"),
            &body,
            1000,
        )
        .unwrap();
        assert_eq!(&got.bytes[..], b"--\r\n--");
    }

    #[test]
    fn missing_duplicate_or_oversized_file_fields_are_refused() {
        let b = "bnd";
        let ct = "multipart/form-data; boundary=bnd";
        let mut body = part(b, r#"name="other"; filename="a.md""#, b"x");
        body.extend(end(b));
        match read(ct, &body, 100) {
            Err(ApiError::Validation(v)) => {
                assert_eq!((v.field.as_str(), v.rule), ("file", "required"))
            }
            other => panic!("{other:?}"),
        }
        let mut body = part(b, r#"name="file"; filename="a.md""#, b"x");
        body.extend(part(b, r#"name="file"; filename="b.md""#, b"y"));
        body.extend(end(b));
        match read(ct, &body, 100) {
            Err(ApiError::Validation(v)) => {
                assert_eq!((v.field.as_str(), v.rule), ("file", "count"))
            }
            other => panic!("{other:?}"),
        }
        let mut body = part(b, r#"name="file"; filename="a.md""#, &[b'x'; 101]);
        body.extend(end(b));
        assert!(matches!(
            read(ct, &body, 100),
            Err(ApiError::FileTooLarge { limit: 100 })
        ));
        let mut body = part(b, r#"name="file"; filename="a.md""#, &[b'x'; 100]);
        body.extend(end(b));
        assert_eq!(read(ct, &body, 100).unwrap().bytes.len(), 100);
    }

    #[test]
    fn malformed_bodies_are_400s() {
        let ct = "multipart/form-data; boundary=bnd";
        // Cut short: no closing boundary.
        let body = part("bnd", r#"name="file"; filename="a.md""#, b"x");
        assert!(matches!(
            read(ct, &body[..body.len() - 2], 100),
            Err(ApiError::MalformedMultipart(_))
        ));
        assert!(matches!(
            read("multipart/form-data", b"", 100),
            Err(ApiError::MalformedMultipart(_))
        ));
        // Bare LF line endings are not multipart.
        let body = b"--bnd\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\n\nx\n--bnd--\n";
        assert!(read(ct, body, 100).is_err());
    }

    #[test]
    fn file_names_are_sanitised() {
        let ok = |raw: &str| sanitise_filename(Some(raw)).unwrap().0;
        assert_eq!(ok("../../etc/passwd.md"), "passwd.md");
        assert_eq!(ok(r"C:\Users\ana\My Notes.TXT"), "My Notes.TXT");
        assert_eq!(ok("  re\u{7}port\n.pdf  "), "report.pdf");
        assert_eq!(ok("evil\u{202E}lmth.txt"), "evillmth.txt");
        assert_eq!(ok("page.HTM"), "page.HTM");
        let long = format!("{}.markdown", "é".repeat(300));
        let name = ok(&long);
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with("é.markdown"));
        assert_eq!(
            sanitise_filename(Some("x.md")).unwrap().1,
            DocumentFormat::Markdown
        );
        assert_eq!(
            sanitise_filename(Some("x.htm")).unwrap().1,
            DocumentFormat::Html
        );

        for empty in [
            None,
            Some(""),
            Some("  "),
            Some("dir/"),
            Some("a\\.."),
            Some("\u{1}\u{2}"),
        ] {
            match sanitise_filename(empty) {
                Err(ApiError::Validation(v)) => assert_eq!(v.field, "filename", "{empty:?}"),
                other => panic!("{empty:?}: {other:?}"),
            }
        }
        for unsupported in [
            "a.exe",
            "md",
            ".md",
            "notes.md.",
            "archive.tar.gz",
            "x.pdf/evil",
        ] {
            match sanitise_filename(Some(unsupported)) {
                Err(ApiError::UnsupportedFile(v)) => {
                    assert_eq!(v.rule, "extension", "{unsupported}");
                    assert!(v.message.contains(".markdown"));
                }
                other => panic!("{unsupported}: {other:?}"),
            }
        }
    }

    #[test]
    fn content_must_match_the_extension() {
        let check = |name: &str, bytes: &[u8]| {
            let (name, format) = sanitise_filename(Some(name)).unwrap();
            check_content(&name, format, bytes)
        };
        assert!(check("a.pdf", b"%PDF-1.7\n...").is_ok());
        assert!(check("a.txt", "héllo".as_bytes()).is_ok());
        assert!(check("a.md", b"# x").is_ok());
        assert!(check("a.html", b"<!DOCTYPE html><title>x</title>").is_ok());
        assert!(check("a.htm", b"text <p>para</p>").is_ok());
        assert!(check("a.html", b"<br/>").is_ok());

        let rule = |r: Result<(), ApiError>| match r {
            Err(ApiError::UnsupportedFile(v)) => v.rule,
            Err(ApiError::Validation(v)) => v.rule,
            other => panic!("{other:?}"),
        };
        assert_eq!(rule(check("a.md", b"")), "length");
        assert_eq!(rule(check("a.pdf", b"just text")), "content");
        assert_eq!(rule(check("a.pdf", b" %PDF-1.7")), "content");
        assert_eq!(rule(check("a.txt", b"a\0b")), "content");
        assert_eq!(rule(check("a.md", &[0xff, 0xfe, b'a', 0])), "content");
        assert_eq!(rule(check("a.html", b"no markup at all")), "content");
        assert_eq!(rule(check("a.html", b"1 < 2 and 3 > 2")), "content");
        assert_eq!(
            rule(check("a.html", &[0x89, b'P', b'N', b'G', b'<', b'p', b'>'])),
            "content"
        );
        match check("a.pdf", b"x") {
            Err(e) => assert!(e.to_string().contains("%PDF-"), "{e}"),
            Ok(()) => unreachable!(),
        }
    }
}
