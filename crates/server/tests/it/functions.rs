//! Function behaviours: operations answered by Lambda handlers in
//! `functions/`, run in a code session of the sandbox (real bubblewrap
//! jails, which `.ci/run` installs).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Sandbox, TestApp, eventually, send, spawn_app};

/// `examples/functions` as a `POST /projects` body named `name`, with
/// `extra` files added to its `functions/`.
pub fn orders_project(name: &str, extra: &[(&str, &str)]) -> Value {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/functions");
    let files = sbx_engine::project::read_dir(&folder).expect("the example reads");
    let mut body = serde_json::to_value(&files).unwrap();
    for (file, source) in extra {
        body["functions"][*file] = json!(source);
    }
    body["name"] = json!(name);
    body["spec"] = json!(std::fs::read_to_string(folder.join("openapi.yaml")).unwrap());
    body
}

/// Imports `project` (a `POST /projects` body) and creates a sandbox of
/// it without auth.
pub async fn project_sandbox(app: &TestApp, project: &Value) -> Sandbox {
    let (status, body) = send(app.admin(Method::POST, "/projects").json(project)).await;
    assert_eq!(status, 201, "{body}");
    app.create_sandbox(json!({"project": project["name"], "auth": "none"}))
        .await
}

async fn orders_sandbox(app: &TestApp, extra: &[(&str, &str)]) -> Sandbox {
    let (status, body) = send(
        app.admin(Method::POST, "/projects")
            .json(&orders_project("orders", extra)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["functions"], json!(["createOrder", "getQuote"]));
    app.create_sandbox(json!({"project": "orders", "auth": "none"}))
        .await
}

async fn order(app: &TestApp, sandbox: &Sandbox, body: Value) -> reqwest::Response {
    app.client
        .post(sandbox.url("/orders"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The sessions the server started for `sandbox`'s functions.
async fn function_sessions(app: &TestApp, sandbox: &Sandbox) -> Vec<Value> {
    let (status, list) = send(app.admin(Method::GET, "/sessions")).await;
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sandbox"] == sandbox.id.as_str())
        .cloned()
        .collect()
}

#[tokio::test]
async fn lambda_handlers_answer_operations_and_stay_warm_between_requests() {
    let app = spawn_app().await;
    let sandbox = orders_sandbox(&app, &[]).await;

    let first = order(
        &app,
        &sandbox,
        json!({"items": [{"sku": "tea", "quantity": 2}]}),
    )
    .await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["x-served-by-this-worker"], "1");
    assert_eq!(first.headers()["content-type"], "application/json");
    assert!(first.headers().get("x-sandbox-drift").is_none());
    let created: Value = first.json().await.unwrap();
    assert_eq!(created["total_cents"], 900);
    assert_eq!(
        created["currency"], "EUR",
        "env.yaml reaches it as stage variables"
    );
    assert_eq!(created["status"], "pending");

    // The same worker serves the next request: its module state lives on,
    // and each invocation has a request id of its own.
    let second = order(
        &app,
        &sandbox,
        json!({"items": [{"sku": "tea", "quantity": 2}]}),
    )
    .await;
    assert_eq!(second.headers()["x-served-by-this-worker"], "2");
    let again: Value = second.json().await.unwrap();
    assert_ne!(again["id"], created["id"]);

    let refused = order(
        &app,
        &sandbox,
        json!({"items": [{"sku": "cake", "quantity": 11}]}),
    )
    .await;
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "quantity_too_large");

    // The spec's own checks still come first (its declared 422 here): the
    // handler never sees an invalid body.
    let invalid = order(&app, &sandbox, json!({"items": []})).await;
    assert_eq!(invalid.status(), 422);
    assert!(invalid.headers().get("x-served-by-this-worker").is_none());

    // A Node.js ES module, in the same session.
    let quote: Value = app
        .client
        .get(sandbox.url("/quotes/cake?quantity=3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        quote,
        json!({"sku": "cake", "quantity": 3, "price_cents": 2100, "currency": "EUR"})
    );

    // One session serves the sandbox, listed to admins with it.
    let sessions = function_sessions(&app, &sandbox).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["status"], "running");
    assert_eq!(sessions[0]["resources"]["memory_bytes"], 256 << 20);
}

#[tokio::test]
async fn the_event_is_api_gateways_and_unchanged_lambda_code_routes_it() {
    // An event router nobody here wrote (Powertools for AWS Lambda,
    // installed by .ci/run) routes the event and reads its parts. The
    // spec's server path (`/v1`) is part of the request's path, as behind
    // an API mapping: Powertools strips it.
    const ROUTER: &str = r#"
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
app = APIGatewayHttpResolver(strip_prefixes=["/v1"])

@app.get("/quotes/<sku>")
def quote(sku):
    event = app.current_event
    print("quoting", sku, "for", event.request_context.request_id)
    return {
        "sku": sku,
        "quantity": int(event.get_query_string_value("quantity", "1")),
        "price_cents": 1,
        "currency": event.stage_variables["currency"],
        "route": event.route_key,
        "cookies": event.cookies,
        "agent": event.request_context.http.user_agent,
        "header": event.headers["x-trace"],
    }

def handler(event, context):
    return app.resolve(event, context)
"#;
    let app = spawn_app().await;
    let mut project = orders_project("orders", &[]);
    let functions = project["functions"].as_object_mut().unwrap();
    functions.remove("getQuote.mjs");
    functions.insert("getQuote.py".into(), json!(ROUTER));
    let sandbox = project_sandbox(&app, &project).await;
    let response = app
        .client
        .get(sandbox.url("/quotes/tea?quantity=4"))
        .header("x-trace", "a")
        .header("x-trace", "b")
        .header("cookie", "session=1; theme=dark")
        .header("user-agent", "sdk/1.0")
        .header("x-request-id", "req-quote")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let drift = response.headers().get("x-sandbox-drift").cloned();
    let quote: Value = response.json().await.unwrap();
    assert_eq!(quote["quantity"], 4);
    assert_eq!(quote["currency"], "EUR");
    assert_eq!(quote["route"], "GET /v1/quotes/{sku}");
    assert_eq!(quote["cookies"], json!(["session=1", "theme=dark"]));
    assert_eq!(quote["agent"], "sdk/1.0");
    assert_eq!(quote["header"], "a,b", "repeated headers are joined");
    // What it answered is checked against the spec like any behaviour's:
    // `route` and the others are not in Quote, which allows them (no
    // additionalProperties: false), so no drift.
    assert!(drift.is_none(), "{drift:?}");

    // `explain` shows what the handler printed.
    app.drain().await;
    let (status, explained) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-quote/explain", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200, "{explained}");
    let step = explained["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "respond")
        .unwrap_or_else(|| panic!("{explained}"));
    assert_eq!(
        step["summary"],
        "answered 200 by the function functions/getQuote.py"
    );
    assert!(
        step["detail"]["logs"]
            .as_str()
            .unwrap()
            .starts_with("quoting tea for "),
        "{step}"
    );
}

/// A problem answer's status and document.
async fn problem(app: &TestApp, sandbox: &Sandbox, body: Value) -> (u16, Value) {
    let response = order(app, sandbox, body).await;
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn failing_handlers_answer_problems_that_say_why_and_the_next_request_recovers() {
    const MOODY: &str = r#"
import json, time

def handler(event, context):
    mood = json.loads(event["body"])["items"][0]["sku"]
    if mood == "raise":
        print("about to fail")
        raise KeyError("no such tea")
    if mood == "sleep":
        time.sleep(60)
    if mood == "hog":
        hog = []
        while True:
            hog.append(bytearray(16 << 20))
    if mood == "exit":
        import os
        os._exit(3)
    if mood == "bad-status":
        return {"statusCode": 42}
    if mood == "drift":
        return {"statusCode": 201, "body": json.dumps({"id": 7})}
    return {"statusCode": 201, "body": json.dumps({"id": "o_1", "status": "pending", "items": [], "total_cents": 0, "currency": "EUR"})}
"#;
    let app = spawn_app().await;
    let mut project = orders_project("orders", &[("createOrder.py", MOODY)]);
    project["settings"] = json!({"functions": {"timeout_ms": 1500, "memory_mib": 64}});
    let sandbox = project_sandbox(&app, &project).await;
    let mood = |sku: &str| json!({"items": [{"sku": sku, "quantity": 1}]});

    let (status, raised) = problem(&app, &sandbox, mood("raise")).await;
    assert_eq!(status, 500);
    assert_eq!(raised["type"], "urn:sbx:problem:function-error");
    assert_eq!(raised["function"], "functions/createOrder.py");
    assert_eq!(raised["errorType"], "KeyError");
    assert_eq!(raised["errorMessage"], "'no such tea'");
    assert!(
        raised["stackTrace"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{raised}"
    );
    assert!(
        raised["logs"]
            .as_str()
            .unwrap()
            .starts_with("about to fail\n"),
        "{raised}"
    );

    let started = std::time::Instant::now();
    let (status, late) = problem(&app, &sandbox, mood("sleep")).await;
    assert_eq!(status, 504, "{late}");
    assert_eq!(late["type"], "urn:sbx:problem:function-timeout");
    assert!(
        late["detail"].as_str().unwrap().contains("1500 ms"),
        "{late}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let (status, hog) = problem(&app, &sandbox, mood("hog")).await;
    assert_eq!(status, 502, "{hog}");
    assert_eq!(hog["type"], "urn:sbx:problem:function-crashed");
    assert!(
        hog["detail"].as_str().unwrap().contains("out of memory"),
        "{hog}"
    );

    let (status, exited) = problem(&app, &sandbox, mood("exit")).await;
    assert_eq!(status, 502, "{exited}");
    assert!(
        exited["detail"].as_str().unwrap().contains("exit"),
        "{exited}"
    );

    let (status, bad) = problem(&app, &sandbox, mood("bad-status")).await;
    assert_eq!(status, 500, "{bad}");
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("statusCode 42 is not an HTTP status"),
        "{bad}"
    );

    // An answer that breaks the spec is reported like any behaviour's.
    let drifted = order(&app, &sandbox, mood("drift")).await;
    assert_eq!(drifted.status(), 201);
    assert!(drifted.headers().contains_key("x-sandbox-drift"));

    // After every failure, a new worker answers.
    let fine = order(&app, &sandbox, mood("tea")).await;
    assert_eq!(fine.status(), 201);

    // A selected scenario answers instead of the function: none declared
    // here, so naming one is refused as for any operation.
    let scenario = app
        .client
        .post(sandbox.url("/orders"))
        .header("x-sandbox-scenario", "declined")
        .json(&mood("tea"))
        .send()
        .await
        .unwrap();
    assert_eq!(scenario.status(), 400);
}

#[tokio::test]
async fn a_new_revision_runs_new_code_and_a_deleted_sandbox_ends_its_session() {
    let app = spawn_app().await;
    let sandbox = orders_sandbox(&app, &[]).await;
    let before = order(
        &app,
        &sandbox,
        json!({"items": [{"sku": "tea", "quantity": 1}]}),
    )
    .await;
    assert_eq!(before.status(), 201);
    let first_session = function_sessions(&app, &sandbox).await[0]["id"].clone();

    const FIXED_PRICE: &str = r#"
import json
def handler(event, context):
    return {"statusCode": 201, "body": json.dumps({"id": "o_2", "status": "confirmed", "items": [], "total_cents": 1, "currency": "EUR"})}
"#;
    let (status, body) = send(
        app.admin(Method::PUT, "/projects/orders/functions/createOrder.py")
            .header("content-type", "text/plain")
            .body(FIXED_PRICE),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let after: Value = order(
        &app,
        &sandbox,
        json!({"items": [{"sku": "tea", "quantity": 1}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(after["status"], "confirmed", "{after}");
    let sessions = function_sessions(&app, &sandbox).await;
    assert_eq!(sessions.len(), 1, "the old session ended: {sessions:?}");
    assert_ne!(sessions[0]["id"], first_session);

    let (status, _) = send(app.admin(Method::DELETE, &format!("/sandboxes/{}", sandbox.id))).await;
    assert_eq!(status, 204);
    eventually(
        "the deleted sandbox's session ends",
        Duration::from_secs(10),
        || async {
            function_sessions(&app, &sandbox)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn function_files_that_answer_nothing_or_twice_are_refused_at_import() {
    let app = spawn_app().await;
    for (extra, problem) in [
        (
            vec![("nothing.py", "def handler(e, c): pass")],
            "the spec has no operation",
        ),
        (
            vec![("createOrder.js", "exports.handler = async () => 1;")],
            "also answers createOrder",
        ),
        (vec![("createOrder.rb", "")], "functions must be .py"),
    ] {
        let (status, body) = send(
            app.admin(Method::POST, "/projects")
                .json(&orders_project("orders", &extra)),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(problem), "{problem}: {body}");
    }
    let mut scripted = orders_project("orders", &[]);
    scripted["behaviours"] = json!({"createOrder": "resp.body = #{};"});
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&scripted)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("keep the script or the function"),
        "{body}"
    );
    let mut slow = orders_project("orders", &[]);
    slow["settings"] = json!({"functions": {"timeout_ms": 600000}});
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&slow)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("functions.timeout_ms must be 1 to 30000"),
        "{body}"
    );
}

#[tokio::test]
async fn sbx_mock_runs_no_sessions_and_says_so() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/functions");
    let files = sbx_engine::project::read_dir(&folder).unwrap();
    let spec = std::fs::read_to_string(folder.join("openapi.yaml")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = sbx_server::MockOptions {
        auth: sbx_server::AuthMode::None,
        limits: sbx_server::Limits::default(),
        scripts: sbx_server::ScriptLimits::default(),
        allow_private_egress: false,
    };
    let server = sbx_server::start_mock(spec, files, listener, options)
        .await
        .unwrap();
    let (status, problem) =
        send(reqwest::Client::new().get(format!("http://{}/v1/quotes/tea", server.local_addr)))
            .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:sbx:problem:function-unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("sbx serve"),
        "{problem}"
    );
}

#[tokio::test]
async fn stray_output_and_oversized_answers_never_confuse_the_server() {
    const HOSTILE: &str = r#"
import json, os, sys

def handler(event, context):
    mood = json.loads(event["body"])["items"][0]["sku"]
    # Lines that look like answers, or are not JSON, on every descriptor
    # it may write (the answers' pipe among them).
    for fd in range(1, 16):
        try:
            os.write(fd, b'{"id": "forged", "ok": 1}\nnot json\n')
        except OSError:
            pass
    if mood == "forge-error":
        forged = {"id": context.aws_request_id, "error": {"errorType": "Forged", "type": "urn:evil", "status": 200}}
        for fd in range(1, 16):
            try:
                os.write(fd, json.dumps(forged).encode() + b"\n")
            except OSError:
                pass
    if mood == "huge":
        return {"statusCode": 201, "body": "x" * (7 << 20)}
    if mood == "binary":
        return {"statusCode": 201, "headers": {"content-type": "application/octet-stream"}, "body": "AAEC", "isBase64Encoded": True}
    return {"statusCode": 201, "body": json.dumps({"id": "o", "status": "pending", "items": [], "total_cents": 0, "currency": "EUR"})}
"#;
    let app = spawn_app().await;
    let project = orders_project("orders", &[("createOrder.py", HOSTILE)]);
    let sandbox = project_sandbox(&app, &project).await;
    let mood = |sku: &str| json!({"items": [{"sku": sku, "quantity": 1}]});
    let fine = order(&app, &sandbox, mood("tea")).await;
    assert_eq!(fine.status(), 201);
    let fine: Value = fine.json().await.unwrap();
    assert_eq!(
        fine["id"], "o",
        "the forged line was not taken for the answer"
    );

    let (status, huge) = problem(&app, &sandbox, mood("huge")).await;
    assert_eq!(status, 500, "{huge}");
    assert_eq!(huge["errorType"], "Function.ResponseSizeTooLarge", "{huge}");

    // An error it forges cannot change the problem's own members.
    let (status, forged) = problem(&app, &sandbox, mood("forge-error")).await;
    assert_eq!(status, 500, "{forged}");
    assert_eq!(forged["type"], "urn:sbx:problem:function-error", "{forged}");
    assert_eq!(forged["status"], 500);
    assert_eq!(forged["errorType"], "Forged");
    let after = order(&app, &sandbox, mood("tea")).await;
    assert_eq!(
        after.status(),
        201,
        "the real answer left behind is skipped"
    );

    let binary = order(&app, &sandbox, mood("binary")).await;
    assert_eq!(binary.status(), 201);
    assert_eq!(&binary.bytes().await.unwrap()[..], [0, 1, 2]);
}

#[tokio::test]
async fn overlapping_requests_get_a_worker_each() {
    const SLOW: &str = r#"
import json, os, time

WORKER = os.urandom(8).hex()  # made once per worker, at import

def handler(event, context):
    time.sleep(0.4)
    return {"statusCode": 201, "body": json.dumps({"id": WORKER, "status": "pending", "items": [], "total_cents": 0, "currency": "EUR"})}
"#;
    // Half the server's parallel user work may serve one sandbox: 4 here.
    let app = crate::helpers::spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.limits.max_parallel_scripts = 8;
    })
    .await;
    let project = orders_project("orders", &[("createOrder.py", SLOW)]);
    let sandbox = project_sandbox(&app, &project).await;
    let body = json!({"items": [{"sku": "tea", "quantity": 1}]});
    let requests = (0..6).map(|_| async {
        let answered = order(&app, &sandbox, body.clone()).await;
        assert_eq!(answered.status(), 201);
        let order: Value = answered.json().await.unwrap();
        order["id"].as_str().unwrap().to_owned()
    });
    let mut workers: Vec<String> = futures_util::future::join_all(requests).await;
    workers.sort();
    workers.dedup();
    assert!(
        (2..=4).contains(&workers.len()),
        "six overlapping requests ran in 2 to 4 workers: {workers:?}"
    );
}
