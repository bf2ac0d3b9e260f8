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

#[tokio::test]
async fn a_sandbox_can_have_its_own_rate_limits_and_go_back_to_its_projects() {
    let app = spawn_app().await;
    app.import_ok("open", API).await;
    let own = json!({"per_sandbox": {"requests_per_second": 1, "burst": 1}});
    let limited = app
        .create_sandbox(json!({"project": "open", "rate_limits": own}))
        .await;
    assert_eq!(
        limited.body["rate_limits"]["per_sandbox"],
        own["per_sandbox"]
    );
    let unlimited = app.create_sandbox(json!({"project": "open"})).await;
    let statuses = |sandbox: &crate::helpers::Sandbox| {
        let (client, url, key) = (
            app.client.clone(),
            sandbox.url("/things"),
            sandbox.api_key.clone(),
        );
        async move {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let response = client.get(&url).bearer_auth(&key).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    };
    assert_eq!(statuses(&limited).await, [200, 429, 429]);
    assert_eq!(
        statuses(&unlimited).await,
        [200, 200, 200],
        "the project has none"
    );
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{}", unlimited.id))).await;
    assert_eq!(shown["requests_today"], 3, "usage per sandbox: {shown}");

    // Back to the project's limits (none), and limits set on a live sandbox.
    let route =
        |sandbox: &crate::helpers::Sandbox| format!("/sandboxes/{}/rate-limits", sandbox.id);
    let (status, view) = send(
        app.admin(Method::PUT, &route(&limited))
            .json(&json!({"rate_limits": null})),
    )
    .await;
    assert_eq!((status, &view["rate_limits"]), (200, &Value::Null));
    assert_eq!(statuses(&limited).await, [200, 200, 200]);
    let (status, _) = send(
        app.admin(Method::PUT, &route(&unlimited))
            .json(&json!({"rate_limits": own})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&unlimited).await, [200, 429, 429]);

    // A rate that cannot be used is refused, naming it; nothing changes.
    let (status, problem) = send(
        app.admin(Method::PUT, &route(&limited))
            .json(&json!({"rate_limits": {"per_key": {"requests_per_second": 0}}})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/rate_limits/per_key");
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{}", limited.id))).await;
    assert_eq!(shown["rate_limits"], Value::Null);
}
