//! Sandbox clocks: advance, freeze, resume; what reads them.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{millis, send, spawn_app_with};

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn clocks_advance_freeze_and_resume_and_everything_dated_follows() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    let sandbox = app.payments_sandbox("none").await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);

    let (_, before) = send(app.admin(Method::GET, &clock)).await;
    assert_eq!(before["frozen"], false);
    let (status, after) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P30D"})),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    let moved = millis(after["now"].as_str().unwrap()) - millis(before["now"].as_str().unwrap());
    assert!(
        (30 * DAY_MS..30 * DAY_MS + 60_000).contains(&moved),
        "{moved}"
    );
    let (_, balance) = send(app.client.get(sandbox.url("/balance"))).await;
    let template_now = millis(balance["retrieved_at"].as_str().unwrap());
    assert!(
        template_now - millis(before["now"].as_str().unwrap()) >= 30 * DAY_MS,
        "templates read the clock: {balance}"
    );

    let (status, frozen) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"freeze_at": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!((status, frozen["frozen"].clone()), (200, json!(true)));
    for _ in 0..2 {
        let (_, balance) = send(app.client.get(sandbox.url("/balance"))).await;
        assert_eq!(balance["retrieved_at"], "2030-01-01T00:00:00Z");
    }
    let (_, customer) = send(
        app.client
            .post(sandbox.url("/customers"))
            .json(&json!({"name": "Bo", "email": "bo@example.com"})),
    )
    .await;
    assert_eq!(
        customer["created_at"], "2030-01-01T00:00:00Z",
        "created records read the clock"
    );

    // Idempotency keys expire on the sandbox clock.
    let pay = || {
        app.client
            .post(sandbox.url("/customers"))
            .header("idempotency-key", "k")
            .json(&json!({"name": "Al", "email": "al@example.com"}))
    };
    let (_, first) = send(pay()).await;
    assert_eq!(
        pay().send().await.unwrap().headers()["idempotent-replayed"],
        "true"
    );
    send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P2D"})),
    )
    .await;
    let response = pay().send().await.unwrap();
    assert!(
        response.headers().get("idempotent-replayed").is_none(),
        "expired after 24 h of sandbox time"
    );
    let (_, second) = crate::helpers::json_of(response).await;
    assert_ne!(first["id"], second["id"]);

    for bad in [
        json!({}),
        json!({"advance": "30 days"}),
        json!({"freeze": true, "resume": true}),
        json!({"freeze_at": "soon"}),
    ] {
        let (status, problem) = send(app.admin(Method::POST, &clock).json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }

    // The clock survives a restart, then runs again from where it stood.
    app.stop().await;
    let app = spawn_app_with(app.data_dir, |config| config.data_dir = path).await;
    let (_, kept) = send(app.admin(Method::GET, &clock)).await;
    assert_eq!(kept["now"], "2030-01-03T00:00:00Z");
    let (_, resumed) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"resume": true})),
    )
    .await;
    assert_eq!(resumed["frozen"], false);
    assert!(millis(resumed["now"].as_str().unwrap()) >= millis("2030-01-03T00:00:00Z"));
}
