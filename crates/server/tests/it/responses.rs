use serde_json::{Value, json};

use crate::helpers::{PETSTORE, json_of, send, spawn_app};

#[tokio::test]
async fn synthesized_answers_follow_the_schema() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let response = app
        .client
        .get(sandbox.url("/pets/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (_, pet) = json_of(response).await;
    assert!(pet["id"].as_i64().unwrap() >= 1);
    assert!(["cat", "dog", "bird"].contains(&pet["kind"].as_str().unwrap()));
    assert!(
        pet["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n.len() <= 40)
    );
    // writeOnly never leaves the server.
    assert!(pet["owner"].get("secret").is_none(), "{pet}");
}

#[tokio::test]
async fn prefer_selects_the_status_and_the_example() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let new_pet = json!({"name": "Rex", "kind": "dog"});
    let (status, body) = send(app.client.post(sandbox.url("/pets")).json(&new_pet)).await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"id": 7, "name": "Rex", "kind": "dog"}),
        "the first example is the default"
    );
    let (status, body) = send(
        app.client
            .post(sandbox.url("/pets"))
            .header("prefer", "example=tweety")
            .json(&new_pet),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["name"], "Tweety");
    let (status, body) = send(
        app.client
            .post(sandbox.url("/pets"))
            .header("prefer", "example=nope")
            .json(&new_pet),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("rex, tweety"),
        "{body}"
    );
    let (status, body) = send(
        app.client
            .get(sandbox.url("/pets/1"))
            .header("prefer", "code=404"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["code"].as_i64().is_some() && body["message"].is_string(),
        "{body}"
    );
    let (status, body) = send(
        app.client
            .get(sandbox.url("/pets/1"))
            .header("prefer", "code=418"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("200, 404"),
        "{body}"
    );
    let (status, _) = send(
        app.client
            .get(sandbox.url("/pets/1"))
            .header("prefer", "code=abc"),
    )
    .await;
    assert_eq!(status, 400);
    let response = app
        .client
        .delete(sandbox.url("/pets/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.content_length(), Some(0));
}

#[tokio::test]
async fn accept_negotiates_the_media_type() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let response = app
        .client
        .get(sandbox.url("/pets"))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/xml");
    assert!(response.text().await.unwrap().starts_with("<?xml"));
    let response = app
        .client
        .get(sandbox.url("/pets"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    // The operation documents no 406: the type it answers without `Accept`.
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn declared_response_headers_are_synthesized() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let response = app.client.get(sandbox.url("/pets")).send().await.unwrap();
    let count: i64 = response.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 0);
}

#[tokio::test]
async fn same_seed_same_bytes_different_seed_different_data() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    let a = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "seed": "alpha"}))
        .await;
    let b = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "seed": "alpha"}))
        .await;
    let c = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "seed": "beta"}))
        .await;
    let body = |url: String| {
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    let first = body(a.url("/pets/5")).await;
    assert_eq!(
        first,
        body(a.url("/pets/5")).await,
        "a sandbox repeats itself"
    );
    assert_eq!(
        first,
        body(b.url("/pets/5")).await,
        "same seed, same answer"
    );
    assert_ne!(
        first,
        body(c.url("/pets/5")).await,
        "another seed, other data"
    );
    assert_ne!(
        first,
        body(a.url("/pets/6")).await,
        "path parameters seed the data"
    );
    assert_eq!(
        body(a.url("/pets?limit=3")).await,
        body(a.url("/pets?limit=4")).await
    );
    // The default seed is the sandbox id: sandboxes differ from one another.
    let d = app
        .create_sandbox(json!({"project": "pets", "auth": "none"}))
        .await;
    let e = app
        .create_sandbox(json!({"project": "pets", "auth": "none"}))
        .await;
    assert_eq!(d.body["seed"], Value::String(d.id.clone()));
    assert_ne!(body(d.url("/pets/5")).await, body(e.url("/pets/5")).await);
}

