//! A developer's quotas: live sandboxes, time to live, requests per day,
//! webhook endpoints — each refused with the quota named and its use —
//! and inactive sandboxes removed. Admins are exempt.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{execute_on_database, millis, send, spawn_app_with};

fn tight(config: &mut sbx_server::Config) {
    config.quotas = sbx_server::Quotas {
        sandboxes: 2,
        max_ttl_seconds: 3_600,
        default_ttl_seconds: 600,
        requests_per_day: 3,
        webhook_endpoints: 1,
        inactive_days: 1,
        sessions: 1,
    };
}

#[tokio::test]
async fn a_developer_is_held_to_its_quotas_and_admins_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, tight).await;
    app.import_ok("pets", crate::helpers::PETSTORE).await;
    let dev = app.developer("quota@example.com").await;
    let create = |body: serde_json::Value| {
        app.as_developer(&dev, Method::POST, "/sandboxes")
            .json(&body)
    };

    let (status, problem) = send(create(json!({"project": "pets", "ttl_seconds": 7_200}))).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("3600"));
    let (status, first) = send(create(json!({"project": "pets", "auth": "none"}))).await;
    assert_eq!(status, 201, "{first}");
    let lives = millis(first["expires_at"].as_str().unwrap())
        - millis(first["created_at"].as_str().unwrap());
    assert_eq!(
        lives, 600_000,
        "a developer's sandbox gets the default time to live"
    );
    let (status, _) = send(create(json!({"project": "pets", "ttl_seconds": 3_600}))).await;
    assert_eq!(status, 201);
    let (status, problem) = send(create(json!({"project": "pets"}))).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:sbx:problem:quota-exceeded");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("sandboxes: 2 of 2"),
        "{problem}"
    );
    let (status, admins) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "pets"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(admins["expires_at"].is_null(), "admins are exempt");

    // Requests per day, over all the developer's sandboxes.
    let base = first["base_url"].as_str().unwrap();
    for _ in 0..3 {
        let status = app
            .client
            .get(format!("{base}/pets/1"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let response = app
        .client
        .get(format!("{base}/pets/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after = crate::helpers::retry_after(&response);
    assert!((1..=86_400).contains(&retry_after));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("requests_per_day: 3 of 3"),
        "{problem}"
    );
    let admin_base = admins["base_url"].as_str().unwrap();
    let status = app
        .client
        .get(format!("{admin_base}/pets/1"))
        .header("x-api-key", admins["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "an admin's sandbox is not counted");

    // Webhook endpoints, over all the developer's sandboxes.
    let endpoints = format!(
        "/sandboxes/{}/webhook-endpoints",
        first["id"].as_str().unwrap()
    );
    let endpoint = json!({"url": "https://hooks.example.com/in"});
    let (status, _) = send(
        app.as_developer(&dev, Method::POST, &endpoints)
            .json(&endpoint),
    )
    .await;
    assert_eq!(status, 201);
    let (status, problem) = send(
        app.as_developer(&dev, Method::POST, &endpoints)
            .json(&endpoint),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("webhook_endpoints: 1 of 1")
    );

    // Code sessions.
    let session = |body: serde_json::Value| {
        app.as_developer(&dev, Method::POST, "/sessions")
            .json(&body)
    };
    let (status, first) = send(session(json!({"template": "shell"}))).await;
    assert_eq!(status, 201, "{first}");
    let (status, problem) = send(session(json!({"template": "shell"}))).await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("sessions: 1 of 1"),
        "{problem}"
    );

    // The developer sees its use; the operator sees it in /metrics.
    let (status, me) = send(app.as_developer(&dev, Method::GET, "/me")).await;
    assert_eq!(status, 200);
    assert_eq!(me["quotas"]["sandboxes"], json!({"used": 2, "limit": 2}));
    assert_eq!(
        me["quotas"]["requests_today"],
        json!({"used": 3, "limit": 3})
    );
    assert_eq!(
        me["quotas"]["webhook_endpoints"],
        json!({"used": 1, "limit": 1})
    );
    assert_eq!(me["quotas"]["sessions"], json!({"used": 1, "limit": 1}));
    let (_, admin_me) = send(app.admin(Method::GET, "/me")).await;
    assert!(admin_me["quotas"].is_null());
    let samples = crate::metrics::scrape(&app).await;
    let gauge = |metric: &str| match crate::metrics::find(&samples, metric, &[("account", &dev.id)])
    {
        Some(prometheus_parse::Value::Gauge(value)) => *value,
        other => panic!("{metric}: {other:?}"),
    };
    assert_eq!(gauge("sbx_developer_requests_today"), 3.0);
    assert_eq!(gauge("sbx_developer_sandboxes_live"), 2.0);
}

/// The day's requests are kept in the database: a restarted server holds
/// the developer to the requests made before it stopped, and each sandbox
/// still shows its own.
#[tokio::test]
async fn requests_today_count_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, tight).await;
    app.import_ok("pets", crate::helpers::PETSTORE).await;
    let dev = app.developer("restart@example.com").await;
    let (status, made) = send(
        app.as_developer(&dev, Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "auth": "none"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let base = made["base_url"].as_str().unwrap();
    let below = base[base.find("/sbx/").unwrap()..].to_owned();
    let call = |app: &crate::helpers::TestApp| {
        let url = format!("{}{below}/pets/1", app.url);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    for _ in 0..2 {
        assert_eq!(call(&app).await, 200);
    }
    let mut app = app;
    app.stop().await;

    let app = spawn_app_with(app.data_dir, tight).await;
    let (_, me) = send(app.as_developer(&dev, Method::GET, "/me")).await;
    assert_eq!(
        me["quotas"]["requests_today"],
        json!({"used": 2, "limit": 3}),
        "{me}"
    );
    let (_, sandbox) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
    assert_eq!(sandbox["requests_today"], 2, "{sandbox}");
    assert_eq!(call(&app).await, 200);
    assert_eq!(call(&app).await, 429, "three requests made today");
}

#[tokio::test]
async fn a_developers_sandbox_without_requests_for_its_inactive_days_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, tight).await;
    app.import_ok("pets", crate::helpers::PETSTORE).await;
    let dev = app.developer("idle@example.com").await;
    let (_, idle) = send(
        app.as_developer(&dev, Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "auth": "none"})),
    )
    .await;
    let (_, busy) = send(
        app.as_developer(&dev, Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "auth": "none"})),
    )
    .await;
    let (_, admins) = send(
        app.admin(Method::POST, "/sandboxes")
            .json(&json!({"project": "pets"})),
    )
    .await;
    let mut app = app;
    app.stop().await;
    // Two days pass for all three; one of them is called meanwhile.
    let two_days_ago = sbx_test_now() - 2 * 24 * 3600 * 1000;
    let an_hour_ago = sbx_test_now() - 3_600_000;
    let busy_id = busy["id"].as_str().unwrap();
    execute_on_database(
        app.data_dir.path(),
        &format!(
            "UPDATE sandboxes SET created_at_ms = {two_days_ago}, last_active_at_ms = NULL;
             UPDATE sandboxes SET last_active_at_ms = {an_hour_ago} WHERE id = '{busy_id}'"
        ),
    )
    .await;
    let app = spawn_app_with(app.data_dir, tight).await;
    app.drain().await;
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}", idle["id"].as_str().unwrap()),
    ))
    .await;
    assert_eq!(status, 404, "the idle developer sandbox is gone");
    for kept in [&busy, &admins] {
        let (status, _) = send(app.admin(
            Method::GET,
            &format!("/sandboxes/{}", kept["id"].as_str().unwrap()),
        ))
        .await;
        assert_eq!(status, 200, "{kept}");
    }
    let (_, audit) = send(app.as_developer(&dev, Method::GET, "/audit?actor=system")).await;
    assert!(
        audit["items"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("inactive"),
        "the owner sees why: {audit}"
    );
}

