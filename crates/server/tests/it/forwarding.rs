//! Forwarding to a real upstream on 127.0.0.1, through the egress policy.

use std::time::Duration;

use axum::{Json, Router, extract::Request, routing::get};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    behaviours::SHOP,
    helpers::{Sandbox, TestApp, send, spawn_app, spawn_app_with},
};

/// An upstream that echoes what it received; `/slow` answers after 3 s.
async fn upstream() -> String {
    async fn echo(request: Request) -> Json<Value> {
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    Value::String(v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        Json(json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "query": request.uri().query(),
            "headers": headers,
        }))
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "late"
    }
    let app = Router::new().route("/slow", get(slow)).fallback(echo);
    crate::helpers::serve_router(app).await
}

const FORECAST: &str = r#"
let answer = forward();
resp.body = #{
    city: answer.body.path,
    upstream_status: answer.status,
    key_seen: answer.body.headers["x-upstream-key"],
};
"#;

fn project(upstream: &str) -> Value {
    let rule = |path: &str, timeout_ms: u64| {
        json!({
            "url": format!("{upstream}{path}"),
            "timeout_ms": timeout_ms,
            "set_headers": {"x-upstream-key": "{env.upstream_key}"},
            "remove_headers": ["x-internal"],
        })
    };
    json!({
        "name": "shop",
        "spec": SHOP,
        "behaviours": {"getForecast": FORECAST},
        "env": {"upstream_key": "k-123"},
        "settings": {"forward": {
            "getWeather": rule("/v2/weather/{city}/{units}", 2_000),
            "getForecast": rule("/v2/forecast/{city}", 2_000),
            "slow": rule("/slow", 200),
        }},
    })
}

/// A server that may reach 127.0.0.1, with the forwarding shop imported
/// (to `upstream`) and a sandbox of it.
async fn forwarding_shop(upstream: &str) -> (TestApp, Sandbox) {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.allow_private_egress = true;
    })
    .await;
    let (status, body) = send(
        app.admin(Method::POST, "/projects")
            .json(&project(upstream)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["forwards"],
        json!(["getWeather", "getForecast", "slow"])
    );
    let sandbox = app.create_sandbox(json!({"project": "shop"})).await;
    (app, sandbox)
}

#[tokio::test]
async fn operations_forward_to_an_upstream_and_scripts_reshape_the_answer() {
    let upstream = upstream().await;
    let (app, sandbox) = forwarding_shop(&upstream).await;

    let (status, echoed) = send(
        app.client
            .get(sandbox.url("/weather/paris?units=metric"))
            .header("x-internal", "secret")
            .header("x-trace", "t-1")
            .bearer_auth(&sandbox.api_key),
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(
        echoed["path"], "/v2/weather/paris/metric",
        "path parameters substituted"
    );
    assert_eq!(echoed["query"], "units=metric", "query passed on");
    let headers = &echoed["headers"];
    assert_eq!(
        headers["x-upstream-key"], "k-123",
        "headers set from the environment"
    );
    assert_eq!(headers["x-trace"], "t-1");
    assert!(
        headers.get("x-internal").is_none(),
        "removed headers are not sent"
    );
    assert!(
        headers.get("authorization").is_none(),
        "the sandbox key never leaves: {headers}"
    );

    let (status, reshaped) = send(app.client.get(sandbox.url("/forecast/oslo"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        reshaped,
        json!({"city": "/v2/forecast/oslo", "upstream_status": 200, "key_seen": "k-123"})
    );

    let (status, problem) = send(app.client.get(sandbox.url("/slow"))).await;
    assert_eq!(status, 502, "{problem}");
    assert_eq!(problem["type"], "urn:sbx:problem:upstream-unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("timed out"),
        "{problem}"
    );
}

#[tokio::test]
async fn the_egress_policy_refuses_loopback_by_default() {
    let upstream = upstream().await;
    let app = spawn_app().await;
    let (status, _) = send(
        app.admin(Method::POST, "/projects")
            .json(&project(&upstream)),
    )
    .await;
    assert_eq!(status, 201);
    let sandbox = app.create_sandbox(json!({"project": "shop"})).await;
    let (status, problem) = send(app.client.get(sandbox.url("/weather/paris"))).await;
    assert_eq!(status, 502, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("egress policy"), "{detail}");
    let localhost = project(&upstream.replace("127.0.0.1", "localhost"));
    let (status, _) = send(
        app.admin(Method::PUT, "/projects/shop/settings")
            .json(&localhost["settings"]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = send(app.client.get(sandbox.url("/weather/paris"))).await;
    assert_eq!(status, 502);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("egress policy"),
        "names resolve before the check: {problem}"
    );
}

/// Wherever a client puts the sandbox key — the query (plain or
/// percent-encoded), a cookie, any header, HTTP Basic credentials — it is
/// never passed on to the upstream; everything else is.
#[tokio::test]
async fn the_sandbox_key_never_reaches_the_upstream_however_it_is_sent() {
    use base64::Engine as _;
    let upstream = upstream().await;
    let (app, sandbox) = forwarding_shop(&upstream).await;
    let key = &sandbox.api_key;
    let encoded = key.replace('_', "%5F");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    for request in [
        app.client
            .get(sandbox.url(&format!("/weather/paris?api_key={key}&units=metric")))
            .header("cookie", format!("theme=dark; sid={key}"))
            .header("x-note", format!("signed {key}")),
        app.client
            .get(sandbox.url(&format!("/weather/paris?units=metric&token={encoded}")))
            .header("authorization", format!("Basic {basic}")),
    ] {
        let (status, echoed) = send(request).await;
        assert_eq!(status, 200, "{echoed}");
        assert_eq!(echoed["query"], "units=metric", "{echoed}");
        let sent = echoed.to_string();
        assert!(
            !sent.contains(key.as_str()) && !sent.contains(&basic) && !sent.contains(&encoded),
            "the key reached the upstream: {echoed}"
        );
    }
}
