//! OpenTelemetry traces over OTLP/HTTP (`--otlp-endpoint`): one server
//! span per sandbox request, joined to the caller's trace when it sends a
//! W3C `traceparent`.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName};
use opentelemetry::{
    KeyValue,
    propagation::{Extractor, TextMapPropagator},
    trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};

/// How long an export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter and its tracer; spans are sent in batches from a
/// background thread, so requests never wait on the collector.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// One answered sandbox request, as its span describes it.
pub struct RequestSpan<'a> {
    pub started: SystemTime,
    pub method: &'a str,
    /// The operation's path template (`/payments/{id}`), else the path.
    pub route: &'a str,
    pub sandbox_id: &'a str,
    pub project: &'a str,
    pub revision: u32,
    pub operation: Option<&'a str>,
    pub status: u16,
    pub request_id: &'a str,
}

impl Telemetry {
    /// Exports to `endpoint`: an OTLP/HTTP collector's base URL
    /// (`http://localhost:4318`, `/v1/traces` is added) or its full traces URL.
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(endpoint)
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("--otlp-endpoint {endpoint:?} must be an http:// or https:// URL");
        }
        let traces = if url.path().ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("smartsandbox")
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("smartsandbox");
        Ok(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Records the span of one request; `headers` carry the caller's trace
    /// context, if any. Answers the span's trace id.
    pub fn record(&self, headers: &HeaderMap, request: RequestSpan<'_>) -> String {
        let parent = self.propagator.extract(&Headers(headers));
        let mut attributes = vec![
            KeyValue::new("http.request.method", request.method.to_owned()),
            KeyValue::new("http.route", request.route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(request.status)),
            KeyValue::new("sbx.sandbox.id", request.sandbox_id.to_owned()),
            KeyValue::new("sbx.project", request.project.to_owned()),
            KeyValue::new("sbx.revision", i64::from(request.revision)),
            KeyValue::new("sbx.request.id", request.request_id.to_owned()),
        ];
        if let Some(operation) = request.operation {
            attributes.push(KeyValue::new("sbx.operation", operation.to_owned()));
        }
        let mut span = self
            .tracer
            .span_builder(format!("{} {}", request.method, request.route))
            .with_kind(SpanKind::Server)
            .with_start_time(request.started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        if request.status >= 500 {
            span.set_status(Status::error(format!("answered {}", request.status)));
        }
        let trace_id = span.span_context().trace_id().to_string();
        span.end();
        trace_id
    }

    /// Sends what is still batched; blocks until done (or timed out).
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

/// The trace id of a valid W3C `traceparent` among `headers`, so a logged
/// request names the caller's trace even when no span is exported.
pub fn incoming_trace_id(headers: &HeaderMap) -> Option<String> {
    headers.get("traceparent")?;
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The W3C trace context headers of a request, kept past its body.
pub fn trace_context(headers: &HeaderMap) -> HeaderMap {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((HeaderName::from_static(name), headers.get(name)?.clone())))
        .collect()
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