fn sbx_test_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_time_to_live_is_extended_from_now_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, tight).await;
    app.import_ok("pets", crate::helpers::PETSTORE).await;
    let dev = app.developer("ttl@example.com").await;
    let (_, made) = send(
        app.as_developer(&dev, Method::POST, "/sandboxes")
            .json(&json!({"project": "pets", "ttl_seconds": 60})),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let ttl = format!("/sandboxes/{id}/ttl");
    let put = |body: serde_json::Value| app.as_developer(&dev, Method::PUT, &ttl).json(&body);

    let before = millis(&sbx_now());
    let (status, extended) = send(put(json!({"ttl_seconds": 3_600}))).await;
    assert_eq!(status, 200, "{extended}");
    let ends = millis(extended["expires_at"].as_str().unwrap());
    assert!(
        (before + 3_600_000..before + 3_610_000).contains(&ends),
        "{extended}"
    );
    for (body, said) in [
        (json!({"ttl_seconds": 3_601}), "between 1 and 3600"),
        (json!({"ttl_seconds": 0}), "between 1 and 3600"),
        (json!({"ttl_seconds": null}), "needs a time to live"),
    ] {
        let (status, problem) = send(put(body)).await;
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(said),
            "{problem}"
        );
    }
    // Stored as answered; another developer's answer is 404.
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
    assert_eq!(shown["expires_at"], extended["expires_at"]);
    let other = app.developer("other@example.com").await;
    let (status, _) = send(
        app.as_developer(&other, Method::PUT, &ttl)
            .json(&json!({"ttl_seconds": 60})),
    )
    .await;
    assert_eq!(status, 404);
    // An admin may make it last for ever.
    let (status, forever) = send(
        app.admin(Method::PUT, &format!("/sandboxes/{id}/ttl"))
            .json(&json!({"ttl_seconds": null})),
    )
    .await;
    assert_eq!(status, 200, "{forever}");
    assert_eq!(forever["expires_at"], serde_json::Value::Null);
}

fn sbx_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
