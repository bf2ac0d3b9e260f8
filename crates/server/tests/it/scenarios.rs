//! Scenario packs: selection by header, request rule, record state and the
//! sandbox default; listing, coverage and import errors.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, send, spawn_app};

/// The example project, as `sbx import examples/payments` sends it.
pub fn payments_project(name: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments");
    let files = sbx_engine::project::read_dir(&dir).expect("the example reads");
    let mut body = serde_json::to_value(files).unwrap();
    body["name"] = json!(name);
    body["spec"] = json!(std::fs::read_to_string(dir.join("openapi.yaml")).unwrap());
    body
}

fn card(number: &str) -> Value {
    json!({"amount": 2000, "currency": "usd",
           "payment_method": {"type": "card", "number": number, "exp_month": 12, "exp_year": 2030}})
}

async fn payments(app: &TestApp) -> crate::helpers::Sandbox {
    app.payments_sandbox("none").await
}

#[tokio::test]
async fn scenarios_are_selected_by_header_rule_state_and_default() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let client = &app.client;
    let pay = |number: &str| client.post(sandbox.url("/payments")).json(&card(number));

    // Request rules: test cards.
    let response = pay("4000000000000002").send().await.unwrap();
    assert_eq!(response.status(), 402);
    assert_eq!(response.headers()["x-sandbox-scenario"], "card_declined");
    let (_, declined) = crate::helpers::json_of(response).await;
    assert_eq!(
        declined["error"]["message"], "Your card was declined.",
        "the declared error shape: {declined}"
    );
    let (status, funds) = send(pay("4000000000009995")).await;
    assert_eq!(
        (status, funds["error"]["code"].as_str()),
        (402, Some("insufficient_funds"))
    );
    let (status, three_ds) = send(pay("4000000000003220")).await;
    assert_eq!(
        (status, three_ds["status"].as_str()),
        (201, Some("requires_action")),
        "{three_ds}"
    );
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "payment.requires_action");

    // No scenario: the normal behaviour (the script and the stateful create).
    let (status, paid) = send(pay("4242424242424242")).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("processing")),
        "{paid}"
    );

    // The header names one; an unknown name lists the operation's.
    let response = pay("4242424242424242")
        .header("x-sandbox-scenario", "rate_limited")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    let (status, problem) =
        send(pay("4242424242424242").header("x-sandbox-scenario", "meteor")).await;
    assert_eq!(status, 400);
    assert_eq!(problem["type"], "urn:sbx:problem:unknown-scenario");
    assert!(
        problem["scenarios"]
            .as_array()
            .unwrap()
            .contains(&json!("card_declined")),
        "{problem}"
    );
    let (status, _) = send(
        client
            .get(sandbox.url("/balance"))
            .header("x-sandbox-scenario", "card_declined"),
    )
    .await;
    assert_eq!(
        status, 400,
        "an operation without scenarios has none to name"
    );

    // Rules may read headers too.
    let mut project = payments_project("beta");
    project["scenarios"]["beta"] = json!({"getAccount": {"beta_only": {
        "status": 403, "message": "beta", "when": "req.headers[\"x-beta\"] == \"1\""}}});
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");
    let beta = app
        .create_sandbox(json!({"project": "beta", "auth": "none"}))
        .await;
    let gold = beta.url("/accounts/acct_demo_gold");
    assert_eq!(send(client.get(&gold).header("x-beta", "1")).await.0, 403);
    assert_eq!(send(client.get(&gold)).await.0, 200);

    // Record state: the frozen fixture account.
    let (status, frozen) = send(client.get(sandbox.url("/accounts/acct_demo_frozen"))).await;
    assert_eq!(status, 403, "{frozen}");
    assert_eq!(
        send(client.get(sandbox.url("/accounts/acct_demo_gold")))
            .await
            .0,
        200
    );

    // The sandbox default applies where the operation declares it.
    let path = format!("/sandboxes/{}/scenario", sandbox.id);
    let (status, problem) = send(
        app.admin(Method::PUT, &path)
            .json(&json!({"scenario": "nope"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, list) = send(
        app.admin(Method::PUT, &path)
            .json(&json!({"scenario": "rate_limited"})),
    )
    .await;
    assert_eq!(
        (status, list["default"].as_str()),
        (200, Some("rate_limited"))
    );
    assert_eq!(send(pay("4242424242424242")).await.0, 429);
    assert_eq!(
        send(pay("4000000000000002")).await.0,
        402,
        "a rule still wins over the default"
    );
    assert_eq!(
        send(client.get(sandbox.url("/accounts/acct_demo_gold")))
            .await
            .0,
        200
    );
    send(
        app.admin(Method::PUT, &path)
            .json(&json!({"scenario": null})),
    )
    .await;
    assert_eq!(send(pay("4242424242424242")).await.0, 201);
}

#[tokio::test]
async fn scenarios_are_listed_and_coverage_is_reported() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let (status, list) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/scenarios", sandbox.id))).await;
    assert_eq!(status, 200);
    let create = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "createPayment")
        .unwrap();
    let names: Vec<&str> = create["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "card_declined",
            "insufficient_funds",
            "requires_action",
            "rate_limited"
        ]
    );
    assert_eq!(create["scenarios"][0]["trigger"], "request");
    assert_eq!(create["scenarios"][3]["trigger"], "header");

    let (status, coverage) = send(app.admin(Method::GET, "/projects/payments/coverage")).await;
    assert_eq!(status, 200);
    let create = coverage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "createPayment")
        .unwrap();
    assert_eq!(create["declared"], json!(["400", "401", "402", "429"]));
    assert_eq!(create["covered"], json!(["402", "429"]));
    assert!(coverage["declared"].as_u64().unwrap() > coverage["covered"].as_u64().unwrap());
}

#[tokio::test]
async fn invalid_scenario_packs_are_rejected_with_their_location() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"noSuchOperation": {"x": {"status": 400}}}),
            "/noSuchOperation",
        ),
        (
            json!({"createPayment": {"x": {"status": 402, "when": "req.body.amount >"}}}),
            "/createPayment/x/when",
        ),
        (
            json!({"createPayment": {"x": {"status": 201, "example": "missing"}}}),
            "/createPayment/x/example",
        ),
        (
            json!({"createPayment": {"x": {"status": 402, "colour": "red"}}}),
            "/createPayment/x",
        ),
        (
            json!({"getBalance": {"x": {"status": 403, "when_state": "record.status == 1"}}}),
            "/getBalance/x",
        ),
        // Rules on members the schema does not declare.
        (
            json!({"createPayment": {"x": {"status": 402, "when": "req.body.amout > 5"}}}),
            "/createPayment/x/when",
        ),
        (
            json!({"createPayment": {"x": {"status": 402, "when": "req.body?.payment_method.numbr == \"1\""}}}),
            "/createPayment/x/when",
        ),
        (
            json!({"getAccount": {"x": {"status": 403, "when_state": "record.state == \"frozen\""}}}),
            "/getAccount/x/when_state",
        ),
    ];
    for (pack, pointer) in cases {
        let mut project = payments_project("payments");
        project["scenarios"] = json!({"broken": pack});
        let (status, problem) = send(app.admin(Method::POST, "/projects").json(&project)).await;
        assert_eq!(status, 422, "{problem}");
        let error = &problem["errors"][0];
        assert_eq!(
            (error["location"].as_str(), error["pointer"].as_str()),
            (Some("scenarios/broken.yaml"), Some(pointer)),
            "{problem}"
        );
    }
}
