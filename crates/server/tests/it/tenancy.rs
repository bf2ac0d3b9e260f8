//! Tenancy: two developers, each with a sandbox, an endpoint, a record and
//! a logged request, cannot see or touch each other's anything. The routes
//! tried are read from the control plane's OpenAPI document, which the
//! router is made from: a new route is tried as soon as it exists, and one
//! this test cannot classify fails it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    accounts::Developer,
    helpers::{TestApp, send, spawn_app},
};

/// What one developer owns, named as the routes' parameters name it.
struct Owned {
    developer: Developer,
    sandbox: String,
    endpoint: String,
    key: String,
    request_id: String,
    payment: String,
    client: String,
    session: String,
    execution: String,
    template: String,
}

async fn furnish(app: &TestApp, email: &str) -> Owned {
    let developer = app.developer(email).await;
    let (status, sandbox) = send(
        app.as_developer(&developer, Method::POST, "/sandboxes")
            .json(&json!({"project": "payments", "auth": "none"})),
    )
    .await;
    assert_eq!(status, 201, "{sandbox}");
    let id = sandbox["id"].as_str().unwrap().to_owned();
    let (status, endpoint) = send(
        app.as_developer(
            &developer,
            Method::POST,
            &format!("/sandboxes/{id}/webhook-endpoints"),
        )
        .json(&json!({"url": "https://hooks.example.com/in"})),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let response = app
        .client
        .post(format!("{}/payments", sandbox["base_url"].as_str().unwrap()))
        .json(&json!({"amount": 2000, "currency": "usd",
            "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let payment: Value = response.json().await.unwrap();
    let (_, keys) =
        send(app.as_developer(&developer, Method::GET, &format!("/sandboxes/{id}/keys"))).await;
    let (status, client) = send(
        app.as_developer(
            &developer,
            Method::POST,
            &format!("/sandboxes/{id}/oauth/clients"),
        )
        .json(&json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let (status, session) = send(
        app.as_developer(&developer, Method::POST, "/sessions")
            .json(&json!({"template": "shell"})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let session = session["id"].as_str().unwrap().to_owned();
    let (status, execution) = send(
        app.as_developer(
            &developer,
            Method::POST,
            &format!("/sessions/{session}/executions"),
        )
        .json(&json!({"code": "echo mine"})),
    )
    .await;
    assert_eq!(status, 200, "{execution}");
    // A snapshot named after the session (the default name).
    let (status, snapshot) = send(
        app.as_developer(
            &developer,
            Method::POST,
            &format!("/sessions/{session}/snapshots"),
        )
        .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{snapshot}");
    let template = format!("t-{}", developer.id.to_ascii_lowercase().replace('_', "-"));
    let (status, defined) = send(
        app.as_developer(&developer, Method::POST, "/templates")
            .json(&json!({"name": template, "base": "python", "packages": []})),
    )
    .await;
    assert_eq!(status, 201, "{defined}");
    Owned {
        template,
        session,
        execution: execution["id"].as_str().unwrap().to_owned(),
        client: client["client_id"].as_str().unwrap().to_owned(),
        key: keys["items"][0]["id"].as_str().unwrap().to_owned(),
        developer,
        sandbox: id,
        endpoint: endpoint["id"].as_str().unwrap().to_owned(),
        request_id,
        payment: payment["id"].as_str().unwrap().to_owned(),
    }
}

/// What a developer may do on a route when the objects named are not its.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Another's object: it does not exist.
    NotFound,
    /// Admins only.
    Forbidden,
    /// Open to every developer (lists are checked for leaks apart).
    Allowed,
}

/// The route's path with `owned`'s objects in its parameters, and what
/// another developer gets there. Panics on a parameter it does not know.
fn aimed(path: &str, method: &str, owned: &Owned) -> (String, Expect) {
    let id = if path.starts_with("/api/v1/sessions/") {
        &owned.session
    } else {
        &owned.sandbox
    };
    let filled = path
        .replace("{id}", id)
        .replace("{eid}", &owned.execution)
        .replace("{endpoint}", &owned.endpoint)
        .replace("{key}", &owned.key)
        .replace("{request_id}", &owned.request_id)
        .replace("{collection}", "payments")
        .replace("{rid}", &owned.payment)
        .replace("{account}", &owned.developer.id)
        .replace("{token}", &owned.developer.token_id)
        .replace(
            "{name}",
            if path.starts_with("/api/v1/snapshots/") {
                &owned.session
            } else if path.starts_with("/api/v1/templates/") {
                &owned.template
            } else {
                "payments"
            },
        )
        .replace("{kind}", "fixtures")
        .replace("{item}", "extra")
        .replace("{client_id}", &owned.client)
        .replace("{sub}", "user_test");
    assert!(
        !filled.contains('{'),
        "{method} {path}: a parameter this test does not know; teach `aimed` what it names"
    );
    let route = path.trim_start_matches("/api/v1");
    let owns_something = ["{id}", "{request_id}", "{account}", "{token}"]
        .iter()
        .any(|p| path.contains(p))
        || route.starts_with("/snapshots/")
        || route.starts_with("/templates/");
    let expect = if path.contains("{account}") && method != "GET" {
        // Changing accounts is for admins, whichever the account.
        Expect::Forbidden
    } else if owns_something {
        Expect::NotFound
    } else if route.starts_with("/projects") {
        let reads_published = method == "GET" && matches!(route, "/projects" | "/projects/{name}");
        if reads_published {
            Expect::Allowed
        } else {
            Expect::Forbidden
        }
    } else if matches!(route, "/accounts" | "/invitations")
        && !(method == "POST" && route == "/accounts")
    {
        Expect::Forbidden
    } else if matches!(
        route,
        "/sandboxes"
            | "/sessions"
            | "/snapshots"
            | "/templates"
            | "/audit"
            | "/me"
            | "/me/tokens"
            | "/auth/login"
            | "/auth/logout"
            | "/accounts"
    ) {
        Expect::Allowed
    } else {
        panic!("{method} {path}: classify this route in `aimed`")
    };
    (filled.trim_start_matches("/api/v1").to_owned(), expect)
}

/// A body each route accepts, so a refusal is about who asks.
fn body_for(route: &str) -> Value {
    if route.ends_with("/clock") {
        json!({"advance": "PT1M"})
    } else if route.ends_with("/transition") {
        json!({"to": "failed"})
    } else if route.ends_with("/events") {
        json!({"type": "payment.succeeded"})
    } else if route.ends_with("/chaos") {
        json!({"profile": "latency=1ms"})
    } else if route.ends_with("/ttl") {
        json!({"ttl_seconds": 60})
    } else if route.ends_with("/scenario") {
        json!({"scenario": null})
    } else if route.contains("/webhook-endpoints")
        && !route.ends_with("/redeliver")
        && !route.ends_with("/rotate-secret")
    {
        json!({"url": "https://hooks.example.com/other"})
    } else if route.ends_with("/oauth/clients") {
        json!({"name": "other"})
    } else if route == "/invitations" {
        json!({"email": "carol@example.com"})
    } else if route == "/projects" {
        json!({"name": "other", "spec": crate::helpers::PETSTORE})
    } else if route.ends_with("/spec") {
        json!({"spec": crate::helpers::PETSTORE})
    } else if route == "/sessions" {
        json!({"template": "shell"})
    } else if route.ends_with("/executions") {
        json!({"code": "echo other"})
    } else if route.ends_with("/snapshots") {
        json!({})
    } else if route.starts_with("/sessions/") {
        json!({"lifetime_seconds": 600})
    } else {
        json!({})
    }
}

async fn call(app: &TestApp, developer: &Developer, method: &str, route: &str) -> (u16, Value) {
    let request = app
        .as_developer(
            developer,
            Method::from_bytes(method.as_bytes()).unwrap(),
            route,
        )
        .timeout(Duration::from_secs(5));
    let request = if matches!(method, "POST" | "PUT" | "PATCH") {
        request.json(&body_for(route))
    } else {
        request
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if route.ends_with("/stream") && status == 200 {
        // An open event stream: its status is the answer.
        return (status, Value::Null);
    }
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn developers_cannot_see_or_touch_each_others_objects_through_any_route() {
    let app = spawn_app().await;
    let project = crate::scenarios::payments_project("payments");
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");
    let alice = furnish(&app, "alice@example.com").await;
    let bob = furnish(&app, "bob@example.com").await;
    app.drain().await;

    let (status, document) = send(app.client.get(format!("{}/api/v1/openapi.json", app.url))).await;
    assert_eq!(status, 200);
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(routes.len() > 50, "the document lists the routes");
    // Changes last, deletions at the very end: the objects must live while tried.
    routes.sort_by_key(|(method, _)| match method.as_str() {
        "GET" => 0,
        "DELETE" => 2,
        _ => 1,
    });

    let mut tried_not_found = 0;
    for (method, path) in &routes {
        let (route, expect) = aimed(path, method, &alice);
        if expect == Expect::Allowed {
            continue;
        }
        let (status, answer) = call(&app, &bob.developer, method, &route).await;
        let text = answer.to_string();
        match expect {
            Expect::NotFound => {
                tried_not_found += 1;
                assert_eq!(status, 404, "bob {method} {route}: {answer}");
                for secret in [&alice.payment, &alice.endpoint, &alice.client] {
                    assert!(
                        !text.contains(secret.as_str()) || route.contains(secret.as_str()),
                        "bob {method} {route} leaks: {answer}"
                    );
                }
            }
            Expect::Forbidden => assert_eq!(status, 403, "bob {method} {route}: {answer}"),
            Expect::Allowed => unreachable!(),
        }
    }
    assert!(
        tried_not_found > 30,
        "{tried_not_found} routes name an owned object"
    );

    // The same routes answer their owner (so the 404s above are about who
    // asked, not a path this test got wrong); deletions are not tried, and
    // the reset (which forgets the record) comes last.
    let mut owner_routes: Vec<_> = routes.iter().filter(|(m, _)| m != "DELETE").collect();
    owner_routes.sort_by_key(|(_, path)| path.ends_with("/reset"));
    for (method, path) in owner_routes {
        let (route, expect) = aimed(path, method, &alice);
        if expect != Expect::NotFound {
            continue;
        }
        let (status, answer) = call(&app, &alice.developer, method, &route).await;
        assert_ne!(status, 404, "alice {method} {route}: {answer}");
    }

    // Lists show each their own; an admin sees both.
    let ids = |listed: &Value| -> Vec<String> {
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, listed) = send(app.as_developer(&bob.developer, Method::GET, "/sandboxes")).await;
    assert_eq!(ids(&listed), std::slice::from_ref(&bob.sandbox));
    let (_, listed) = send(app.admin(Method::GET, "/sandboxes")).await;
    let all = ids(&listed);
    assert!(all.contains(&alice.sandbox) && all.contains(&bob.sandbox));
    let (status, audit) = send(app.as_developer(&bob.developer, Method::GET, "/audit")).await;
    assert_eq!(status, 200);
    let entries = audit["items"].as_array().unwrap();
    assert!(!entries.is_empty());
    for entry in entries {
        // Bob's own calls (his sign-up and sign-in were anonymous), among
        // them his refused attempts at alice's objects, and nothing else.
        assert!(
            entry["actor"] == json!(bob.developer.id) || entry["actor"] == "anonymous",
            "{entry}"
        );
        if entry["target"].as_str().unwrap().contains(&alice.sandbox) {
            assert_eq!(entry["status"], 404, "{entry}");
        }
    }
    let (_, projects) = send(app.as_developer(&bob.developer, Method::GET, "/projects")).await;
    assert_eq!(projects["items"][0]["name"], "payments");
    let (status, _) = send(app.as_developer(
        &bob.developer,
        Method::GET,
        &format!("/requests/{}/explain", bob.request_id),
    ))
    .await;
    assert_eq!(status, 200, "a developer explains its own requests");

    // And alice's objects are still all there.
    let (status, _) = send(app.as_developer(
        &alice.developer,
        Method::GET,
        &format!(
            "/sandboxes/{}/webhook-endpoints/{}",
            alice.sandbox, alice.endpoint
        ),
    ))
    .await;
    assert_eq!(status, 200);
}
