//! On PostgreSQL, a server whose database another server took (after a
//! pause past its lease, say): the database refuses its writes, the client
//! is told to retry, nothing is saved, and the server stops.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{execute_on_database, on_postgres, send, spawn_app};

#[tokio::test]
async fn a_server_whose_database_was_taken_saves_nothing_more_and_stops() {
    if !on_postgres() {
        eprintln!("skipped: fencing is PostgreSQL's (SBX_TEST_BACKEND=postgres)");
        return;
    }
    let mut app = spawn_app().await;
    let sandbox = app.payments_sandbox("none").await;
    let payment = json!({"amount": 2000, "currency": "usd",
        "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}});
    let (status, body) = send(app.client.post(sandbox.url("/payments")).json(&payment)).await;
    assert_eq!(status, 201, "{body}");
    let store = crate::helpers::open_store(app.data_dir.path()).await;
    let saved_payments = || async {
        store
            .load_resources(&sandbox.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|row| row.collection == "payments")
            .count()
    };
    let before = saved_payments().await;
    assert!(before >= 1);

    // Another server takes the database behind this one's back.
    execute_on_database(
        app.data_dir.path(),
        "UPDATE database_holder SET replica = 'rep_other', epoch = epoch + 1",
    )
    .await;
    let response = app
        .client
        .post(sandbox.url("/payments"))
        .json(&payment)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:sbx:problem:storage-unavailable",
        "{problem}"
    );

    // Its next renewal finds the database taken: it stops, and says why.
    let server = app.server.take().expect("running");
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("it stops within seconds");
    let why = format!(
        "{:#}",
        stopped.expect_err("a stop for a lost hold is an error")
    );
    assert!(why.contains("lost its hold"), "{why}");
    // The refused payment was not saved.
    assert_eq!(saved_payments().await, before);
}
