use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PETSTORE, json_of, send, spawn_app, spawn_app_with};

#[tokio::test]
async fn import_answers_with_the_operations() {
    let app = spawn_app().await;
    let body = app.import_ok("pets", PETSTORE).await;
    assert_eq!(body["name"], "pets");
    assert_eq!(body["revision"], 1);
    assert_eq!(body["base_path"], "/v1");
    let operations = body["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 7);
    assert!(
        operations.contains(&json!({"id": "getPet", "method": "GET", "path": "/pets/{petId}"}))
    );
}

#[tokio::test]
async fn the_control_plane_needs_the_admin_token() {
    let app = spawn_app().await;
    let (status, body) = send(app.client.get(format!("{}/api/v1/projects", app.url))).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:sbx:problem:unauthorized");
    let (status, _) = send(
        app.client
            .get(format!("{}/api/v1/projects", app.url))
            .bearer_auth("wrong-token-wrong"),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_broken_spec_lists_every_problem_with_its_pointer() {
    let app = spawn_app().await;
    let spec = r##"
openapi: 3.0.3
info: { title: broken, version: "1" }
paths:
  /a:
    get:
      parameters:
        - { name: x, in: body }
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Missing" }
        "2YY": { description: bad key }
"##;
    let (status, body) = json_of(app.import("broken", spec).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:sbx:problem:invalid-spec");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(
        errors[0]["pointer"],
        "/paths/~1a/get/responses/200/content/application~1json/schema/$ref"
    );
    // Fix the reference: the next problems surface, each located.
    let spec = spec.replace("#/components/schemas/Missing", "#/paths");
    let (status, body) = json_of(app.import("broken", &spec).await).await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/paths/~1a/get/parameters/0/in"),
        "{body}"
    );
    assert!(pointers.contains(&"/paths/~1a/get/responses/2YY"), "{body}");
}

#[tokio::test]
async fn malformed_and_hostile_specs_get_clear_errors() {
    let app = spawn_app().await;
    for (spec, expected) in [
        ("openapi: 3.0.0\ninfo: [unclosed", "invalid YAML"),
        ("{\"openapi\": ", "invalid JSON"),
        (
            "openapi: 4.0.0\ninfo: {title: x, version: '1'}\npaths: {}",
            "unsupported OpenAPI version",
        ),
        ("just text", "must be a JSON or YAML object"),
        ("info: {title: x}", "not an OpenAPI document"),
    ] {
        let (status, body) = json_of(app.import("bad", spec).await).await;
        assert_eq!(status, 422, "{spec}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(expected),
            "{spec}: {body}"
        );
    }
    let nested = format!(
        "openapi: 3.0.0\ninfo: {}{}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let (status, body) = json_of(app.import("deep", &nested).await).await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("deeper than"),
        "{body}"
    );
    let (status, body) = json_of(app.import("Bad Name", "openapi: 3.0.0").await).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["pointer"], "/name");
    // Nothing was stored by any of these.
    let (_, list) = send(app.admin(Method::GET, "/projects")).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn specs_over_the_size_limit_are_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_with(dir, |c| c.limits.max_spec_bytes = 1024 * 1024).await;
    let mut spec =
        String::from("openapi: 3.0.0\ninfo: {title: big, version: '1'}\npaths: {}\nx-padding: \"");
    spec.push_str(&"a".repeat(1024 * 1024));
    spec.push('"');
    let (status, body) = json_of(app.import("big", &spec).await).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("over the limit"),
        "{body}"
    );
}

