//! The fake embedding model: feature hashing of words, word bigrams and
//! concepts.
//!
//! Retrieval tests need vectors that are deterministic (same text, same
//! vector, on every machine and run) and meaningful (texts that share words
//! are closer than unrelated texts), without a real model. Hashing uses
//! FNV-1a because std's default hasher is randomly seeded per process.
//!
//! A real embedding model also places *synonyms and paraphrases* close
//! together ("laptop" and "notebook computer", "salary" and "pay"), which is
//! what vector search adds to word search. The fake models that with a small
//! built-in table, [`CONCEPTS`]: groups of English words and two-word phrases
//! that mean about the same thing in everyday workplace language. Every word
//! or phrase of a group adds the group's concept feature to the vector
//! besides its own word features, so two texts using different words of one
//! group share a feature. Words are looked up as written and, failing that,
//! without a plural `s`. The table is generic workplace vocabulary and
//! small, so most words have no concept, as with a weak model. Tests that
//! measure retrieval with it (the knowledge crate's recall evaluation) show
//! how search uses vectors that capture synonymy, not how good a real model
//! is: their questions and this table come from the same hand.

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

/// Groups of words and two-word phrases with about one meaning (lowercase).
/// A word may belong to one group only.
pub const CONCEPTS: &[&[&str]] = &[
    &[
        "laptop",
        "notebook computer",
        "computer",
        "pc",
        "macbook",
        "workstation",
    ],
    &[
        "salary",
        "pay",
        "paycheck",
        "payslip",
        "wage",
        "payroll",
        "compensation",
        "earnings",
    ],
    &[
        "vacation",
        "holiday",
        "annual leave",
        "time off",
        "pto",
        "days off",
    ],
    &[
        "sick",
        "ill",
        "illness",
        "unwell",
        "sick leave",
        "medical leave",
    ],
    &["password", "passphrase", "credentials", "login"],
    &["reset", "change", "renew", "recover"],
    &[
        "broken",
        "damaged",
        "faulty",
        "defective",
        "not working",
        "malfunctioning",
    ],
    &["repair", "fix", "mend", "replacement"],
    &[
        "reimbursement",
        "refund",
        "reimburse",
        "reimbursed",
        "paid back",
        "expense claim",
    ],
    &["expense", "expenditure", "cost", "spending"],
    &["receipt", "invoice", "proof of purchase"],
    &["travel", "trip", "business trip", "journey"],
    &["flight", "plane", "airfare", "airline"],
    &["hotel", "accommodation", "lodging"],
    &[
        "remote",
        "from home",
        "telework",
        "telecommute",
        "wfh",
        "home office",
    ],
    &["manager", "boss", "supervisor", "line manager", "team lead"],
    &[
        "approval",
        "approve",
        "sign off",
        "authorisation",
        "authorization",
        "permission",
    ],
    &[
        "baby",
        "newborn",
        "parental",
        "maternity",
        "paternity",
        "parenthood",
    ],
    &[
        "health insurance",
        "medical insurance",
        "health plan",
        "medical plan",
        "dental",
    ],
    &["doctor", "physician", "clinic", "medical appointment"],
    &[
        "training",
        "course",
        "courses",
        "learning",
        "workshop",
        "certification",
    ],
    &["budget", "allowance", "stipend", "funds"],
    &[
        "hire",
        "hiring",
        "recruitment",
        "recruiting",
        "recruiter",
        "job opening",
    ],
    &["candidate", "applicant", "interviewee"],
    &[
        "quit",
        "resign",
        "resignation",
        "leaving the company",
        "notice period",
    ],
    &[
        "review",
        "appraisal",
        "evaluation",
        "assessment",
        "feedback",
    ],
    &["promotion", "career growth", "advancement", "raise"],
    &["car", "vehicle", "parking", "garage", "car park"],
    &["bike", "bicycle", "cycling", "cyclist"],
    &["lunch", "cafeteria", "canteen", "meal", "meals", "food"],
    &["coffee", "espresso", "tea"],
    &["printer", "printing", "print", "printout", "scanner"],
    &["wifi", "wi fi", "wireless", "internet", "network"],
    &["vpn", "remote access", "tunnel"],
    &["email", "e mail", "mail", "inbox", "mailbox", "outlook"],
    &["phone", "mobile", "cellphone", "smartphone"],
    &[
        "meeting room",
        "conference room",
        "boardroom",
        "room booking",
    ],
    &["badge", "access card", "id card", "keycard"],
    &["visitor", "guest", "visitors", "guests"],
    &["phishing", "scam", "suspicious email", "fraudulent"],
    &[
        "confidential",
        "secret",
        "sensitive",
        "classified",
        "private",
    ],
    &["lost", "stolen", "missing", "misplaced"],
    &[
        "new employee",
        "newcomer",
        "new hire",
        "onboarding",
        "first day",
    ],
    &["office", "workplace", "premises", "building"],
    &["desk", "workspace", "seat", "hot desk"],
    &["chair", "ergonomic", "monitor", "keyboard", "equipment"],
    &["overtime", "extra hours", "after hours", "weekend work"],
    &["retirement", "pension", "401k"],
    &["gym", "fitness", "wellness", "sport"],
    &["fire", "evacuation", "emergency", "alarm"],
    &["software", "application", "app", "program", "license"],
    &["install", "installation", "set up", "setup", "configure"],
];

