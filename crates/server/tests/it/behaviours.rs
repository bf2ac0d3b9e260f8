//! Scripts, templates, environment, drift, hostile scripts and hot reload.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, send, spawn_app, spawn_app_with};

pub const SHOP: &str = include_str!("../fixtures/shop.yaml");

const GREET: &str = r#"
// Reads the request and the environment, writes a body.
let lang = req.query.lang ?? env("default_lang");
let word = if lang == "fr" { "Bonjour" } else { "Hello" };
resp.body = #{ greeting: `${word} ${req.params.name}`, revision: 1 };
"#;

const CREATE_ORDER: &str = r#"
import "stock" as stock;
if req.body.quantity > stock::available(req.body.sku) {
    fail(409, #{ error: `only ${stock::available(req.body.sku)} ${req.body.sku} left` });
}
let order = proceed();              // the stateful create
order.body.status = "confirmed";
update("orders", order.body.id, #{ status: "confirmed" });
emit("order.confirmed", order.body);
resp = order;
"#;

const STOCK: &str = r#"
fn available(sku) {
    let stock = env("stock");
    stock[sku] ?? 0
}
"#;

const HOSTILE: &str = r#"
fn deeper(n) { deeper(n + 1) }
switch req.params.kind {
    "loop" => { loop { } }
    "recursion" => { deeper(0); }
    "string" => { let s = "xxxxxxxx"; loop { s += s; } }
    "array" => { let a = []; loop { a.push(1); } }
    "map" => { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }
    "throw" => { throw "out of cheese"; }
    "busy" => { let n = 0; for i in 0..100000 { n += i; } resp.body = `${n}`; }
    "copies" => { let s = "x"; s.pad(900000, "x"); loop { let t = s + "y"; } }
    _ => { resp.body = "fine"; }
}
"#;

const RECEIPT: &str = r#"{
  "order": {{ req.params.orderId }},
  "total": {{ env.unit_price * 3 }},
  "currency": {{ env.currency }},
  "issued_at": {{ now() }},
  "seen": {"tags": {{ req.query.tag }}, "method": {{ req.method }}, "operation": {{ req.operation }}}
}"#;

/// The shop project with scripts, a module, a template and environment.
pub fn shop_project(name: &str) -> Value {
    json!({
        "name": name,
        "spec": SHOP,
        "behaviours": {"greet": GREET, "createOrder": CREATE_ORDER, "hostile": HOSTILE,
                       "drift": "resp.body = #{ greeting: 42 };"},
        "modules": {"stock": STOCK},
        "templates": {"getReceipt.json.j2": RECEIPT},
        "env": {"default_lang": "en", "stock": {"apple": 3}, "unit_price": 250, "currency": "eur"},
    })
}

pub async fn shop(app: &TestApp) -> crate::helpers::Sandbox {
    let (status, body) = send(
        app.admin(Method::POST, "/projects")
            .json(&shop_project("shop")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["behaviours"],
        json!(["greet", "createOrder", "hostile", "drift"])
    );
    app.create_sandbox(json!({"project": "shop"})).await
}

#[tokio::test]
async fn scripts_read_the_request_and_shape_the_answer() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let client = &app.client;
    let (status, hello) = send(client.get(sandbox.url("/greet/ada"))).await;
    assert_eq!(
        (status, hello),
        (200, json!({"greeting": "Hello ada", "revision": 1}))
    );
    let (_, spaced) = send(client.get(sandbox.url("/greet/ada%20lovelace"))).await;
    assert_eq!(
        spaced["greeting"], "Hello ada lovelace",
        "path parameters arrive decoded"
    );
    let (_, bonjour) = send(client.get(sandbox.url("/greet/ada?lang=fr"))).await;
    assert_eq!(bonjour["greeting"], "Bonjour ada");

    // A module, fail() with a body, proceed() into the stateful create, emit().
    let (status, refused) = send(
        client
            .post(sandbox.url("/orders"))
            .json(&json!({"sku": "apple", "quantity": 5})),
    )
    .await;
    assert_eq!(
        (status, refused),
        (409, json!({"error": "only 3 apple left"}))
    );
    let (status, order) = send(
        client
            .post(sandbox.url("/orders"))
            .json(&json!({"sku": "apple", "quantity": 2})),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "confirmed");
    let members: Vec<&String> = order.as_object().unwrap().keys().collect();
    assert_eq!(
        members,
        ["id", "sku", "quantity", "status"],
        "in the schema's order"
    );
    let id = order["id"].as_str().unwrap();
    let (_, stored) = send(client.get(sandbox.url(&format!("/orders/{id}")))).await;
    assert_eq!(
        stored["status"], "confirmed",
        "the script's update() was stored"
    );
    let (_, events) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/events", sandbox.id))).await;
    assert_eq!(events["items"][0]["type"], "order.confirmed", "{events}");
    assert_eq!(events["items"][0]["data"]["id"], id);

    // A template named after its operation answers it, as valid JSON.
    let response = client
        .get(sandbox.url("/receipts/ord_1?tag=a&tag=b"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-sandbox-drift").is_none());
    let (status, receipt) = crate::helpers::json_of(response).await;
    assert_eq!(status, 200, "{receipt}");
    assert_ne!(
        receipt["issued_at"], "2026-01-01T00:00:00Z",
        "now() is the clock, not the import-time sample"
    );
    assert_eq!(
        (
            receipt["order"].clone(),
            receipt["total"].clone(),
            receipt["currency"].clone()
        ),
        (json!("ord_1"), json!(750), json!("eur"))
    );
    assert_eq!(
        receipt["seen"],
        json!({"tags": ["a", "b"], "method": "GET", "operation": "getReceipt"}),
        "a repeated query parameter is a list"
    );

    // Environment: a sandbox overrides the project's parameters.
    let (status, _) = send(
        app.admin(Method::PUT, &format!("/sandboxes/{}/env", sandbox.id))
            .json(&json!({"default_lang": "fr", "stock": {"apple": 100}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        send(client.get(sandbox.url("/greet/ada"))).await.1["greeting"],
        "Bonjour ada"
    );
    assert_eq!(
        send(
            client
                .post(sandbox.url("/orders"))
                .json(&json!({"sku": "apple", "quantity": 50}))
        )
        .await
        .0,
        201
    );
    let other = app
        .create_sandbox(json!({"project": "shop", "env": {"currency": "gbp"}}))
        .await;
    assert_eq!(
        send(client.get(other.url("/greet/ada"))).await.1["greeting"],
        "Hello ada"
    );
    assert_eq!(
        send(client.get(other.url("/receipts/ord_1"))).await.1["currency"],
        "gbp"
    );
}

#[tokio::test]
async fn answers_that_break_the_spec_are_reported_as_drift() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let response = app.client.get(sandbox.url("/drift")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let drift = response.headers()["x-sandbox-drift"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(drift.starts_with("/greeting:"), "{drift}");
    send(app.client.get(sandbox.url("/drift"))).await;
    let (_, report) = send(app.admin(Method::GET, "/projects/shop/drift")).await;
    let finding = &report["items"][0];
    assert_eq!(
        (
            finding["operation"].as_str(),
            finding["pointer"].as_str(),
            finding["count"].as_u64()
        ),
        (Some("drift"), Some("/greeting"), Some(2)),
        "{report}"
    );

    let (status, _) = send(
        app.admin(Method::PUT, "/projects/shop/settings")
            .json(&json!({"strict_responses": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = send(app.client.get(sandbox.url("/drift"))).await;
    assert_eq!(status, 500);
    assert_eq!(problem["type"], "urn:sbx:problem:response-drift");
    assert_eq!(problem["pointer"], "/greeting", "{problem}");
    assert_eq!(
        send(app.client.get(sandbox.url("/greet/x"))).await.0,
        200,
        "valid answers pass"
    );
}

#[tokio::test]
async fn files_that_do_not_compile_are_rejected_with_their_location() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let cases: [(&str, &str, &str); 4] = [
        (
            "/projects/shop/behaviours/greet",
            "let x = ;\n",
            "behaviours/greet.rhai",
        ),
        (
            "/projects/shop/behaviours/noSuchOperation",
            "resp.status = 200;",
            "behaviours/noSuchOperation.rhai",
        ),
        (
            "/projects/shop/templates/bad.j2",
            "{% for x in %}",
            "templates/bad.j2",
        ),
        (
            "/projects/shop/templates/broken.json.j2",
            "{\"a\": {{ 1 }},, }",
            "templates/broken.json.j2",
        ),
    ];
    for (path, source, file) in cases {
        let (status, problem) = send(app.admin(Method::PUT, path).body(source)).await;
        assert_eq!(status, 422, "{path}: {problem}");
        let error = &problem["errors"][0];
        assert_eq!(error["location"], file, "{problem}");
        assert!(
            error["line"].as_u64().is_some() || file.contains("noSuch"),
            "{problem}"
        );
    }
    let (_, project) = send(app.admin(Method::GET, "/projects/shop")).await;
    assert_eq!(project["revision"], 1, "rejected edits make no revision");
    assert_eq!(
        send(app.client.get(sandbox.url("/greet/ada"))).await.1["greeting"],
        "Hello ada",
        "the old revision keeps serving"
    );
    // A good edit goes live in the running sandbox.
    let (status, _) = send(
        app.admin(Method::PUT, "/projects/shop/behaviours/greet")
            .header("content-type", "application/json")
            .json(&json!({"source": "resp.body = #{ greeting: \"hi\", revision: 2 };"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        send(app.client.get(sandbox.url("/greet/ada"))).await.1["revision"],
        2
    );
    let (_, files) = send(app.admin(Method::GET, "/projects/shop/files")).await;
    assert!(
        files["behaviours"]["greet"]
            .as_str()
            .unwrap()
            .contains("revision: 2")
    );
    let (status, _) = send(app.admin(Method::DELETE, "/projects/shop/behaviours/greet")).await;
    assert_eq!(status, 200);
    let (_, synthesized) = send(app.client.get(sandbox.url("/greet/ada"))).await;
    assert!(
        synthesized["greeting"].is_string() && synthesized["greeting"] != "hi",
        "{synthesized}"
    );
}

/// Requests to another operation until `stop`: how many were answered,
/// and the slowest answer. Each must succeed.
async fn keep_answering(app: &TestApp, url: String, stop: Arc<AtomicBool>) -> (usize, Duration) {
    let client = app.client.clone();
    tokio::spawn(async move {
        let (mut answered, mut worst) = (0, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let status = client.get(&url).send().await.map(|r| r.status().as_u16());
            assert_eq!(status.ok(), Some(200));
            worst = worst.max(started.elapsed());
            answered += 1;
        }
        (answered, worst)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn hostile_scripts_stop_at_their_limits_while_others_are_served() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        // Far above what the other limits take, even on a loaded machine.
        config.scripts.timeout_ms = 10_000;
    })
    .await;
    let sandbox = shop(&app).await;
    let stop = Arc::new(AtomicBool::new(false));
    let others = {
        let (app_url, stop) = (sandbox.url("/receipts/ord_1"), stop.clone());
        let app = &app;
        async move { keep_answering(app, app_url, stop).await }
    };
    let hostile = async {
        let mut seen = Vec::new();
        for (kind, limits) in [
            ("loop", &["max_operations"][..]),
            ("recursion", &["max_call_depth"]),
            ("string", &["max_string_bytes"]),
            ("array", &["max_array_len"]),
            // Rhai checks a map's size on some writes only; operations bound the rest.
            ("map", &["max_map_len", "max_operations"]),
            ("throw", &[]),
        ] {
            // Four at once: more than this machine has cores.
            let requests: Vec<_> = (0..4)
                .map(|_| {
                    tokio::spawn(send(
                        app.client.get(sandbox.url(&format!("/hostile/{kind}"))),
                    ))
                })
                .collect();
            for request in requests {
                let (status, problem) = request.await.unwrap();
                assert_eq!(status, 500, "{kind}: {problem}");
                assert_eq!(problem["script"], "behaviours/hostile.rhai", "{problem}");
                match problem["limit"].as_str() {
                    Some(limit) => assert!(limits.contains(&limit), "{kind}: {problem}"),
                    None => assert!(limits.is_empty(), "{kind}: {problem}"),
                }
                assert!(problem["line"].as_u64().is_some(), "{problem}");
                if kind == "throw" {
                    assert!(
                        problem["detail"]
                            .as_str()
                            .unwrap()
                            .contains("out of cheese"),
                        "{problem}"
                    );
                }
                seen.push(kind);
            }
        }
        stop.store(true, Ordering::Relaxed);
        seen.len()
    };
    let (stopped, (answered, worst)) = tokio::join!(hostile, others);
    assert_eq!(stopped, 24);
    assert!(answered > 0);
    assert!(
        worst < Duration::from_secs(1),
        "a plain request waited {worst:?} behind hostile scripts"
    );
    assert_eq!(
        send(app.client.get(sandbox.url("/hostile/none"))).await.0,
        200,
        "the server is fine"
    );
    // Longer than the inline slice but within every limit: run again off
    // the worker, and answered.
    let (status, sum) = send(app.client.get(sandbox.url("/hostile/busy"))).await;
    assert_eq!((status, sum), (200, json!("4999950000")));
}

#[tokio::test]
async fn a_script_running_too_long_is_stopped_by_the_clock() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.scripts.timeout_ms = 100;
        config.scripts.max_operations = u64::MAX / 2;
    })
    .await;
    let sandbox = shop(&app).await;
    let started = Instant::now();
    let (status, problem) = send(app.client.get(sandbox.url("/hostile/loop"))).await;
    assert_eq!(status, 500);
    assert_eq!(problem["limit"], "timeout_ms", "{problem}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn twenty_revisions_swap_in_under_load_without_a_failed_request() {
    let app = spawn_app().await;
    let sandbox = shop(&app).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url) = (app.client.clone(), sandbox.url("/greet/ada"));
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        load.push(tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap_or_default();
                        let revision = body["revision"].as_u64().unwrap_or(0);
                        // Never back to an older revision once a newer one answered.
                        if revision < last {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        last = revision;
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for revision in 2..=21 {
        let source = format!("resp.body = #{{ greeting: \"v{revision}\", revision: {revision} }};");
        let (status, body) = send(
            app.admin(Method::PUT, "/projects/shop/behaviours/greet")
                .body(source),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["revision"], revision);
        // Requests answered between each swap and the next.
        let before = served.load(Ordering::Relaxed);
        eventually(
            "a request served after the swap",
            Duration::from_secs(10),
            || {
                let now = served.load(Ordering::Relaxed);
                async move { (now > before).then_some(()) }
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "load ran: {}",
        served.load(Ordering::Relaxed)
    );
    let (_, last) = send(app.client.get(sandbox.url("/greet/ada"))).await;
    assert_eq!(last["revision"], 21);
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{}", sandbox.id))).await;
    assert_eq!(
        (shown["revision"].clone(), shown["pinned"].clone()),
        (json!(21), json!(false))
    );
}
