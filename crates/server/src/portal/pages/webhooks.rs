//! A sandbox's webhooks page: endpoints (add, enable or disable, rotate
//! the secret, delete), the event catalog with "send test event", every
//! delivery with its attempts and redelivery, and the built-in receiver.

use axum::{
    Extension, Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::{Confirmed, SandboxSummary, account::Done, header_lines, missing, posted_to, shown};
use crate::{
    app::{AppState, rfc3339},
    http::middleware::RequestId,
    portal::{Base, Failure, audited, changed, done, notice_of, session::Visitor, templates::page},
    runtime::{receiver, registry::LiveSandbox},
    service::{
        ServiceError, events,
        webhooks::{self, EndpointChange},
    },
};

/// Deliveries listed per endpoint.
const LISTED_DELIVERIES: u32 = 20;

#[derive(Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    description: Option<String>,
    disabled: Option<String>,
    failures: i64,
    is_receiver: bool,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Serialize)]
struct DeliveryRow {
    event_id: String,
    event_type: String,
    state: String,
    next_attempt_at: Option<String>,
    attempts: Vec<AttemptRow>,
}

#[derive(Serialize)]
struct AttemptRow {
    attempt: i64,
    at: String,
    status: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
    /// The request's headers, one per line (signatures included).
    headers: String,
    excerpt: Option<String>,
}

#[derive(Serialize)]
struct EventTypeRow {
    name: String,
    description: Option<String>,
    golden: String,
}

#[derive(Serialize)]
struct ReceivedRow {
    at: String,
    headers: String,
    body: String,
}

#[derive(Serialize, Deserialize, Default)]
pub struct EndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

#[derive(Serialize)]
struct WebhooksPage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    receiver_url: String,
    endpoints: Vec<EndpointRow>,
    event_types: Vec<EventTypeRow>,
    received: Vec<ReceivedRow>,
    revealed: Option<String>,
    form: EndpointForm,
}

fn here(id: &str) -> String {
    format!("/portal/sandboxes/{id}/webhooks")
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Response {
    let sandbox = match shown(&state, &visitor, &id) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let mut base = Base::of(&visitor, "sandboxes");
    if let Some(notice) = notice_of(query.done.as_deref()) {
        base = base.notice(notice);
    }
    webhooks_page(
        &state,
        &visitor,
        &sandbox,
        StatusCode::OK,
        base,
        None,
        EndpointForm::default(),
    )
    .await
}

async fn webhooks_page(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    status: StatusCode,
    base: Base,
    revealed: Option<String>,
    form: EndpointForm,
) -> Response {
    let receiver_url = receiver::url_of(&state.public_url, &sandbox.id);
    let records = match webhooks::endpoints(state, &visitor.caller, &sandbox.id).await {
        Ok(records) => records,
        Err(error) => return missing(visitor, Failure::from(error)),
    };
    let mut endpoints = Vec::new();
    for record in records {
        let deliveries = webhooks::deliveries(
            state,
            &visitor.caller,
            &sandbox.id,
            &record.id,
            LISTED_DELIVERIES,
        )
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(delivery, attempts)| DeliveryRow {
            event_id: delivery.event_id.to_string(),
            event_type: delivery.event_type,
            state: delivery.state,
            next_attempt_at: delivery.next_attempt_ms.map(rfc3339),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptRow {
                    attempt: a.attempt,
                    at: rfc3339(a.at_ms),
                    status: a.status,
                    latency_ms: a.latency_ms,
                    error: a.error,
                    headers: header_lines(
                        a.request_headers
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
                    ),
                    excerpt: a.body_excerpt.filter(|e| !e.is_empty()),
                })
                .collect(),
        })
        .collect();
        endpoints.push(EndpointRow {
            id: record.id.to_string(),
            is_receiver: record.url == receiver_url,
            url: record.url,
            events: record.events.join(", "),
            description: record.description,
            disabled: record.disabled_reason,
            failures: record.failures_in_row,
            deliveries,
        });
    }
    let compiled = sandbox.serving().compiled;
    let event_types = compiled
        .events
        .types
        .values()
        .map(|t| EventTypeRow {
            name: t.name.clone(),
            description: t.description.clone(),
            golden: serde_json::to_string_pretty(&t.golden).unwrap_or_default(),
        })
        .collect();
    let received = state
        .receiver
        .received(&sandbox.id)
        .into_iter()
        .map(|r| ReceivedRow {
            at: rfc3339(r.at_ms),
            headers: header_lines(r.headers),
            body: r.body,
        })
        .collect();
    page(
        status,
        "webhooks.html",
        WebhooksPage {
            base,
            sandbox: SandboxSummary::of(state, sandbox),
            receiver_url,
            endpoints,
            event_types,
            received,
            revealed,
            form,
        },
    )
}

async fn refused(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    failure: Failure,
    form: EndpointForm,
) -> Response {
    let fields = [
        ("/url", "url"),
        ("/events", "events"),
        ("/description", "description"),
    ];
    let base = Base::of(visitor, "sandboxes").failed(&failure, &fields);
    webhooks_page(state, visitor, sandbox, failure.status, base, None, form).await
}

/// The page again with a refusal that concerns no field of the form.
async fn refused_plainly(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    error: ServiceError,
) -> Response {
    refused(
        state,
        visitor,
        sandbox,
        Failure::from(error),
        EndpointForm::default(),
    )
    .await
}

