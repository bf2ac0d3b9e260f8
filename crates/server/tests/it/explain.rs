//! Explain: every logged request can tell how the pipeline decided it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    behaviours::shop_project,
    helpers::{Sandbox, TestApp, send, spawn_app},
};

/// The explanation of `request_id`, once the log writer has stored it.
async fn explain(app: &TestApp, sandbox: &Sandbox, request_id: &str) -> Value {
    app.drain().await;
    let (status, body) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/{request_id}/explain", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200, "{request_id} is logged: {body}");
    body
}

fn step<'a>(explanation: &'a Value, stage: &str) -> &'a Value {
    explanation["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .unwrap_or_else(|| panic!("no {stage} step in {explanation:#}"))
}

async fn payments(app: &TestApp) -> Sandbox {
    app.payments_sandbox("spec").await
}

#[tokio::test]
async fn validation_and_auth_failures_are_explained_step_by_step() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let key = format!("Bearer {}", sandbox.api_key);

    let (status, _) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-invalid")
            .json(&json!({"amount": "ten", "currency": "usd",
                          "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})),
    )
    .await;
    assert_eq!(status, 400);
    let explained = explain(&app, &sandbox, "req-invalid").await;
    assert_eq!(explained["operation"], "createPayment");
    assert_eq!(step(&explained, "resolve")["verdict"], "passed");
    assert_eq!(
        step(&explained, "route")["detail"]["operation"],
        "createPayment"
    );
    assert_eq!(step(&explained, "auth")["verdict"], "passed");
    let validate = step(&explained, "validate");
    assert_eq!(validate["verdict"], "failed");
    let violation = &validate["detail"][0];
    assert_eq!(
        (
            violation["location"].as_str(),
            violation["pointer"].as_str(),
            violation["got"].clone()
        ),
        (Some("body"), Some("/amount"), json!("ten")),
        "{explained:#}"
    );
    assert!(
        violation["schema_path"]
            .as_str()
            .unwrap()
            .ends_with("/amount/type"),
        "{violation}"
    );
    assert!(
        explained["verdict"].as_str().unwrap().contains("violation"),
        "{explained}"
    );
    // Nothing after the failure ran.
    assert!(
        explained["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["stage"] != "respond")
    );

    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts"))
            .header("x-request-id", "req-no-key"),
    )
    .await;
    assert_eq!(status, 401);
    let explained = explain(&app, &sandbox, "req-no-key").await;
    let auth = step(&explained, "auth");
    assert_eq!(auth["verdict"], "failed");
    assert!(
        auth["summary"].as_str().unwrap().contains("Authorization"),
        "{auth}"
    );
    assert_eq!(explained["verdict"], auth["summary"]);
    assert_eq!(
        step(&explained, "resolve")["summary"]
            .as_str()
            .map(|s| s.contains("path prefix")),
        Some(true)
    );

    // The same explanation, found by request id alone.
    let (status, anywhere) = send(app.admin(Method::GET, "/requests/req-no-key/explain")).await;
    assert_eq!((status, &anywhere["sandbox_id"]), (200, &json!(sandbox.id)));
    let (status, problem) = send(app.admin(Method::GET, "/requests/req-never/explain")).await;
    assert_eq!(status, 404, "{problem}");
}

#[tokio::test]
async fn a_404_names_the_near_misses_and_the_scenario_and_answer_are_explained() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let key = format!("Bearer {}", sandbox.api_key);
    // Both the base path (/v1) and a typo.
    let root = sandbox.base_url.trim_end_matches("/v1");
    let (status, problem) = send(
        app.client
            .post(format!("{root}/paymnts"))
            .header("authorization", &key)
            .header("x-request-id", "req-typo"),
    )
    .await;
    assert_eq!(status, 404);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.ends_with("(operation paths start with /v1)"),
        "{detail}"
    );
    let best = &problem["near_misses"][0];
    assert_eq!(
        (best["method"].as_str(), best["path"].as_str()),
        (Some("POST"), Some("/v1/payments")),
        "{problem:#}"
    );
    let differences = best["differences"].to_string();
    assert!(
        differences.contains("/v1") && differences.contains("paymnts"),
        "{differences}"
    );
    let explained = explain(&app, &sandbox, "req-typo").await;
    let route = step(&explained, "route");
    assert_eq!(route["verdict"], "failed");
    assert_eq!(
        route["detail"]["near_misses"][0]["operation"],
        "createPayment"
    );

    // Under the base path, the base is not blamed.
    let (status, problem) = send(
        app.client
            .post(sandbox.url("/paymnts"))
            .header("authorization", &key),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        problem["detail"], "no operation matches POST /v1/paymnts",
        "{problem:#}"
    );

    // A wrong method: the operations of that path.
    let (status, _) = send(
        app.client
            .delete(sandbox.url("/accounts"))
            .header("authorization", &key)
            .header("x-request-id", "req-method"),
    )
    .await;
    assert_eq!(status, 405);
    let explained = explain(&app, &sandbox, "req-method").await;
    assert_eq!(
        step(&explained, "route")["detail"]["near_misses"][0]["operation"],
        "listAccounts"
    );

    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts/acct_demo_frozen"))
            .header("authorization", &key)
            .header("x-request-id", "req-frozen"),
    )
    .await;
    assert_eq!(status, 403);
    let explained = explain(&app, &sandbox, "req-frozen").await;
    let scenario = step(&explained, "scenario");
    assert_eq!(scenario["verdict"], "applied");
    assert!(
        scenario["summary"]
            .as_str()
            .unwrap()
            .contains("account_frozen"),
        "{scenario}"
    );
    assert_eq!(step(&explained, "respond")["verdict"], "passed");
    let stages: Vec<&Value> = explained["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["stage"])
        .collect();
    assert!(
        !stages.contains(&&json!("chaos")),
        "no chaos asked: {stages:?}"
    );

    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts/acct_demo_gold"))
            .header("authorization", &key)
            .header("x-chaos", "latency=1ms")
            .header("x-request-id", "req-chaos"),
    )
    .await;
    assert_eq!(status, 200);
    let explained = explain(&app, &sandbox, "req-chaos").await;
    let chaos = step(&explained, "chaos");
    assert_eq!(
        (&chaos["verdict"], &chaos["summary"]),
        (&json!("applied"), &json!("X-Chaos: added 1 ms of latency"))
    );
}

