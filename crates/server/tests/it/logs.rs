//! The request log: every field, redaction (checked in the database),
//! filters and cursor pagination.

use std::time::{Duration, Instant};

use reqwest::Method;
use sbx_store::{LogQuery, SqliteStore, Store};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, send, spawn_app_with},
    scenarios::payments_project,
};

async fn logs(app: &TestApp, sandbox: &str, query: &str) -> (u16, Value) {
    send(app.admin(Method::GET, &format!("/sandboxes/{sandbox}/logs{query}"))).await
}

async fn wait_for_logs(app: &TestApp, sandbox: &str, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = logs(app, sandbox, "?limit=200").await;
        if page["items"].as_array().map_or(0, Vec::len) >= count {
            return page;
        }
        assert!(Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_request_is_logged_redacted_filterable_and_paged() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    let (status, _) = send(
        app.admin(Method::POST, "/projects")
            .json(&payments_project("payments")),
    )
    .await;
    assert_eq!(status, 201);
    let sandbox = app.create_sandbox(json!({"project": "payments"})).await;
    let key = format!("Bearer {}", sandbox.api_key);
    let pay = || {
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-log-1")
            .header("idempotency-key", "k-1")
            .json(&json!({"amount": 2000, "currency": "usd", "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}))
    };
    assert_eq!(send(pay()).await.0, 201);
    assert_eq!(send(pay()).await.0, 201, "a replay");
    let get = |path: &str| {
        app.client
            .get(sandbox.url(path))
            .header("authorization", &key)
    };
    assert_eq!(send(get("/accounts/acct_demo_frozen")).await.0, 403);
    assert_eq!(
        send(get("/accounts/acct_demo_gold").header("x-chaos", "latency=5ms"))
            .await
            .0,
        200
    );
    assert_eq!(
        send(get(&format!(
            "/accounts?status=bogus&key={}",
            sandbox.api_key
        )))
        .await
        .0,
        400
    );

    let page = wait_for_logs(&app, &sandbox.id, 5).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let first = &items[4];
    assert_eq!(
        (
            first["request_id"].as_str(),
            first["method"].as_str(),
            first["path"].as_str()
        ),
        (Some("req-log-1"), Some("POST"), Some("/v1/payments"))
    );
    assert_eq!(first["operation"], "createPayment");
    assert_eq!(first["status"], 201);
    assert!(first["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        first["request_headers"]["authorization"],
        "Bearer [redacted]"
    );
    assert!(
        first["request_body"]
            .as_str()
            .unwrap()
            .contains("\"amount\":2000"),
        "{first}"
    );
    assert!(
        first["response_body"].as_str().unwrap().contains("pay_"),
        "{first}"
    );
    assert_eq!(first["idempotent_replay"], false);
    assert_eq!(items[3]["idempotent_replay"], true);
    assert_eq!(items[2]["scenario"], "account_frozen");
    assert_eq!(items[1]["chaos"], "latency=5ms");
    assert_eq!(items[0]["status"], 400);
    assert!(
        !items[0]["query"].as_str().unwrap().contains("sk_test_"),
        "{}",
        items[0]["query"]
    );

    // Filters and the cursor.
    let (_, frozen) = logs(&app, &sandbox.id, "?status=403").await;
    assert_eq!(frozen["items"].as_array().unwrap().len(), 1);
    let (_, by_operation) = logs(&app, &sandbox.id, "?operation=getAccount").await;
    assert_eq!(by_operation["items"].as_array().unwrap().len(), 2);
    let (_, by_text) = logs(&app, &sandbox.id, "?text=acct_demo_gold").await;
    assert_eq!(by_text["items"].as_array().unwrap().len(), 1);
    let (_, page1) = logs(&app, &sandbox.id, "?limit=2").await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = logs(&app, &sandbox.id, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["items"][0]["request_id"], items[2]["request_id"]);
    let (_, last) = logs(&app, &sandbox.id, &format!("?limit=200&cursor={cursor}")).await;
    assert_eq!(
        (
            last["items"].as_array().unwrap().len(),
            last["next_cursor"].clone()
        ),
        (3, Value::Null)
    );
    assert_eq!(page1["dropped"], 0);
    for (query, parameter) in [
        ("?status=abc", "status"),
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?colour=red", "colour"),
    ] {
        let (status, problem) = logs(&app, &sandbox.id, query).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], parameter);
    }
    let (status, one) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-log-1", sandbox.id),
    ))
    .await;
    assert_eq!(
        (status, one["operation"].as_str()),
        (200, Some("createPayment"))
    );
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-nope", sandbox.id),
    ))
    .await;
    assert_eq!(status, 404);

    // A refused payment quotes the card in its violations and its answer:
    // the project's rule masks it there too.
    let (status, refused) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-bad-card")
            .json(&json!({"amount": 2000, "currency": "usd", "payment_method": {"number": "4242424242424242"}})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    wait_for_logs(&app, &sandbox.id, 6).await;
    let (status, explained) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-bad-card/explain", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200);
    let violation = explained["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["stage"] == "validate")
        .map(|step| step["detail"][0].clone())
        .unwrap();
    assert_eq!(violation["pointer"], "/payment_method", "{violation}");
    assert_eq!(violation["got"]["number"], "[redacted]", "{violation}");

    // No key ever reaches the database.
    app.stop().await;
    let store = SqliteStore::open_dir(&path).await.unwrap();
    let stored = store
        .list_logs(
            &sandbox.id,
            &LogQuery {
                limit: 100,
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 6);
    let everything = format!("{stored:?}");
    assert!(
        !everything.contains(&sandbox.api_key),
        "a key reached the store"
    );
    assert!(!everything.contains("sk_test_"), "a key reached the store");
    assert!(
        !everything.contains("4242424242424242"),
        "a card number the project redacts reached the store"
    );
    assert!(
        everything.contains(r#"\"number\":\"[redacted]\""#),
        "{everything}"
    );
}
