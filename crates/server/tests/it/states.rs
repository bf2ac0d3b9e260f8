//! Entity lifecycles: states and transitions per collection, triggered by
//! operations, scripts and time; refused moves answer the spec's 409; every
//! move is in the record's history, dated by the sandbox clock.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, send, spawn_app},
    scenarios::payments_project,
};

async fn payments(app: &TestApp) -> crate::helpers::Sandbox {
    app.frozen_sandbox(&payments_project("payments")).await
}

fn payment(amount: i64) -> Value {
    json!({"amount": amount, "currency": "usd",
           "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})
}

async fn history(app: &TestApp, sandbox: &str, id: &str) -> Value {
    let (status, body) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{sandbox}/resources/payments/{id}/history"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn payments_settle_t_plus_2_and_refused_moves_answer_the_specs_409() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let client = &app.client;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);

    let (status, paid) = send(client.post(sandbox.url("/payments")).json(&payment(2000))).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("processing")),
        "{paid}"
    );
    let id = paid["id"].as_str().unwrap().to_owned();
    let (_, waiting) = send(app.admin(Method::GET, &clock)).await;
    assert_eq!(waiting["pending_jobs"][0]["due_at"], "2030-01-03T00:00:00Z");
    assert_eq!(
        waiting["pending_jobs"][0]["action"],
        json!({"kind": "transition", "collection": "payments", "id": id,
               "from": "processing", "to": "succeeded", "after": "P2D"})
    );

    // Refunding before settlement: the script's own rule (409).
    let refund = || {
        client
            .post(sandbox.url(&format!("/payments/{id}/refund")))
            .json(&json!({}))
    };
    let (status, refused) = send(refund()).await;
    assert_eq!(status, 409, "{refused}");

    // T+1: still processing. T+2: settled, with its event.
    send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P1D"})),
    )
    .await;
    let (_, read) = send(client.get(sandbox.url(&format!("/payments/{id}")))).await;
    assert_eq!(read["status"], "processing");
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P1D"})),
    )
    .await;
    assert_eq!(moved["ran_jobs"], 1, "{moved}");
    let (_, read) = send(client.get(sandbox.url(&format!("/payments/{id}")))).await;
    assert_eq!(read["status"], "succeeded");
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "payment.succeeded");
    assert_eq!(events["items"][0]["created_at"], "2030-01-03T00:00:00Z");

    // Settled: cancel is refused by the lifecycle, in the spec's error shape.
    let (status, refused) = send(client.post(sandbox.url(&format!("/payments/{id}/cancel")))).await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is succeeded") && message.contains("processing"),
        "{message}"
    );
    let (status, refunded) = send(refund()).await;
    assert_eq!(
        (status, refunded["status"].as_str()),
        (200, Some("refunded"))
    );

    let history = history(&app, &sandbox.id, &id).await;
    assert_eq!(history["state"], "refunded");
    let moves: Vec<(Value, Value, Value, Value)> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].clone(),
                t["to"].clone(),
                t["at"].clone(),
                t["cause"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (
                Value::Null,
                json!("processing"),
                json!("2030-01-01T00:00:00Z"),
                json!("operation createPayment")
            ),
            (
                json!("processing"),
                json!("succeeded"),
                json!("2030-01-03T00:00:00Z"),
                json!("after P2D")
            ),
            (
                json!("succeeded"),
                json!("refunded"),
                json!("2030-01-03T00:00:00Z"),
                json!("operation refundPayment")
            ),
        ]
    );
}

