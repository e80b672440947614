//! Combining ranked lists (reciprocal rank fusion) and collapsing passages
//! that say the same thing.
//!
//! Hybrid search ranks chunks twice, by BM25 and by vector similarity. The
//! two scores are not comparable (BM25 is unbounded and corpus-dependent,
//! cosine similarity is not), so the lists are fused by rank alone: a chunk
//! scores `Σ 1 / (k + rank)` over the lists it appears in (rank from 1,
//! `k` = [`RRF_K`] = 60 as in Cormack, Clarke & Büttcher, 2009). A chunk
//! found by both methods beats one found by one, and the head of either list
//! still ranks well.
//!
//! The same text indexed twice (a document uploaded again under another
//! name, a copied page, a paragraph repeated in two files) would fill the
//! answer's context with repeats, so results are filtered through a
//! [`Duplicates`] filter that keeps the best-ranked copy.

use std::collections::{HashMap, HashSet};

use flowchat_domain::DocumentId;

use crate::query::words;

/// The rank constant of reciprocal rank fusion.
pub const RRF_K: f64 = 60.0;

/// Fuses ranked lists of chunk keys (best first, no repeats within a list)
/// into one, best first, with each key's fused score (always > 0). Ties go to
/// the key with the better best rank, then to the earlier list, then to the
/// smaller key, so the order is deterministic.
pub fn reciprocal_rank_fusion<K>(lists: &[&[K]]) -> Vec<(K, f64)>
where
    K: Copy + Eq + std::hash::Hash + Ord,
{
    // key -> (score, best rank, first list it appears in)
    let mut fused: HashMap<K, (f64, usize, usize)> = HashMap::new();
    for (list_index, list) in lists.iter().enumerate() {
        for (i, &key) in list.iter().enumerate() {
            let rank = i + 1;
            let entry = fused.entry(key).or_insert((0.0, usize::MAX, list_index));
            entry.0 += 1.0 / (RRF_K + rank as f64);
            entry.1 = entry.1.min(rank);
        }
    }
    let mut out: Vec<(K, (f64, usize, usize))> = fused.into_iter().collect();
    out.sort_by(|a, b| {
        b.1.0
            .total_cmp(&a.1.0)
            .then(a.1.1.cmp(&b.1.1))
            .then(a.1.2.cmp(&b.1.2))
            .then(a.0.cmp(&b.0))
    });
    out.into_iter()
        .map(|(k, (score, _, _))| (k, score))
        .collect()
}

/// Word n-grams compared by the near-duplicate test.
const SHINGLE_WORDS: usize = 3;
/// Two passages whose shingle sets have at least this Jaccard similarity are
/// the same passage (light edits, shifted chunk boundaries).
const SAME_PASSAGE_JACCARD: f64 = 0.7;
/// A passage with at least this share of its shingles inside another (and at
/// least [`MIN_CONTAINED_SHINGLES`] of them) repeats it.
const CONTAINED_SHARE: f64 = 0.9;
const MIN_CONTAINED_SHINGLES: usize = 3;

/// Keeps the first of each group of duplicate passages offered to it.
///
/// Two passages are duplicates when
///
/// 1. their normalised text is the same (words folded as for search,
///    punctuation and spacing ignored), or
/// 2. their word 3-gram sets overlap heavily: Jaccard similarity ≥ 0.7, or
///    ≥ 90% of the smaller one's 3-grams (at least 3) are in the other.
///
/// Rule 2 is not applied to neighbouring chunks of one document: the chunker
/// repeats the end of a chunk at the start of the next on purpose, and a
/// short last chunk can be mostly that overlap.
#[derive(Default)]
pub struct Duplicates {
    kept: Vec<Fingerprint>,
}

struct Fingerprint {
    document: DocumentId,
    position: u32,
    normalised: String,
    shingles: HashSet<u64>,
}

impl Fingerprint {
    fn new(document: &DocumentId, position: u32, text: &str) -> Self {
        let words: Vec<String> = words(text).collect();
        let shingles = words
            .windows(SHINGLE_WORDS)
            .map(|w| fnv1a(w.join(" ").as_bytes()))
            .collect();
        Self {
            document: document.clone(),
            position,
            normalised: words.join(" "),
            shingles,
        }
    }

