//! The request log: every field, redaction (checked in the database),
//! filters and cursor pagination.

use std::time::{Duration, Instant};

use reqwest::Method;
use sbx_store::LogQuery;
use serde_json::{Value, json};

use crate::helpers::{Sandbox, TestApp, send, spawn_app, spawn_app_with};

async fn logs(app: &TestApp, sandbox: &str, query: &str) -> (u16, Value) {
    send(app.admin(Method::GET, &format!("/sandboxes/{sandbox}/logs{query}"))).await
}

/// The log once the writer has stored what was queued: at least `count` entries.
async fn wait_for_logs(app: &TestApp, sandbox: &str, count: usize) -> Value {
    app.drain().await;
    let (_, page) = logs(app, sandbox, "?limit=200").await;
    let logged = page["items"].as_array().map_or(0, Vec::len);
    assert!(logged >= count, "{logged} of {count} logged: {page}");
    page
}

#[tokio::test]
async fn every_request_is_logged_redacted_filterable_and_paged() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    let sandbox = app.payments_sandbox("spec").await;
    let key = format!("Bearer {}", sandbox.api_key);
    let pay = || {
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-log-1")
            .header("idempotency-key", "k-1")
            .json(&json!({"amount": 2000, "currency": "usd", "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}))
    };
    let (status, paid) = send(pay()).await;
    assert_eq!(status, 201);
    assert_eq!(send(pay()).await.0, 201, "a replay");
    let get = |path: &str| {
        app.client
            .get(sandbox.url(path))
            .header("authorization", &key)
    };
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        send(get("/accounts/acct_demo_frozen").header("traceparent", traceparent))
            .await
            .0,
        403
    );
    assert_eq!(
        send(
            get("/accounts/acct_demo_gold")
                .header("x-chaos", "latency=5ms")
                .header("traceparent", "00-not-a-trace-01")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(get(&format!(
            "/accounts?status=bogus&key={}",
            sandbox.api_key
        )))
        .await
        .0,
        400
    );

    let page = wait_for_logs(&app, &sandbox.id, 5).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let first = &items[4];
    assert_eq!(
        (
            first["request_id"].as_str(),
            first["method"].as_str(),
            first["path"].as_str()
        ),
        (Some("req-log-1"), Some("POST"), Some("/v1/payments"))
    );
    assert_eq!(first["operation"], "createPayment");
    assert_eq!(first["status"], 201);
    assert!(first["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        first["request_headers"]["authorization"],
        "Bearer [redacted]"
    );
    assert!(
        first["request_body"]
            .as_str()
            .unwrap()
            .contains("\"amount\":2000"),
        "{first}"
    );
    assert!(
        first["response_body"].as_str().unwrap().contains("pay_"),
        "{first}"
    );
    assert_eq!(first["idempotent_replay"], false);
    assert_eq!(items[3]["idempotent_replay"], true);
    assert_eq!(items[2]["scenario"], "account_frozen");
    assert_eq!(items[2]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(items[1]["trace_id"], Value::Null, "a malformed traceparent");
    assert_eq!(first["trace_id"], Value::Null, "no traceparent");
    assert_eq!(items[1]["chaos"], "latency=5ms");
    assert_eq!(items[0]["status"], 400);
    assert!(
        !items[0]["query"].as_str().unwrap().contains("sk_test_"),
        "{}",
        items[0]["query"]
    );

    // Filters and the cursor.
    let (_, frozen) = logs(&app, &sandbox.id, "?status=403").await;
    assert_eq!(frozen["items"].as_array().unwrap().len(), 1);
    let count = |keep: &dyn Fn(&Value) -> bool| items.iter().filter(|i| keep(i)).count();
    let client_errors = count(&|i| (400..500).contains(&i["status"].as_i64().unwrap()));
    assert!(client_errors >= 2, "{items:?}");
    let (_, by_class) = logs(&app, &sandbox.id, "?status=4xx").await;
    assert_eq!(by_class["items"].as_array().unwrap().len(), client_errors);
    let posts = count(&|i| i["method"] == "POST");
    let (_, by_method) = logs(&app, &sandbox.id, "?method=post").await;
    assert_eq!(by_method["items"].as_array().unwrap().len(), posts);
    let (_, by_operation) = logs(&app, &sandbox.id, "?operation=getAccount").await;
    assert_eq!(by_operation["items"].as_array().unwrap().len(), 2);
    let (_, by_text) = logs(&app, &sandbox.id, "?text=acct_demo_gold").await;
    assert_eq!(by_text["items"].as_array().unwrap().len(), 1);
    let (_, page1) = logs(&app, &sandbox.id, "?limit=2").await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = logs(&app, &sandbox.id, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["items"][0]["request_id"], items[2]["request_id"]);
    let (_, last) = logs(&app, &sandbox.id, &format!("?limit=200&cursor={cursor}")).await;
    assert_eq!(
        (
            last["items"].as_array().unwrap().len(),
            last["next_cursor"].clone()
        ),
        (3, Value::Null)
    );
    assert_eq!(page1["dropped"], 0);
    for (query, parameter) in [
        ("?status=abc", "status"),
        ("?status=6xx", "status"),
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?colour=red", "colour"),
    ] {
        let (status, problem) = logs(&app, &sandbox.id, query).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], parameter);
    }
    let (status, one) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-log-1", sandbox.id),
    ))
    .await;
    assert_eq!(
        (status, one["operation"].as_str()),
        (200, Some("createPayment"))
    );
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-nope", sandbox.id),
    ))
    .await;
    assert_eq!(status, 404);

    // Reading the payment back: the answer holds the card, masked in the log.
    let (status, read) = send(
        app.client
            .get(sandbox.url(&format!("/payments/{}", paid["id"].as_str().unwrap())))
            .header("authorization", &key),
    )
    .await;
    assert_eq!(
        (status, read["payment_method"]["number"].as_str()),
        (200, Some("4242424242424242"))
    );

    // A refused payment quotes the card in its violations and its answer:
    // the project's rule masks it there too.
    let (status, refused) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-bad-card")
            .json(&json!({"amount": 2000, "currency": "usd", "payment_method": {"number": "4242424242424242"}})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    wait_for_logs(&app, &sandbox.id, 7).await;
    let (status, explained) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-bad-card/explain", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200);
    let violation = explained["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["stage"] == "validate")
        .map(|step| step["detail"][0].clone())
        .unwrap();
    assert_eq!(violation["pointer"], "/payment_method", "{violation}");
    assert_eq!(violation["got"]["number"], "[redacted]", "{violation}");
    let (_, logged) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-bad-card", sandbox.id),
    ))
    .await;
    assert_eq!(logged["validation_errors"][0], violation, "{logged}");
    assert_eq!(logged["script_error"], Value::Null);
    assert!(logged["sandbox_at"].is_string(), "{logged}");

    // No key ever reaches the database.
    app.stop().await;
    let store = crate::helpers::open_store(&path).await;
    let stored = store
        .list_logs(
            &sandbox.id,
            &LogQuery {
                limit: 100,
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 7);
    let everything = format!("{stored:?}");
    assert!(
        !everything.contains(&sandbox.api_key),
        "a key reached the store"
    );
    assert!(!everything.contains("sk_test_"), "a key reached the store");
    assert!(
        !everything.contains("4242424242424242"),
        "a card number the project redacts reached the store"
    );
    assert!(
        everything.contains(r#"\"number\":\"[redacted]\""#),
        "{everything}"
    );
}

#[tokio::test]
async fn the_log_exports_as_har() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |_| {}).await;
    let sandbox = app.payments_sandbox("spec").await;
    let key = format!("Bearer {}", sandbox.api_key);
    let (status, _) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-har-1")
            .json(&json!({"amount": 2000, "currency": "usd", "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts?status=active&limit=2"))
            .header("authorization", &key)
            .header("x-request-id", "req-har-2"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(app.client.get(sandbox.url("/nowhere"))).await;
    assert_eq!(status, 404);
    wait_for_logs(&app, &sandbox.id, 3).await;

    let export = |query: &str| {
        app.admin(
            Method::GET,
            &format!("/sandboxes/{}/logs.har{query}", sandbox.id),
        )
        .send()
    };
    let response = export("").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"{}.har\"", sandbox.id).as_str()
    );
    let text = response.text().await.unwrap();
    let archive = har::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(archive.version(), har::HarVersion::V1_2);
    let har::Spec::V1_2(log) = archive.log else {
        unreachable!()
    };
    assert_eq!(log.creator.name, "SmartSandbox");
    assert_eq!(log.entries.len(), 3);
    let payment = &log.entries[0];
    assert_eq!(payment.request.method, "POST");
    assert_eq!(payment.request.url, sandbox.url("/payments"));
    let posted = payment.request.post_data.as_ref().unwrap();
    assert_eq!(posted.mime_type, "application/json");
    let posted: Value = serde_json::from_str(posted.text.as_deref().unwrap()).unwrap();
    assert_eq!(posted["amount"], 2000);
    assert_eq!(posted["payment_method"]["number"], "[redacted]");
    let authorization = payment
        .request
        .headers
        .iter()
        .find(|h| h.name == "authorization")
        .unwrap();
    assert_eq!(authorization.value, "Bearer [redacted]");
    assert_eq!(
        (
            payment.response.status,
            payment.response.status_text.as_str()
        ),
        (201, "Created")
    );
    let answer: Value =
        serde_json::from_str(payment.response.content.text.as_deref().unwrap()).unwrap();
    assert!(
        answer["id"].as_str().unwrap().starts_with("pay_"),
        "{answer}"
    );
    assert!(payment.time > 0.0);
    let comment = payment.comment.as_deref().unwrap();
    assert!(
        comment.contains("req-har-1") && comment.contains("operation createPayment"),
        "{comment}"
    );
    let listing = &log.entries[1];
    assert_eq!(
        listing
            .request
            .query_string
            .iter()
            .map(|q| (q.name.as_str(), q.value.as_str()))
            .collect::<Vec<_>>(),
        [("status", "active"), ("limit", "2")]
    );
    assert!(listing.request.post_data.is_none());
    assert_eq!(log.entries[2].response.status, 404);

    // The list's filters apply; bad ones are named.
    let text = export("?status=404").await.unwrap().text().await.unwrap();
    let har::Spec::V1_2(only_404) = har::from_str(&text).unwrap().log else {
        unreachable!()
    };
    assert_eq!(only_404.entries.len(), 1);
    let (status, problem) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs.har?since=yesterday", sandbox.id),
    ))
    .await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (400, Some("since"))
    );
    let (status, _) = send(app.admin(Method::GET, "/sandboxes/sbx-nope/logs.har")).await;
    assert_eq!(status, 404);
}

