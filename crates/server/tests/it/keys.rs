//! A sandbox's API keys: secret, restricted and publishable, each calling
//! what it may; rolled with a grace period; revoked at once; never stored
//! or listed in clear.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Sandbox, TestApp, send, spawn_app};

const SHOP: &str = r#"
openapi: 3.0.3
info: {title: Shop, version: "1"}
servers: [{url: /v1}]
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
paths:
  /things:
    get:
      operationId: listThings
      responses: {"200": {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}}
    post:
      operationId: createThing
      responses: {"201": {description: made, content: {application/json: {schema: {type: object}}}}}
  /tokens:
    post:
      operationId: createToken
      x-sandbox-publishable: true
      responses: {"200": {description: a token, content: {application/json: {schema: {type: object}}}}}
"#;

async fn shop(app: &TestApp) -> Sandbox {
    app.import_ok("shop", SHOP).await;
    app.create_sandbox(json!({"project": "shop"})).await
}

async fn make_key(app: &TestApp, sandbox: &Sandbox, body: Value) -> (u16, Value) {
    send(
        app.admin(Method::POST, &format!("/sandboxes/{}/keys", sandbox.id))
            .json(&body),
    )
    .await
}

/// The status of `method path` with `key` as the bearer token.
async fn call(
    app: &TestApp,
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    key: &str,
) -> (u16, Value) {
    send(
        app.client
            .request(method, sandbox.url(path))
            .bearer_auth(key),
    )
    .await
}

#[tokio::test]
async fn each_kind_of_key_calls_what_it_may() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let (status, read_only) = make_key(
        &app,
        &sandbox,
        json!({"kind": "restricted", "name": "dashboard", "permissions": {"read_only": true}}),
    )
    .await;
    assert_eq!(status, 201, "{read_only}");
    let read_only = read_only["key"].as_str().unwrap().to_owned();
    assert!(read_only.starts_with("rk_test_"));
    let (_, one_operation) = make_key(
        &app,
        &sandbox,
        json!({"kind": "restricted", "permissions": {"operations": ["createThing"]}}),
    )
    .await;
    let one_operation = one_operation["key"].as_str().unwrap().to_owned();
    let (_, publishable) = make_key(&app, &sandbox, json!({"kind": "publishable"})).await;
    let publishable = publishable["key"].as_str().unwrap().to_owned();
    assert!(publishable.starts_with("pk_test_"));

    let secret = sandbox.api_key.clone();
    let expectations = [
        (&secret, Method::GET, "/things", 200),
        (&secret, Method::POST, "/things", 201),
        (&secret, Method::POST, "/tokens", 200),
        (&read_only, Method::GET, "/things", 200),
        (&read_only, Method::POST, "/things", 403),
        (&one_operation, Method::POST, "/things", 201),
        (&one_operation, Method::GET, "/things", 403),
        (&publishable, Method::POST, "/tokens", 200),
        (&publishable, Method::GET, "/things", 403),
    ];
    for (key, method, path, expected) in expectations {
        let (status, body) = call(&app, &sandbox, method.clone(), path, key).await;
        assert_eq!(status, expected, "{} {method} {path}: {body}", &key[..8]);
        if expected == 403 {
            assert_eq!(body["type"], "urn:sbx:problem:forbidden", "{body}");
        }
    }
    let (_, body) = call(&app, &sandbox, Method::POST, "/things", &read_only).await;
    assert!(
        body["detail"].as_str().unwrap().contains("may only read"),
        "{body}"
    );
    let (_, body) = call(&app, &sandbox, Method::GET, "/things", &publishable).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("x-sandbox-publishable"),
        "{body}"
    );

    // A key addresses its sandbox too (no /sbx/{id} in the URL).
    let response = app
        .client
        .get(format!("{}/v1/things", app.url))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sandbox-id"], sandbox.id.as_str());

    // Listed by redacted form, with their last use; the secrets nowhere.
    let (status, listed) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/keys", sandbox.id))).await;
    assert_eq!(status, 200);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["kind"], "secret");
    assert_eq!(items[1]["name"], "dashboard");
    assert_eq!(items[1]["permissions"], json!({"read_only": true}));
    assert!(items.iter().all(|k| k.get("key").is_none()));
    assert!(items[1]["last_used_at"].is_string(), "{}", items[1]);
    for key in [&secret, &read_only, &one_operation, &publishable] {
        assert!(!listed.to_string().contains(key.as_str()));
        assert!(items.iter().any(|k| {
            k["redacted"]
                .as_str()
                .unwrap()
                .ends_with(&key[key.len() - 4..])
        }));
    }
    app.drain().await;
    for key in [&read_only, &one_operation, &publishable] {
        for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "a key stored in clear"
            );
        }
    }
}

