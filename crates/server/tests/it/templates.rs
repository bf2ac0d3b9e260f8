//! Session templates: packages installed once from the real registries
//! (PyPI, npm) in a jail that reaches only them, then seen read-only by
//! every session of the template.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, send, spawn_app_with};

/// Where the package registries resolve: on a network that routes them to
/// a mirror at a private address, an operator allows them with
/// `egress_allow` just so.
pub(crate) async fn registry_addresses() -> Vec<String> {
    let mut addresses = Vec::new();
    for host in ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"] {
        let found = tokio::net::lookup_host((host, 443))
            .await
            .unwrap_or_else(|e| panic!("{host} resolves (the registries are reachable): {e}"));
        addresses.extend(found.map(|a| a.ip().to_string()));
    }
    addresses
}

/// A server whose sessions may reach the package registries.
async fn server() -> TestApp {
    let addresses = registry_addresses().await;
    spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.egress_allow = addresses;
    })
    .await
}

/// Defines a template and waits for its build to end; its view.
pub(crate) async fn built(app: &TestApp, body: Value) -> Value {
    let (status, defined) = send(app.admin(Method::POST, "/templates").json(&body)).await;
    assert_eq!(status, 201, "{defined}");
    let name = body["name"].as_str().unwrap().to_owned();
    eventually("the build ends", Duration::from_secs(240), || async {
        let (_, view) = send(app.admin(Method::GET, &format!("/templates/{name}"))).await;
        (view["status"] != "building").then_some(view)
    })
    .await
}

/// Runs `body` in a new session of `template`, then deletes the session.
pub(crate) async fn run_in(app: &TestApp, template: &str, body: Value) -> Value {
    let (status, session) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": template})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["template"], template);
    let id = session["id"].as_str().unwrap();
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    send(app.admin(Method::DELETE, &format!("/sessions/{id}"))).await;
    run
}

/// Builds the `py-toml` template (`tomli-w` from PyPI) and checks that a
/// session of it imports the package from a read-only layer other
/// templates' sessions do not see; its view.
pub(crate) async fn toml_template_builds_read_only(app: &TestApp) -> Value {
    let toml = built(
        app,
        json!({"name": "py-toml", "base": "python", "packages": ["tomli-w==1.0.0"]}),
    )
    .await;
    assert_eq!(toml["status"], "ready", "{toml}");
    assert!(toml["size_bytes"].as_u64().unwrap() > 1_000, "{toml}");
    let (status, log) = send(app.admin(Method::GET, "/templates/py-toml/log")).await;
    assert_eq!(status, 200);
    assert!(
        log.as_str()
            .unwrap()
            .contains("Successfully installed tomli-w-1.0.0"),
        "{log}"
    );
    let ran = run_in(
        app,
        "py-toml",
        json!({"code": "import os, tomli_w\nprint(tomli_w.dumps({'a': 1}).strip())\nprint(bool(os.statvfs('/opt/template').f_flag & os.ST_RDONLY))\nopen('/opt/template/python/tomli_w/__init__.py', 'a')"}),
    )
    .await;
    // Root's files, on a read-only mount.
    assert_eq!(ran["stdout"], "a = 1\nTrue\n", "{ran}");
    let refused = ran["stderr"].as_str().unwrap();
    assert!(
        refused.contains("PermissionError") || refused.contains("Read-only file system"),
        "the layer cannot be written: {ran}"
    );
    // Sessions of other templates do not see it.
    let plain = run_in(app, "python", json!({"code": "import tomli_w"})).await;
    assert_eq!(plain["status"], "error", "{plain}");
    toml
}

#[tokio::test]
async fn packages_install_once_into_a_read_only_layer_every_session_sees() {
    let app = server().await;
    let toml = toml_template_builds_read_only(&app).await;

    // The same packages again: the layer is shared, nothing is built.
    let (status, again) =
        send(app.admin(Method::POST, "/templates").json(
            &json!({"name": "py-toml-too", "base": "python", "packages": ["tomli-w==1.0.0"]}),
        ))
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["status"], "ready");
    assert_eq!(again["digest"], toml["digest"]);
    assert_eq!(again["build_ms"], 0);
    // Defining it again unchanged changes nothing.
    let (status, same) = send(
        app.admin(Method::POST, "/templates")
            .json(&json!({"name": "py-toml", "base": "python", "packages": ["tomli-w==1.0.0"]})),
    )
    .await;
    assert_eq!(status, 200, "{same}");

    // Node: npm packages, required by name.
    let pad = built(
        &app,
        json!({"name": "js-pad", "base": "node", "packages": ["left-pad@1.3.0"]}),
    )
    .await;
    assert_eq!(pad["status"], "ready", "{pad}");
    let padded = run_in(
        &app,
        "js-pad",
        json!({"code": "console.log(require('left-pad')('7', 3, '0'))"}),
    )
    .await;
    assert_eq!(padded["stdout"], "007\n", "{padded}");

    let (status, list) = send(app.admin(Method::GET, "/templates")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "python",
            "node",
            "shell",
            "js-pad",
            "py-toml",
            "py-toml-too"
        ]
    );
    // Function behaviours run in a template of the project's choosing.
    const TOML_ORDER: &str = r#"
import json, tomli_w
def handler(event, context):
    return {"statusCode": 201, "body": json.dumps({"id": tomli_w.dumps({"n": 1}).strip(), "status": "pending", "items": [], "total_cents": 0, "currency": "EUR"})}
"#;
    let mut project =
        crate::functions::orders_project("toml-orders", &[("createOrder.py", TOML_ORDER)]);
    project["settings"] = json!({"functions": {"template": "py-toml"}});
    let sandbox = crate::functions::project_sandbox(&app, &project).await;
    let response = app
        .client
        .post(sandbox.url("/orders"))
        .json(&json!({"items": [{"sku": "tea", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["id"], "n = 1", "{order}");

    let (status, _) = send(app.admin(Method::DELETE, "/templates/py-toml-too")).await;
    assert_eq!(status, 204);
    assert!(
        run_in(&app, "py-toml", json!({"code": "import tomli_w"})).await["status"] == "ok",
        "the shared layer stays while a template names it"
    );
}

#[tokio::test]
async fn a_package_list_that_does_not_install_fails_its_build_never_a_session() {
    let app = server().await;
    let broken = built(
        &app,
        json!({"name": "broken", "base": "python", "packages": ["sbx-no-such-package-4242==1.0"]}),
    )
    .await;
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("ended error"),
        "{broken}"
    );
    let (_, log) = send(app.admin(Method::GET, "/templates/broken/log")).await;
    assert!(
        log.as_str()
            .unwrap()
            .contains("No matching distribution found for sbx-no-such-package-4242"),
        "{log}"
    );
    let (status, refused) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "broken"})),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("failed to build"),
        "{refused}"
    );
    let (status, unknown) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "nope"})),
    )
    .await;
    assert_eq!(status, 422, "{unknown}");

    for (body, pointer) in [
        (json!({"name": "python", "base": "python"}), "/name"),
        (json!({"name": "Bad_Name", "base": "python"}), "/name"),
        (json!({"name": "x", "base": "ruby"}), "/base"),
        (
            json!({"name": "x", "base": "python", "packages": ["--index-url=http://evil"]}),
            "/packages/0",
        ),
        (
            json!({"name": "x", "base": "python", "packages": ["six; rm -rf /"]}),
            "/packages/0",
        ),
    ] {
        let (status, problem) = send(app.admin(Method::POST, "/templates").json(&body)).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(problem.to_string().contains(pointer), "{body}: {problem}");
    }
}