/// The concept (index in [`CONCEPTS`]) of a word or phrase, if any.
fn concept(term: &str) -> Option<usize> {
    let find = |t: &str| CONCEPTS.iter().position(|group| group.contains(&t));
    find(term).or_else(|| {
        let singular = term.strip_suffix('s')?;
        (singular.len() >= 3).then(|| find(singular)).flatten()
    })
}

/// The embedding the fake returns for `text`: L2-normalised,
/// [`EMBEDDING_DIMS`] long. Words count 1.0, adjacent word pairs 0.5, and
/// each word or two-word phrase found in [`CONCEPTS`] adds its concept's
/// feature with 1.0; a text without any word is hashed as a whole so it still
/// gets a unit vector.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; EMBEDDING_DIMS];
    let tokens = words(text);
    for w in &tokens {
        add_feature(&mut v, &[b"w:", w.as_bytes()], 1.0);
        if let Some(c) = concept(w) {
            add_feature(&mut v, &[b"c:", &c.to_le_bytes()], 1.0);
        }
    }
    for pair in tokens.windows(2) {
        add_feature(
            &mut v,
            &[b"b:", pair[0].as_bytes(), b" ", pair[1].as_bytes()],
            0.5,
        );
        if let Some(c) = concept(&format!("{} {}", pair[0], pair[1])) {
            add_feature(&mut v, &[b"c:", &c.to_le_bytes()], 1.0);
        }
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
    fn synonyms_are_closer_than_unrelated_words() {
        let laptop = embedding("my laptop");
        let notebook = embedding("my notebook computer");
        let chair = embedding("my chair");
        assert!(cos(&laptop, &notebook) > cos(&laptop, &chair) + 0.2);
        let salary = embedding("salary day");
        let pay = embedding("pay day");
        let lunch = embedding("lunch day");
        assert!(cos(&salary, &pay) > cos(&salary, &lunch) + 0.2);
        // Plurals find their concept too.
        assert_eq!(concept("laptops"), concept("laptop"));
        assert!(concept("laptop").is_some() && concept("zebra").is_none());
        // No word sits in two groups.
        let mut seen = std::collections::HashSet::new();
        for group in CONCEPTS {
            for term in *group {
                assert!(seen.insert(*term), "{term} is in two groups");
                assert_eq!(*term, term.to_lowercase());
            }
        }
    }

    #[test]
    fn fnv_matches_reference() {
        assert_eq!(fnv1a(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(&[b"fo", b"o"]), fnv1a(&[b"foo"]));
    }
}
