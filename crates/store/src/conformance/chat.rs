//! Chat: submissions create or append to a conversation and queue its
//! job, only for the conversation's owner; a completed chat job appends
//! one answer, however often it completes.

use flowchat_domain::model::{
    ConversationSummary, JobKind, JobPayload, JobResult, JobStatus, Role,
};

use super::Harness;
use super::support::*;
use crate::{ChatSubmission, Completion, ConversationTarget, Store, SubmitOutcome};

/// One submission creates the conversation, the user message and a queued
/// job, counts the rate limit, and the job is claimable at once.
pub async fn submit_creates_conversation_message_and_job<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let conversation = conversation_id();
    let id = job_id();
    let rate = check(&unique_key("chat:session"), 10, 60_000);
    let outcome = store
        .submit_chat(ChatSubmission {
            session: session.clone(),
            conversation: ConversationTarget::New {
                id: conversation.clone(),
                title: "What is FlowChat?".to_owned(),
            },
            message: "What is FlowChat?".to_owned(),
            job_id: id.clone(),
            rate_checks: vec![rate.clone()],
            now: at(1_000),
        })
        .await
        .expect("submit_chat");
    let SubmitOutcome::Accepted {
        job: submitted,
        conversation_id,
    } = outcome
    else {
        panic!("expected Accepted, got {outcome:?}");
    };
    assert_eq!(conversation_id, conversation);
    assert_eq!(submitted.id, id);
    assert_eq!(submitted.kind, JobKind::Chat);
    assert_eq!(submitted.status, JobStatus::Queued);
    assert_eq!(submitted.owner.as_ref(), Some(&session));
    assert_eq!(submitted.attempts, 0);
    assert_eq!(submitted.result, None);
    assert_eq!(submitted.error, None);
    assert_eq!(submitted.created_at, at(1_000));
    assert_eq!(
        submitted.payload,
        JobPayload::Chat {
            session_id: session.clone(),
            conversation_id: conversation.clone(),
            question: "What is FlowChat?".to_owned(),
        }
    );
    assert_eq!(
        job(&store, &id).await,
        submitted,
        "get_job returns what submit returned"
    );

    let stored = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("the conversation exists");
    assert_eq!(stored.owner, session);
    assert_eq!(stored.title, "What is FlowChat?");
    assert_eq!(stored.created_at, at(1_000));
    assert_eq!(stored.messages.len(), 1);
    let message = &stored.messages[0];
    assert_eq!(message.role, Role::User);
    assert_eq!(message.content, "What is FlowChat?");
    assert!(message.citations.is_empty());
    assert_eq!(message.job_id.as_ref(), Some(&id));
    assert_eq!(message.created_at, at(1_000));

    let listed = store
        .list_conversations(&session)
        .await
        .expect("list_conversations");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, conversation);
    assert_eq!(listed[0].message_count, 1);
    assert_eq!(listed[0].title, "What is FlowChat?");
    assert!(
        store
            .list_conversations(&session_id())
            .await
            .expect("list_conversations")
            .is_empty(),
        "another session sees no conversations"
    );

    // The submission counted one hit.
    let decision = hit(&store, std::slice::from_ref(&rate), at(1_000)).await;
    assert!(decision.allowed);
    assert_eq!(
        decision.remaining, 8,
        "one hit from the submission, one now"
    );

    let claimed = claim_one(&store, at(1_000)).await;
    assert_eq!(claimed.job.id, id);
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.payload, submitted.payload);
}

