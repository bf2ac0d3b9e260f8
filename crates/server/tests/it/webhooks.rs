//! Webhook endpoints and delivery: Standard Webhooks signatures checked by
//! the specification's reference library (Python `standardwebhooks`),
//! retries on the sandbox clock, dead letters, redelivery, rotation.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, eventually, millis, send, spawn_app, spawn_app_with},
    scenarios::payments_project,
};

/// What a receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many requests first.
    failures: Arc<AtomicUsize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.got.lock().unwrap().push(Received {
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let failing = receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

pub(crate) async fn receiver() -> (String, Receiver) {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(receiver.clone());
    (
        format!("{}/hooks", crate::helpers::serve_router(app).await),
        receiver,
    )
}

/// Verifies a delivery with the reference library; its error otherwise.
fn verify(secret: &str, received: &Received) -> Result<(), String> {
    let headers: serde_json::Map<String, Value> = received
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
Webhook(secret).verify(body, headers)
"#;
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            &Value::Object(headers).to_string(),
            &received.body,
        ])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The requests `receiver` got, once it has `count`: due deliveries are
/// made at once; a retry waits for its time on the sandbox clock.
pub(crate) async fn wait_for(app: &TestApp, receiver: &Receiver, count: usize) -> Vec<Received> {
    let what = format!("{count} deliveries");
    eventually(&what, Duration::from_secs(15), || async {
        app.drain().await;
        let got = receiver.got.lock().unwrap().clone();
        (got.len() >= count).then_some(got)
    })
    .await
}

/// A payments sandbox (compressed retries) with an endpoint delivering to
/// `url`: the sandbox, the endpoint, and the endpoint's control-plane path.
pub(crate) async fn sandbox_with_endpoint(
    app: &TestApp,
    url: &str,
) -> (crate::helpers::Sandbox, Value, String) {
    let (status, body) = send(
        app.admin(Method::POST, "/projects")
            .json(&payments_project("payments")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sandbox = app
        .create_sandbox(
            json!({"project": "payments", "auth": "none", "webhook_schedule": "compressed"}),
        )
        .await;
    let (status, endpoint) = send(
        app.admin(
            Method::POST,
            &format!("/sandboxes/{}/webhook-endpoints", sandbox.id),
        )
        .json(&json!({"url": url, "events": ["payment.processing", "payment.succeeded"]})),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let path = format!(
        "/sandboxes/{}/webhook-endpoints/{}",
        sandbox.id,
        endpoint["id"].as_str().unwrap()
    );
    (sandbox, endpoint, path)
}

fn payment() -> Value {
    json!({"amount": 2000, "currency": "usd",
           "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})
}

#[tokio::test]
async fn deliveries_are_signed_as_standard_webhooks_and_retried_on_the_sandbox_clock() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |c| {
        c.allow_private_egress = true
    })
    .await;
    let (url, receiver) = receiver().await;
    let (sandbox, endpoint, endpoint_path) = sandbox_with_endpoint(&app, &url).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    // Emitted by the create script: delivered, signed, verified by the
    // reference library.
    let (status, paid) = send(app.client.post(sandbox.url("/payments")).json(&payment())).await;
    assert_eq!(status, 201);
    let got = wait_for(&app, &receiver, 1).await;
    verify(&secret, &got[0]).unwrap();
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "payment.processing");
    assert_eq!(body["data"]["id"], paid["id"]);
    let header = |name: &str| {
        got[0]
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("webhook-id").as_deref(), body["id"].as_str());
    let tampered = Received {
        body: got[0].body.replace("processing", "succeeded"),
        ..got[0].clone()
    };
    assert!(
        verify(&secret, &tampered).is_err(),
        "the reference library rejects a changed body"
    );

    // The receiver fails twice: retried on the compressed schedule, on the
    // sandbox clock (advancing it fires the retry due meanwhile).
    receiver.failures.store(2, Ordering::SeqCst);
    send(
        app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
            .json(&json!({"advance": "P2D"})),
    )
    .await;
    let got = wait_for(&app, &receiver, 2).await;
    assert_eq!(
        serde_json::from_str::<Value>(&got[1].body).unwrap()["type"],
        "payment.succeeded"
    );
    for _ in 0..2 {
        send(
            app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
                .json(&json!({"advance": "PT1M"})),
        )
        .await;
    }
    let got = wait_for(&app, &receiver, 4).await;
    assert_eq!(got[1].body, got[3].body, "a retry sends the same event");
    let (_, deliveries) =
        send(app.admin(Method::GET, &format!("{endpoint_path}/deliveries"))).await;
    let settled = &deliveries["items"][0];
    assert_eq!(settled["event_type"], "payment.succeeded");
    assert_eq!(settled["state"], "delivered", "{deliveries}");
    let attempts = settled["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[2]["status"], 204);
    assert!(attempts[0]["request_headers"]["webhook-signature"].is_string());

    // Rotation: both secrets sign for a day.
    let (_, rotated) =
        send(app.admin(Method::POST, &format!("{endpoint_path}/rotate-secret"))).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let event = settled["event_id"].as_str().unwrap();
    let (status, requeued) = send(
        app.admin(Method::POST, &format!("{endpoint_path}/redeliver"))
            .json(&json!({"event": event})),
    )
    .await;
    assert_eq!((status, requeued["requeued"].clone()), (200, json!(1)));
    let got = wait_for(&app, &receiver, 5).await;
    let signatures = got[4]
        .headers
        .iter()
        .find(|(n, _)| n == "webhook-signature")
        .map(|(_, v)| v.split(' ').count());
    assert_eq!(signatures, Some(2));
    verify(&new_secret, &got[4]).unwrap();
    verify(&secret, &got[4]).unwrap();
    assert_eq!(
        got[4].body, got[1].body,
        "redelivery sends the same event, same id"
    );
}

#[tokio::test]
async fn dead_letters_are_kept_and_requeued_and_failing_endpoints_are_disabled() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |c| {
        c.allow_private_egress = true;
        c.webhook_disable_after_failures = 10;
    })
    .await;
    let (url, receiver) = receiver().await;
    let (sandbox, _, endpoint_path) = sandbox_with_endpoint(&app, &url).await;
    receiver.failures.store(usize::MAX / 2, Ordering::SeqCst);
    send(app.client.post(sandbox.url("/payments")).json(&payment())).await;
    // After the first failure the next attempt is due 1 s (±20%) later on
    // the sandbox clock: the compressed schedule.
    wait_for(&app, &receiver, 1).await;
    let (_, deliveries) =
        send(app.admin(Method::GET, &format!("{endpoint_path}/deliveries"))).await;
    let delivery = &deliveries["items"][0];
    let (first_at, next_at) = match (
        delivery["attempts"][0]["at"].as_str(),
        delivery["next_attempt_at"].as_str(),
    ) {
        (Some(at), Some(next)) => (millis(at), millis(next)),
        _ => panic!("an attempt and the next one's time: {deliveries}"),
    };
    assert!(
        (800..=1200).contains(&(next_at - first_at)),
        "{}",
        next_at - first_at
    );
    // Eight attempts in all, each made due by the clock.
    for attempt in 1..=8 {
        wait_for(&app, &receiver, attempt).await;
        send(
            app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
                .json(&json!({"advance": "PT2M"})),
        )
        .await;
    }
    app.drain().await;
    let (_, deliveries) =
        send(app.admin(Method::GET, &format!("{endpoint_path}/deliveries"))).await;
    let dead = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "payment.processing")
        .cloned()
        .unwrap();
    assert_eq!(dead["state"], "dead", "dead-lettered: {deliveries}");
    assert_eq!(dead["attempts"].as_array().unwrap().len(), 8);

    // Requeue every dead letter: delivered once the receiver recovers.
    receiver.failures.store(0, Ordering::SeqCst);
    let (status, requeued) = send(
        app.admin(Method::POST, &format!("{endpoint_path}/redeliver"))
            .json(&json!({})),
    )
    .await;
    assert_eq!((status, requeued["requeued"].clone()), (200, json!(1)));
    wait_for(&app, &receiver, 9).await;

    // Failing ten times in a row disables the endpoint, with the reason.
    receiver.failures.store(usize::MAX / 2, Ordering::SeqCst);
    for _ in 0..2 {
        send(app.client.post(sandbox.url("/payments")).json(&payment())).await;
    }
    for _ in 0..12 {
        send(
            app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
                .json(&json!({"advance": "PT2M"})),
        )
        .await;
        app.drain().await;
    }
    let (_, shown) = send(app.admin(Method::GET, &endpoint_path)).await;
    assert_eq!(shown["enabled"], false, "{shown}");
    assert!(
        shown["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("in a row"),
        "{shown}"
    );
}

/// `--allow-private-egress` opens loopback and private ranges for local
/// receivers, never link-local and cloud-metadata addresses: only an
/// `egress_allow` entry reaches those.
#[tokio::test]
async fn allowing_private_egress_keeps_metadata_addresses_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_with(dir, |config| {
        config.allow_private_egress = true;
        config.egress_allow = vec!["169.254.170.2".to_owned()];
    })
    .await;
    let sandbox = app.payments_sandbox("none").await;
    let endpoints = format!("/sandboxes/{}/webhook-endpoints", sandbox.id);
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/latest",
        "http://[fe80::1]/hooks",
        "http://[::ffff:169.254.169.254]/hooks",
        "http://100.100.100.200/hooks",
    ] {
        let (status, problem) = send(
            app.admin(Method::POST, &endpoints)
                .json(&json!({"url": url})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("egress_allow"),
            "{problem}"
        );
    }
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.170.2/creds",
    ] {
        let (status, problem) = send(
            app.admin(Method::POST, &endpoints)
                .json(&json!({"url": url})),
        )
        .await;
        assert_eq!(status, 201, "{url}: {problem}");
    }
    let dir = tempfile::tempdir().unwrap();
    let result = sbx_server::start(
        sbx_server::Config {
            egress_allow: vec!["not a range".to_owned()],
            ..crate::helpers::test_config(dir.path())
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await;
    let error = format!("{:#}", result.err().expect("refused"));
    assert!(error.contains("egress_allow"), "{error}");
}

#[tokio::test]
async fn endpoints_are_validated_and_private_targets_refused_by_default() {
    let app = spawn_app().await;
    let sandbox = app.payments_sandbox("none").await;
    let endpoints = format!("/sandboxes/{}/webhook-endpoints", sandbox.id);
    for (body, pointer) in [
        (json!({"url": "http://127.0.0.1:9/hooks"}), "/url"),
        (json!({"url": "http://localhost/hooks"}), "/url"),
        (json!({"url": "ftp://example.com/hooks"}), "/url"),
        (
            json!({"url": "https://example.com/hooks", "events": []}),
            "/events",
        ),
        (json!({}), "/url"),
    ] {
        let (status, problem) = send(app.admin(Method::POST, &endpoints).json(&body)).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let (status, created) = send(
        app.admin(Method::POST, &endpoints)
            .json(&json!({"url": "https://example.com/hooks", "description": "prod-like"})),
    )
    .await;
    assert_eq!((status, created["events"].clone()), (201, json!(["*"])));
    let one = format!("{endpoints}/{}", created["id"].as_str().unwrap());
    let (status, updated) = send(
        app.admin(Method::PATCH, &one)
            .json(&json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, updated["enabled"].clone()), (200, json!(false)));
    let (_, listed) = send(app.admin(Method::GET, &endpoints)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(send(app.admin(Method::DELETE, &one)).await.0, 204);
    assert_eq!(send(app.admin(Method::GET, &one)).await.0, 404);
}

#[tokio::test]
async fn opted_in_faults_delay_duplicate_skew_and_reorder_deliveries() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |c| {
        c.allow_private_egress = true
    })
    .await;
    let (url, receiver) = receiver().await;
    let (sandbox, endpoint, endpoint_path) = sandbox_with_endpoint(&app, &url).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let faults =
        json!({"duplicate": 1.0, "delay_ms": 60000, "skew_seconds": -600, "reorder": true});
    let (status, updated) = send(
        app.admin(Method::PATCH, &endpoint_path)
            .json(&json!({"faults": faults, "events": ["*"]})),
    )
    .await;
    assert_eq!(
        (status, updated["faults"].clone()),
        (200, faults),
        "{updated}"
    );
    let (status, _) = send(
        app.admin(Method::PATCH, &endpoint_path)
            .json(&json!({"faults": {"duplicate": 3}})),
    )
    .await;
    assert_eq!(status, 422);

    let events = format!("/sandboxes/{}/events", sandbox.id);
    for n in [1, 2] {
        let (status, _) = send(
            app.admin(Method::POST, &events)
                .json(&json!({"type": "payment.refunded", "data": {"n": n}})),
        )
        .await;
        assert_eq!(status, 201);
    }
    app.drain().await;
    assert!(
        receiver.got.lock().unwrap().is_empty(),
        "held back by delay_ms"
    );
    send(
        app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
            .json(&json!({"advance": "PT2M"})),
    )
    .await;
    let got = wait_for(&app, &receiver, 4).await;
    let n = |r: &Received| serde_json::from_str::<Value>(&r.body).unwrap()["data"]["n"].clone();
    let id = |r: &Received| {
        r.headers
            .iter()
            .find(|(h, _)| h == "webhook-id")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        got.iter().map(n).collect::<Vec<_>>(),
        [json!(2), json!(2), json!(1), json!(1)],
        "newest first, each twice"
    );
    assert_eq!(id(&got[0]), id(&got[1]), "a duplicate keeps its webhook-id");
    let rejected = verify(&secret, &got[0]).unwrap_err();
    assert!(rejected.contains("too old"), "{rejected}");
}

const CATALOG_SPEC: &str = r##"
openapi: 3.1.0
info: { title: Orders, version: "1" }
paths:
  /orders:
    post:
      operationId: createOrder
      responses:
        "201": { description: created }
      callbacks:
        order.shipped:
          "{$request.body#/callback}":
            post:
              summary: The order left the warehouse
              requestBody:
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/Shipment" }
              responses:
                "200": { description: ok }
webhooks:
  order.created:
    post:
      summary: An order was placed
      requestBody:
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Order" }
            example: { id: ord_golden, total: 4200 }
      responses:
        "200": { description: ok }
components:
  schemas:
    Order:
      type: object
      required: [id, total]
      properties:
        id: { type: string }
        total: { type: integer, minimum: 0 }
    Shipment:
      type: object
      required: [order, carrier]
      properties:
        order: { type: string }
        carrier: { type: string, enum: [ups, dhl] }
"##;

#[tokio::test]
async fn the_event_catalog_comes_from_webhooks_callbacks_and_event_files() {
    let app = spawn_app().await;
    let project = json!({
        "name": "orders",
        "spec": CATALOG_SPEC,
        "events": {"order.refunded": {"description": "Money went back", "template": "refunded.json.j2"}},
        "templates": {"refunded.json.j2": r#"{"order": "ord_1", "at": {{ now() }}, "sandbox": {{ sandbox }}}"#},
    });
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");
    let sandbox = app
        .create_sandbox(json!({"project": "orders", "auth": "none"}))
        .await;
    let (_, types) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/event-types", sandbox.id),
    ))
    .await;
    let by_name = |name: &str| {
        types["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {types}"))
    };
    assert_eq!(
        by_name("order.created")["golden"],
        json!({"id": "ord_golden", "total": 4200})
    );
    assert_eq!(by_name("order.created")["source"], "webhooks");
    let shipped = by_name("order.shipped");
    assert_eq!(shipped["source"], "callbacks");
    assert!(
        ["ups", "dhl"].contains(&shipped["golden"]["carrier"].as_str().unwrap()),
        "synthesized from the schema: {shipped}"
    );
    assert_eq!(by_name("order.refunded")["description"], "Money went back");

    let events = format!("/sandboxes/{}/events", sandbox.id);
    let (status, fired) = send(
        app.admin(Method::POST, &events)
            .json(&json!({"type": "order.created"})),
    )
    .await;
    assert_eq!(
        (status, fired["data"]["id"].clone()),
        (201, json!("ord_golden"))
    );
    assert!(fired["id"].as_str().unwrap().starts_with("evt_"));
    let (status, problem) = send(
        app.admin(Method::POST, &events)
            .json(&json!({"type": "order.created", "data": {"id": "ord_2", "total": -1}})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/data");
    let (status, _) = send(
        app.admin(Method::POST, &events)
            .json(&json!({"type": "anything.else", "data": {"x": 1}})),
    )
    .await;
    assert_eq!(status, 201, "an uncatalogued type with data is accepted");
    // A templated payload renders in the sandbox, on its clock.
    send(
        app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
            .json(&json!({"freeze_at": "2030-05-01T00:00:00Z"})),
    )
    .await;
    let (status, refunded) = send(
        app.admin(Method::POST, &events)
            .json(&json!({"type": "order.refunded"})),
    )
    .await;
    assert_eq!(status, 201, "{refunded}");
    assert_eq!(
        refunded["data"],
        json!({"order": "ord_1", "at": "2030-05-01T00:00:00Z", "sandbox": sandbox.id})
    );

    // A project file whose golden payload breaks its schema is refused.
    let broken = json!({
        "name": "broken",
        "spec": CATALOG_SPEC,
        "events": {"order.created": {"payload": {"id": 7}}},
    });
    let (status, problem) = send(app.admin(Method::POST, "/projects").json(&broken)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["location"],
        "events/order.created.yaml"
    );
}