#[derive(Deserialize)]
pub struct NewEndpoint {
    #[serde(default)]
    csrf: String,
    /// Present: the sandbox's built-in receiver, whatever `url` says.
    receiver: Option<String>,
    #[serde(flatten)]
    form: EndpointForm,
}

#[derive(Deserialize)]
pub struct EditedEndpoint {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: EndpointForm,
}

/// The form's event types: comma-separated; none given is `None`.
fn event_types(text: &str) -> Option<Vec<String>> {
    let events: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    (!events.is_empty()).then_some(events)
}

pub async fn edit(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, endpoint)): Path<(String, String)>,
    Form(EditedEndpoint { csrf, form }): Form<EditedEndpoint>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let change = EndpointChange {
        url: Some(form.url.trim().to_owned()),
        events: Some(event_types(&form.events).unwrap_or_else(|| vec!["*".to_owned()])),
        description: Some(form.description.trim().to_owned()).filter(|d| !d.is_empty()),
        ..EndpointChange::default()
    };
    match webhooks::update_endpoint(&state, &visitor.caller, &id, &endpoint, change).await {
        Ok(_) => {
            let call = (
                "PATCH /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
                format!("/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}"),
                200,
            );
            changed(
                &state,
                &visitor,
                &headers,
                call,
                &here(&id),
                "endpoint-saved",
            )
            .await
        }
        Err(error) => refused(&state, &visitor, &sandbox, Failure::from(error), form).await,
    }
}

pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(NewEndpoint {
        csrf,
        receiver,
        form,
    }): Form<NewEndpoint>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let url = match receiver {
        Some(_) => receiver::url_of(&state.public_url, &id),
        None => form.url.trim().to_owned(),
    };
    let change = EndpointChange {
        url: Some(url),
        events: event_types(&form.events),
        description: Some(form.description.trim().to_owned()).filter(|d| !d.is_empty()),
        ..EndpointChange::default()
    };
    match webhooks::create_endpoint(&state, &visitor.caller, &id, change).await {
        Ok(record) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/webhook-endpoints",
                format!("/api/v1/sandboxes/{id}/webhook-endpoints/{}", record.id),
                201,
            )
            .await;
            let base = Base::of(&visitor, "sandboxes")
                .notice("The endpoint is added: events emitted from now on are delivered to it.");
            webhooks_page(
                &state,
                &visitor,
                &sandbox,
                StatusCode::CREATED,
                base,
                Some(record.secret),
                EndpointForm::default(),
            )
            .await
        }
        Err(error) => refused(&state, &visitor, &sandbox, Failure::from(error), form).await,
    }
}

#[derive(Deserialize)]
pub struct Enabled {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

pub async fn set_enabled(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, endpoint)): Path<(String, String)>,
    Form(form): Form<Enabled>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let enabled = form.enabled == "true";
    let change = EndpointChange {
        enabled: Some(enabled),
        ..EndpointChange::default()
    };
    match webhooks::update_endpoint(&state, &visitor.caller, &id, &endpoint, change).await {
        Ok(_) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "PATCH /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
                format!("/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}"),
                200,
            )
            .await;
            done(
                &here(&id),
                if enabled {
                    "endpoint-enabled"
                } else {
                    "endpoint-disabled"
                },
            )
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

pub async fn rotate(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, endpoint)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match webhooks::rotate_secret(&state, &visitor.caller, &id, &endpoint).await {
        Ok(record) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret",
                format!("/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret"),
                200,
            )
            .await;
            let base = Base::of(&visitor, "sandboxes").notice(
                "A new secret: deliveries carry both signatures, new and old, for 24 hours.",
            );
            webhooks_page(
                &state,
                &visitor,
                &sandbox,
                StatusCode::OK,
                base,
                Some(record.secret),
                EndpointForm::default(),
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

pub async fn delete(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, endpoint)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match webhooks::delete_endpoint(&state, &visitor.caller, &id, &endpoint).await {
        Ok(()) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "DELETE /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}",
                format!("/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}"),
                204,
            )
            .await;
            done(&here(&id), "endpoint-deleted")
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct Redeliver {
    #[serde(default)]
    csrf: String,
    /// One event's delivery; absent: every dead letter.
    event: Option<String>,
}

pub async fn redeliver(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, endpoint)): Path<(String, String)>,
    Form(form): Form<Redeliver>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let event = form
        .event
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match webhooks::redeliver(&state, &visitor.caller, &id, &endpoint, event).await {
        Ok(_) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "POST /api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver",
                    format!("/api/v1/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver"),
                    200,
                ),
                &here(&id),
                "redelivering",
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct TestEvent {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "type")]
    event_type: String,
}

pub async fn send_test(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    Form(form): Form<TestEvent>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let request_id = request_id
        .map(|Extension(id)| id.to_string())
        .unwrap_or_default();
    match events::trigger(
        &state,
        &visitor.caller,
        &id,
        form.event_type,
        None,
        &request_id,
    )
    .await
    {
        Ok(emitted) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "POST /api/v1/sandboxes/{id}/events",
                    format!("/api/v1/sandboxes/{id}/events/{}", emitted.id),
                    201,
                ),
                &here(&id),
                "event-sent",
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}
