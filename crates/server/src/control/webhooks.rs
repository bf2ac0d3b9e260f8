//! A sandbox's webhook endpoints, their secrets and their deliveries.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
};
use sbx_store::EndpointRecord;
use sbx_webhooks::Faults;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::created,
    http::error::{ApiError, ApiJson},
    service::caller::Caller,
    service::webhooks::{self as service, EndpointChange},
};

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
            events: e.events,
            enabled: e.disabled_reason.is_none(),
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            secret: e.secret,
            disabled_reason: e.disabled_reason,
            failures_in_row: e.failures_in_row,
            created_at: rfc3339(e.created_at_ms),
            faults: e.faults.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints", operation_id = "createWebhookEndpoint", tag = "webhooks", params(("id" = String, Path)),
    request_body = EndpointChange,
    responses((status = 201, body = EndpointView, description = "events emitted from now on are delivered to it", headers(("location" = String, description = "the new endpoint"))), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<axum::response::Response, ApiError> {
    let record = service::create_endpoint(&state, &caller, &id, body).await?;
    let location = format!(
        "/api/v1/sandboxes/{}/webhook-endpoints/{}",
        record.sandbox_id, record.id
    );
    Ok(created(location, EndpointView::from(record)))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints", operation_id = "listWebhookEndpoints", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = EndpointList), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<EndpointList>, ApiError> {
    let items = service::endpoints(&state, &caller, &id).await?;
    Ok(Json(EndpointList {
        items: items.into_iter().map(EndpointView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", operation_id = "getWebhookEndpoint", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(
        service::endpoint(&state, &caller, &id, &endpoint_id)
            .await?
            .into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", operation_id = "updateWebhookEndpoint", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)), request_body = EndpointChange,
    responses((status = 200, body = EndpointView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<Json<EndpointView>, ApiError> {
    let updated = service::update_endpoint(&state, &caller, &id, &endpoint_id, body).await?;
    Ok(Json(updated.into()))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}", operation_id = "deleteWebhookEndpoint", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service::delete_endpoint(&state, &caller, &id, &endpoint_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = EndpointView, description = "a new secret; for 24 hours deliveries carry both signatures, the new one and the old one"), (status = 404)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    let rotated = service::rotate_secret(&state, &caller, &id, &endpoint_id).await?;
    Ok(Json(rotated.into()))
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

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/deliveries", operation_id = "listDeliveries", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = DeliveryList, description = "the latest 100, newest first, each with every attempt"), (status = 404)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<DeliveryList>, ApiError> {
    let mut items = Vec::new();
    for (delivery, attempts) in
        service::deliveries(&state, &caller, &id, &endpoint_id, LISTED_DELIVERIES).await?
    {
        items.push(DeliveryItem {
            event_id: delivery.event_id.to_string(),
            event_type: delivery.event_type,
            state: delivery.state,
            next_attempt_at: delivery.next_attempt_ms.map(rfc3339),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptItem {
                    attempt: a.attempt,
                    at: rfc3339(a.at_ms),
                    request_headers: a.request_headers,
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

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver", operation_id = "redeliverEvent", tag = "webhooks",
    params(("id" = String, Path), ("endpoint" = String, Path)), request_body = Redelivery,
    responses((status = 200, body = Requeued), (status = 404, description = "no such endpoint, or the event was never delivered to it"), (status = 422)),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, endpoint_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Redelivery>,
) -> Result<Json<Requeued>, ApiError> {
    let requeued =
        service::redeliver(&state, &caller, &id, &endpoint_id, body.event.as_deref()).await?;
    Ok(Json(Requeued { requeued }))
}
