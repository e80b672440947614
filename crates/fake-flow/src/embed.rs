//! The fake embedding model: feature hashing of words and word bigrams.
//!
//! Retrieval tests need vectors that are deterministic (same text, same
//! vector, on every machine and run) and meaningful (texts that share words
//! are closer than unrelated texts), without a real model. Hashing uses
//! FNV-1a because std's default hasher is randomly seeded per process.

/// Dimensions of every embedding, as for `text-embedding-3-small` and
/// `text-embedding-ada-002`.
pub const EMBEDDING_DIMS: usize = 1536;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// Lower-cased alphanumeric word tokens of `text`.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn add_feature(v: &mut [f32], parts: &[&[u8]], weight: f32) {
    let h = fnv1a(parts);
    let index = (h % EMBEDDING_DIMS as u64) as usize;
    // A hash-derived sign keeps collisions from biasing unrelated texts
    // towards similarity.
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    v[index] += sign * weight;
}

/// The embedding the fake returns for `text`: L2-normalised,
/// [`EMBEDDING_DIMS`] long. Words count 1.0, adjacent word pairs 0.5; a text
/// without any word is hashed as a whole so it still gets a unit vector.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; EMBEDDING_DIMS];
    let tokens = words(text);
    for w in &tokens {
        add_feature(&mut v, &[b"w:", w.as_bytes()], 1.0);
    }
    for pair in tokens.windows(2) {
        add_feature(
            &mut v,
            &[b"b:", pair[0].as_bytes(), b" ", pair[1].as_bytes()],
            0.5,
        );
    }
    if tokens.is_empty() {
        add_feature(&mut v, &[b"raw:", text.as_bytes()], 1.0);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    } else {
        // Only if features cancelled out exactly; never return a zero vector.
        v[0] = 1.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_normalised_and_meaningful() {
        let a = embedding("The cat sat on the mat.");
        assert_eq!(a, embedding("the CAT sat, on the mat"));
        assert_eq!(a.len(), EMBEDDING_DIMS);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let b = embedding("A cat sat on a mat");
        let c = embedding("Quarterly revenue grew by twelve percent");
        assert!(cos(&a, &b) > cos(&a, &c) + 0.3);
        let d = embedding("!!!");
        assert!((cos(&d, &d) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn fnv_matches_reference() {
        assert_eq!(fnv1a(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(&[b"fo", b"o"]), fnv1a(&[b"foo"]));
    }
}