/// Appending keeps messages in order, bumps `updated_at`, and lists
/// conversations newest first; jobs are claimed oldest first.
pub async fn submit_appends_to_an_existing_conversation<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (first, conversation) = submit(
        &store,
        submission(&session, new_conversation("first"), "question one", at(0)),
    )
    .await;
    let (other_job, other) = submit(
        &store,
        submission(&session, new_conversation("second"), "elsewhere", at(500)),
    )
    .await;
    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&other, &conversation],
        "newest first"
    );

    let (second, again) = submit(
        &store,
        submission(
            &session,
            ConversationTarget::Existing(conversation.clone()),
            "question two",
            at(1_000),
        ),
    )
    .await;
    assert_eq!(again, conversation);
    let stored = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(
        stored
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        vec!["question one", "question two"]
    );
    assert_eq!(stored.messages[1].job_id.as_ref(), Some(&second.id));
    assert_eq!(stored.created_at, at(0));
    assert_eq!(stored.updated_at, at(1_000));
    assert_eq!(stored.title, "first", "appending keeps the title");

    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&conversation, &other],
        "the conversation just appended to comes first"
    );
    assert_eq!(listed[0].message_count, 2);
    assert_eq!(listed[0].updated_at, at(1_000));
    assert_eq!(listed[1].message_count, 1);

    let claimed = claim(&store, 10, at(2_000)).await;
    assert_eq!(
        claimed.iter().map(|c| &c.job.id).collect::<Vec<_>>(),
        vec![&first.id, &other_job.id, &second.id],
        "oldest first"
    );
}

/// A session cannot append to another session's conversation, nor to one
/// that does not exist, nor take over an existing id with `New`; nothing is
/// written and no rate limit is counted.
pub async fn submit_to_a_foreign_or_missing_conversation_is_not_found<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let (_, alices) = submit(
        &store,
        submission(&alice, new_conversation("mine"), "private question", at(0)),
    )
    .await;
    let key = unique_key("chat:session");
    let targets = [
        ConversationTarget::Existing(alices.clone()),
        ConversationTarget::Existing(conversation_id()),
        ConversationTarget::New {
            id: alices.clone(),
            title: "hijack".to_owned(),
        },
    ];
    for target in targets {
        let mut sub = submission(&bob, target.clone(), "let me in", at(100));
        sub.rate_checks = vec![check(&key, 2, 60_000)];
        let rejected_job = sub.job_id.clone();
        let outcome = store.submit_chat(sub).await.expect("submit_chat");
        assert!(
            matches!(outcome, SubmitOutcome::ConversationNotFound),
            "{target:?} should be not found, got {outcome:?}"
        );
        assert_eq!(
            store.get_job(&rejected_job).await.expect("get_job"),
            None,
            "no job for a refused submission"
        );
    }
    let stored = store
        .get_conversation(&alices)
        .await
        .expect("get_conversation")
        .expect("still there");
    assert_eq!(stored.owner, alice);
    assert_eq!(stored.title, "mine");
    assert_eq!(stored.messages.len(), 1, "nothing appended");
    assert!(
        store
            .list_conversations(&bob)
            .await
            .expect("list")
            .is_empty()
    );
    let stats = store.queue_stats(at(100)).await.expect("queue_stats");
    assert_eq!(stats.queued, 1, "only alice's job is queued");
    // None of the three refused submissions counted.
    let decision = hit(&store, &[check(&key, 2, 60_000)], at(100)).await;
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 1);
}

/// Completing a chat job stores the answer and appends one assistant
/// message; completing it again changes nothing.
pub async fn complete_chat_is_idempotent<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(
            &session,
            new_conversation("leave"),
            "How much leave?",
            at(0),
        ),
    )
    .await;
    let claimed = claim_one(&store, at(10)).await;
    let reply = answer("30 days [1].");
    assert_eq!(
        store
            .complete_chat(&claimed, &reply, at(100))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    for other in [reply.clone(), answer("something else")] {
        assert_eq!(
            store
                .complete_chat(&claimed, &other, at(200))
                .await
                .expect("complete_chat"),
            Completion::AlreadyDone
        );
    }
    let stored = job(&store, &submitted.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(stored.result, Some(JobResult::Chat(reply.clone())));
    assert_eq!(stored.error, None);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.updated_at, at(100));

    let conversation_now = store
        .get_conversation(&conversation)
        .await
        .expect("get_conversation")
        .expect("exists");
    assert_eq!(conversation_now.messages.len(), 2);
    let message = &conversation_now.messages[1];
    assert_eq!(message.role, Role::Assistant);
    assert_eq!(message.content, reply.answer);
    assert_eq!(message.citations, reply.citations);
    assert_eq!(message.job_id.as_ref(), Some(&submitted.id));
    assert_eq!(
        message.mode,
        Some(reply.mode),
        "the answer's mode is recorded"
    );
    assert_eq!(
        conversation_now.messages[0].mode, None,
        "a question has none"
    );
    assert_eq!(message.created_at, at(100));
    assert_eq!(conversation_now.updated_at, at(100));
    let listed = store.list_conversations(&session).await.expect("list");
    assert_eq!(listed[0].message_count, 2);
    assert!(
        claim(&store, 5, at(1_000_000)).await.is_empty(),
        "done jobs are not claimable"
    );
}

