//! Stream decoding with a memory budget.
//!
//! `lopdf` decodes a compressed stream into one buffer as large as the data
//! says, every time it is asked, and `get_page_content` concatenates a page's
//! `/Contents` however often a stream is listed. A 261 KB file holding one
//! 256 MiB Flate stream listed four times therefore asked for more than
//! 1 GiB and took the process down (security finding H2). Here every stream
//! is decoded once, through a reader that stops at what is left of a
//! per-document budget ([`MAX_DECODED_BYTES`]), and replaced by its decoded
//! bytes, so `lopdf` and `pdf-extract` never decode anything themselves.
//! Nothing is allocated in proportion to what a file claims, only to what
//! was actually decoded within the budget.
//!
//! Images are emptied without being decoded: their pixels hold no text.
//! Object streams (`/ObjStm`), which `lopdf` decodes while loading, go
//! through the same budget by way of a load filter ([`load_within_budget`]).

use std::cell::RefCell;
use std::io::{Read, Write};

use lopdf::{Document, LoadOptions, Object, ObjectId, Stream};

/// The most bytes all of one document's streams may decode to. Text pages
/// decode to a few tens of KiB each, so this reads documents far beyond the
/// text limit, while a decompression bomb stops here.
pub(crate) const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// The largest content one page (or one form XObject) may have, decoded,
/// in a reader process. Parsing and drawing content takes up to ~130 times
/// its size in memory (measured: a 2 MiB page of path operators peaked at
/// 278 MiB); a page over this is skipped (its text is missing, as for any
/// page that cannot be read) and a form over it is not drawn. Such pages
/// are vector drawings: a page of text is 5–50 KiB. Below this, the reader
/// process's address-space limit is the backstop.
pub(crate) const MAX_PAGE_CONTENT_BYTES: usize = 4 * 1024 * 1024;

/// The same, read in the drain's own process, where no address-space
/// limit backs it up.
pub(crate) const MAX_PAGE_CONTENT_BYTES_IN_PROCESS: usize = 1024 * 1024;

/// What is left of a document's decoding budget.
#[derive(Debug)]
pub(crate) struct Budget {
    left: usize,
    exceeded: bool,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            left: limit,
            exceeded: false,
        }
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    fn charge(&mut self, bytes: usize) -> Result<(), OverBudget> {
        match self.left.checked_sub(bytes) {
            Some(left) if !self.exceeded => {
                self.left = left;
                Ok(())
            }
            _ => {
                self.exceeded = true;
                Err(OverBudget)
            }
        }
    }
}

/// The document decodes to more than its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget;

thread_local! {
    /// The budget of the document being loaded on this thread: `lopdf`'s
    /// load filter is a plain `fn`, so this is how it reaches the budget.
    static LOADING: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Loads `bytes` with object streams decoded within `budget` (instead of by
/// `lopdf`, without a limit). Other streams are left as they are, for
/// [`decode_streams`]. Encrypted files are loaded by a path of `lopdf` that
/// ignores filters; their object streams are decoded uncapped, which the
/// subprocess's memory limit covers.
pub(crate) fn load_within_budget(
    bytes: &[u8],
    budget: &mut Budget,
) -> Result<Document, lopdf::Error> {
    let taken = std::mem::replace(budget, Budget::new(0));
    LOADING.with(|slot| *slot.borrow_mut() = Some(taken));
    let options = LoadOptions {
        filter: Some(admit_object),
        ..LoadOptions::default()
    };
    let loaded = Document::load_mem_with_options(bytes, options);
    if let Some(back) = LOADING.with(|slot| slot.borrow_mut().take()) {
        *budget = back;
    }
    loaded
}

/// `lopdf`'s load filter. It is called on every top-level object, which it
/// keeps using (mutated in place; the returned value is dropped), and on
/// every object read from an object stream, which it replaces with the
/// returned value (object streams hold no streams).
fn admit_object(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    let Object::Stream(stream) = object else {
        return Some((id, object.clone()));
    };
    if stream.dict.has_type(b"ObjStm") {
        LOADING.with(|slot| {
            let mut slot = slot.borrow_mut();
            let budget = slot.get_or_insert_with(|| Budget::new(0));
            if decode_in_place(stream, budget).is_err() {
                // Over budget: nothing of it is read.
                stream.set_plain_content(Vec::new());
            }
        });
    }
    Some((id, Object::Null))
}

/// Decodes every stream of `doc` in place within `budget` (images are
/// emptied, oversized forms too), and lists each page's content streams
/// once. Over budget, the document cannot be read.
pub(crate) fn decode_streams(
    doc: &mut Document,
    budget: &mut Budget,
    max_form_content: usize,
) -> Result<(), OverBudget> {
    for object in doc.objects.values_mut() {
        let Object::Stream(stream) = object else {
            continue;
        };
        match stream.dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"Image") if !stream.dict.has_type(b"ObjStm") && !stream.dict.has_type(b"XRef") => {
                stream.set_plain_content(Vec::new());
                continue;
            }
            _ => {}
        }
        decode_in_place(stream, budget)?;
        let is_form = matches!(
            stream.dict.get(b"Subtype").and_then(Object::as_name),
            Ok(b"Form")
        );
        if is_form && stream.content.len() > max_form_content {
            stream.set_plain_content(Vec::new());
        }
    }
    dedupe_page_contents(doc);
    Ok(())
}