#[tokio::test]
async fn keys_are_checked_when_made() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    for (body, pointer) in [
        (json!({"kind": "root"}), "/kind"),
        (json!({"kind": "restricted"}), "/permissions"),
        (
            json!({"kind": "restricted", "permissions": {"operations": []}}),
            "/permissions/operations",
        ),
        (
            json!({"kind": "restricted", "permissions": {"operations": ["deleteEverything"]}}),
            "/permissions/operations",
        ),
        (
            json!({"kind": "secret", "permissions": {"read_only": true}}),
            "/permissions",
        ),
        (json!({"name": ""}), "/name"),
    ] {
        let (status, problem) = make_key(&app, &sandbox, body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    for _ in 1..20 {
        assert_eq!(make_key(&app, &sandbox, json!({})).await.0, 201);
    }
    let (status, problem) = make_key(&app, &sandbox, json!({})).await;
    assert_eq!(status, 409, "20 keys at most: {problem}");
}

#[tokio::test]
async fn a_rolled_key_works_until_its_grace_ends_and_a_revoked_one_stops_at_once() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let keys = format!("/sandboxes/{}/keys", sandbox.id);
    let (_, listed) = send(app.admin(Method::GET, &keys)).await;
    let first = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let old = sandbox.api_key.clone();

    let (status, rolled) = send(
        app.admin(Method::POST, &format!("{keys}/{first}/roll"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{rolled}");
    let new = rolled["key"]["key"].as_str().unwrap().to_owned();
    assert!(new.starts_with("sk_test_") && new != old);
    let grace = crate::helpers::millis(rolled["old_key_expires_at"].as_str().unwrap())
        - crate::helpers::millis(rolled["key"]["created_at"].as_str().unwrap());
    assert!(
        (86_000_000..=86_500_000).contains(&grace),
        "a day of grace: {grace}"
    );
    for key in [&old, &new] {
        assert_eq!(
            call(&app, &sandbox, Method::GET, "/things", key).await.0,
            200
        );
    }

    // Rolled again with no grace: the key it replaced stops now.
    let second = rolled["key"]["id"].as_str().unwrap().to_owned();
    let (status, again) = send(
        app.admin(Method::POST, &format!("{keys}/{second}/roll"))
            .json(&json!({"expires_in_seconds": 0})),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    let newest = again["key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, &sandbox, Method::GET, "/things", &new).await.0,
        401
    );
    assert_eq!(
        call(&app, &sandbox, Method::GET, "/things", &newest)
            .await
            .0,
        200
    );
    let (status, _) = send(
        app.admin(Method::POST, &format!("{keys}/{second}/roll"))
            .json(&json!({"expires_in_seconds": 0})),
    )
    .await;
    assert_eq!(status, 404, "an expired key cannot be rolled");
    let (status, _) = send(
        app.admin(Method::POST, &format!("{keys}/{first}/roll"))
            .json(&json!({"expires_in_seconds": 999_999_999})),
    )
    .await;
    assert_eq!(status, 422);

    // Revoked: stops at once, also the old key still in its grace.
    let (status, _) = send(app.admin(Method::DELETE, &format!("{keys}/{first}"))).await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&app, &sandbox, Method::GET, "/things", &old).await.0,
        401
    );
    let response = app
        .client
        .get(format!("{}/v1/things", app.url))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "a revoked key addresses nothing");
    let (status, _) = send(app.admin(Method::DELETE, &format!("{keys}/{first}"))).await;
    assert_eq!(status, 404);
}
