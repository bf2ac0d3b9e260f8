//! A sandbox's webhook endpoints, their secrets and their deliveries.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use sbx_store::EndpointRecord;
use sbx_webhooks::Faults;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, now_ms, rfc3339},
    control::created,
    control::sandboxes::{invalid, live},
    error::{ApiError, ApiJson},
};

/// How long a rotated-out secret keeps signing.
const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// Endpoints per sandbox.
const MAX_ENDPOINTS: usize = 20;
/// Deliveries listed per endpoint.
const LISTED_DELIVERIES: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// `we_…`
    pub id: String,
    pub url: String,
    /// Event types delivered; `["*"]`: every type.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
    pub enabled: bool,
    /// Why it is disabled, when it is.
    pub disabled_reason: Option<String>,
    pub failures_in_row: i64,
    pub created_at: String,
    /// Delivery faults injected for this endpoint.
    #[schema(value_type = Object)]
    pub faults: Faults,
}

impl From<EndpointRecord> for EndpointView {
    fn from(e: EndpointRecord) -> Self {
        Self {
            events: serde_json::from_str(&e.events).unwrap_or_default(),
            enabled: e.disabled_reason.is_none(),
            id: e.id,
            url: e.url,
            description: e.description,
            secret: e.secret,
            disabled_reason: e.disabled_reason,
            failures_in_row: e.failures_in_row,
            created_at: rfc3339(e.created_at_ms),
            faults: e
                .faults
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
}

/// `url` is required on creation; on update every field is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    /// `http://` or `https://`; private and loopback hosts are refused
    /// unless the server allows private egress.
    pub url: Option<String>,
    /// Event types to deliver (default `["*"]`, every type).
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` re-enables a disabled endpoint; `false` disables it.
    pub enabled: Option<bool>,
    /// Faults to inject into its deliveries (`{}`: none): `duplicate`
    /// (probability), `delay_ms`, `skew_seconds`, `reorder`.
    #[schema(value_type = Option<Object>)]
    pub faults: Option<Faults>,
}

fn checked_faults(faults: Option<Faults>) -> Result<Option<String>, ApiError> {
    let Some(faults) = faults.filter(|f| !f.is_none()) else {
        return Ok(None);
    };
    faults.check().map_err(|m| invalid("/faults", m))?;
    Ok(serde_json::to_string(&faults).ok())
}

fn checked_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid("/url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "/url",
            "the URL must be http:// or https://".into(),
        ));
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain("localhost")) => Some(std::net::IpAddr::from([127, 0, 0, 1])),
        _ => None,
    };
    if !state.config.allow_private_egress && literal.is_some_and(|ip| !crate::egress::is_public(ip))
    {
        return Err(invalid(
            "/url",
            format!(
                "{url} is a private or loopback address, which the egress policy refuses (start the server with --allow-private-egress to deliver to one)"
            ),
        ));
    }
    Ok(url.to_owned())
}

fn checked_events(events: Option<Vec<String>>) -> Result<String, ApiError> {
    let events = events.unwrap_or_else(|| vec!["*".to_owned()]);
    if events.is_empty() || events.iter().any(|e| e.is_empty() || e.len() > 200) {
        return Err(invalid(
            "/events",
            "name one or more event types (or \"*\"), each 1 to 200 characters".into(),
        ));
    }
    Ok(serde_json::to_string(&events).unwrap_or_else(|_| "[\"*\"]".into()))
}

async fn endpoint(state: &AppState, id: &str, endpoint: &str) -> Result<EndpointRecord, ApiError> {
    state
        .store
        .get_endpoint(id, endpoint)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "not-found",
                format!("sandbox {id} has no webhook endpoint {endpoint:?}"),
            )
        })
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints", tag = "webhooks", params(("id" = String, Path)),
    request_body = EndpointChange,
    responses((status = 201, body = EndpointView, description = "events emitted from now on are delivered to it", headers(("location" = String, description = "the new endpoint"))), (status = 404), (status = 422)),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<axum::response::Response, ApiError> {
    live(&state, &id)?;
    let url = body
        .url
        .as_deref()
        .ok_or_else(|| invalid("/url", "url is required".into()))?;
    let url = checked_url(&state, url)?;
    let events = checked_events(body.events)?;
    if state.store.list_endpoints(&id).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(format!(
            "a sandbox has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let record = EndpointRecord {
        id: format!("we_{}", crate::ids::random_token(16)),
        sandbox_id: id,
        url,
        events,
        description: body.description,
        secret: sbx_webhooks::generate_secret(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        disabled_reason: (body.enabled == Some(false)).then(|| "disabled by request".to_owned()),
        failures_in_row: 0,
        created_at_ms: now_ms(),
        faults: checked_faults(body.faults)?,
    };
    state.store.create_endpoint(&record).await?;
    let location = format!(
        "/api/v1/sandboxes/{}/webhook-endpoints/{}",
        record.sandbox_id, record.id
    );
    Ok(created(location, EndpointView::from(record)))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = EndpointList), (status = 404)), security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointList>, ApiError> {
    live(&state, &id)?;
    let items = state.store.list_endpoints(&id).await?;
    Ok(Json(EndpointList {
        items: items.into_iter().map(EndpointView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404)), security(("admin" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    live(&state, &id)?;
    Ok(Json(endpoint(&state, &id, &endpoint_id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)), request_body = EndpointChange,
    responses((status = 200, body = EndpointView), (status = 404), (status = 422)), security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<Json<EndpointView>, ApiError> {
    live(&state, &id)?;
    let mut record = endpoint(&state, &id, &endpoint_id).await?;
    if let Some(url) = &body.url {
        record.url = checked_url(&state, url)?;
    }
    if body.events.is_some() {
        record.events = checked_events(body.events)?;
    }
    if body.description.is_some() {
        record.description = body.description;
    }
    if body.faults.is_some() {
        record.faults = checked_faults(body.faults)?;
    }
    match body.enabled {
        Some(true) => {
            record.disabled_reason = None;
            record.failures_in_row = 0;
        }
        Some(false) => record.disabled_reason = Some("disabled by request".to_owned()),
        None => {}
    }
    state.store.update_endpoint(&record).await?;
    if record.disabled_reason.is_none()
        && let Some(sandbox) = state.registry.get(&id)
    {
        // Deliveries held while it was disabled are due again.
        sandbox.next_delivery.note(i64::MIN);
    }
    Ok(Json(record.into()))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 204), (status = 404)), security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    live(&state, &id)?;
    if state.store.delete_endpoint(&id, &endpoint_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(endpoint(&state, &id, &endpoint_id)
            .await
            .err()
            .unwrap_or_else(|| {
                ApiError::not_found("not-found", format!("no webhook endpoint {endpoint_id:?}"))
            }))
    }
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = EndpointView, description = "a new secret; for 24 hours deliveries carry both signatures, the new one and the old one"), (status = 404)),
    security(("admin" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    live(&state, &id)?;
    let mut record = endpoint(&state, &id, &endpoint_id).await?;
    record.previous_secret = Some(std::mem::replace(
        &mut record.secret,
        sbx_webhooks::generate_secret(),
    ));
    record.previous_secret_expires_ms = Some(now_ms() + ROTATION_OVERLAP_MS);
    state.store.update_endpoint(&record).await?;
    Ok(Json(record.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptItem {
    pub attempt: i64,
    /// Sandbox time.
    pub at: String,
    #[schema(value_type = Object)]
    pub request_headers: Value,
    pub status: Option<i64>,
    pub body_excerpt: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryItem {
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `dead` (the dead-letter list).
    pub state: String,
    pub attempts: Vec<AttemptItem>,
    /// Sandbox time of the next attempt, while pending.
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryItem>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = DeliveryList, description = "the latest 100, newest first, each with every attempt"), (status = 404)),
    security(("admin" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<DeliveryList>, ApiError> {
    live(&state, &id)?;
    endpoint(&state, &id, &endpoint_id).await?;
    let mut items = Vec::new();
    for delivery in state
        .store
        .list_deliveries(&id, &endpoint_id, LISTED_DELIVERIES)
        .await?
    {
        let attempts = state.store.list_attempts(delivery.id).await?;
        items.push(DeliveryItem {
            event_id: crate::deliveries::event_id(delivery.event_id),
            event_type: delivery.event_type,
            state: delivery.state,
            next_attempt_at: delivery.next_attempt_ms.map(rfc3339),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptItem {
                    attempt: a.attempt,
                    at: rfc3339(a.at_ms),
                    request_headers: serde_json::from_str(&a.request_headers).unwrap_or_default(),
                    status: a.status,
                    body_excerpt: a.body_excerpt,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
        });
    }
    Ok(Json(DeliveryList { items }))
}

/// `{"event": "evt_…"}` redelivers one event; `{}` requeues every dead letter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redelivery {
    pub event: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// Deliveries made pending again (attempts start over).
    pub requeued: u64,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)), request_body = Redelivery,
    responses((status = 200, body = Requeued), (status = 404, description = "no such endpoint, or the event was never delivered to it"), (status = 422)),
    security(("admin" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    Path((id, endpoint_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Redelivery>,
) -> Result<Json<Requeued>, ApiError> {
    let sandbox = live(&state, &id)?;
    endpoint(&state, &id, &endpoint_id).await?;
    let event = match &body.event {
        Some(text) => Some(
            text.strip_prefix("evt_")
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| invalid("/event", format!("{text:?} is not an event id (evt_…)")))?,
        ),
        None => None,
    };
    let now = sandbox.now_ms();
    let requeued = state
        .store
        .requeue_deliveries(&id, &endpoint_id, event, now)
        .await?;
    if requeued == 0 && event.is_some() {
        return Err(ApiError::not_found(
            "not-found",
            format!(
                "event {} was never delivered to {endpoint_id}",
                body.event.unwrap_or_default()
            ),
        ));
    }
    sandbox.next_delivery.note(now);
    Ok(Json(Requeued { requeued }))
}
