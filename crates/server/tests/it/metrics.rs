//! `/metrics`, scraped and parsed as Prometheus would; the request log's
//! drop counter under overload.

use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as Metric};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, TestApp, send, spawn_app_with};

/// Scrapes as a Prometheus job holding the admin token would (the auth
/// scheme's name is case-insensitive: RFC 9110 §11.1).
pub async fn scrape(app: &TestApp) -> Vec<Sample> {
    let (status, refused) = send(app.client.get(format!("{}/metrics", app.url))).await;
    assert_eq!(status, 401, "metrics name every project: {refused}");
    let response = app
        .client
        .get(format!("{}/metrics", app.url))
        .header("authorization", format!("BEARER {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap()
        .samples
}

pub fn find<'a>(
    samples: &'a [Sample],
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Metric> {
    samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(name, value)| s.labels.get(name) == Some(*value))
        })
        .map(|s| &s.value)
}

fn counter(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(samples, metric, labels) {
        Some(Metric::Counter(value) | Metric::Untyped(value)) => *value,
        other => panic!("{metric} {labels:?}: {other:?} in {samples:#?}"),
    }
}

#[tokio::test]
async fn metrics_count_requests_by_project_operation_and_status() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(data_dir, |_| {}).await;
    let sandbox = app.payments_sandbox("none").await;
    for _ in 0..3 {
        let (status, _) = send(app.client.get(sandbox.url("/accounts/acct_demo_gold"))).await;
        assert_eq!(status, 200);
    }
    let (status, _) = send(app.client.get(sandbox.url("/accounts/acct_demo_frozen"))).await;
    assert_eq!(status, 403);
    let (status, _) = send(app.client.get(sandbox.url("/nowhere"))).await;
    assert_eq!(status, 404);

    let samples = scrape(&app).await;
    let by = |operation: &str, status: &str| {
        counter(
            &samples,
            "sbx_requests_total",
            &[
                ("project", "payments"),
                ("operation", operation),
                ("status", status),
            ],
        )
    };
    assert_eq!(by("getAccount", "200"), 3.0);
    assert_eq!(by("getAccount", "403"), 1.0);
    assert_eq!(by("", "404"), 1.0);
    match find(
        &samples,
        "sbx_request_duration_seconds",
        &[("project", "payments"), ("operation", "getAccount")],
    ) {
        Some(Metric::Histogram(buckets)) => {
            let all = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
            assert_eq!(all.count, 4.0, "{buckets:?}");
        }
        other => panic!("no latency histogram: {other:?}"),
    }
    match find(&samples, "sbx_sandboxes_live", &[]) {
        Some(Metric::Gauge(live)) => assert_eq!(*live, 1.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(counter(&samples, "sbx_request_log_dropped_total", &[]), 0.0);
    // The one server holds its database under the first takeover.
    match find(&samples, "sbx_database_hold_epoch", &[]) {
        Some(Metric::Gauge(epoch)) => assert_eq!(*epoch, 1.0),
        other => panic!("{other:?}"),
    }
    assert!(
        samples.iter().any(|s| s.metric == "sbx_replica"
            && s.labels
                .get("replica")
                .is_some_and(|r| r.starts_with("rep_"))),
        "the replica is named"
    );
    assert!(matches!(
        find(&samples, "sbx_webhook_deliveries_pending", &[]),
        Some(Metric::Gauge(_))
    ));
}

#[tokio::test]
async fn an_overloaded_log_drops_entries_counts_them_and_never_holds_a_request() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(data_dir, |config| {
        config.request_log_limits.queue = 1;
        config.request_log_limits.max_per_second = 1;
    })
    .await;
    let sandbox = app.payments_sandbox("none").await;
    const SENT: u64 = 40;
    let requests = (0..SENT).map(|_| send(app.client.get(sandbox.url("/accounts/acct_demo_gold"))));
    let started = Instant::now();
    for (status, _) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200);
    }
    // Writing one entry a second, the log could not have kept up.
    assert!(started.elapsed() < Duration::from_secs(5));

    let (status, page): (u16, Value) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs?limit=200", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200);
    let dropped = page["dropped"].as_u64().unwrap();
    assert!(dropped >= SENT - 3, "dropped {dropped}: {page}");
    let samples = scrape(&app).await;
    assert_eq!(
        counter(&samples, "sbx_request_log_dropped_total", &[]),
        dropped as f64
    );
    // Nothing is lost silently: every request is either logged or counted.
    app.drain().await;
    let (_, page) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs?limit=200", sandbox.id),
    ))
    .await;
    let logged = page["items"].as_array().unwrap().len() as u64;
    assert_eq!(
        logged + page["dropped"].as_u64().unwrap(),
        SENT,
        "{logged} logged: {page}"
    );
}

#[tokio::test]
async fn public_metrics_need_no_token_when_the_operator_says_so() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.public_metrics = true;
    })
    .await;
    let (status, text) = send(app.client.get(format!("{}/metrics", app.url))).await;
    assert_eq!(status, 200);
    assert!(text.as_str().unwrap_or("").contains("sbx_"), "{text}");
}
