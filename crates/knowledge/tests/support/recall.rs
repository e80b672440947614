//! A labelled retrieval evaluation: a small corpus of workplace documents and
//! questions, each labelled with the one document that answers it. Many
//! questions use other words than their document ("notebook computer" for
//! "laptop", "wages" for "salary"), which word search (BM25) cannot match and
//! an embedding model can.
//!
//! Vectors come from the fake Flow embedding model
//! (`flowchat_fake_flow::embedding`: hashed words and word pairs plus a small
//! built-in table of synonym groups), so the numbers measure how hybrid
//! search uses vectors that capture synonymy, not the quality of a real
//! model. Shared by `tests/hybrid_search.rs` and `examples/recall_eval.rs`.

use flowchat_domain::DocumentId;
use flowchat_domain::model::DocumentOwner;
use flowchat_knowledge::{
    Chunk, ChunkEmbeddings, IndexedDocument, KnowledgeIndex, SearchQuery, SqliteIndex, count_tokens,
};

/// The model name recorded with the fake's vectors.
pub const MODEL: &str = "fake-flow-embedding";

/// (name, text): one short document per topic.
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "it/laptop-repair.md",
        "Laptop repairs: if your laptop is damaged or stops booting, open a ticket with the IT service desk. A loaner laptop is provided while yours is repaired, usually within three working days.",
    ),
    (
        "it/password-reset.md",
        "Password resets: you can reset your password yourself at the identity portal. After five failed attempts your account is locked for fifteen minutes.",
    ),
    (
        "it/vpn.md",
        "VPN: connect to the corporate VPN with the GlobalProtect client before opening internal tools from outside the office network.",
    ),
    (
        "it/wifi.md",
        "Office wireless: the staff network is called CIT-Staff and uses your single sign-on credentials. Guests use the CIT-Guest network with a daily code from reception.",
    ),
    (
        "it/printing.md",
        "Printers: every floor has a printer near the kitchen. Send jobs to the follow-me queue and release them with your badge at any printer.",
    ),
    (
        "it/software.md",
        "Software requests: programs not in the self-service catalogue need a license request approved by your manager before IT installs them.",
    ),
    (
        "it/phones.md",
        "Company phones: employees on call receive a company smartphone. Report a lost or stolen device to the security team within 24 hours so it can be wiped.",
    ),
    (
        "it/email.md",
        "Email: the mailbox limit is 50 GB. Shared mailboxes are requested through the IT service desk.",
    ),
    (
        "hr/salary.md",
        "Salary payment: salaries are paid on the last working day of each month. Payslips are available in the HR portal two days before.",
    ),
    (
        "hr/vacation.md",
        "Vacation policy: full-time employees have 22 days of annual leave per year. Request vacation in the HR portal at least two weeks in advance.",
    ),
    (
        "hr/sick-leave.md",
        "Sick leave: if you are ill, tell your manager before 10 am. A medical certificate is required for absences longer than three days.",
    ),
    (
        "hr/parental-leave.md",
        "Parental leave: mothers receive 16 weeks of maternity leave and fathers 4 weeks of paternity leave after the birth or adoption of a child.",
    ),
    (
        "hr/remote-work.md",
        "Remote work: employees may work from home up to three days per week after their probation period, with their manager's agreement.",
    ),
    (
        "hr/performance-review.md",
        "Performance reviews: every employee has a yearly appraisal with their manager in March, based on goals set the previous year.",
    ),
    (
        "hr/promotion.md",
        "Promotions: career advancement is discussed twice a year in calibration committees. Salary increases follow the new level.",
    ),
    (
        "hr/resignation.md",
        "Resigning: send a written resignation to your manager and to HR. The notice period is 30 days for most roles.",
    ),
    (
        "hr/health-insurance.md",
        "Health insurance: all employees and their dependants are covered by the company's medical plan, including dental care, from the first day.",
    ),
    (
        "hr/learning-budget.md",
        "Learning budget: each employee has 1,500 euros per year for courses, conferences and certifications, approved by their manager.",
    ),
    (
        "hr/onboarding.md",
        "Onboarding: on their first day, new hires meet their buddy, collect their badge and laptop, and attend the welcome session at 9 am.",
    ),
    (
        "hr/referrals.md",
        "Referrals: recommend candidates for open positions through the careers site. A referral bonus is paid when the person you referred completes three months.",
    ),
    (
        "hr/pension.md",
        "Retirement plan: the company matches pension contributions up to 5% of base salary.",
    ),
    (
        "finance/expenses.md",
        "Expense reports: submit expenses with receipts within 30 days in the finance tool. Reimbursement arrives with the next monthly payment.",
    ),
    (
        "finance/travel.md",
        "Business travel: book flights and hotels through the travel agency portal. Economy class is the rule for flights under six hours.",
    ),
    (
        "finance/per-diem.md",
        "Per diem: while travelling you receive a daily allowance of 45 euros for meals; no receipts are needed.",
    ),
    (
        "finance/corporate-card.md",
        "Corporate cards: managers can request a corporate credit card for recurring business purchases. Personal use is forbidden.",
    ),
    (
        "office/parking.md",
        "Parking: the garage under the building has 80 spaces, assigned by lottery every quarter. Electric vehicles may charge on level -1.",
    ),
    (
        "office/bicycles.md",
        "Bicycles: a secure bike room with showers is next to the main entrance; bring your own lock.",
    ),
    (
        "office/cafeteria.md",
        "Cafeteria: lunch is served from 11:30 to 14:00 on the ground floor. Meals are subsidised and paid with your badge.",
    ),
    (
        "office/meeting-rooms.md",
        "Meeting rooms: book conference rooms in the calendar; rooms left unused for 15 minutes are released automatically.",
    ),
    (
        "office/visitors.md",
        "Visitors: register guests at reception the day before; they must wear a visitor badge and be accompanied at all times.",
    ),
    (
        "office/fire-safety.md",
        "Fire safety: when the alarm sounds, leave by the nearest stairs and gather at the assembly point in the car park. Do not use the lifts.",
    ),
    (
        "office/ergonomics.md",
        "Ergonomics: ask facilities for an adjustable chair, a footrest or a second monitor if your desk setup causes discomfort.",
    ),
    (
        "security/phishing.md",
        "Phishing: never click links in unexpected messages asking for your password. Forward suspicious emails to the security team.",
    ),
    (
        "security/data-classification.md",
        "Data classification: confidential documents may only be shared with people who need them and must never be stored on personal drives.",
    ),
];

