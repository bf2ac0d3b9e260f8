use crate::helpers::{send, spawn_app};

#[tokio::test]
async fn sandboxes_answer_by_path_host_and_key() {
    let app = spawn_app().await;
    let sandbox = app.petstore("spec").await;
    assert!(
        sandbox
            .base_url
            .ends_with(&format!("/sbx/{}/v1", sandbox.id)),
        "{}",
        sandbox.base_url
    );
    let by_path = app
        .client
        .get(sandbox.url("/pets/3"))
        .header("x-api-key", &sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_path.headers()["x-sandbox-id"], sandbox.id.as_str());
    let by_path = by_path.bytes().await.unwrap();
    let by_host = app
        .client
        .get(format!("{}/v1/pets/3", app.url))
        .header("host", format!("{}.sbx.localhost", sandbox.id))
        .header("x-api-key", &sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_host.status(), 200);
    assert_eq!(by_host.bytes().await.unwrap(), by_path);
    let by_key = app
        .client
        .get(format!("{}/v1/pets/3", app.url))
        .header("x-api-key", &sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.headers()["x-sandbox-id"], sandbox.id.as_str());
    assert_eq!(by_key.bytes().await.unwrap(), by_path);
    let by_query_key = app
        .client
        .get(format!(
            "{}/v1/search?q=abc&api_key={}",
            app.url, sandbox.api_key
        ))
        .header("x-request-tier", "paid")
        .send()
        .await
        .unwrap();
    assert_eq!(by_query_key.status(), 200);
    assert_eq!(
        sandbox.body["host_url"],
        format!(
            "http://{}.sbx.localhost:{}/v1",
            sandbox.id,
            app.url.rsplit(':').next().unwrap()
        )
    );
}

#[tokio::test]
async fn unknown_sandboxes_routes_and_methods() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let (status, body) = send(
        app.client
            .get(format!("{}/sbx/sbx-doesnotexist/v1/pets", app.url)),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:unknown-sandbox");
    let (status, body) = send(app.client.get(format!("{}/v1/pets", app.url))).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:no-sandbox");
    let (status, body) = send(app.client.get(sandbox.url("/nothing"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:no-route");
    let (status, body) = send(
        app.client
            .get(format!("{}/sbx/{}/pets", app.url, sandbox.id)),
    )
    .await;
    assert_eq!(status, 404, "the server base path is part of every route");
    assert!(body["detail"].as_str().unwrap().contains("/v1"));
    let response = app.client.put(sandbox.url("/pets/1")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "DELETE, GET, HEAD");
    let response = app
        .client
        .get(sandbox.url("/pets/mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a literal segment beats {{petId}}");
}

#[tokio::test]
async fn every_answer_carries_ids_and_cors() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let response = app
        .client
        .get(sandbox.url("/pets/1"))
        .header("x-request-id", "trace-123")
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // A browser's script may read every answer header (its request id).
    assert_eq!(response.headers()["access-control-expose-headers"], "*");
    assert!(response.headers().get("vary").is_none());
    let response = app
        .client
        .get(sandbox.url("/nothing"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    assert_eq!(response.headers()["x-sandbox-id"], sandbox.id.as_str());
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, sandbox.url("/pets"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(
        preflight
            .headers()
            .contains_key("access-control-allow-methods")
    );
    let control = app
        .client
        .get(format!("{}/api/v1/health", app.url))
        .send()
        .await
        .unwrap();
    assert!(control.headers().contains_key("x-request-id"));
}

/// Probes for load balancers and Kubernetes: `/healthz` says the process
/// answers, `/readyz` that its database does too; a request naming a
/// sandbox (by its host) still reaches the sandbox at those paths.
#[tokio::test]
async fn health_and_readiness_probes_answer_unless_a_sandbox_is_named() {
    let app = spawn_app().await;
    let (status, health) = send(app.client.get(format!("{}/healthz", app.url))).await;
    assert_eq!((status, &health["status"]), (200, &serde_json::json!("ok")));
    let (status, ready) = send(app.client.get(format!("{}/readyz", app.url))).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"]["status"], "ok", "{ready}");
    assert!(ready["checks"]["database"]["latency_ms"].as_f64().unwrap() >= 0.0);

    let sandbox = app.petstore("none").await;
    let (status, answer) = send(
        app.client
            .get(format!("{}/readyz", app.url))
            .header("host", format!("{}.sbx.localhost", sandbox.id)),
    )
    .await;
    assert_eq!(status, 404, "the sandbox's spec has no /readyz: {answer}");
    assert_ne!(answer["status"], "ready");
}
