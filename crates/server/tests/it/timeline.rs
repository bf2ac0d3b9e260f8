//! One timeline per sandbox: requests, clock moves, jobs, transitions,
//! events and delivery attempts in sandbox-time order, each linked to its
//! cause.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, send, spawn_app_with},
    webhooks::{receiver, sandbox_with_endpoint, wait_for},
};

async fn timeline(app: &TestApp, sandbox: &str, query: &str) -> (u16, Value) {
    send(app.admin(
        Method::GET,
        &format!("/sandboxes/{sandbox}/timeline{query}"),
    ))
    .await
}

/// The position of the first entry matching `matches`.
fn position(items: &[Value], what: &str, matches: impl Fn(&Value) -> bool) -> usize {
    items
        .iter()
        .position(matches)
        .unwrap_or_else(|| panic!("no {what} in {}", Value::from(items.to_vec())))
}

fn caused_by(entry: &Value, kind: &str, id: &str) -> bool {
    entry["caused_by"] == json!({"kind": kind, "id": id})
}

#[tokio::test]
async fn the_timeline_orders_what_happened_and_links_each_entry_to_its_cause() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |c| {
        c.allow_private_egress = true
    })
    .await;
    let (url, receiver) = receiver().await;
    let (sandbox, _, _) = sandbox_with_endpoint(&app, &url).await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    let (status, _) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"freeze_at": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, paid) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("x-request-id", "req-tl-pay")
            .json(&json!({"amount": 2000, "currency": "usd",
                "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})),
    )
    .await;
    assert_eq!(status, 201, "{paid}");
    let payment = format!("payments/{}", paid["id"].as_str().unwrap());
    wait_for(&app, &receiver, 1).await;
    let (status, _) = send(
        app.admin(Method::POST, &clock)
            .header("x-request-id", "req-tl-clock")
            .json(&json!({"advance": "P3D"})),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(&app, &receiver, 2).await;

    // The request log is written off the hot path; so are delivery records.
    app.drain().await;
    let (status, body) = timeline(&app, &sandbox.id, "").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap().clone();
    let deliveries = items.iter().filter(|e| e["kind"] == "delivery").count();
    assert!(
        items.iter().any(|e| e["id"] == "req-tl-pay") && deliveries >= 2,
        "{body}"
    );

    let request = position(&items, "request", |e| e["id"] == "req-tl-pay");
    assert_eq!(items[request]["kind"], "request");
    assert_eq!(items[request]["at"], "2030-01-01T00:00:00Z");
    assert!(items[request]["real_at"].as_str().unwrap() < "2030");
    assert!(
        items[request]["summary"]
            .as_str()
            .unwrap()
            .starts_with("POST /v1/payments --> 201 (createPayment)"),
        "{}",
        items[request]
    );
    let created = position(&items, "creation", |e| {
        e["kind"] == "transition"
            && e["id"] == payment.as_str()
            && e["detail"]["to"] == "processing"
    });
    assert!(caused_by(&items[created], "request", "req-tl-pay"));
    let processing = position(&items, "payment.processing", |e| {
        e["kind"] == "event" && e["detail"]["type"] == "payment.processing"
    });
    assert!(caused_by(&items[processing], "request", "req-tl-pay"));
    let event_id = items[processing]["id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"));
    let delivered = position(&items, "its delivery", |e| {
        e["kind"] == "delivery" && caused_by(e, "event", &event_id)
    });
    assert_eq!(items[delivered]["detail"]["status"], 204);
    let advanced = position(&items, "the clock move", |e| {
        e["kind"] == "clock" && e["detail"]["change"] == "advance P3D"
    });
    assert!(caused_by(&items[advanced], "control", "req-tl-clock"));
    let job = position(&items, "the settlement job", |e| e["kind"] == "job");
    assert!(caused_by(&items[job], "request", "req-tl-pay"));
    assert_eq!(items[job]["detail"]["state"], "ran");
    assert_eq!(items[job]["at"], "2030-01-03T00:00:00Z");
    let job_id = items[job]["id"].as_str().unwrap().to_owned();
    let settled = position(&items, "settlement", |e| {
        e["kind"] == "transition" && e["detail"]["to"] == "succeeded"
    });
    assert!(caused_by(&items[settled], "job", &job_id));
    let succeeded = position(&items, "payment.succeeded", |e| {
        e["kind"] == "event" && e["detail"]["type"] == "payment.succeeded"
    });
    assert!(caused_by(&items[succeeded], "job", &job_id));
    assert!(
        request < created
            && created < processing
            && processing < delivered
            && delivered < advanced
            && advanced < job
            && job < settled
            && settled < succeeded,
        "{}",
        Value::from(items.clone())
    );

    // Filters, and bad ones named.
    let (_, events) = timeline(&app, &sandbox.id, "?kinds=event,clock").await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().all(|k| ["event", "clock"].contains(k)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"event") && kinds.contains(&"clock"));
    let (_, later) = timeline(&app, &sandbox.id, "?since=2030-01-02T00:00:00Z").await;
    let later = later["items"].as_array().unwrap();
    assert!(later.iter().all(|e| e["id"] != "req-tl-pay"));
    assert!(later.iter().any(|e| e["kind"] == "job"));
    let (_, two) = timeline(&app, &sandbox.id, "?limit=2").await;
    assert_eq!(
        (two["items"].as_array().unwrap().len(), &two["truncated"]),
        (2, &json!(true))
    );
    for (query, parameter) in [
        ("?kinds=request,bogus", "kinds"),
        ("?since=tomorrow", "since"),
        ("?limit=0", "limit"),
        ("?colour=red", "colour"),
    ] {
        let (status, problem) = timeline(&app, &sandbox.id, query).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], parameter, "{problem}");
    }
    let (status, _) = timeline(&app, "sbx-nope", "").await;
    assert_eq!(status, 404);
}
