//! A sandbox's events: listed, triggered by the developer, and streamed
//! (signed, ready to forward) to `sbx listen`.

use std::{convert::Infallible, time::Duration};

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use base64::Engine;
use futures_util::Stream;
use sbx_engine::events::EventTypeSummary;
use sbx_store::EventRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    http::error::{ApiError, ApiJson},
    http::middleware::RequestId,
    service::caller::Caller,
    service::{events as service, sandboxes::live},
    workers::deliveries::body,
};

/// Events listed per call.
const EVENTS_PAGE: u32 = 100;
/// How often a stream looks for new events.
const STREAM_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// `evt_…`: also the `webhook-id` of its deliveries.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Sandbox time.
    pub created_at: String,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        Self {
            id: e.id.to_string(),
            event_type: e.event_type,
            data: e.payload,
            created_at: rfc3339(e.created_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<EventView>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/events", operation_id = "listEvents", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = EventList, description = "The latest 100 events, newest first"), (status = 404)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<EventList>, ApiError> {
    live(&state, &caller, &id)?;
    let items = state.store.list_events(&id, EVENTS_PAGE).await?;
    Ok(Json(EventList {
        items: items.into_iter().map(EventView::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<EventTypeSummary>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/event-types", operation_id = "listEventTypes", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = EventTypeList, description = "the event catalog of the sandbox's revision: `{name, description, source, golden}`"), (status = 404)),
    security(("bearer" = [])))]
pub async fn types(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<EventTypeList>, ApiError> {
    let sandbox = live(&state, &caller, &id)?;
    Ok(Json(EventTypeList {
        items: sandbox.serving().compiled.events.summaries(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload; the type's golden payload when absent.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/events", operation_id = "triggerEvent", tag = "webhooks", params(("id" = String, Path)),
    request_body = Trigger,
    responses((status = 201, body = EventView, description = "stored and queued for every endpoint that listens to its type"), (status = 404),
              (status = 422, description = "an unknown type without data, or data that breaks the type's schema")),
    security(("bearer" = [])))]
pub async fn trigger(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<Trigger>,
) -> Result<(StatusCode, Json<EventView>), ApiError> {
    let emitted = service::trigger(
        &state,
        &caller,
        &id,
        body.event_type,
        body.data,
        &request_id,
    )
    .await?;
    let event = EventView {
        id: emitted.id.to_string(),
        event_type: emitted.event_type,
        data: emitted.data,
        created_at: rfc3339(emitted.created_at_ms),
    };
    Ok((StatusCode::CREATED, Json(event)))
}

/// The secret `sbx listen` deliveries are signed with: stable per
/// sandbox, derived from what only the server knows (the digest of the
/// sandbox's first key, as stored).
pub fn listen_secret(sandbox: &sbx_store::SandboxRecord) -> String {
    let digest = Sha256::new()
        .chain_update(b"sbx-listen\0")
        .chain_update(sandbox.key_hash.as_bytes())
        .chain_update(sandbox.id.as_bytes())
        .finalize();
    format!(
        "{}{}",
        sbx_webhooks::SECRET_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/events/stream", operation_id = "streamEvents", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "Server-sent events: first `ready` with `{secret}`, then one `delivery` per new event with `{id, type, headers, body}` — the request a webhook endpoint would get, signed with that secret"),
              (status = 404)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    live(&state, &caller, &id)?;
    let record = state
        .store
        .get_sandbox(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("sandbox \"{id}\" does not exist")))?;
    let secret = listen_secret(&record);
    let last = state
        .store
        .list_events(&id, 1)
        .await?
        .first()
        .map_or(0, |e| e.id.0);
    let ready = Event::default()
        .event("ready")
        .data(json!({"sandbox": id, "secret": secret}).to_string());
    let events = futures_util::stream::unfold(
        (state, id, secret, last, Vec::<Event>::new()),
        |(state, id, secret, mut last, mut queued)| async move {
            loop {
                if let Some(event) = queued.pop() {
                    return Some((Ok(event), (state, id, secret, last, queued)));
                }
                tokio::time::sleep(STREAM_POLL).await;
                // A store error ends nothing: the next poll tries again.
                let Ok(found) = state.store.events_after(&id, last, 100).await else {
                    continue;
                };
                for record in found.into_iter().rev() {
                    last = last.max(record.id.0);
                    queued.push(signed(&record, &secret));
                }
            }
        },
    );
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(ready) }),
        events,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// An event as the request a webhook endpoint would get, signed now.
fn signed(record: &EventRecord, secret: &str) -> Event {
    let payload = body(
        record.id,
        &record.event_type,
        record.created_at_ms,
        &record.payload,
    );
    let id = record.id.to_string();
    let timestamp = crate::app::now_ms() / 1000;
    let signature =
        sbx_webhooks::signature_header(&[secret], &id, timestamp, &payload).unwrap_or_default();
    let data = json!({
        "id": id,
        "type": record.event_type,
        "headers": {
            "content-type": "application/json",
            "webhook-id": id,
            "webhook-timestamp": timestamp.to_string(),
            "webhook-signature": signature,
        },
        "body": String::from_utf8_lossy(&payload),
    });
    Event::default()
        .event("delivery")
        .id(id)
        .data(data.to_string())
}
