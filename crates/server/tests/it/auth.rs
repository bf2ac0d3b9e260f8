use base64::Engine;

use crate::helpers::{json_of, spawn_app, status_of};

#[tokio::test]
async fn each_security_scheme_accepts_the_sandbox_key() {
    let app = spawn_app().await;
    let sandbox = app.petstore("spec").await;
    let key = sandbox.api_key.as_str();
    let get = |path: &str| app.client.get(sandbox.url(path));
    // apiKey in a header (the global requirement)
    assert_eq!(
        status_of(get("/pets/1").header("x-api-key", key)).await,
        200
    );
    // http bearer
    assert_eq!(status_of(get("/pets/mine").bearer_auth(key)).await, 200);
    // http basic, key as user name
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let response = app
        .client
        .delete(sandbox.url("/pets/1"))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // apiKey in a cookie
    let response = get("/session")
        .header("cookie", format!("theme=dark; sid={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // apiKey in the query, or anonymous (`- {}`)
    assert_eq!(
        get(&format!("/search?q=cats&api_key={key}"))
            .header("x-request-tier", "free")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        status_of(get("/search?q=cats").header("x-request-tier", "free")).await,
        200
    );
}

#[tokio::test]
async fn missing_and_wrong_credentials_answer_401() {
    let app = spawn_app().await;
    let sandbox = app.petstore("spec").await;
    let response = app.client.get(sandbox.url("/pets/1")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let (_, body) = json_of(response).await;
    assert_eq!(body["type"], "urn:sbx:problem:unauthorized");
    assert!(
        body["detail"].as_str().unwrap().contains("X-API-Key"),
        "{body}"
    );
    let response = app
        .client
        .get(sandbox.url("/pets/mine"))
        .bearer_auth("sk_test_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"sandbox\""
    );
    let (_, body) = json_of(response).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not this sandbox's API key"),
        "{body}"
    );
    // Another sandbox's key does not open this one.
    let other = app
        .create_sandbox(serde_json::json!({"project": "pets"}))
        .await;
    let response = app
        .client
        .get(sandbox.url("/pets/1"))
        .header("x-api-key", &other.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn auth_none_sandboxes_need_no_credentials() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    assert_eq!(sandbox.body["auth"], "none");
    assert_eq!(
        status_of(app.client.get(sandbox.url("/pets/mine"))).await,
        200
    );
}