#[tokio::test]
async fn a_script_error_is_explained_with_its_line_and_bad_redaction_rules_are_refused() {
    let app = spawn_app().await;
    let (status, body) = send(
        app.admin(Method::POST, "/projects")
            .json(&shop_project("shop")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sandbox = app.create_sandbox(json!({"project": "shop"})).await;
    let (status, body) = send(
        app.admin(Method::PUT, "/projects/shop/behaviours/greet")
            .body("let word = \"hi\";\nthrow \"no greetings today\";\n"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        app.client
            .get(sandbox.url("/greet/ada"))
            .header("x-request-id", "req-script"),
    )
    .await;
    assert_eq!(status, 500);
    let explained = explain(&app, &sandbox, "req-script").await;
    let behaviour = step(&explained, "behaviour");
    assert_eq!(behaviour["verdict"], "failed");
    assert_eq!(
        (
            behaviour["detail"]["script"].as_str(),
            behaviour["detail"]["line"].as_u64()
        ),
        (Some("behaviours/greet.rhai"), Some(2)),
        "{behaviour}"
    );
    assert!(
        behaviour["summary"]
            .as_str()
            .unwrap()
            .contains("no greetings today")
    );
    // The log entry carries it too.
    let (status, logged) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-script", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            logged["script_error"]["script"].as_str(),
            logged["script_error"]["line"].as_u64()
        ),
        (Some("behaviours/greet.rhai"), Some(2)),
        "{logged}"
    );
    assert_eq!(logged["validation_errors"], json!([]));

    let (status, problem) = send(
        app.admin(Method::PUT, "/projects/shop/settings")
            .json(&json!({"redact": ["card.number", "$[?"]})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["location"], "project.yaml");
    assert_eq!(problem["errors"][0]["pointer"], "/redact/1");
}