/// (question, the name of the document that answers it).
pub const QUESTIONS: &[(&str, &str)] = &[
    (
        "My notebook computer is broken, who can fix it?",
        "it/laptop-repair.md",
    ),
    ("When do we get our pay each month?", "hr/salary.md"),
    ("When will my wages arrive?", "hr/salary.md"),
    ("How many days off do I get per year?", "hr/vacation.md"),
    (
        "I forgot my login, how do I recover it?",
        "it/password-reset.md",
    ),
    ("Can I telework from my house?", "hr/remote-work.md"),
    (
        "Who do I tell when I feel unwell and cannot come in?",
        "hr/sick-leave.md",
    ),
    ("How long is maternity leave?", "hr/parental-leave.md"),
    (
        "When is my yearly evaluation with my boss?",
        "hr/performance-review.md",
    ),
    ("How do I quit my job?", "hr/resignation.md"),
    (
        "Does the medical plan cover visits to the dentist?",
        "hr/health-insurance.md",
    ),
    (
        "Is there money for attending workshops?",
        "hr/learning-budget.md",
    ),
    (
        "What happens on a newcomer's first day?",
        "hr/onboarding.md",
    ),
    (
        "How do I get my money back for a business dinner?",
        "finance/expenses.md",
    ),
    (
        "Which agency do I use to reserve a plane ticket?",
        "finance/travel.md",
    ),
    (
        "How much do I get for food on a trip?",
        "finance/per-diem.md",
    ),
    ("Where can I leave my car?", "office/parking.md"),
    (
        "Is there somewhere to store my bicycle?",
        "office/bicycles.md",
    ),
    ("What time does the canteen open?", "office/cafeteria.md"),
    ("How do I reserve a boardroom?", "office/meeting-rooms.md"),
    ("Can I bring a guest to the office?", "office/visitors.md"),
    (
        "I got a strange message asking for my credentials",
        "security/phishing.md",
    ),
    (
        "Can I keep secret files on my own USB stick?",
        "security/data-classification.md",
    ),
    (
        "What do I do if the building is on fire?",
        "office/fire-safety.md",
    ),
    (
        "I need a better seat because my back hurts",
        "office/ergonomics.md",
    ),
    (
        "Which program do I use to reach internal tools from home?",
        "it/vpn.md",
    ),
    ("How do I get a company mobile?", "it/phones.md"),
    ("What is the size limit of my inbox?", "it/email.md"),
    (
        "Do I get a bonus for recommending a friend for a job?",
        "hr/referrals.md",
    ),
    (
        "How can I install an app on my work computer?",
        "it/software.md",
    ),
];

/// The document id of a corpus entry.
pub fn document_id(name: &str) -> DocumentId {
    DocumentId::for_content(format!("recall-eval:{name}").as_bytes())
}

/// Indexes the corpus (one chunk per document, with the fake's vectors).
pub async fn index_corpus(index: &SqliteIndex) {
    for (name, text) in DOCUMENTS {
        let chunk = Chunk {
            position: 0,
            text: (*text).to_owned(),
            heading: None,
            page: None,
            token_count: count_tokens(text) as u32,
        };
        index
            .replace_document(IndexedDocument {
                id: document_id(name),
                name: (*name).to_owned(),
                owner: DocumentOwner::Shared,
                size_bytes: text.len() as u64,
                chunks: vec![chunk],
                embeddings: Some(ChunkEmbeddings {
                    model: MODEL.to_owned(),
                    vectors: vec![flowchat_fake_flow::embedding(text)],
                }),
            })
            .await
            .expect("index the corpus");
    }
}

/// Recall at `k` over [`QUESTIONS`]: the share of questions whose document is
/// among the first `k` passages, by BM25 alone (`hybrid` false) or hybrid
/// search. Also returns the questions missed.
pub async fn recall_at(index: &SqliteIndex, k: usize, hybrid: bool) -> (f64, Vec<&'static str>) {
    let mut missed = Vec::new();
    for (question, answer) in QUESTIONS {
        let vector = flowchat_fake_flow::embedding(question);
        let hits = index
            .search(SearchQuery {
                text: question,
                viewer: None,
                top_k: k,
                embedding: hybrid.then_some(vector.as_slice()),
            })
            .await
            .expect("search");
        if !hits.iter().any(|p| p.source == *answer) {
            missed.push(*question);
        }
    }
    let found = QUESTIONS.len() - missed.len();
    (found as f64 / QUESTIONS.len() as f64, missed)
}
