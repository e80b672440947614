use serde_json::json;

use crate::harness::{ADMIN, api, chat_answer};

#[tokio::test]
async fn a_session_lists_reads_and_deletes_its_conversations() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    let (job_id, conversation_id) = api.submit(&token, "How much for a chair?").await;
    api.answer_next("150 euros [1].").await;

    let r = api.get("/api/conversations").token(&token).send().await;
    assert_eq!(
        r.json(200),
        &json!({"conversations": [{
            "id": conversation_id,
            "title": "How much for a chair?",
            "message_count": 2,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        }]})
    );

    let path = format!("/api/conversations/{conversation_id}");
    let r = api.get(&path).token(&token).send().await;
    let citations = serde_json::to_value(&chat_answer("x").citations).unwrap();
    assert_eq!(
        r.json(200),
        &json!({
            "id": conversation_id,
            "title": "How much for a chair?",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "messages": [
                {
                    "role": "user",
                    "content": "How much for a chair?",
                    "citations": [],
                    "job_id": job_id,
                    "created_at": "2025-01-01T00:00:00Z",
                },
                {
                    "role": "assistant",
                    "content": "150 euros [1].",
                    "citations": citations,
                    "job_id": job_id,
                    "mode": "extractive",
                    "created_at": "2025-01-01T00:00:00Z",
                },
            ],
        })
    );

    // Another session sees nothing, and cannot delete it.
    let (bob, _) = api.session("bob").await;
    let r = api.get("/api/conversations").token(&bob).send().await;
    assert_eq!(r.json(200), &json!({"conversations": []}));
    let r = api.get(&path).token(&bob).send().await;
    assert_eq!(r.problem(404)["detail"], "no such conversation");
    api.delete(&path).token(&bob).send().await.problem(404);

    let r = api.delete(&path).token(&token).send().await;
    assert_eq!(r.status, 204);
    assert!(r.bytes.is_empty());
    api.get(&path).token(&token).send().await.problem(404);
    api.delete(&path).token(&token).send().await.problem(404);
}

#[tokio::test]
async fn conversation_refusals() {
    let api = api().build();
    let (token, _) = api.session("ana").await;
    api.get("/api/conversations").send().await.problem(401);
    api.get("/api/conversations")
        .token(ADMIN)
        .send()
        .await
        .problem(401);
    api.get("/api/conversations/abc")
        .token(&token)
        .send()
        .await
        .invalid("conversation_id", "format");
    api.delete("/api/conversations/abc")
        .token(&token)
        .send()
        .await
        .invalid("conversation_id", "format");
    api.get("/api/conversations/00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .problem(401);
    let r = api.post("/api/conversations").token(&token).send().await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = api
        .post("/api/conversations/00000000-0000-4000-8000-000000000000")
        .token(&token)
        .send()
        .await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
}