#[tokio::test]
async fn swagger2_specs_are_converted_and_served() {
    let app = spawn_app().await;
    let body = app
        .import_ok("legacy", include_str!("../fixtures/swagger2.json"))
        .await;
    assert_eq!(body["base_path"], "/api");
    let sandbox = app.create_sandbox(json!({"project": "legacy"})).await;
    let (status, _) = send(
        app.client
            .post(sandbox.url("/items"))
            .header("x-key", &sandbox.api_key)
            .json(&json!({"id": 3, "name": "x", "note": null})),
    )
    .await;
    assert_eq!(
        status, 201,
        "stateful: POST /items creates what GET /items/{{id}} reads"
    );
    let response = app
        .client
        .get(sandbox.url("/items/3?fields=a,b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-rate"));
    let (_, item) = json_of(response).await;
    assert!(item["id"].is_i64() && item["name"].is_string(), "{item}");
    let (status, _) = send(app.client.get(sandbox.url("/items/abc"))).await;
    assert_eq!(status, 400);
    let (status, body) = send(
        app.client
            .post(sandbox.url("/upload"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("count=3"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["location"], "body");
    let response = app
        .client
        .post(sandbox.url("/upload"))
        .form(&[("title", "t"), ("count", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn write_only_members_a_behaviour_stored_are_never_sent_back() {
    let app = spawn_app().await;
    let sandbox = app.payments_sandbox("none").await;
    // The demo's script stores the payment as sent, CVC (`writeOnly`) included.
    let response = app
        .client
        .post(sandbox.url("/payments"))
        .json(
            &json!({"amount": 2000, "currency": "usd", "payment_method": {
            "type": "card", "number": "4242424242424242", "exp_month": 12,
            "exp_year": 2030, "cvc": "123"}}),
        )
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (status, created) = json_of(response).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["payment_method"]["number"], "4242424242424242");
    assert_eq!(created["payment_method"].get("cvc"), None, "{created}");
    let id = created["id"].as_str().unwrap();
    for path in [format!("/payments/{id}"), "/payments".to_owned()] {
        let (status, read) = send(app.client.get(sandbox.url(&path))).await;
        assert_eq!(status, 200, "{read}");
        assert!(!read.to_string().contains("cvc"), "{path}: {read}");
    }
}

#[tokio::test]
async fn no_content_answers_carry_no_body_and_no_content_type() {
    let app = spawn_app().await;
    // Real-world specs declare a JSON body on a 204, or a media type
    // without a schema.
    let spec = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
      "paths": {
        "/things/{id}": {"delete": {"x-sandbox-resource": false, "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
          "responses": {"204": {"description": "gone", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/ping": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {}}}}}}}}"#;
    app.import_ok("nocontent", spec).await;
    let sandbox = app
        .create_sandbox(json!({"project": "nocontent", "auth": "none"}))
        .await;
    for (method, path, status) in [
        (reqwest::Method::DELETE, "/things/1", 204),
        (reqwest::Method::GET, "/ping", 200),
    ] {
        let response = app
            .client
            .request(method, sandbox.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            response.headers().get("content-type").is_none(),
            "{path}: {:?}",
            response.headers()
        );
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
}

/// RFC 9457 problems: the `type` URI a sandbox fills in leads to its own
/// page about the failure, public and inside the sandbox.
const PROBLEMS: &str = r#"
openapi: 3.0.3
info: { title: Problems, version: "1" }
servers: [{ url: "https://api.example.org/v2" }]
paths:
  /orders/{id}:
    get:
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer } }
      responses:
        "200": { description: ok, content: { application/json: { schema: { type: object } } } }
        "400":
          description: bad
          content:
            application/problem+json:
              schema:
                type: object
                required: [type, title, status]
                properties:
                  type: { type: string, format: uri }
                  title: { type: string }
                  status: { type: integer }
                  detail: { type: string }
"#;

#[tokio::test]
async fn error_links_lead_to_the_sandboxs_page_about_the_failure() {
    let app = spawn_app().await;
    let sandbox = app.open_sandbox("problems", PROBLEMS).await;
    let (status, problem) = send(app.client.get(sandbox.url("/orders/x"))).await;
    assert_eq!(status, 400, "{problem}");
    let root = sandbox.base_url.strip_suffix("/v2").unwrap();
    let link = format!("{root}/__sbx/errors/invalid_request");
    assert_eq!(problem["type"], json!(link), "{problem}");
    assert_eq!(problem["title"], json!("Invalid request"));

    // No token needed: the link works for whoever got the error.
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.headers().contains_key("x-sandbox-id"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<h1>Invalid request</h1>") && html.contains("project.yaml"),
        "{html}"
    );

    let (status, described) =
        send(app.client.get(&link).header("accept", "application/json")).await;
    assert_eq!(status, 200);
    assert_eq!(described["name"], json!("invalid_request"));
    assert_eq!(described["statuses"], json!([400, 422]));

    let (status, index) = send(
        app.client
            .get(format!("{root}/__sbx/errors"))
            .header("accept", "text/html;q=0.5, application/json"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(index["items"].as_array().map(Vec::len), Some(10), "{index}");

    let (status, unknown) = send(app.client.get(format!("{root}/__sbx/errors/bogus"))).await;
    assert_eq!(status, 404);
    assert!(
        unknown["detail"].as_str().unwrap().contains("not_found"),
        "{unknown}"
    );
    let refused = app.client.post(&link).send().await.unwrap();
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()["allow"], "GET, HEAD");
}