    fn duplicates(&self, other: &Fingerprint) -> bool {
        if !self.normalised.is_empty() && self.normalised == other.normalised {
            return true;
        }
        if self.document == other.document && self.position.abs_diff(other.position) <= 1 {
            return false;
        }
        let (small, large) = if self.shingles.len() <= other.shingles.len() {
            (&self.shingles, &other.shingles)
        } else {
            (&other.shingles, &self.shingles)
        };
        if small.is_empty() {
            return false;
        }
        let shared = small.iter().filter(|s| large.contains(s)).count();
        let union = small.len() + large.len() - shared;
        let jaccard = shared as f64 / union as f64;
        let contained = shared as f64 / small.len() as f64;
        jaccard >= SAME_PASSAGE_JACCARD
            || (small.len() >= MIN_CONTAINED_SHINGLES && contained >= CONTAINED_SHARE)
    }
}

impl Duplicates {
    /// Whether the passage is new (then it is remembered); `false` if it
    /// duplicates one admitted before.
    pub fn admit(&mut self, document: &DocumentId, position: u32, text: &str) -> bool {
        let candidate = Fingerprint::new(document, position, text);
        if self.kept.iter().any(|k| k.duplicates(&candidate)) {
            return false;
        }
        self.kept.push(candidate);
        true
    }
}

/// FNV-1a: a fixed, fast hash (shingles are compared within one call only).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement_and_keeps_heads() {
        let lexical = [1, 2, 3, 4];
        let vector = [5, 3, 1, 6];
        let fused = reciprocal_rank_fusion(&[&lexical[..], &vector[..]]);
        let order: Vec<i32> = fused.iter().map(|&(k, _)| k).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/62; 5: 1/61; 2: 1/62.
        assert_eq!(order, [1, 3, 5, 2, 4, 6]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert!(fused.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(fused.iter().all(|&(_, s)| s > 0.0));
        // Equal scores: the better best rank, then the earlier list.
        let fused = reciprocal_rank_fusion(&[&[7, 8][..], &[9, 7][..]]);
        assert_eq!(fused.iter().map(|&(k, _)| k).collect::<Vec<_>>(), [7, 9, 8]);
        assert!(reciprocal_rank_fusion::<i32>(&[&[][..], &[][..]]).is_empty());
    }

    fn id(n: &str) -> DocumentId {
        DocumentId::for_content(n.as_bytes())
    }

    #[test]
    fn duplicates_collapse_but_neighbouring_overlap_does_not() {
        let text = "Employees may work remotely two days a week after their probation period \
                    ends, with the approval of their manager.";
        let mut d = Duplicates::default();
        assert!(d.admit(&id("a"), 0, text));
        // The same words, another document, other punctuation and case.
        assert!(!d.admit(
            &id("b"),
            4,
            "EMPLOYEES may work remotely: two days a week, after their probation period ends \
             with the approval of their manager!"
        ));
        // A lightly edited copy.
        assert!(!d.admit(
            &id("c"),
            0,
            "Employees may work remotely two days a week after their probation period ends, \
             with the written approval of their manager."
        ));
        // A copy inside a longer chunk.
        assert!(!d.admit(
            &id("d"),
            2,
            &format!("{text} Contractors follow their agency's rules instead.")
        ));
        // A different passage on the same topic.
        assert!(d.admit(
            &id("e"),
            0,
            "Remote work equipment: the company lends a monitor and a chair to employees who \
             work from home."
        ));
        // The next chunk of the first document repeats its end: not a duplicate.
        let mut d = Duplicates::default();
        assert!(d.admit(
            &id("a"),
            0,
            "one two three four five six seven eight nine ten"
        ));
        assert!(d.admit(&id("a"), 1, "six seven eight nine ten eleven"));
        // ...but the same text twice in one document is.
        assert!(!d.admit(
            &id("a"),
            7,
            "one two three four five six seven eight nine ten"
        ));
        // Texts without words are never near-duplicates of each other.
        let mut d = Duplicates::default();
        assert!(d.admit(&id("x"), 0, "!!!"));
        assert!(d.admit(&id("y"), 0, "???"));
    }
}
