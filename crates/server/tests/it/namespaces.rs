//! `isolation: namespace`, end to end as far as this machine allows: no
//! cluster runs here, so the server's real kube-rs client talks to a
//! recording fake of the Kubernetes API (server-side apply, get, list,
//! delete), every object it applied is checked by `kubernetes-validate`
//! against the Kubernetes 1.33 schemas, and the sandbox's own server is a
//! real `sbx` started from the ConfigMap and Secret it was given, as the
//! kubelet would mount them. What this does not exercise: a scheduler,
//! kubelet, NetworkPolicy enforcement, an ingress controller.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{Method as HttpMethod, StatusCode},
    response::{IntoResponse, Response},
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// A request the fake API received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    content_type: String,
}

/// The objects the fake holds, by API path, and what it was asked.
#[derive(Default)]
struct Cluster {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    /// Objects as applied, in order.
    applied: Vec<Value>,
    next_uid: u64,
}

type Fake = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// The namespace an API path is in, if any.
fn namespace_of(path: &str) -> Option<&str> {
    let rest = path.split("/namespaces/").nth(1)?;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        object["metadata"]["labels"][key] == value
    })
}

async fn api(State(fake): State<Fake>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 8 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let mut cluster = fake.lock().unwrap();
    cluster.requests.push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    });
    match parts.method {
        HttpMethod::PATCH => {
            let mut object: Value = serde_json::from_slice(&body).unwrap();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            if !path.ends_with(&format!("/{name}")) {
                return status(400, "BadRequest", "the name does not match the path");
            }
            let fresh = !cluster.objects.contains_key(&path);
            cluster.applied.push(object.clone());
            let uid = match cluster.objects.get(&path) {
                Some(old) => old["metadata"]["uid"].clone(),
                None => {
                    cluster.next_uid += 1;
                    json!(format!("00000000-0000-4000-8000-{:012}", cluster.next_uid))
                }
            };
            let old_status = cluster
                .objects
                .get(&path)
                .and_then(|old| old.get("status").cloned());
            object["metadata"]["uid"] = uid;
            object["metadata"]["resourceVersion"] = json!(cluster.requests.len().to_string());
            if let Some(old_status) = old_status {
                object["status"] = old_status;
            }
            cluster.objects.insert(path, object.clone());
            let code = if fresh {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, axum::Json(object)).into_response()
        }
        HttpMethod::GET if path == "/api/v1/namespaces" => {
            let selector = url_param(&query, "labelSelector");
            let items: Vec<Value> = cluster
                .objects
                .iter()
                .filter(|(p, o)| {
                    p.starts_with("/api/v1/namespaces/")
                        && p.matches('/').count() == 4
                        && labels_match(o, &selector)
                })
                .map(|(_, o)| o.clone())
                .collect();
            axum::Json(json!({
                "kind": "NamespaceList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"}, "items": items,
            }))
            .into_response()
        }
        HttpMethod::GET => match cluster.objects.get(&path) {
            Some(object) => axum::Json(object.clone()).into_response(),
            None => status(404, "NotFound", &format!("{path} not found")),
        },
        HttpMethod::DELETE => match cluster.objects.remove(&path) {
            Some(mut namespace) => {
                // A namespace takes what is in it along.
                let inside = namespace_of(&path).unwrap_or_default().to_owned();
                cluster
                    .objects
                    .retain(|p, _| namespace_of(p) != Some(inside.as_str()));
                namespace["status"] = json!({"phase": "Terminating"});
                axum::Json(namespace).into_response()
            }
            None => status(404, "NotFound", &format!("{path} not found")),
        },
        _ => status(405, "MethodNotAllowed", "not in the fake"),
    }
}