#[tokio::test]
async fn external_refs_uploaded_over_the_api_are_named() {
    let app = spawn_app().await;
    let spec = "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: 'responses.yaml#/Ok'}\n";
    let (status, body) = json_of(app.import("ext", spec).await).await;
    assert_eq!(status, 422);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("sbx import"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_json_and_unknown_fields_are_problems() {
    let app = spawn_app().await;
    let (status, body) = send(
        app.admin(Method::POST, "/sandboxes")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], 400);
    let (status, body) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"projec": "x"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("projec"),
        "{body}"
    );
    let (status, _) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "nope"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(app.admin(Method::GET, "/nothing")).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:sbx:problem:no-control-route");

    // JSON as `curl -d` sends it (labelled a form, or unlabelled) is taken
    // as JSON; another media type is refused.
    for label in [Some("application/x-www-form-urlencoded"), None] {
        let mut request = app
            .admin(Method::POST, "/sandboxes")
            .body(r#"{"project": "nope"}"#);
        if let Some(label) = label {
            request = request.header("content-type", label);
        }
        assert_eq!(send(request).await.0, 404, "{label:?}");
    }
    let (status, body) = send(
        app.admin(Method::POST, "/sandboxes")
            .header("content-type", "text/plain")
            .body(r#"{"project": "nope"}"#),
    )
    .await;
    assert_eq!(
        (status, body["title"].as_str()),
        (415, Some("Unsupported media type"))
    );
}

#[tokio::test]
async fn sandbox_fields_are_validated() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    for (body, pointer) in [
        (json!({"project": "pets", "ttl_seconds": 0}), "/ttl_seconds"),
        (json!({"project": "pets", "auth": "maybe"}), "/auth"),
        (json!({"project": "pets", "seed": {"a": 1}}), "/seed"),
        (
            json!({"project": "pets", "label": "x".repeat(300)}),
            "/label",
        ),
    ] {
        let (status, answer) = send(app.admin(Method::POST, "/sandboxes").json(&body)).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["errors"][0]["pointer"], pointer);
    }
    let (status, _) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "revision": 2})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let app = spawn_app().await;
    let (status, doc) = send(app.client.get(format!("{}/api/v1/openapi.json", app.url))).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "DELETE /api/v1/me/tokens/{token}",
            "DELETE /api/v1/projects/{name}",
            "DELETE /api/v1/projects/{name}/{kind}/{item}",
            "DELETE /api/v1/sandboxes/{id}",
            "DELETE /api/v1/sandboxes/{id}/chaos",
            "DELETE /api/v1/sandboxes/{id}/keys/{key}",
            "DELETE /api/v1/sandboxes/{id}/oauth/clients/{client_id}",
            "DELETE /api/v1/sandboxes/{id}/oauth/users/{sub}",
            "DELETE /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
            "DELETE /api/v1/sessions/{id}",
            "DELETE /api/v1/sessions/{id}/files",
            "DELETE /api/v1/snapshots/{name}",
            "DELETE /api/v1/templates/{name}",
            "GET /api/v1/accounts",
            "GET /api/v1/accounts/{account}",
            "GET /api/v1/audit",
            "GET /api/v1/me",
            "GET /api/v1/me/tokens",
            "GET /api/v1/projects",
            "GET /api/v1/projects/{name}",
            "GET /api/v1/projects/{name}/coverage",
            "GET /api/v1/projects/{name}/drift",
            "GET /api/v1/projects/{name}/files",
            "GET /api/v1/projects/{name}/revisions",
            "GET /api/v1/requests/{request_id}/explain",
            "GET /api/v1/sandboxes",
            "GET /api/v1/sandboxes/{id}",
            "GET /api/v1/sandboxes/{id}/clock",
            "GET /api/v1/sandboxes/{id}/event-types",
            "GET /api/v1/sandboxes/{id}/events",
            "GET /api/v1/sandboxes/{id}/events/stream",
            "GET /api/v1/sandboxes/{id}/keys",
            "GET /api/v1/sandboxes/{id}/logs",
            "GET /api/v1/sandboxes/{id}/logs.har",
            "GET /api/v1/sandboxes/{id}/logs/stream",
            "GET /api/v1/sandboxes/{id}/logs/{request_id}",
            "GET /api/v1/sandboxes/{id}/logs/{request_id}/explain",
            "GET /api/v1/sandboxes/{id}/logs/{request_id}/snippets",
            "GET /api/v1/sandboxes/{id}/oauth",
            "GET /api/v1/sandboxes/{id}/oauth/clients",
            "GET /api/v1/sandboxes/{id}/oauth/users",
            "GET /api/v1/sandboxes/{id}/resources/{collection}/{rid}/history",
            "GET /api/v1/sandboxes/{id}/scenarios",
            "GET /api/v1/sandboxes/{id}/timeline",
            "GET /api/v1/sandboxes/{id}/webhook-endpoints",
            "GET /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
            "GET /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/deliveries",
            "GET /api/v1/sessions",
            "GET /api/v1/sessions/{id}",
            "GET /api/v1/sessions/{id}/executions",
            "GET /api/v1/sessions/{id}/executions/{eid}",
            "GET /api/v1/sessions/{id}/executions/{eid}/stream",
            "GET /api/v1/sessions/{id}/files",
            "GET /api/v1/snapshots",
            "GET /api/v1/templates",
            "GET /api/v1/templates/{name}",
            "GET /api/v1/templates/{name}/log",
            "PATCH /api/v1/accounts/{account}",
            "PATCH /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
            "PATCH /api/v1/sessions/{id}",
            "POST /api/v1/accounts",
            "POST /api/v1/auth/login",
            "POST /api/v1/auth/logout",
            "POST /api/v1/invitations",
            "POST /api/v1/me/tokens",
            "POST /api/v1/projects",
            "POST /api/v1/sandboxes",
            "POST /api/v1/sandboxes/{id}/clock",
            "POST /api/v1/sandboxes/{id}/events",
            "POST /api/v1/sandboxes/{id}/keys",
            "POST /api/v1/sandboxes/{id}/keys/{key}/roll",
            "POST /api/v1/sandboxes/{id}/logs/{request_id}/replay",
            "POST /api/v1/sandboxes/{id}/oauth/clients",
            "POST /api/v1/sandboxes/{id}/oauth/keys/rotate",
            "POST /api/v1/sandboxes/{id}/reset",
            "POST /api/v1/sandboxes/{id}/resources/{collection}/{rid}/transition",
            "POST /api/v1/sandboxes/{id}/seed",
            "POST /api/v1/sandboxes/{id}/webhook-endpoints",
            "POST /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver",
            "POST /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret",
            "POST /api/v1/sessions",
            "POST /api/v1/sessions/{id}/executions",
            "POST /api/v1/sessions/{id}/snapshots",
            "POST /api/v1/templates",
            "PUT /api/v1/projects/{name}/env",
            "PUT /api/v1/projects/{name}/settings",
            "PUT /api/v1/projects/{name}/spec",
            "PUT /api/v1/projects/{name}/{kind}/{item}",
            "PUT /api/v1/sandboxes/{id}/chaos",
            "PUT /api/v1/sandboxes/{id}/env",
            "PUT /api/v1/sandboxes/{id}/oauth/users/{sub}",
            "PUT /api/v1/sandboxes/{id}/rate-limits",
            "PUT /api/v1/sandboxes/{id}/scenario",
            "PUT /api/v1/sandboxes/{id}/ttl",
            "PUT /api/v1/sessions/{id}/files",
        ]
    );
    // Every documented route is served (never the control plane's "no route").
    for entry in &documented {
        let (method, path) = entry.split_once(' ').unwrap();
        let path = path
            .replace("{name}", "x")
            .replace("{kind}", "behaviours")
            .replace("{item}", "op")
            .replace("{id}", "sbx-x")
            .replace("{request_id}", "req_x")
            .replace("{eid}", "exe_x")
            .replace("/api/v1", "");
        let response = app
            .admin(method.parse().unwrap(), &path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_ne!(status, 405, "{entry}");
        assert_ne!(
            body.get("type").and_then(Value::as_str),
            Some("urn:sbx:problem:no-control-route"),
            "{entry}"
        );
    }
    // Every call behind the token documents the 401 it answers without it.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_some() {
                assert!(
                    operation["responses"].get("401").is_some(),
                    "{method} {path} does not document 401"
                );
            }
        }
    }
    // Every reference resolves, so generators and fuzzers can use it.
    let mut references = Vec::new();
    collect_references(&doc, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            if let Some(Value::String(reference)) = members.get("$ref") {
                found.push(reference.clone());
            }
            members.values().for_each(|v| collect_references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn projects_list_show_and_delete_with_their_sandboxes() {
    let app = spawn_app().await;
    app.import_ok("pets", PETSTORE).await;
    let sandbox = app.create_sandbox(json!({"project": "pets"})).await;
    let (_, list) = send(app.admin(Method::GET, "/projects")).await;
    assert_eq!(list["items"][0]["name"], "pets");
    let (status, project) = send(app.admin(Method::GET, "/projects/pets")).await;
    assert_eq!(status, 200);
    assert_eq!(project["title"], "Test Petstore");
    let (status, _) = json_of(app.import("pets", PETSTORE).await).await;
    assert_eq!(status, 409);
    let response = app
        .admin(Method::DELETE, "/projects/pets")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = send(app.admin(Method::GET, &format!("/sandboxes/{}", sandbox.id))).await;
    assert_eq!(status, 404);
    let (status, _) = send(app.client.get(sandbox.url("/pets"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn invalid_regular_expressions_are_ignored_with_a_warning() {
    let app = spawn_app().await;
    let spec = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {
        "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "pattern": "[a-zA-Z]{1-70"}}],
        "responses": {"200": {"description": "ok"}}}}}}"#;
    let body = app.import_ok("regex", spec).await;
    assert_eq!(
        body["warnings"][0]["pointer"],
        "/paths/~1a/get/parameters/0/schema/pattern"
    );
    assert!(
        body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ignored")
    );
}

#[tokio::test]
async fn every_control_plane_change_is_audited() {
    let mut app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let (status, _) = send(
        app.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
            .header("x-request-id", "req-audited")
            .header("user-agent", "audit-test/1.0")
            .json(&json!({"advance": "P1D"})),
    )
    .await;
    assert_eq!(status, 200);
    let refused = app
        .client
        .delete(format!("{}/api/v1/projects/pets", app.url))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (status, failed) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "nope"})),
    )
    .await;
    assert_eq!(status, 404, "{failed}");
    let (_, listed) = send(app.admin(Method::GET, "/projects")).await;
    assert!(listed.is_object());

    let (status, audit) = send(app.admin(Method::GET, "/audit")).await;
    assert_eq!(status, 200, "{audit}");
    let entries: Vec<(&str, &str, &str, i64)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("admin", "POST /api/v1/sandboxes", "failed", 404),
            (
                "anonymous",
                "DELETE /api/v1/projects/{name}",
                "refused",
                401
            ),
            (
                "admin",
                "POST /api/v1/sandboxes/{id}/clock",
                "succeeded",
                200
            ),
            ("admin", "POST /api/v1/sandboxes", "succeeded", 201),
            ("admin", "POST /api/v1/projects", "succeeded", 201),
        ],
        "reads are not audited; changes and refused attempts are"
    );
    let items = audit["items"].as_array().unwrap();
    assert_eq!(
        items[0]["detail"], failed["detail"],
        "a failure says why, as its answer did"
    );
    let clock = &items[2];
    assert_eq!(clock["request_id"], "req-audited");
    assert_eq!(
        clock["target"],
        format!("/api/v1/sandboxes/{}/clock", sandbox.id)
    );
    assert_eq!(clock["client"], "127.0.0.1");
    assert_eq!(clock["user_agent"], "audit-test/1.0");
    assert_eq!(clock["resource"], Value::Null);
    assert_eq!(
        items[3]["resource"],
        format!("/api/v1/sandboxes/{}", sandbox.id),
        "a creation names what it created"
    );
    assert_eq!(items[4]["resource"], "/api/v1/projects/pets");

    // Filters: by what a change touched, by outcome, actor, action, time.
    let filtered = |query: String| {
        let request = app.admin(Method::GET, &format!("/audit?{query}"));
        async move {
            let (status, page) = send(request).await;
            assert_eq!(status, 200, "{query}: {page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["action"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(format!("target={}", sandbox.id)).await,
        [
            "POST /api/v1/sandboxes/{id}/clock",
            "POST /api/v1/sandboxes"
        ]
    );
    assert_eq!(
        filtered("outcome=refused".into()).await,
        ["DELETE /api/v1/projects/{name}"]
    );
    assert_eq!(filtered("actor=anonymous".into()).await.len(), 1);
    assert_eq!(
        filtered("outcome=failed&action=sandboxes".into())
            .await
            .len(),
        1
    );
    assert_eq!(filtered("action=/clock".into()).await.len(), 1);
    assert!(
        filtered("since=2999-01-01T00:00:00Z".into())
            .await
            .is_empty()
    );
    assert_eq!(filtered("until=2999-01-01T00:00:00Z".into()).await.len(), 5);

    // Pages of two, older with each cursor, five entries in all.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (status, page) = send(app.admin(Method::GET, &format!("/audit?{query}"))).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["at"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);

    for (query, parameter) in [
        ("cursor=x", "cursor"),
        ("limit=0", "limit"),
        ("outcome=maybe", "outcome"),
        ("since=yesterday", "since"),
        ("who=me", "who"),
    ] {
        let (status, problem) = send(app.admin(Method::GET, &format!("/audit?{query}"))).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], parameter, "{problem}");
    }

    // The audit log is kept in the store: a restart keeps it.
    app.stop().await;
    let data_dir = std::mem::replace(&mut app.data_dir, tempfile::tempdir().unwrap());
    let app = spawn_app_with(data_dir, |_| {}).await;
    let (_, after) = send(app.admin(Method::GET, "/audit?limit=5")).await;
    assert_eq!(after["items"], audit["items"]);
}