/// A page listing one content stream several times draws it several times:
/// the same text again, and `lopdf` concatenating it each time. Each stream
/// is kept once, at its first place.
fn dedupe_page_contents(doc: &mut Document) {
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    for page_id in pages {
        let Ok(Object::Dictionary(page)) = doc.get_object_mut(page_id) else {
            continue;
        };
        let Ok(Object::Array(items)) = page.get_mut(b"Contents") else {
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        items.retain(|item| match item {
            Object::Reference(id) => seen.insert(*id),
            _ => true,
        });
    }
}

/// The decoded size of a page's content (each listed stream counted once).
pub(crate) fn page_content_len(doc: &Document, page_id: ObjectId) -> usize {
    let mut seen = std::collections::HashSet::new();
    doc.get_page_contents(page_id)
        .into_iter()
        .filter(|id| seen.insert(*id))
        .filter_map(|id| doc.get_object(id).and_then(Object::as_stream).ok())
        .map(|stream| stream.content.len())
        .sum()
}

/// Replaces a compressed stream's content with its decoded bytes, charging
/// them to `budget`. Filter chains `lopdf` cannot decode either (image
/// codecs, ASCIIHex) are left as they are: it fails on them the same way.
/// Streams with a predictor are measured within the budget and left for
/// `lopdf`, whose decoding is then known to be no larger.
fn decode_in_place(stream: &mut Stream, budget: &mut Budget) -> Result<(), OverBudget> {
    let filters: Vec<Vec<u8>> = match stream.filters() {
        Ok(filters) if !filters.is_empty() => filters.into_iter().map(<[u8]>::to_vec).collect(),
        _ => return Ok(()),
    };
    if !filters.iter().all(|f| {
        matches!(
            f.as_slice(),
            b"FlateDecode" | b"LZWDecode" | b"ASCII85Decode"
        )
    }) {
        return Ok(());
    }
    let params = stream
        .dict
        .get(b"DecodeParms")
        .and_then(Object::as_dict)
        .ok();
    let early_change = params
        .and_then(|p| p.get(b"EarlyChange").and_then(Object::as_i64).ok())
        .is_none_or(|v| v != 0);
    let has_predictor = params
        .and_then(|p| p.get(b"Predictor").and_then(Object::as_i64).ok())
        .is_some_and(|p| p > 1);

    let mut data: Option<Vec<u8>> = None;
    for filter in &filters {
        let input = data.as_deref().unwrap_or(&stream.content);
        let limit = budget.left;
        let decoded = match filter.as_slice() {
            b"FlateDecode" => inflate(input, limit),
            b"LZWDecode" => unlzw(input, early_change, limit),
            _ => ascii85(input, limit),
        };
        match decoded {
            Some(bytes) => data = Some(bytes),
            None => {
                budget.exceeded = true;
                return Err(OverBudget);
            }
        }
    }
    let decoded = data.unwrap_or_default();
    budget.charge(decoded.len())?;
    if !has_predictor {
        stream.set_plain_content(decoded);
    }
    Ok(())
}

/// Inflates zlib data as `lopdf` does (what decoded before an error is
/// kept; data whose zlib wrapper is broken is read as raw deflate), or
/// `None` past `limit` bytes.
fn inflate(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    if input.is_empty() {
        return Some(Vec::new());
    }
    let out = read_capped(flate2::read::ZlibDecoder::new(input), limit)?;
    if out.is_empty() && input.len() > 2 {
        return read_capped(flate2::read::DeflateDecoder::new(&input[2..]), limit);
    }
    Some(out)
}

/// Everything `reader` yields until its end or first error, or `None` when
/// that is more than `limit` bytes (at most `limit + 1` are ever held).
fn read_capped(reader: impl Read, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    // An error ends the data; what came before it is kept, as lopdf does.
    let _ = reader.take(cap).read_to_end(&mut out);
    (out.len() <= limit).then_some(out)
}

/// LZW as `lopdf` decodes it (errors end the data), or `None` past `limit`.
fn unlzw(input: &[u8], early_change: bool, limit: usize) -> Option<Vec<u8>> {
    use weezl::{BitOrder, decode::Decoder};
    const MIN_BITS: u8 = 9;
    let mut decoder = if early_change {
        Decoder::with_tiff_size_switch(BitOrder::Msb, MIN_BITS - 1)
    } else {
        Decoder::new(BitOrder::Msb, MIN_BITS - 1)
    };
    let mut out = CappedWriter {
        data: Vec::new(),
        limit,
        over: false,
    };
    let _ = decoder.into_stream(&mut out).decode_all(input);
    (!out.over).then_some(out.data)
}

struct CappedWriter {
    data: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.data.len() + buf.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("over the decoding budget"));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// ASCII85 through `lopdf` (it grows data at most fourfold), or `None` past
/// `limit`.
fn ascii85(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    if input.len() / 5 * 4 + 4 * input.iter().filter(|&&b| b == b'z').count() > limit + 4 {
        return None;
    }
    let mut dict = lopdf::Dictionary::new();
    dict.set("Filter", "ASCII85Decode");
    let out = Stream::new(dict, input.to_vec())
        .decompressed_content()
        .unwrap_or_default();
    (out.len() <= limit).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn flate_stream(plain: &[u8]) -> Stream {
        let mut stream = Stream::new(lopdf::Dictionary::new(), zlib(plain));
        stream.dict.set("Filter", "FlateDecode");
        stream
    }

    #[test]
    fn streams_decode_in_place_within_the_budget() {
        let mut stream = flate_stream(b"BT (hello) Tj ET");
        let mut budget = Budget::new(100);
        decode_in_place(&mut stream, &mut budget).unwrap();
        assert_eq!(stream.content, b"BT (hello) Tj ET");
        assert!(stream.dict.get(b"Filter").is_err());
        assert_eq!(budget.left, 100 - 16);

        // What is left of the budget is all the next stream gets.
        let mut big = flate_stream(&[b' '; 200]);
        assert_eq!(decode_in_place(&mut big, &mut budget), Err(OverBudget));
        assert!(budget.exceeded());
    }

    #[test]
    fn a_bomb_stops_at_the_budget_without_decoding_it_all() {
        let bomb = zlib(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 1024 * 1024), None);
        assert_eq!(
            inflate(&bomb, 64 * 1024 * 1024).map(|v| v.len()),
            Some(64 * 1024 * 1024)
        );
    }

    #[test]
    fn broken_zlib_wrappers_read_as_raw_deflate_as_lopdf_does() {
        let mut data = zlib(b"text");
        data[0] = 0; // not a zlib header
        assert_eq!(inflate(&data, 100).as_deref(), Some(&b"text"[..]));
        // Truncated data keeps what decoded.
        let long = zlib(&[b'a'; 5000]);
        assert!(inflate(&long[..long.len() - 4], 10_000).is_some());
    }

    #[test]
    fn lzw_and_ascii85_are_capped_too() {
        let mut encoder = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
        let lzw = encoder.encode(&vec![b'x'; 100_000]).unwrap();
        assert_eq!(unlzw(&lzw, true, 1000), None);
        assert_eq!(unlzw(&lzw, true, 100_000).map(|v| v.len()), Some(100_000));
        assert_eq!(ascii85(b"zzzz~>", 8), None);
        assert_eq!(ascii85(b"zz~>", 8).map(|v| v.len()), Some(8));
    }

    /// An object stream over the budget is not decoded at all, and the
    /// load reports the budget as spent.
    #[test]
    fn object_streams_are_decoded_within_the_load_budget() {
        LOADING.with(|slot| *slot.borrow_mut() = Some(Budget::new(1024)));
        let mut stream = flate_stream(&[b' '; 4096]);
        stream.dict.set("Type", "ObjStm");
        let mut object = Object::Stream(stream);
        assert!(admit_object((1, 0), &mut object).is_some());
        let budget = LOADING.with(|slot| slot.borrow_mut().take()).unwrap();
        assert!(budget.exceeded());
        let Object::Stream(stream) = object else {
            panic!("not a stream any more")
        };
        assert!(stream.content.is_empty());
        assert!(stream.dict.get(b"Filter").is_err());
    }

    #[test]
    fn chains_and_unknown_filters() {
        // An image codec lopdf cannot decode either: left alone.
        let mut dct = Stream::new(lopdf::Dictionary::new(), vec![1, 2, 3]);
        dct.dict.set("Filter", "DCTDecode");
        decode_in_place(&mut dct, &mut Budget::new(0)).unwrap();
        assert_eq!(dct.content, vec![1, 2, 3]);

        // A predictor: measured, left for lopdf.
        let mut predicted = flate_stream(&[0u8; 64]);
        let mut params = lopdf::Dictionary::new();
        params.set("Predictor", 12);
        predicted.dict.set("DecodeParms", params);
        let mut budget = Budget::new(100);
        decode_in_place(&mut predicted, &mut budget).unwrap();
        assert!(predicted.dict.get(b"Filter").is_ok());
        assert_eq!(budget.left, 36);
    }
}