fn url_param(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The fake API on a random port, and a kubeconfig naming it.
async fn fake_cluster(dir: &std::path::Path) -> (Fake, std::path::PathBuf) {
    let fake = Fake::default();
    let url = serve_router(Router::new().fallback(api).with_state(fake.clone())).await;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: sbx\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: sbx\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    (fake, kubeconfig)
}

fn object(fake: &Fake, path: &str) -> Option<Value> {
    fake.lock().unwrap().objects.get(path).cloned()
}

fn deployment_path(id: &str) -> String {
    format!("/apis/apps/v1/namespaces/{id}/deployments/sbx")
}

/// What the sandbox's own server is given, written where the kubelet
/// would mount it; and its admin token.
fn mount_bundle(fake: &Fake, id: &str, dir: &std::path::Path) -> String {
    let config_map = object(fake, &format!("/api/v1/namespaces/{id}/configmaps/sbx")).unwrap();
    let secret = object(fake, &format!("/api/v1/namespaces/{id}/secrets/sbx")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("sandbox.json"),
        config_map["data"]["sandbox.json"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("keys.json"),
        secret["stringData"]["keys.json"].as_str().unwrap(),
    )
    .unwrap();
    secret["stringData"]["admin-token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn validate(objects: &[Value]) -> (bool, String) {
    let objects: Vec<&Value> = objects.iter().collect();
    let verdict = sbx_provision::validate::validate(&objects)
        .expect("kubernetes-validate runs: .ci/run installs it");
    (verdict.valid, verdict.said)
}

#[tokio::test]
async fn a_sandbox_gets_a_namespace_and_a_server_of_its_own() {
    let scratch = tempfile::tempdir().unwrap();
    let (fake, kubeconfig) = fake_cluster(scratch.path()).await;
    // Where the sandbox's own server will listen: its Service's address.
    let instance_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let instance_url = format!("http://{}", instance_listener.local_addr().unwrap());
    let settings = sbx_provision::NamespaceSettings {
        kubeconfig: Some(kubeconfig),
        service_url: instance_url.clone(),
        ..sbx_provision::NamespaceSettings::with_image("smartsandbox/sbx:0.1.0")
    };
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.namespaces = Some(settings);
    })
    .await;
    let project = crate::scenarios::payments_project("payments");
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");

    // Asked wrongly, or by a developer: refused, nothing made.
    let (status, body) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "payments", "isolation": "cluster"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("\"shared\" or \"namespace\"")
    );

    let sandbox = app
        .create_sandbox(json!({"project": "payments", "isolation": "namespace"}))
        .await;
    let id = sandbox.id.clone();
    assert_eq!(sandbox.body["isolation"]["mode"], "namespace");
    assert_eq!(sandbox.body["isolation"]["namespace"], id.as_str());
    assert_eq!(sandbox.body["isolation"]["state"], "provisioning");
    assert_eq!(sandbox.body["pinned"], true);

    // Applied: the namespace first, the Deployment before what it owns.
    eventually(
        "the namespace is applied",
        Duration::from_secs(10),
        || async {
            object(
                &fake,
                &format!("/apis/networking.k8s.io/v1/namespaces/{id}/ingresses/sbx"),
            )
        },
    )
    .await;
    let requests = fake.lock().unwrap().requests.clone();
    let patches: Vec<&Recorded> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches[0].path, format!("/api/v1/namespaces/{id}"));
    for patch in &patches {
        assert_eq!(
            patch.content_type, "application/apply-patch+yaml",
            "{patch:?}"
        );
        assert!(
            patch.query.contains("fieldManager=smartsandbox") && patch.query.contains("force=true"),
            "{patch:?}"
        );
    }
    let position = |suffix: &str| {
        patches
            .iter()
            .position(|p| p.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} applied"))
    };
    assert!(position("/deployments/sbx") < position("/services/sbx"));
    let uid = object(&fake, &deployment_path(&id)).unwrap()["metadata"]["uid"].clone();
    let service = object(&fake, &format!("/api/v1/namespaces/{id}/services/sbx")).unwrap();
    assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], uid);
    let namespace = object(&fake, &format!("/api/v1/namespaces/{id}")).unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    // What the provisioner sent through kube-rs is valid Kubernetes.
    let applied = fake.lock().unwrap().applied.clone();
    assert_eq!(applied.len(), 11);
    let (valid, said) = validate(&applied);
    assert!(valid, "{said}");

    // Until its server is available, its requests wait with a reason.
    let response = app
        .client
        .get(sandbox.url("/accounts"))
        .bearer_auth(&sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(retry_after(&response), 5);
    let (_, problem) = json_of(response).await;
    assert_eq!(problem["type"], "urn:sbx:problem:sandbox-provisioning");

    // The cluster reports its sbx available: the sandbox is ready.
    {
        let mut cluster = fake.lock().unwrap();
        let deployment = cluster.objects.get_mut(&deployment_path(&id)).unwrap();
        deployment["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1});
    }
    eventually("the sandbox is ready", Duration::from_secs(10), || async {
        let (_, body) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
        (body["isolation"]["state"] == "ready").then_some(())
    })
    .await;

    // A new time to live stays the servers', and is noted on its namespace.
    assert!(namespace["metadata"]["annotations"].is_null());
    let (status, body) = send(
        app.admin(Method::PUT, &format!("/sandboxes/{id}/ttl"))
            .json(&json!({"ttl_seconds": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let expires_at = body["expires_at"].as_str().unwrap().to_owned();
    eventually(
        "the namespace notes its expiry",
        Duration::from_secs(10),
        || async {
            let namespace = object(&fake, &format!("/api/v1/namespaces/{id}"))?;
            (namespace["metadata"]["annotations"]["sbx.dev/expires-at"] == expires_at.as_str())
                .then_some(())
        },
    )
    .await;

    // Its own server, from what the namespace was given.
    let bundle_dir = scratch.path().join("bundle");
    let instance_token = mount_bundle(&fake, &id, &bundle_dir);
    let instance_data = tempfile::tempdir().unwrap();
    let mut config = test_config(instance_data.path());
    config.database_url = None;
    config.sandbox_bundle = Some(bundle_dir.clone());
    config.admin_token = Some(instance_token.clone().into());
    let instance = sbx_server::start(config, instance_listener).await.unwrap();

    // Through the servers, by path and by host: its own server answers,
    // with its data and its key.
    let listed = send(
        app.client
            .get(sandbox.url("/accounts"))
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!(listed.0, 200, "{}", listed.1);
    let direct = send(
        app.client
            .get(sandbox.url_on(&instance_url, "/accounts"))
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!(listed, direct, "the same answer, from the same server");
    let (status, created) = send(
        app.client
            .post(sandbox.url("/customers"))
            .bearer_auth(&sandbox.api_key)
            .json(&json!({"name": "Rex", "email": "rex@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let customer = created["id"].as_str().unwrap().to_owned();
    let (status, read) = send(
        app.client
            .get(sandbox.url_on(&instance_url, &format!("/customers/{customer}")))
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!((status, &read["name"]), (200, &json!("Rex")), "{read}");
    let host = format!("{id}.sbx.localhost");
    let by_host = app
        .client
        .get(format!("{}/v1/customers/{customer}", app.url))
        .header("host", &host)
        .bearer_auth(&sandbox.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_host.status(), 200);
    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts"))
            .bearer_auth("sk_test_wrong"),
    )
    .await;
    assert_eq!(status, 401, "its own server checks its keys");

    // Its control plane: through the servers, answered by its own server
    // (whose request log is written in the background).
    eventually(
        "its own log has the create",
        Duration::from_secs(10),
        || async {
            let (status, logs) =
                send(app.admin(Method::GET, &format!("/sandboxes/{id}/logs"))).await;
            assert_eq!(status, 200, "{logs}");
            logs["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["method"] == "POST" && e["path"] == "/v1/customers")
                .then_some(())
        },
    )
    .await;
    let (status, _) = send(app.admin(Method::POST, &format!("/sandboxes/{id}/reset"))).await;
    assert_eq!(status, 200);
    let (status, _) = send(
        app.client
            .get(sandbox.url_on(&instance_url, &format!("/customers/{customer}")))
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!(status, 404, "the reset reached its own server");
    // Its own server makes no other sandbox.
    let (status, body) = send(
        app.client
            .post(format!("{instance_url}/api/v1/sandboxes"))
            .bearer_auth(&instance_token)
            .json(&json!({"project": "payments"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Deleted, or expired, or left behind: its namespace goes.
    let expiring = app
        .create_sandbox(json!({"project": "payments", "isolation": "namespace", "ttl_seconds": 1}))
        .await;
    fake.lock().unwrap().objects.insert(
        "/api/v1/namespaces/sbx-orphan".to_owned(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sbx-orphan", "labels": {
            "app.kubernetes.io/managed-by": "smartsandbox", "sbx.dev/install": "smartsandbox", "sbx.dev/sandbox": "sbx-orphan"}}}),
    );
    fake.lock().unwrap().objects.insert(
        "/api/v1/namespaces/someone-elses".to_owned(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "someone-elses", "labels": {
            "app.kubernetes.io/managed-by": "smartsandbox", "sbx.dev/install": "another", "sbx.dev/sandbox": "sbx-theirs"}}}),
    );
    let (status, _) = send(app.admin(Method::DELETE, &format!("/sandboxes/{id}"))).await;
    assert_eq!(status, 204);
    for gone in [id.as_str(), expiring.id.as_str(), "sbx-orphan"] {
        eventually(
            &format!("namespace {gone} is deleted"),
            Duration::from_secs(15),
            || async {
                object(&fake, &format!("/api/v1/namespaces/{gone}"))
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }
    assert!(
        object(&fake, "/api/v1/namespaces/someone-elses").is_some(),
        "another installation's namespace is left alone"
    );
    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts"))
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!(status, 404);
    let (_, metrics) = send(
        app.client
            .get(format!("{}/metrics", app.url))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    let metrics = metrics.as_str().unwrap().to_owned();
    for line in [
        "sbx_namespace_operations_total{outcome=\"applied\"} 3",
        "sbx_namespace_operations_total{outcome=\"deleted\"} 3",
        "sbx_isolated_sandboxes{state=\"ready\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    instance.stop().await.unwrap();
}

#[tokio::test]
async fn namespace_isolation_is_refused_where_it_cannot_be_given() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    let (status, body) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "isolation": "namespace"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("[namespaces]"),
        "{body}"
    );
    let (status, body) = send(app.admin(Method::GET, "/sandboxes")).await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (200, 0));

    // A bundle that is not one stops single-sandbox mode at start, saying so.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sandbox.json"), "{\"format\": 9}").unwrap();
    std::fs::write(dir.path().join("keys.json"), "[]").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.sandbox_bundle = Some(dir.path().to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = format!(
        "{:#}",
        sbx_server::start(config, listener).await.err().unwrap()
    );
    assert!(
        error.contains("single-sandbox mode") && error.contains("sandbox.json"),
        "{error}"
    );
}
