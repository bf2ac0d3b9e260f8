use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PETSTORE, eventually, json_of, send, spawn_app, spawn_app_with, status_of};

#[tokio::test]
async fn expired_sandboxes_say_so_and_their_data_is_removed() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    let sandbox = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "ttl_seconds": 1}))
        .await;
    assert!(sandbox.body["expires_at"].is_string());
    assert_eq!(status_of(app.client.get(sandbox.url("/pets/1"))).await, 200);
    // Wall-clock TTL: its second must pass; the reaper then removes it.
    let shown = format!("/sandboxes/{}", sandbox.id);
    eventually("the sandbox expired", Duration::from_secs(10), || async {
        app.drain().await;
        (send(app.admin(Method::GET, &shown)).await.0 == 404).then_some(())
    })
    .await;
    let (status, body) = send(app.client.get(sandbox.url("/pets/1"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:sandbox-expired");
    assert!(
        body["detail"].as_str().unwrap().contains("expired at"),
        "{body}"
    );
    let (_, list) = send(app.admin(Method::GET, "/sandboxes")).await;
    assert_eq!(list["items"], json!([]));
    // The reaper removed it, and audited that.
    app.drain().await;
    let (_, audit) = send(app.admin(Method::GET, "/audit?actor=system")).await;
    assert!(
        audit["items"][0].is_object(),
        "the expiry is audited: {audit}"
    );
    let expiry = &audit["items"][0];
    assert_eq!(
        (&expiry["action"], &expiry["outcome"]),
        (&json!("DELETE /api/v1/sandboxes/{id}"), &json!("succeeded")),
        "{audit}"
    );
    assert_eq!(
        expiry["target"],
        format!("/api/v1/sandboxes/{}", sandbox.id)
    );
    assert!(expiry["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn deleted_sandboxes_stop_answering() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let response = app
        .admin(Method::DELETE, &format!("/sandboxes/{}", sandbox.id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = send(app.client.get(sandbox.url("/pets/1"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:unknown-sandbox");
    let response = app
        .admin(Method::DELETE, &format!("/sandboxes/{}", sandbox.id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_restart_keeps_projects_sandboxes_and_answers() {
    let mut app = spawn_app().await;
    let sandbox = app.petstore("spec").await;
    let before = app
        .client
        .get(sandbox.url("/pets/9"))
        .header("x-api-key", &sandbox.api_key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    app.stop().await;
    let data_dir = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    let app = spawn_app_with(data_dir, |_| {}).await;
    let sandbox_url = format!("{}/sbx/{}/v1/pets/9", app.url, sandbox.id);
    let response = app
        .client
        .get(&sandbox_url)
        .header("x-api-key", &sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap(),
        before,
        "same sandbox, same answer after a restart"
    );
    let (_, project) = send(app.admin(Method::GET, "/projects/pets")).await;
    assert_eq!(project["revision"], 1);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let mut app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = sbx_server::start(crate::helpers::test_config(app.data_dir.path()), listener)
        .await
        .err()
        .expect("the data dir is the first server's");
    let message = format!("{refused:#}");
    assert!(
        message.contains(&format!(
            "another server (process {}) is running on the data dir",
            std::process::id()
        )),
        "{message}"
    );
    // The first serves on, and once it stopped the data dir is free.
    app.petstore("none").await;
    app.stop().await;
    let data_dir = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    let again = spawn_app_with(data_dir, |_| {}).await;
    let (status, _) = send(again.admin(Method::GET, "/projects/pets")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sandboxes_follow_the_latest_revision_unless_pinned() {
    let app = spawn_app().await;
    let old = app.petstore("none").await;
    let v2 = PETSTORE.replace("minimum: 1, maximum: 50", "minimum: 1, maximum: 5");
    let response = app
        .admin(Method::PUT, "/projects/pets/spec")
        .json(&json!({"spec": v2}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 2);
    let new = app
        .create_sandbox(json!({"project": "pets", "auth": "none"}))
        .await;
    assert_eq!(new.body["revision"], 2);
    assert_eq!(
        status_of(app.client.get(old.url("/pets?limit=20"))).await,
        400,
        "a sandbox created without a revision follows the project"
    );
    assert_eq!(
        status_of(app.client.get(new.url("/pets?limit=20"))).await,
        400
    );
    let pinned = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "revision": 1}))
        .await;
    assert_eq!(
        status_of(app.client.get(pinned.url("/pets?limit=20"))).await,
        200
    );
    let response = app
        .admin(Method::PUT, "/projects/pets/spec")
        .json(&json!({"spec": "openapi: 9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let (_, project) = send(app.admin(Method::GET, "/projects/pets")).await;
    assert_eq!(project["revision"], 2, "a rejected spec makes no revision");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    // A slow upload keeps a request in flight while shutdown starts: the
    // server is reading its body once it answers `100 Continue`.
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = br#"{"name": "Rex", "kind": "dog"}"#;
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nexpect: 100-continue\r\n\r\n",
        sandbox.url("/pets").trim_start_matches(&app.url),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let interim = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    let server = app.server.take().unwrap();
    let token = server.shutdown_token();
    let stopping = tokio::spawn(server.wait());
    token.cancel();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    stopping.await.unwrap().unwrap();
}
