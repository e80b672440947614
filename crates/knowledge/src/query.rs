//! Words from a user's question, for full-text search and for picking the
//! sentences an extractive answer quotes.
//!
//! Words are maximal runs of alphanumeric characters, which is close to how the
//! FTS5 `unicode61` tokenizer splits the indexed text, so a term we extract is
//! a term the index can hold. Terms are lowercased and folded (diacritics
//! removed) because the index folds too (`remove_diacritics 2`), and users type
//! "nao" as often as "não". Stopwords are dropped in English and Portuguese:
//! CI&T people ask in both, and a question made of "what is the" or "o que é"
//! must not match every chunk.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// More terms than this add little to BM25 and make queries slower; the rest
/// of a very long question is ignored.
pub const MAX_QUERY_TERMS: usize = 16;

/// Every word of `text`, lowercased and folded, in order (stopwords included).
/// A run of combining marks alone (no base letter) folds to nothing and is
/// no word: as a search term it would be the empty phrase.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || is_combining_mark(c)))
        .map(fold)
        .filter(|w| !w.is_empty())
}

/// The searchable terms of a question: folded words that are not stopwords
/// and not lone letters, without repeats, at most [`MAX_QUERY_TERMS`].
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(text)
        .filter(|w| is_content_word(w))
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_QUERY_TERMS)
        .collect()
}

/// Whether a folded word carries meaning for search: not a stopword, and not a
/// single letter (the "s" of "what's"). Single digits count ("python 3").
pub fn is_content_word(folded: &str) -> bool {
    let mut chars = folded.chars();
    let single_letter = matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_numeric());
    !single_letter && !is_stopword(folded)
}

/// Whether a folded word is an English or Portuguese stopword.
pub fn is_stopword(folded: &str) -> bool {
    STOPWORDS.contains(folded)
}

/// Lowercase, compose, then drop combining marks: "Não" → "nao", "É" → "e".
pub fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

static STOPWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    ENGLISH
        .iter()
        .chain(PORTUGUESE)
        .copied()
        .collect::<HashSet<_>>()
});

/// Function words and chat filler ("please", "explain"), folded.
const ENGLISH: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn",
    "describe",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "done",
    "down",
    "during",
    "each",
    "else",
    "explain",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "me",
    "might",
    "more",
    "most",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "re",
    "same",
    "shall",
    "she",
    "should",
    "shouldn",
    "so",
    "some",
    "such",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "ve",
    "very",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "won",
    "would",
    "wouldn",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Portuguese function words and chat filler, folded ("não" is "nao").
const PORTUGUESE: &[&str] = &[
    "a", "ao", "aos", "aquela", "aquelas", "aquele", "aqueles", "aquilo", "as", "ate", "com",
    "como", "da", "das", "de", "dela", "delas", "dele", "deles", "depois", "descreva", "diga",
    "do", "dos", "e", "ela", "elas", "ele", "eles", "em", "entre", "era", "eram", "essa", "essas",
    "esse", "esses", "esta", "estao", "estas", "estava", "este", "estes", "estou", "eu", "explica",
    "explique", "favor", "foi", "foram", "fosse", "ha", "isso", "isto", "ja", "lhe", "lhes",
    "mais", "mas", "me", "mesmo", "meu", "meus", "minha", "minhas", "muito", "muitos", "na", "nao",
    "nas", "nem", "no", "nos", "nossa", "nossas", "nosso", "nossos", "num", "numa", "o", "onde",
    "os", "ou", "para", "pela", "pelas", "pelo", "pelos", "per", "pode", "podem", "porque", "por",
    "posso", "pra", "qual", "quais", "quando", "quanto", "quantos", "que", "quem", "se", "sem",
    "ser", "seu", "seus", "sim", "so", "sob", "sobre", "sou", "sua", "suas", "tambem", "te", "tem",
    "tinha", "tu", "um", "uma", "umas", "uns", "voce", "voces", "vos",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/artifacts-found/fts_query/empty-term-combining-mark):
    /// a lone combining mark (U+07F0, U+0301) became an empty term.
    #[test]
    fn lone_combining_marks_are_not_terms() {
        assert_eq!(
            query_terms("\u{7f0} vacation \u{301}\u{301} policy"),
            ["vacation", "policy"]
        );
        assert_eq!(words("\u{301}").count(), 0);
        assert_eq!(words("a\u{301}b").collect::<Vec<_>>(), ["ab"]);
    }

    #[test]
    fn extracts_folded_content_words_only() {
        assert_eq!(
            query_terms("What's the VPN setup for Linux? what's"),
            vec!["vpn", "setup", "linux"]
        );
        assert_eq!(
            query_terms("Como configuro a VPN no Linux? Não funciona!"),
            vec!["configuro", "vpn", "linux", "funciona"]
        );
        assert_eq!(query_terms("Férias e licença"), vec!["ferias", "licenca"]);
        assert_eq!(query_terms("python 3"), vec!["python", "3"]);
    }

    #[test]
    fn hostile_syntax_yields_plain_words() {
        assert_eq!(
            query_terms(r#"what's "this" AND (NOT x* OR y:z) NEAR/2 ^col"#),
            vec!["near", "2", "col"]
        );
        assert!(query_terms("\"\" () *** ").is_empty());
        assert!(query_terms("o que é isso?").is_empty());
    }

    #[test]
    fn decomposed_input_folds_like_composed() {
        assert_eq!(query_terms("licenc\u{327}a"), vec!["licenca"]);
    }

    #[test]
    fn long_questions_are_capped() {
        let long = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(query_terms(&long).len(), MAX_QUERY_TERMS);
    }
}