/// Opens a live tail of the sandbox's log with `filters`.
async fn tail(app: &TestApp, sandbox: &Sandbox, filters: &str) -> reqwest::Response {
    let tail = app
        .admin(
            Method::GET,
            &format!("/sandboxes/{}/logs/stream{filters}", sandbox.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    tail
}

/// The `request` events a tail sends until the one with id `last`.
async fn events_until(tail: &mut reqwest::Response, last: &str) -> Vec<Value> {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = format!("id: {last}\n");
    // Until the event with that id has arrived whole.
    while !text
        .find(&needle)
        .is_some_and(|at| text[at..].contains("\n\n"))
    {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(remaining, tail.chunk())
            .await
            .unwrap_or_else(|_| panic!("the tail sent only {text:?}"))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter(|event| event.lines().any(|l| l == "event: request"))
        .map(|event| {
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_live_tail_streams_each_new_request_as_it_is_logged() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |_| {}).await;
    let sandbox = app.payments_sandbox("none").await;
    let mut everything = tail(&app, &sandbox, "").await;
    let mut refused = tail(&app, &sandbox, "?status=4xx").await;
    for (request_id, path) in [
        ("req-tail-1", "/customers/cus_demo_alice"),
        ("req-tail-2", "/accounts/acct_demo_frozen"),
    ] {
        send(
            app.client
                .get(sandbox.url(path))
                .header("x-request-id", request_id),
        )
        .await;
    }
    let events = events_until(&mut everything, "req-tail-2").await;
    let seen: Vec<(&str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["request_id"].as_str().unwrap(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("req-tail-1", 200), ("req-tail-2", 403)]);
    assert_eq!(events[1]["scenario"], "account_frozen");
    let filtered = events_until(&mut refused, "req-tail-2").await;
    assert_eq!(
        filtered.len(),
        1,
        "only what the filter selects: {filtered:?}"
    );

    // A burst larger than a page reaches the tail whole, in order.
    let burst: Vec<String> = (0..450).map(|n| format!("req-burst-{n}")).collect();
    for request_id in &burst {
        send(
            app.client
                .get(sandbox.url("/customers/cus_demo_alice"))
                .header("x-request-id", request_id),
        )
        .await;
    }
    let arrived = events_until(&mut everything, "req-burst-449").await;
    let ids: Vec<&str> = arrived
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, burst);
    let (status, problem) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/stream?status=teapot", sandbox.id),
    ))
    .await;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (400, &json!("status"))
    );
}

