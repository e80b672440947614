use serde_json::json;

use crate::harness::{ADMIN, api};

#[tokio::test]
async fn a_session_rates_its_answer_and_changes_its_mind() {
    let api = api().build();
    let (token, session_id) = api.session("ana").await;
    let (job_id, conversation_id) = api.submit(&token, "How much for a chair?").await;
    api.answer_next("150 euros [1].").await;
    let path = format!("/api/chat/{job_id}/feedback");

    let r = api
        .put(&path)
        .token(&token)
        .json(json!({"rating": "up"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.bytes.is_empty());
    let listed = api.store.list_feedback(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].feedback.rating.as_str(), "up");
    assert_eq!(listed[0].feedback.session.as_str(), session_id);
    assert_eq!(listed[0].conversation_id.as_str(), conversation_id);
    assert_eq!(listed[0].question, "How much for a chair?");
    assert_eq!(listed[0].answer, "150 euros [1].");

    // Changing one's mind replaces it; the comment is trimmed.
    let r = api
        .put(&path)
        .token(&token)
        .json(json!({"rating": "down", "comment": "  It is 120 euros.\n "}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let listed = api.store.list_feedback(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].feedback.rating.as_str(), "down");
    assert_eq!(
        listed[0].feedback.comment.as_ref().map(|c| c.as_str()),
        Some("It is 120 euros.")
    );

    // The conversation shows it on the answer, for its reader.
    let r = api
        .get(&format!("/api/conversations/{conversation_id}"))
        .token(&token)
        .send()
        .await;
    let messages = r.json(200)["messages"].as_array().unwrap();
    assert!(messages[0].get("feedback").is_none(), "{}", r.body);
    assert_eq!(
        messages[1]["feedback"],
        json!({"rating": "down", "comment": "It is 120 euros."})
    );

    // A blank comment is no comment.
    let r = api
        .put(&path)
        .token(&token)
        .json(json!({"rating": "up", "comment": "   "}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let listed = api.store.list_feedback(10).await.unwrap();
    assert_eq!(listed[0].feedback.comment, None);
    let r = api
        .get(&format!("/api/conversations/{conversation_id}"))
        .token(&token)
        .send()
        .await;
    assert_eq!(
        r.json(200)["messages"][1]["feedback"],
        json!({"rating": "up"})
    );
}

#[tokio::test]
async fn feedback_refusals() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, _) = api.submit(&token, "How much for a chair?").await;
    let path = format!("/api/chat/{job_id}/feedback");
    let up = json!({"rating": "up"});

    // Not answered yet: not an answer.
    let r = api.put(&path).token(&token).json(up.clone()).send().await;
    assert_eq!(r.problem(404)["detail"], "no such answer");
    api.answer_next("150 euros [1].").await;

    // No token, or an operator's: 401.
    api.put(&path).json(up.clone()).send().await.problem(401);
    api.put(&path)
        .token(ADMIN)
        .json(up.clone())
        .send()
        .await
        .problem(401);

    // Bad input names the field and rule, and writes nothing.
    let bad = [
        (json!({}), "rating", "required"),
        (json!({"rating": "meh"}), "rating", "value"),
        (
            json!({"rating": "down", "comment": "x".repeat(1001)}),
            "comment",
            "length",
        ),
        (
            json!({"rating": "down", "comment": "bell\u{7}"}),
            "comment",
            "characters",
        ),
    ];
    for (body, field, rule) in bad {
        api.put(&path)
            .token(&token)
            .json(body)
            .send()
            .await
            .invalid(field, rule);
    }
    api.put("/api/chat/not%20an%20id/feedback")
        .token(&token)
        .json(up.clone())
        .send()
        .await
        .problem(400);
    assert!(api.store.list_feedback(10).await.unwrap().is_empty());

    // Another session's answer is not found, like a missing one.
    let (bob, _) = api.session("bob").await;
    let r = api.put(&path).token(&bob).json(up.clone()).send().await;
    assert_eq!(r.problem(404)["detail"], "no such answer");
    let r = api
        .put("/api/chat/00000000-0000-4000-8000-000000000000/feedback")
        .token(&token)
        .json(up.clone())
        .send()
        .await;
    r.problem(404);
    assert!(api.store.list_feedback(10).await.unwrap().is_empty());

    // Only PUT.
    let r = api.get(&path).token(&token).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("PUT"));
}

#[tokio::test]
async fn feedback_counts_against_the_address_write_limit() {
    let api = api().var("RATE_LIMIT_IP_PER_MINUTE", "2").build();
    let (token, _) = api.session("ana").await;
    let r = api
        .post("/api/chat")
        .token(&token)
        .json(json!({"message": "chairs?"}))
        .ip("203.0.113.7")
        .send()
        .await;
    let job_id = r.json(202)["job_id"].as_str().unwrap().to_owned();
    api.answer_next("150 euros [1].").await;
    let path = format!("/api/chat/{job_id}/feedback");
    let send = || {
        api.put(&path)
            .token(&token)
            .json(json!({"rating": "up"}))
            .ip("203.0.113.7")
            .send()
    };
    assert_eq!(send().await.status, 204);
    let r = send().await;
    assert_eq!(r.problem(429)["type"], "urn:flowchat:problem:rate-limited");
}
