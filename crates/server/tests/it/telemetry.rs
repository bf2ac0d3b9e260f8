//! Traces: with an OTLP endpoint set, each sandbox request becomes a
//! server span (sandbox, project, revision, operation), received here by a
//! stand-in collector that decodes OTLP/HTTP protobuf as a real one does.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as Any,
    trace::v1::Span,
};
use prost::Message;
use reqwest::Method;

use crate::helpers::{TestApp, send, spawn_app_with};

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn collect(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    received.lock().unwrap().push(request);
    ""
}

/// A collector on a random port: its base URL and what it received.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    (crate::helpers::serve_router(app).await, received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    match value.value.as_ref()?.value.as_ref()? {
        Any::StringValue(text) => Some(text.clone()),
        Any::IntValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn each_request_is_exported_as_a_span_in_the_callers_trace() {
    let (collector_url, received) = collector().await;
    let mut app = spawn_app_with(tempfile::tempdir().unwrap(), |c| {
        c.otlp_endpoint = Some(collector_url)
    })
    .await;
    let sandbox = app.payments_sandbox("none").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = app
        .client
        .get(sandbox.url("/customers/cus_demo_alice"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("x-request-id", "req-traced")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(sandbox.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // The log names each request's trace, to look it up in the collector.
    let logged = logged_trace_ids(&app, &sandbox.id).await;

    // Stopping flushes the batch.
    app.stop().await;
    let received = received.lock().unwrap();
    let spans: Vec<(&Span, Vec<(String, String)>)> = received
        .iter()
        .flat_map(|request| &request.resource_spans)
        .flat_map(|resource| {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(v) => Some((kv.key.clone(), v.clone())),
                    _ => None,
                })
                .collect::<Vec<_>>();
            resource
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
                .map(move |span| (span, service.clone()))
        })
        .collect();
    assert_eq!(spans.len(), 2, "{received:?}");
    let (traced, service) = spans
        .iter()
        .find(|(span, _)| attribute(span, "sbx.request.id").as_deref() == Some("req-traced"))
        .expect("the traced request's span");
    assert!(service.contains(&("service.name".to_owned(), "smartsandbox".to_owned())));
    assert_eq!(traced.name, "GET /customers/{customer_id}");
    assert_eq!(
        traced.trace_id,
        (0..16)
            .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        traced.parent_span_id,
        (0..8)
            .map(|i| u8::from_str_radix(&caller_span[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
    );
    for (key, expected) in [
        ("sbx.sandbox.id", sandbox.id.as_str()),
        ("sbx.project", "payments"),
        ("sbx.revision", "1"),
        ("sbx.operation", "getCustomer"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attribute(traced, key).as_deref(), Some(expected), "{key}");
    }
    assert!(traced.end_time_unix_nano > traced.start_time_unix_nano);
    let (missed, _) = spans
        .iter()
        .find(|(span, _)| attribute(span, "http.response.status_code").as_deref() == Some("404"))
        .expect("the 404's span");
    assert_eq!(attribute(missed, "sbx.operation"), None);
    assert_eq!(missed.name, "GET /v1/nowhere");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        logged,
        [hex(&missed.trace_id), trace_id.to_owned()],
        "newest first: a fresh trace for the 404, the caller's for the other"
    );
}

/// The `trace_id` of each logged request of a sandbox, newest first, once
/// both are logged.
async fn logged_trace_ids(app: &TestApp, sandbox_id: &str) -> Vec<String> {
    app.drain().await;
    let (_, page) = send(app.admin(Method::GET, &format!("/sandboxes/{sandbox_id}/logs"))).await;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "both logged: {page}");
    items
        .iter()
        .map(|item| item["trace_id"].as_str().expect("a trace id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_bad_otlp_endpoint_is_refused_at_start() {
    for endpoint in ["not a url", "ftp://collector:4318"] {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = crate::helpers::test_config(data_dir.path());
        config.otlp_endpoint = Some(endpoint.to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = match sbx_server::start(config, listener).await {
            Ok(_) => panic!("{endpoint:?} was accepted"),
            Err(error) => format!("{error:#}"),
        };
        assert!(
            error.contains("--otlp-endpoint") && error.contains(endpoint),
            "{error}"
        );
    }
}