#[tokio::test]
async fn each_sandbox_keeps_its_latest_requests() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.request_log_limits.keep_per_sandbox = 3;
    })
    .await;
    let sandbox = app.payments_sandbox("none").await;
    for n in 1..=5 {
        let request = app
            .client
            .get(sandbox.url("/customers/cus_demo_alice"))
            .header("x-request-id", format!("req-keep-{n}"));
        assert_eq!(send(request).await.0, 200);
    }
    app.drain().await;
    let (_, page) = logs(&app, &sandbox.id, "").await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-keep-5", "req-keep-4", "req-keep-3"]);
    let (status, problem) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-keep-1", sandbox.id),
    ))
    .await;
    assert_eq!(status, 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("latest 3 requests, for 7 days"),
        "{problem}"
    );
}

/// A NUL byte (which PostgreSQL cannot hold as text) in a body is logged
/// as U+FFFD beside its neighbours, never losing their batch; as text the
/// control plane is asked to keep, it is refused where the database cannot
/// store it, and sign-in treats it as wrong credentials' input, not a crash.
#[tokio::test]
async fn nul_characters_are_logged_or_refused_and_lose_nothing() {
    let app = spawn_app().await;
    let sandbox = app.payments_sandbox("none").await;
    let calls = [
        ("req-nul-before", &b"{}"[..]),
        ("req-nul", b"a\0b"),
        ("req-nul-after", b"{}"),
    ];
    for (id, body) in calls {
        let request = app
            .client
            .post(sandbox.url("/customers"))
            .header("x-request-id", id)
            .header("content-type", "application/json")
            .body(body.to_vec());
        send(request).await;
    }
    let page = wait_for_logs(&app, &sandbox.id, 3).await;
    let nul = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["request_id"] == "req-nul")
        .expect("the request with a NUL is logged");
    assert_eq!(nul["request_body"], "a\u{FFFD}b", "{nul}");

    let (status, labelled) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "payments", "label": "a\u{0}b"})),
    )
    .await;
    if crate::helpers::on_postgres() {
        assert_eq!(status, 422, "{labelled}");
        assert!(labelled.to_string().contains("NUL character"), "{labelled}");
    } else {
        assert_eq!(status, 201, "{labelled}");
    }
    let (status, refused) = send(
        app.client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"email": "a\u{0}@example.com", "password": "whatever-it-is"})),
    )
    .await;
    assert!(status == 401 || status == 422, "{status} {refused}");
}