/// A conversation deleted while its answer was being written: the job
/// still succeeds (the answer is readable from it), no message appears.
pub async fn complete_after_conversation_deleted_still_succeeds<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let session = session_id();
    let (submitted, conversation) = submit(
        &store,
        submission(&session, new_conversation("gone"), "question", at(0)),
    )
    .await;
    let claimed = claim_one(&store, at(1)).await;
    assert!(
        store
            .delete_conversation(&conversation, &session)
            .await
            .expect("delete_conversation")
    );
    assert_eq!(
        store
            .complete_chat(&claimed, &answer("nobody reads this"), at(2))
            .await
            .expect("complete_chat"),
        Completion::Stored
    );
    let stored = job(&store, &submitted.id).await;
    assert_eq!(stored.status, JobStatus::Succeeded);
    assert_eq!(
        stored.result,
        Some(JobResult::Chat(answer("nobody reads this")))
    );
    assert_eq!(
        store
            .get_conversation(&conversation)
            .await
            .expect("get_conversation"),
        None,
        "the answer does not resurrect the conversation"
    );
}

/// Conversations are listed, read and deleted per owner; deleting removes
/// the messages but not the jobs.
pub async fn conversations_are_isolated_by_owner<H: Harness>(h: &H) {
    let store = h.fresh().await;
    let alice = session_id();
    let bob = session_id();
    let (a1_job, a1) = submit(
        &store,
        submission(&alice, new_conversation("a1"), "alice one", at(0)),
    )
    .await;
    let (_, a2) = submit(
        &store,
        submission(&alice, new_conversation("a2"), "alice two", at(10)),
    )
    .await;
    let (_, b1) = submit(
        &store,
        submission(&bob, new_conversation("b1"), "bob one", at(20)),
    )
    .await;
    let ids = |list: Vec<ConversationSummary>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_conversations(&alice).await.expect("list")),
        vec![a2.clone(), a1.clone()]
    );
    assert_eq!(
        ids(store.list_conversations(&bob).await.expect("list")),
        vec![b1.clone()]
    );

    assert!(
        !store.delete_conversation(&a1, &bob).await.expect("delete"),
        "bob cannot delete alice's conversation"
    );
    let kept = store
        .get_conversation(&a1)
        .await
        .expect("get_conversation")
        .expect("still there");
    assert_eq!(kept.owner, alice);
    assert_eq!(kept.messages.len(), 1);

    assert!(
        store
            .delete_conversation(&a1, &alice)
            .await
            .expect("delete")
    );
    assert_eq!(
        store.get_conversation(&a1).await.expect("get_conversation"),
        None
    );
    assert!(
        !store
            .delete_conversation(&a1, &alice)
            .await
            .expect("delete"),
        "already gone"
    );
    assert_eq!(
        ids(store.list_conversations(&alice).await.expect("list")),
        vec![a2.clone()]
    );
    assert_eq!(
        ids(store.list_conversations(&bob).await.expect("list")),
        vec![b1]
    );
    let orphan = job(&store, &a1_job.id).await;
    assert_eq!(
        orphan.conversation_id(),
        Some(&a1),
        "the job stays readable"
    );

    let outcome = store
        .submit_chat(submission(
            &alice,
            ConversationTarget::Existing(a1.clone()),
            "anyone there?",
            at(30),
        ))
        .await
        .expect("submit_chat");
    assert!(
        matches!(outcome, SubmitOutcome::ConversationNotFound),
        "a deleted conversation is not found, got {outcome:?}"
    );
}
