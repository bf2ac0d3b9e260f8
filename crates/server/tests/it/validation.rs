use serde_json::{Value, json};

use crate::helpers::{json_of, send, spawn_app};

fn locations(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap().to_owned(),
                e["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_parameter_location_is_validated() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    // path
    let (status, body) = send(app.client.get(sandbox.url("/pets/abc"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:sbx:problem:validation");
    assert_eq!(locations(&body), [("path".to_owned(), "/petId".to_owned())]);
    let (status, _) = send(app.client.get(sandbox.url("/pets/0"))).await;
    assert_eq!(status, 400, "minimum applies");
    // query: bounds, enum inside a non-exploded array, both reported
    let (status, body) = send(app.client.get(sandbox.url("/pets?limit=500&tags=cat,fish"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        locations(&body),
        [
            ("query".to_owned(), "/limit".to_owned()),
            ("query".to_owned(), "/tags/1".to_owned())
        ]
    );
    let (status, _) = send(app.client.get(sandbox.url("/pets?limit=5&tags=cat,dog"))).await;
    assert_eq!(status, 200);
    // header format
    let (status, body) = send(
        app.client
            .get(sandbox.url("/pets"))
            .header("x-trace", "not-a-uuid"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        locations(&body),
        [("header".to_owned(), "/X-Trace".to_owned())]
    );
    // required header and query, pattern
    let (status, body) = send(app.client.get(sandbox.url("/search?q=A1"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        locations(&body),
        [
            ("query".to_owned(), "/q".to_owned()),
            ("header".to_owned(), "/X-Request-Tier".to_owned())
        ]
    );
    // cookie
    let (status, body) = send(
        app.client
            .get(sandbox.url("/session"))
            .header("cookie", "theme=blue"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        locations(&body),
        [("cookie".to_owned(), "/theme".to_owned())]
    );
    let (status, _) = send(
        app.client
            .get(sandbox.url("/session"))
            .header("cookie", "a=b; theme=dark"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bodies_are_validated_and_the_declared_error_is_used() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    // The operation declares 422: its shape is used, the reason travels in a header and the message field.
    let response = app
        .client
        .post(sandbox.url("/pets"))
        .json(&json!({"name": "", "kind": "fish", "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let reason = response.headers()["x-sandbox-error"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("(and 2 more)"), "{reason}");
    let (_, body) = json_of(response).await;
    assert_eq!(body["message"], reason.as_str());
    assert!((400..=599).contains(&body["code"].as_i64().unwrap()));
    // readOnly properties may be omitted from requests even when required.
    let (status, _) = send(
        app.client
            .post(sandbox.url("/pets"))
            .json(&json!({"name": "Rex", "kind": "dog", "birthday": null})),
    )
    .await;
    assert_eq!(status, 201);
    // Not JSON at all.
    let response = app
        .client
        .post(sandbox.url("/pets"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response.headers()["x-sandbox-error"]
            .to_str()
            .unwrap()
            .contains("not valid JSON")
    );
    // Missing body.
    let response = app
        .client
        .post(sandbox.url("/pets"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response.headers()["x-sandbox-error"]
            .to_str()
            .unwrap()
            .contains("required")
    );
}

#[tokio::test]
async fn problem_details_list_body_violations_when_no_error_is_declared() {
    let app = spawn_app().await;
    let spec = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/things": {"post": {
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}, "b": {"type": ["string", "null"], "format": "date-time"}}}}}},
        "responses": {"204": {"description": "ok"}}}}}}"#;
    app.import_ok("things", spec).await;
    let sandbox = app.create_sandbox(json!({"project": "things"})).await;
    let (status, body) = send(
        app.client
            .post(sandbox.url("/things"))
            .json(&json!({"a": "x", "b": "yesterday"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(
        locations(&body),
        [
            ("body".to_owned(), "/a".to_owned()),
            ("body".to_owned(), "/b".to_owned())
        ]
    );
    let (status, _) = send(
        app.client
            .post(sandbox.url("/things"))
            .json(&json!({"a": 1, "b": null})),
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn wrong_media_types_and_oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_with(dir, |c| c.limits.max_body_bytes = 1024).await;
    let sandbox = app.petstore("none").await;
    let (status, body) = send(
        app.client
            .post(sandbox.url("/pets"))
            .header("content-type", "text/plain")
            .body("name=x"),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(body["supported"], json!(["application/json"]));
    let big = json!({"name": "x".repeat(4096), "kind": "dog"});
    let (status, body) = send(app.client.post(sandbox.url("/pets")).json(&big)).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = send(
        app.client
            .get(sandbox.url("/pets"))
            .header("x-huge", "h".repeat(40 * 1024)),
    )
    .await;
    assert_eq!(status, 431);
}

#[tokio::test]
async fn errors_take_the_shape_of_a_declared_range_or_default() {
    let app = spawn_app().await;
    let error = json!({"type": "object", "required": ["ok", "error"], "properties": {
        "ok": {"type": "boolean"}, "error": {"type": "string"}}});
    let limit = json!([{"name": "limit", "in": "query", "schema": {"type": "integer"}}]);
    let ok = json!({"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}});
    let failed =
        json!({"description": "failed", "content": {"application/json": {"schema": error}}});
    let spec = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {
        // Slack's way: a success, and `default` for every error.
        "/slack": {"get": {"parameters": limit, "responses": {"200": ok, "default": failed}}},
        "/range": {"get": {"parameters": limit, "responses": {"200": ok, "4XX": failed}}},
        // Older specs' way: `default` is the success.
        "/old": {"get": {"parameters": limit, "responses": {"default": ok}}}}});
    app.import_ok("shapes", &spec.to_string()).await;
    let sandbox = app
        .create_sandbox(json!({"project": "shapes", "auth": "none"}))
        .await;
    for (path, declared) in [("/slack", true), ("/range", true), ("/old", false)] {
        let response = app
            .client
            .get(sandbox.url(&format!("{path}?limit=many")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            response.headers().get("x-sandbox-error").is_some() || !declared,
            "{path}"
        );
        let (_, body) = json_of(response).await;
        if declared {
            assert_eq!(content_type, "application/json", "{path}");
            assert!(
                body["ok"].is_boolean() && body["error"].is_string(),
                "{path}: {body}"
            );
        } else {
            assert_eq!(content_type, "application/problem+json", "{path}");
            assert_eq!(body["type"], "urn:sbx:problem:validation", "{path}: {body}");
        }
    }
}
