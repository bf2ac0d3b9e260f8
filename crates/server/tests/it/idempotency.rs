//! `Idempotency-Key`: replay, mismatch, concurrency, restarts.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{json_of, send, spawn_app_with};

const LIBRARY: &str = include_str!("../fixtures/library.yaml");

#[tokio::test]
async fn retries_replay_the_first_answer_across_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    app.import_ok("library", LIBRARY).await;
    let sandbox = app.create_sandbox(json!({"project": "library"})).await;
    let create = |url: String, key: &'static str, name: &'static str| {
        app.client
            .post(url)
            .header("idempotency-key", key)
            .json(&json!({"name": name}))
    };

    let first = create(sandbox.url("/authors"), "k-1", "Ada")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (_, created) = json_of(first).await;
    let retry = create(sandbox.url("/authors"), "k-1", "Ada")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json_of(retry).await.1,
        created,
        "the same body, not a second author"
    );
    let (_, list) = send(app.client.get(sandbox.url("/authors?limit=10"))).await;
    assert_eq!(list["total"], 1);

    let (status, mismatch) = send(create(sandbox.url("/authors"), "k-1", "Grace")).await;
    assert_eq!(status, 400, "{mismatch}");
    assert!(
        mismatch["message"].as_str().unwrap().contains("k-1"),
        "the declared shape names the key: {mismatch}"
    );

    // Invalid requests are not stored: fixing the body with the same key runs it.
    let (status, _) = send(
        app.client
            .post(sandbox.url("/authors"))
            .header("idempotency-key", "k-2")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        send(create(sandbox.url("/authors"), "k-2", "Edsger"))
            .await
            .0,
        201
    );

    app.stop().await;
    let app = spawn_app_with(app.data_dir, |config| config.data_dir = path).await;
    let retry = app
        .client
        .post(sandbox.url_on(&app.url, "/authors"))
        .header("idempotency-key", "k-1")
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        retry.headers()["idempotent-replayed"],
        "true",
        "keys survive a restart"
    );
    assert_eq!(json_of(retry).await.1, created);
    let (status, _) = send(app.admin(Method::GET, &format!("/sandboxes/{}", sandbox.id))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fifty_concurrent_duplicates_create_once() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |_| {}).await;
    app.import_ok("library", LIBRARY).await;
    let sandbox = app.create_sandbox(json!({"project": "library"})).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let request = app
            .client
            .post(sandbox.url("/authors"))
            .header("idempotency-key", "same")
            // Keeps the first request in flight while the others arrive.
            .header("x-chaos", "latency=300ms")
            .json(&json!({"name": "Ada"}));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (response.status().as_u16(), replayed)
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            (201, false) => created += 1,
            (201, true) | (409, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    let (_, list) = send(app.client.get(sandbox.url("/authors?limit=10"))).await;
    assert_eq!(list["total"], 1, "one author, whatever the concurrency");
}
