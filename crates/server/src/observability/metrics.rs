//! Prometheus metrics at `/metrics` (OpenMetrics text): data-plane
//! requests and latency by project, operation and status; webhook
//! attempts by outcome and the delivery queue; dropped log entries; live
//! sandboxes; this server's hold on its database and its forwarding;
//! sandboxes with namespaces of their own.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::app::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    project: String,
    /// Empty when no operation matched (404, 405).
    operation: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    project: String,
    operation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    /// Webhook attempts: `delivered`, `retrying` or `dead`; renewals of
    /// the hold: `renewed`, `failed` or `fenced`; forwarded requests:
    /// `forwarded` or `refused`.
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    /// `provisioning`, `ready` or `failed`.
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    webhook_queue: Gauge,
    live_sandboxes: Gauge,
    developer_requests: Family<AccountLabels, Gauge>,
    developer_sandboxes: Family<AccountLabels, Gauge>,
    hold_epoch: Gauge,
    hold_renewals: Family<OutcomeLabels, Counter>,
    member_renewals: Family<OutcomeLabels, Counter>,
    forwarded: Family<OutcomeLabels, Counter>,
    moved: Counter,
    isolated: Family<StateLabels, Gauge>,
    namespace_operations: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// `dropped_logs` is the request log's own counter; `replica` names
    /// this server among those sharing its database.
    pub fn new(dropped_logs: Counter, replica: &str) -> Self {
        let mut registry = Registry::with_prefix("sbx");
        let replica_info = Family::<ReplicaLabels, Gauge>::default();
        replica_info
            .get_or_create(&ReplicaLabels {
                replica: replica.to_owned(),
            })
            .set(1);
        registry.register(
            "replica",
            "This server's replica id (the value is always 1)",
            replica_info,
        );
        let hold_epoch = Gauge::default();
        registry.register(
            "database_hold_epoch",
            "The takeover under which this server holds its database; 0 while it stands by",
            hold_epoch.clone(),
        );
        let hold_renewals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "database_hold_renewals",
            "Renewals of this server's lease on its database, by outcome (renewed, failed, fenced)",
            hold_renewals.clone(),
        );
        let member_renewals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "member_lease_renewals",
            "Renewals of this server's lease as a member serving sandboxes of its own, by outcome (renewed, failed, fenced)",
            member_renewals.clone(),
        );
        let forwarded = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "forwarded_requests",
            "Requests this server passed to the holder while it did not serve, by outcome (forwarded, refused)",
            forwarded.clone(),
        );
        let moved = Counter::default();
        registry.register(
            "sandboxes_moved",
            "Sandboxes this server handed to another server sharing its database (spreading them, or stopping)",
            moved.clone(),
        );
        let isolated = Family::<StateLabels, Gauge>::default();
        registry.register(
            "isolated_sandboxes",
            "Live sandboxes with a namespace of their own, by state (provisioning, ready, failed)",
            isolated.clone(),
        );
        let namespace_operations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "namespace_operations",
            "Sandbox namespaces applied, deleted, or failing to be, by the reconcile loop",
            namespace_operations.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Data-plane requests answered, by project, operation and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Data-plane request latency, by project and operation",
            latency.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome",
            webhook_attempts.clone(),
        );
        let webhook_queue = Gauge::default();
        registry.register(
            "webhook_deliveries_pending",
            "Webhook deliveries waiting for their next attempt",
            webhook_queue.clone(),
        );
        registry.register(
            "request_log_dropped",
            "Request-log entries dropped because the log's queue was full",
            dropped_logs,
        );
        let live_sandboxes = Gauge::default();
        registry.register(
            "sandboxes_live",
            "Sandboxes this server serves",
            live_sandboxes.clone(),
        );
        let developer_requests = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "developer_requests_today",
            "Data-plane requests today (UTC) over each developer's sandboxes, against quotas.requests_per_day",
            developer_requests.clone(),
        );
        let developer_sandboxes = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "developer_sandboxes_live",
            "Live sandboxes of each developer, against quotas.sandboxes",
            developer_sandboxes.clone(),
        );
        Self {
            isolated,
            namespace_operations,
            hold_epoch,
            hold_renewals,
            member_renewals,
            forwarded,
            moved,
            developer_requests,
            developer_sandboxes,
            registry,
            requests,
            latency,
            webhook_attempts,
            webhook_queue,
            live_sandboxes,
        }
    }

    pub fn request(&self, project: &str, operation: Option<&str>, status: u16, seconds: f64) {
        let operation = operation.unwrap_or_default().to_owned();
        self.latency
            .get_or_create(&LatencyLabels {
                project: project.to_owned(),
                operation: operation.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                project: project.to_owned(),
                operation,
                status,
            })
            .inc();
    }

    /// `outcome`: `delivered`, `retrying` or `dead`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// This server now holds its database under `epoch` (0: it does not).
    pub fn holding(&self, epoch: i64) {
        self.hold_epoch.set(epoch);
    }

    /// `outcome`: `renewed`, `failed` or `fenced`.
    pub fn hold_renewal(&self, outcome: &'static str) {
        self.hold_renewals
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `outcome`: `renewed`, `failed` or `fenced` (swept).
    pub fn member_renewal(&self, outcome: &'static str) {
        self.member_renewals
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `outcome`: `forwarded` or `refused`.
    pub fn forwarding(&self, outcome: &'static str) {
        self.forwarded
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A sandbox served here was handed to another server.
    pub fn moved(&self) {
        self.moved.inc();
    }

    /// How many live isolated sandboxes are in each state.
    pub fn isolated_sandboxes(&self, counts: [(&'static str, i64); 3]) {
        for (state, count) in counts {
            self.isolated
                .get_or_create(&StateLabels { state })
                .set(count);
        }
    }

    /// `outcome`: `applied`, `deleted` or `failed`.
    pub fn namespace_operation(&self, outcome: &'static str) {
        self.namespace_operations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}

/// `GET /metrics`. A request addressed to a sandbox by host goes to the
/// sandbox instead (its API may have a `/metrics` of its own).
pub async fn scrape(State(state): State<AppState>, request: Request) -> Response {
    if crate::data_plane::addressed_by_host(&state, &request) {
        return crate::data_plane::handler(State(state), request).await;
    }
    // The metrics name every project and operation: the admin token's,
    // unless the operator made them public.
    if !state.config.public_metrics && !crate::http::access::is_admin_token(&state, &request) {
        if let Some(refused) = crate::http::access::refused_too_often(&state, &request, true) {
            return refused;
        }
        return crate::http::error::ApiError::unauthorized(
            "send the admin token as `Authorization: Bearer <token>` to read /metrics, or start the server with --public-metrics",
        )
        .into_response();
    }
    let metrics = &state.metrics;
    let served = state.registry.served_here_count();
    metrics
        .live_sandboxes
        .set(i64::try_from(served).unwrap_or(i64::MAX));
    let now = crate::app::now_ms();
    for owner in state.registry.owners() {
        let labels = AccountLabels {
            account: owner.id.to_string(),
        };
        let requests = i64::try_from(owner.usage.requests_on(now)).unwrap_or(i64::MAX);
        metrics
            .developer_requests
            .get_or_create(&labels)
            .set(requests);
        metrics.developer_sandboxes.get_or_create(&labels).set(0);
    }
    for sandbox in state.registry.all() {
        if let Some(owner) = sandbox.owner_id() {
            let labels = AccountLabels {
                account: owner.to_string(),
            };
            metrics.developer_sandboxes.get_or_create(&labels).inc();
        }
    }
    match state.store.pending_delivery_count().await {
        Ok(pending) => {
            metrics
                .webhook_queue
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        Err(error) => tracing::warn!(%error, "counting pending deliveries failed"),
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(%error, "encoding metrics failed");
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