#[tokio::test]
async fn operations_trigger_transitions_and_jobs_move_records_on_the_clock() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let client = &app.client;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);

    // `on: cancelPayment`: the answer shows the new state; twice is refused.
    let (_, paid) = send(client.post(sandbox.url("/payments")).json(&payment(2000))).await;
    let id = paid["id"].as_str().unwrap();
    let cancel = || client.post(sandbox.url(&format!("/payments/{id}/cancel")));
    let (status, canceled) = send(cancel()).await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (200, Some("canceled")),
        "{canceled}"
    );
    assert_eq!(send(cancel()).await.0, 409);
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "payment.canceled");
    // Its timed settlement finds it canceled and leaves it be.
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P3D"})),
    )
    .await;
    assert_eq!(
        (moved["ran_jobs"].clone(), moved["failed_now"].clone()),
        (json!(1), json!(0))
    );
    let (_, read) = send(client.get(sandbox.url(&format!("/payments/{id}")))).await;
    assert_eq!(read["status"], "canceled");

    // A large payment goes to review (jobs/review.rhai) an hour later.
    let (_, large) = send(
        client
            .post(sandbox.url("/payments"))
            .json(&payment(2_000_000)),
    )
    .await;
    let large_id = large["id"].as_str().unwrap();
    send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "PT1H"})),
    )
    .await;
    let (_, read) = send(client.get(sandbox.url(&format!("/payments/{large_id}")))).await;
    assert_eq!(read["status"], "failed");
    let history = history(&app, &sandbox.id, large_id).await;
    assert_eq!(history["transitions"][1]["cause"], "job review");
    assert_eq!(history["transitions"][1]["at"], "2030-01-04T01:00:00Z");

    // Unknown records and collections without a lifecycle are 404s.
    for path in ["payments/pay_nothing", "customers/cus_demo_alice"] {
        let (status, _) = send(app.admin(
            Method::GET,
            &format!("/sandboxes/{}/resources/{path}/history", sandbox.id),
        ))
        .await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn fixture_dates_are_relative_to_the_sandbox_clock_when_seeded() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    // Reset reseeds at the (frozen) sandbox time.
    let (status, _) =
        send(app.admin(Method::POST, &format!("/sandboxes/{}/reset", sandbox.id))).await;
    assert_eq!(status, 200);
    let (_, gold) = send(app.client.get(sandbox.url("/accounts/acct_demo_gold"))).await;
    assert_eq!(gold["created_at"], "2029-10-03T00:00:00Z", "now - P90D");
    // (Reading acct_demo_frozen answers its scenario's 403: list instead.)
    let (_, listed) = send(app.client.get(sandbox.url("/accounts?status=frozen"))).await;
    assert_eq!(listed["data"][0]["id"], "acct_demo_frozen", "{listed}");
    assert_eq!(
        listed["data"][0]["created_at"], "2029-12-02T00:00:00Z",
        "now - P30D"
    );
}

#[tokio::test]
async fn invalid_lifecycles_are_rejected_at_import_with_their_location() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"initial": "processing", "states": ["processing", "succeeded", "refunded"],
                "transitions": [{"from": "processing", "to": "succeeded"}]}),
            "/states/2",
            "unreachable",
        ),
        (
            json!({"initial": "processing", "states": ["processing", "succeeded"],
                "transitions": [{"from": "processing", "to": "settled"}]}),
            "/transitions/0",
            "\"settled\" is not one of the states",
        ),
        (
            json!({"field": "phase", "initial": "processing", "states": ["processing"]}),
            "/field",
            "no member \"phase\"",
        ),
        (
            json!({"initial": "processing", "states": ["processing", "pending"],
                "transitions": [{"from": "processing", "to": "pending"}]}),
            "/states/1",
            "does not allow",
        ),
        (
            json!({"initial": "processing", "states": ["processing", "failed"],
                "transitions": [{"from": "processing", "to": "failed", "on": "explodePayment"}]}),
            "/transitions/0/on",
            "no operation",
        ),
        (
            json!({"initial": "processing", "states": ["processing", "failed"],
                "transitions": [{"from": "processing", "to": "failed", "after": "two days"}]}),
            "/transitions/0/after",
            "ISO 8601",
        ),
    ];
    for (i, (lifecycle, pointer, expected)) in cases.into_iter().enumerate() {
        let mut project = payments_project(&format!("bad{i}"));
        project["lifecycles"]["payments"] = lifecycle;
        let (status, problem) = send(app.admin(Method::POST, "/projects").json(&project)).await;
        assert_eq!(status, 422, "{problem}");
        let error = &problem["errors"][0];
        assert_eq!(
            (error["location"].as_str(), error["pointer"].as_str()),
            (Some("lifecycles/payments.yaml"), Some(pointer)),
            "{problem}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(expected),
            "{expected}: {problem}"
        );
    }
    let mut project = payments_project("nocollection");
    project["lifecycles"]["parcels"] = json!({"initial": "a", "states": ["a"]});
    let (status, problem) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 422);
    assert!(
        problem
            .to_string()
            .contains("no operation of the spec serves a collection named \\\"parcels\\\""),
        "{problem}"
    );
}

