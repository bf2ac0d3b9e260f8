use std::path::Path;

use sbx_server::AuthMode;
use serde_json::json;

use crate::helpers::{PETSTORE, mock, send, status_of};

#[tokio::test]
async fn mock_serves_one_spec_at_the_root() {
    let server = mock(PETSTORE.to_owned(), AuthMode::None).await;
    let url = format!("http://{}", server.local_addr);
    let client = reqwest::Client::new();
    let first = client.get(format!("{url}/v1/pets/4")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-sandbox-id"], "sbx-mock");
    let first = first.bytes().await.unwrap();
    let again = client
        .get(format!("{url}/v1/pets/4"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(first, again);
    let (status, _) = send(client.get(format!("{url}/v1/pets/x"))).await;
    assert_eq!(status, 400);
    let (status, _) = send(
        client
            .post(format!("{url}/v1/pets"))
            .header("prefer", "code=422")
            .json(&json!({"name": "a", "kind": "cat"})),
    )
    .await;
    assert_eq!(status, 422);
    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn mock_with_auth_spec_enforces_the_schemes() {
    let server = mock(PETSTORE.to_owned(), AuthMode::Spec).await;
    let url = format!("http://{}/v1/pets/1", server.local_addr);
    let client = reqwest::Client::new();
    assert_eq!(status_of(client.get(&url)).await, 401);
    assert_eq!(
        status_of(client.get(&url).header("x-api-key", "sk_test_anything")).await,
        200
    );
}

#[tokio::test]
async fn multi_file_specs_are_bundled_from_disk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multifile/openapi.yaml");
    let document = sbx_spec::bundle::bundle_file(&root, &sbx_spec::Limits::default()).unwrap();
    let server = mock(document.to_string(), AuthMode::None).await;
    let client = reqwest::Client::new();
    let (status, order) =
        send(client.get(format!("http://{}/orders/ord_1234", server.local_addr))).await;
    assert_eq!(status, 200, "{order}");
    assert!(
        ["usd", "eur"].contains(&order["total"]["currency"].as_str().unwrap()),
        "{order}"
    );
    assert!(order["lines"][0]["price"]["amount"].is_i64(), "{order}");
    let (status, _) = send(client.get(format!("http://{}/orders/nope", server.local_addr))).await;
    assert_eq!(status, 400, "the bundled parameter's pattern applies");
}

/// SDKs send an `Idempotency-Key` on every POST: the mock replays the first
/// answer to a retry, refuses the key with another request, and keeps keys
/// apart from each other — the semantics of `sbx serve`, in memory.
#[tokio::test]
async fn mock_keeps_idempotency_keys() {
    let server = mock(PETSTORE.to_owned(), AuthMode::None).await;
    let url = format!("http://{}/v1/pets", server.local_addr);
    let client = reqwest::Client::new();
    let create = |key: &str, name: &str| {
        client
            .post(&url)
            .header("idempotency-key", key)
            .json(&json!({"name": name, "kind": "cat"}))
            .send()
    };
    let first = create("k-1", "Tom").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.text().await.unwrap();
    let retry = create("k-1", "Tom").await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), first);
    let other = create("k-2", "Tom").await.unwrap();
    assert!(other.headers().get("idempotent-replayed").is_none());
    let misuse = create("k-1", "Felix").await.unwrap();
    assert_eq!(misuse.status(), 400);
    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}

/// A declared `OPTIONS` is the spec's; a CORS preflight is still answered.
#[tokio::test]
async fn options_reaches_the_spec_and_preflights_still_pass() {
    let spec = r#"
openapi: 3.0.3
info: { title: Uploads, version: "1" }
paths:
  /files/content:
    options:
      responses:
        "200":
          description: the upload would be accepted
          content:
            application/json:
              schema: { type: object, required: [upload_url], properties: { upload_url: { type: string } } }
    post:
      responses: { "201": { description: uploaded } }
  /files:
    get:
      responses: { "200": { description: the files } }
"#;
    let server = mock(spec.to_owned(), AuthMode::None).await;
    let url = format!("http://{}", server.local_addr);
    let client = reqwest::Client::new();
    let options = |path: &str| client.request(reqwest::Method::OPTIONS, format!("{url}{path}"));
    let (status, body) = send(options("/files/content")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["upload_url"].is_string(), "{body}");
    // Undeclared: the methods the path takes.
    let undeclared = options("/files").send().await.unwrap();
    assert_eq!(undeclared.status(), 204);
    assert_eq!(undeclared.headers()["allow"], "GET, HEAD");
    let preflight = options("/files/content")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}
