//! Chaos per request (`X-Chaos`) and per sandbox (its profile).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{send, spawn_app, status_of};

#[tokio::test]
async fn malformed_chaos_headers_are_refused() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    for (header, says) in [
        ("latency=soon", "latency"),
        ("error=200%", "error"),
        ("status=204", "status"),
        ("meteor=1", "unknown chaos option"),
    ] {
        let (status, problem) = send(
            app.client
                .get(sandbox.url("/pets/1"))
                .header("x-chaos", header),
        )
        .await;
        assert_eq!(status, 400, "{header}");
        assert_eq!(problem["type"], "urn:sbx:problem:invalid-chaos");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn latency_errors_drops_and_slow_bodies() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let url = sandbox.url("/pets/1");

    let started = Instant::now();
    let response = app
        .client
        .get(&url)
        .header("x-chaos", "latency=200ms")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-sandbox-chaos"], "latency=200ms");

    let response = app
        .client
        .get(&url)
        .header("x-chaos", "error=100%,status=502")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-sandbox-chaos"], "error=502");

    let dropped = app
        .client
        .get(&url)
        .header("x-chaos", "drop=100%")
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "the connection closes without an answer");

    let plain = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let started = Instant::now();
    let response = app
        .client
        .get(&url)
        .header("x-chaos", "slow=500ms")
        .send()
        .await
        .unwrap();
    let slow = response.bytes().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow, plain, "a trickled body is the same body");
}

#[tokio::test]
async fn seeded_chaos_rates_hold_over_ten_thousand_requests_and_replay() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (client, url) = (app.client.clone(), sandbox.url("/pets/1"));
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            for _ in 0..1_000 {
                let status =
                    status_of(client.get(&url).header("x-chaos", "error=10%,seed=42")).await;
                errors += usize::from(status == 503);
            }
            errors
        }));
    }
    let mut errors = 0;
    for task in tasks {
        errors += task.await.unwrap();
    }
    // 10,000 draws at 10%: the standard deviation is 30.
    assert!((880..=1120).contains(&errors), "{errors} errors in 10,000");

    // Two sandboxes with the same seed see the same sequence.
    let sequence = |url: String| {
        let client = app.client.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..60 {
                seen.push(status_of(client.get(&url).header("x-chaos", "error=30%,seed=7")).await);
            }
            seen
        }
    };
    let one = app
        .create_sandbox(json!({"project": "pets", "auth": "none"}))
        .await;
    let two = app
        .create_sandbox(json!({"project": "pets", "auth": "none"}))
        .await;
    let (a, b) = (
        sequence(one.url("/pets/1")).await,
        sequence(two.url("/pets/1")).await,
    );
    assert_eq!(a, b);
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn a_sandbox_profile_applies_until_a_header_or_a_delete_says_otherwise() {
    let app = spawn_app().await;
    let sandbox = app.petstore("none").await;
    let path = format!("/sandboxes/{}/chaos", sandbox.id);
    let (status, problem) = send(
        app.admin(Method::PUT, &path)
            .json(&json!({"profile": "error=lots"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, shown) = send(
        app.admin(Method::PUT, &path)
            .json(&json!({"profile": "error=100%,status=500"})),
    )
    .await;
    assert_eq!(
        (status, shown["chaos"].as_str()),
        (200, Some("error=100%,status=500"))
    );
    assert_eq!(status_of(app.client.get(sandbox.url("/pets/1"))).await, 500);
    assert_eq!(
        status_of(
            app.client
                .get(sandbox.url("/pets/1"))
                .header("x-chaos", "error=0%")
        )
        .await,
        200
    );
    let (status, _) = send(app.admin(Method::GET, &format!("/sandboxes/{}", sandbox.id))).await;
    assert_eq!(status, 200, "chaos never touches the control plane");
    let (status, shown) = send(app.admin(Method::DELETE, &path)).await;
    assert_eq!(
        (status, shown["chaos"].clone()),
        (200, serde_json::Value::Null)
    );
    assert_eq!(status_of(app.client.get(sandbox.url("/pets/1"))).await, 200);
}

#[tokio::test]
async fn seeded_chaos_draws_once_per_request_even_when_a_script_runs_it_twice() {
    let app = spawn_app().await;
    let (status, _) = send(
        app.admin(Method::POST, "/projects")
            .json(&crate::scenarios::payments_project("payments")),
    )
    .await;
    assert_eq!(status, 201);
    let mut patterns = Vec::new();
    // createPayment's script writes, so it yields and runs again on the
    // blocking pool; getCustomer runs once. Same seed, same pattern.
    for scripted in [true, false] {
        let sandbox = app
            .create_sandbox(json!({"project": "payments", "auth": "none"}))
            .await;
        let mut pattern = Vec::new();
        for _ in 0..40 {
            let request = if scripted {
                app.client.post(sandbox.url("/payments")).json(&json!({
                    "amount": 2000, "currency": "usd",
                    "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
                }))
            } else {
                app.client.get(sandbox.url("/customers/cus_demo_alice"))
            };
            let status = status_of(request.header("x-chaos", "error=50%,seed=7")).await;
            pattern.push(status >= 500);
        }
        patterns.push(pattern);
    }
    assert!(patterns[0].iter().any(|e| *e) && patterns[0].iter().any(|e| !*e));
    assert_eq!(patterns[0], patterns[1]);
}