#[tokio::test]
async fn scenario_outcomes_leave_work_on_the_clock() {
    let app = spawn_app().await;
    let mut project = payments_project("payments");
    project["scenarios"]["later"] = json!({"getAccount": {"reviewed_later": {
        "status": 200,
        "schedule": [
            {"after": "PT1H", "emit": "account.reviewed"},
            {"after": "PT2H", "set": {"tier": "platinum"}},
            {"after": "PT3H", "job": "review", "payload": {"payment": "pay_none"}}
        ]
    }}});
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");
    let sandbox = app
        .create_sandbox(json!({"project": "payments", "auth": "none"}))
        .await;
    let account = sandbox.url("/accounts/acct_demo_gold");
    let response = app
        .client
        .get(&account)
        .header("x-sandbox-scenario", "reviewed_later")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    let (_, waiting) = send(app.admin(Method::GET, &clock)).await;
    assert_eq!(
        waiting["pending_jobs"].as_array().unwrap().len(),
        3,
        "{waiting}"
    );
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "PT3H"})),
    )
    .await;
    assert_eq!(
        (moved["ran_jobs"].clone(), moved["failed_now"].clone()),
        (json!(3), json!(0)),
        "{moved}"
    );
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "account.reviewed");
    assert_eq!(
        events["items"][0]["data"]["id"], "acct_demo_gold",
        "the answer's body"
    );
    let (_, read) = send(app.client.get(&account)).await;
    assert_eq!(read["tier"], "platinum");

    // A schedule naming no job is refused at import.
    let mut project = payments_project("broken");
    project["scenarios"]["later"] = json!({"getAccount": {"x": {
        "status": 200, "schedule": [{"after": "PT1H", "job": "nope"}]
    }}});
    let (status, problem) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 422);
    assert_eq!(
        problem["errors"][0]["pointer"], "/getAccount/x/schedule/0/job",
        "{problem}"
    );
}

#[tokio::test]
async fn developers_trigger_transitions_and_events_from_the_control_plane() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let (_, paid) = send(
        app.client
            .post(sandbox.url("/payments"))
            .json(&payment(2000)),
    )
    .await;
    let id = paid["id"].as_str().unwrap();
    let transition = format!(
        "/sandboxes/{}/resources/payments/{id}/transition",
        sandbox.id
    );
    let post = |body: Value| app.admin(Method::POST, &transition).json(&body);

    // Not settled yet: the dispute event moves nothing, and says what would.
    let (status, refused) = send(post(json!({"event": "charge.dispute.created"}))).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("from processing"),
        "{refused}"
    );

    let (status, moved) = send(post(json!({"to": "succeeded"}))).await;
    assert_eq!(
        (status, moved["state"].as_str()),
        (200, Some("succeeded")),
        "{moved}"
    );
    assert_eq!(moved["transitions"][1]["cause"], "control plane");
    let (status, moved) = send(post(json!({"event": "charge.dispute.created"}))).await;
    assert_eq!(
        (status, moved["state"].as_str()),
        (200, Some("disputed")),
        "{moved}"
    );
    assert_eq!(
        moved["transitions"][2]["cause"],
        "event charge.dispute.created"
    );
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "charge.dispute.created");
    let (_, read) = send(app.client.get(sandbox.url(&format!("/payments/{id}")))).await;
    assert_eq!(read["status"], "disputed");

    for (body, expected) in [
        (json!({"to": "processing"}), 409),
        (json!({"to": "disputed"}), 409),
        (json!({"to": "limbo"}), 409),
        (json!({"to": "failed", "event": "x"}), 422),
        (json!({}), 422),
    ] {
        assert_eq!(send(post(body.clone())).await.0, expected, "{body}");
    }
    let (status, _) = send(
        app.admin(
            Method::POST,
            &format!(
                "/sandboxes/{}/resources/payments/pay_none/transition",
                sandbox.id
            ),
        )
        .json(&json!({"to": "failed"})),
    )
    .await;
    assert_eq!(status, 404);
}
