//! Rate limits mirrored from production: a bucket per key and one per
//! sandbox (GCRA), answered in the spec's 429 shape with `Retry-After` and
//! `RateLimit-*` headers; the admin token passes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, send, spawn_app};

const API: &str = r##"
openapi: 3.0.3
info: {title: Limited, version: "1"}
servers: [{url: /v1}]
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [type, message]
          properties:
            type: {type: string, enum: [rate_limit_error, invalid_request_error]}
            message: {type: string}
paths:
  /things:
    get:
      operationId: listThings
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
        "429": {description: slow down, content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
"##;

#[tokio::test]
async fn keys_and_sandboxes_are_held_to_the_projects_rate_limits() {
    let app = spawn_app().await;
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&json!({
        "name": "limited",
        "spec": API,
        "settings": {"rate_limits": {
            "per_key": {"requests_per_second": 1, "burst": 2},
            "per_sandbox": {"requests_per_second": 1, "burst": 5}
        }}
    })))
    .await;
    assert_eq!(status, 201, "{body}");
    let sandbox = app.create_sandbox(json!({"project": "limited"})).await;
    let keys = format!("/sandboxes/{}/keys", sandbox.id);
    let (_, second) = send(app.admin(Method::POST, &keys).json(&json!({}))).await;
    let (_, third) = send(app.admin(Method::POST, &keys).json(&json!({}))).await;
    let second = second["key"].as_str().unwrap().to_owned();
    let third = third["key"].as_str().unwrap().to_owned();
    let get = |key: &str| {
        app.client
            .get(sandbox.url("/things"))
            .bearer_auth(key)
            .send()
    };

    // Each key has a burst of 2; the sandbox as a whole, 5. A request its
    // key may not make takes nothing from the sandbox's bucket.
    let mut statuses = Vec::new();
    for key in [
        &sandbox.api_key,
        &sandbox.api_key,
        &sandbox.api_key,
        &second,
        &second,
        &second,
        &third,
    ] {
        statuses.push(get(key).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);

    // The sixth request the sandbox takes is one too many.
    let response = get(&third).await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after = crate::helpers::retry_after(&response);
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["ratelimit-limit"], "5");
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    assert_eq!(response.headers()["ratelimit-policy"], "1;w=1;burst=5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["type"], "rate_limit_error",
        "the spec's 429 shape: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per_sandbox"),
        "{body}"
    );

    // The admin token passes; the log keeps it redacted.
    let response = app
        .client
        .get(sandbox.url("/things"))
        .bearer_auth(&third)
        .header("x-sandbox-admin-token", ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.drain().await;
    let (_, logs) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs?limit=1", sandbox.id),
    ))
    .await;
    assert!(!logs.to_string().contains(ADMIN_TOKEN), "{logs}");

    // A second later the buckets have refilled.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(get(&sandbox.api_key).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_rate_limit_that_cannot_be_used_is_refused_at_import() {
    let app = spawn_app().await;
    let (status, problem) = send(app.admin(Method::POST, "/projects").json(&json!({
        "name": "broken",
        "spec": API,
        "settings": {"rate_limits": {"per_key": {"requests_per_second": 0}}}
    })))
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("rate_limits.per_key"),
        "{problem}"
    );
}
