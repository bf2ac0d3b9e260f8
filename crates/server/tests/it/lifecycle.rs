use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PETSTORE, json_of, send, spawn_app, spawn_app_with, status_of};

#[tokio::test]
async fn expired_sandboxes_say_so_and_their_data_is_removed() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    let sandbox = app
        .create_sandbox(json!({"project": "pets", "auth": "none", "ttl_seconds": 1}))
        .await;
    assert!(sandbox.body["expires_at"].is_string());
    assert_eq!(status_of(app.client.get(sandbox.url("/pets/1"))).await, 200);
    // Wall-clock TTL: poll (bounded) until the reaper has removed it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = send(app.admin(Method::GET, &format!("/sandboxes/{}", sandbox.id))).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the sandbox did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = send(app.client.get(sandbox.url("/pets/1"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:sandbox-expired");
    assert!(
        body["detail"].as_str().unwrap().contains("expired at"),
        "{body}"
    );
    let (_, list) = send(app.admin(Method::GET, "/sandboxes")).await;
    assert_eq!(list["items"], json!([]));
    // The reaper removes it on its next round, and audits that.
    let audit = loop {
        let (_, audit) = send(app.admin(Method::GET, "/audit?actor=system")).await;
        if audit["items"][0].is_object() {
            break audit;
        }
        assert!(Instant::now() < deadline, "the expiry was not audited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
    // A slow upload keeps a request in flight while shutdown starts.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let request = app
        .client
        .post(sandbox.url("/pets"))
        .header("content-type", "application/json")
        .body(body)
        .send();
    let in_flight = tokio::spawn(request);
    sender
        .send(Ok(br#"{"name": "Rex","#.to_vec()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = app.server.take().unwrap();
    let token = server.shutdown_token();
    let stopping = tokio::spawn(server.wait());
    token.cancel();
    sender
        .send(Ok(br#" "kind": "dog"}"#.to_vec()))
        .await
        .unwrap();
    drop(sender);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    stopping.await.unwrap().unwrap();
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
