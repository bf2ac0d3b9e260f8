//! What the server tells operators: Prometheus metrics and OTLP traces.

pub mod metrics;
pub mod telemetry;
