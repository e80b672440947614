//! Feedback: only the session owning an answer's conversation can give it,
//! a second one replaces the first, and operators list it newest first
//! with the question, answer and citations.

use flowchat_domain::{ConversationId, FeedbackComment, FeedbackRating, JobId, SessionId};

use super::Harness;
use super::support::*;
use crate::{FeedbackOutcome, Store};

/// Submits `question` in a new conversation of `session`, and answers it.
async fn answered<S: Store + ?Sized>(
    store: &S,
    session: &SessionId,
    question: &str,
    reply: &str,
    now: i64,
) -> (JobId, ConversationId) {
    let (submitted, conversation) = submit(
        store,
        submission(session, new_conversation(question), question, at(now)),
    )
    .await;
    let claimed = claim_one(store, at(now + 1)).await;
    store
        .complete_chat(&claimed, &answer(reply), at(now + 2))
        .await
        .expect("complete_chat");
    (submitted.id, conversation)
}

async fn record<S: Store + ?Sized>(
    store: &S,
    session: &SessionId,
    job: &JobId,
    rating: FeedbackRating,
    comment: Option<&str>,
    now: i64,
) -> FeedbackOutcome {
    let comment = comment.map(|c| FeedbackComment::parse(c).expect("a valid comment"));
    store
        .record_feedback(session, job, rating, comment.as_ref(), at(now))
        .await
        .expect("record_feedback")
}

/// Feedback is listed with its question, answer and citations; changing
/// one's mind replaces it; the listing is newest first and limited.
pub async fn feedback_is_recorded_replaced_and_listed<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (leave, leave_conversation) =
        answered(&store, &session, "How much leave?", "30 days [1].", 0).await;
    assert_eq!(
        record(&store, &session, &leave, FeedbackRating::Up, None, 100).await,
        FeedbackOutcome::Recorded
    );
    let listed = store.list_feedback(10).await.expect("list_feedback");
    assert_eq!(listed.len(), 1);
    let view = &listed[0];
    assert_eq!(view.feedback.job_id, leave);
    assert_eq!(view.feedback.session, session);
    assert_eq!(view.feedback.rating, FeedbackRating::Up);
    assert_eq!(view.feedback.comment, None);
    assert_eq!(view.feedback.created_at, at(100));
    assert_eq!(view.conversation_id, leave_conversation);
    assert_eq!(view.question, "How much leave?");
    assert_eq!(view.answer, "30 days [1].");
    assert_eq!(view.citations, answer("30 days [1].").citations);

    // Changing one's mind replaces the first.
    assert_eq!(
        record(
            &store,
            &session,
            &leave,
            FeedbackRating::Down,
            Some("It is 25 days."),
            200
        )
        .await,
        FeedbackOutcome::Recorded
    );
    let listed = store.list_feedback(10).await.expect("list_feedback");
    assert_eq!(listed.len(), 1, "one feedback per answer");
    assert_eq!(listed[0].feedback.rating, FeedbackRating::Down);
    assert_eq!(
        listed[0].feedback.comment.as_ref().map(|c| c.as_str()),
        Some("It is 25 days.")
    );
    assert_eq!(listed[0].feedback.created_at, at(200));
    let conversation = store
        .get_conversation(&leave_conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(
        conversation.feedback.len(),
        1,
        "the conversation carries it"
    );
    assert_eq!(conversation.feedback[0], listed[0].feedback);

    // Another answer's feedback comes first; the limit keeps the newest.
    let (pay, _) = answered(&store, &session, "When is payday?", "The 25th [1].", 300).await;
    record(&store, &session, &pay, FeedbackRating::Up, None, 400).await;
    let listed = store.list_feedback(10).await.expect("list_feedback");
    let jobs: Vec<_> = listed.iter().map(|v| v.feedback.job_id.clone()).collect();
    assert_eq!(jobs, [pay.clone(), leave.clone()]);
    assert_eq!(listed[0].question, "When is payday?");
    let newest = store.list_feedback(1).await.expect("list_feedback");
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].feedback.job_id, pay);
}

/// Another session's answer, an unknown job and a question not yet
/// answered are all "not found", and nothing is written.
pub async fn feedback_is_refused_for_answers_not_ones_own<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let (answer_job, _) = answered(&store, &alice, "How much leave?", "30 days [1].", 0).await;
    assert_eq!(
        record(&store, &bob, &answer_job, FeedbackRating::Down, None, 100).await,
        FeedbackOutcome::AnswerNotFound,
        "bob cannot rate alice's answer"
    );
    assert_eq!(
        record(&store, &alice, &job_id(), FeedbackRating::Up, None, 100).await,
        FeedbackOutcome::AnswerNotFound,
        "no such job"
    );
    let (pending, _) = submit(
        &store,
        submission(&alice, new_conversation("Payday?"), "Payday?", at(200)),
    )
    .await;
    assert_eq!(
        record(&store, &alice, &pending.id, FeedbackRating::Up, None, 300).await,
        FeedbackOutcome::AnswerNotFound,
        "a question without an answer yet"
    );
    assert!(
        store
            .list_feedback(10)
            .await
            .expect("list_feedback")
            .is_empty(),
        "nothing was written"
    );
}

/// Deleting a conversation takes the feedback on its answers with it.
pub async fn feedback_goes_with_its_conversation<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (job, conversation) =
        answered(&store, &session, "How much leave?", "30 days [1].", 0).await;
    record(&store, &session, &job, FeedbackRating::Up, None, 100).await;
    assert!(
        store
            .delete_conversation(&conversation, &session)
            .await
            .expect("delete_conversation")
    );
    assert!(
        store
            .list_feedback(10)
            .await
            .expect("list_feedback")
            .is_empty()
    );
}
