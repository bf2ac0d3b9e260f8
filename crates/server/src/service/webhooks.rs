//! A sandbox's webhook endpoints, their secrets, and the requeueing of
//! their deliveries.

use sbx_store::{AttemptView, DeliveryRecord, EndpointRecord, EventId};
use sbx_webhooks::Faults;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::app::{AppState, now_ms};

/// How long a rotated-out secret keeps signing.
const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// Endpoints per sandbox.
const MAX_ENDPOINTS: usize = 20;

/// `url` is required on creation; on update every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
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

fn checked_faults(faults: Option<Faults>) -> ServiceResult<Option<Faults>> {
    let Some(faults) = faults.filter(|f| !f.is_none()) else {
        return Ok(None);
    };
    faults
        .check()
        .map_err(|m| ServiceError::invalid("/faults", m))?;
    Ok(Some(faults))
}

/// An endpoint URL that can be delivered to: public `http(s)` (or private,
/// as the egress policy allows), or the sandbox's built-in receiver.
fn checked_url(state: &AppState, sandbox_id: &str, url: &str) -> ServiceResult<String> {
    if url == crate::runtime::receiver::url_of(&state.public_url, sandbox_id) {
        return Ok(url.to_owned());
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ServiceError::invalid("/url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ServiceError::invalid(
            "/url",
            "the URL must be http:// or https://",
        ));
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        Some(url::Host::Domain("localhost")) => Some(std::net::IpAddr::from([127, 0, 0, 1])),
        _ => None,
    };
    let policy = state.upstream.policy();
    if let Some(ip) = literal.filter(|ip| !policy.permits(*ip)) {
        return Err(ServiceError::invalid(
            "/url",
            format!("{url}: {}", policy.refusal(ip)),
        ));
    }
    Ok(url.to_owned())
}

fn checked_events(events: Option<Vec<String>>) -> ServiceResult<Vec<String>> {
    let events = events.unwrap_or_else(|| vec!["*".to_owned()]);
    if events.is_empty() || events.iter().any(|e| e.is_empty() || e.len() > 200) {
        return Err(ServiceError::invalid(
            "/events",
            "name one or more event types (or \"*\"), each 1 to 200 characters",
        ));
    }
    Ok(events)
}

/// The endpoint of a live sandbox.
pub async fn endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint: &str,
) -> ServiceResult<EndpointRecord> {
    live(state, caller, id)?;
    state
        .store
        .get_endpoint(id, endpoint)
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!("sandbox {id} has no webhook endpoint {endpoint:?}"))
        })
}

/// How many webhook endpoints the caller's sandboxes have.
pub async fn endpoints_of(state: &AppState, caller: &Caller) -> ServiceResult<usize> {
    let mut count = 0;
    for sandbox in super::sandboxes::list(state, caller, None) {
        count += state.store.list_endpoints(&sandbox.id).await?.len();
    }
    Ok(count)
}

/// The endpoints of a live sandbox.
pub async fn endpoints(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ServiceResult<Vec<EndpointRecord>> {
    live(state, caller, id)?;
    Ok(state.store.list_endpoints(id).await?)
}

/// A new endpoint, with a new secret; events emitted from now on are
/// delivered to it.
pub async fn create_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: EndpointChange,
) -> ServiceResult<EndpointRecord> {
    live(state, caller, id)?;
    let url = change
        .url
        .as_deref()
        .ok_or_else(|| ServiceError::invalid("/url", "url is required"))?;
    let url = checked_url(state, id, url)?;
    let events = checked_events(change.events)?;
    if state.store.list_endpoints(id).await?.len() >= MAX_ENDPOINTS {
        return Err(ServiceError::Conflict(format!(
            "a sandbox has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    if !caller.is_admin() {
        let quota = state.config.quotas.webhook_endpoints;
        let used = endpoints_of(state, caller).await?;
        if used >= quota {
            return Err(ServiceError::QuotaExceeded(format!(
                "quota webhook_endpoints: {used} of {quota} endpoints in use over your sandboxes; delete one first"
            )));
        }
    }
    let record = EndpointRecord {
        id: format!("we_{}", crate::runtime::ids::random_token(16)).into(),
        sandbox_id: id.into(),
        url,
        events,
        description: change.description,
        secret: sbx_webhooks::generate_secret(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        disabled_reason: (change.enabled == Some(false)).then(|| "disabled by request".to_owned()),
        failures_in_row: 0,
        created_at_ms: now_ms(),
        faults: checked_faults(change.faults)?,
    };
    state.store.create_endpoint(&record).await?;
    Ok(record)
}

/// Changes the fields given; re-enabling makes held deliveries due again.
pub async fn update_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint_id: &str,
    change: EndpointChange,
) -> ServiceResult<EndpointRecord> {
    let mut record = endpoint(state, caller, id, endpoint_id).await?;
    if let Some(url) = &change.url {
        record.url = checked_url(state, id, url)?;
    }
    if change.events.is_some() {
        record.events = checked_events(change.events)?;
    }
    if change.description.is_some() {
        record.description = change.description;
    }
    if change.faults.is_some() {
        record.faults = checked_faults(change.faults)?;
    }
    match change.enabled {
        Some(true) => {
            record.disabled_reason = None;
            record.failures_in_row = 0;
        }
        Some(false) => record.disabled_reason = Some("disabled by request".to_owned()),
        None => {}
    }
    state.store.update_endpoint(&record).await?;
    if record.disabled_reason.is_none()
        && let Some(sandbox) = state.registry.get(id)
    {
        // Deliveries held while it was disabled are due again.
        sandbox.next_delivery.note(i64::MIN);
    }
    Ok(record)
}

/// Deletes an endpoint and its deliveries.
pub async fn delete_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint_id: &str,
) -> ServiceResult<()> {
    live(state, caller, id)?;
    if state.store.delete_endpoint(id, endpoint_id).await? {
        return Ok(());
    }
    Err(endpoint(state, caller, id, endpoint_id)
        .await
        .err()
        .unwrap_or_else(|| ServiceError::NotFound(format!("no webhook endpoint {endpoint_id:?}"))))
}

/// An endpoint's latest deliveries (at most `limit`), newest first, each
/// with its attempts.
pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint_id: &str,
    limit: u32,
) -> ServiceResult<Vec<(DeliveryRecord, Vec<AttemptView>)>> {
    endpoint(state, caller, id, endpoint_id).await?;
    let mut deliveries = Vec::new();
    for delivery in state.store.list_deliveries(id, endpoint_id, limit).await? {
        let attempts = state.store.list_attempts(delivery.id).await?;
        deliveries.push((delivery, attempts));
    }
    Ok(deliveries)
}

/// A new secret; for a while deliveries carry both signatures, the new
/// one and the old one.
pub async fn rotate_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint_id: &str,
) -> ServiceResult<EndpointRecord> {
    let mut record = endpoint(state, caller, id, endpoint_id).await?;
    record.previous_secret = Some(std::mem::replace(
        &mut record.secret,
        sbx_webhooks::generate_secret(),
    ));
    record.previous_secret_expires_ms = Some(now_ms() + ROTATION_OVERLAP_MS);
    state.store.update_endpoint(&record).await?;
    Ok(record)
}

/// Makes deliveries to an endpoint pending again, attempts starting over:
/// one event's (`evt_…`), or every dead letter's. How many.
pub async fn redeliver(
    state: &AppState,
    caller: &Caller,
    id: &str,
    endpoint_id: &str,
    event: Option<&str>,
) -> ServiceResult<u64> {
    let sandbox = live(state, caller, id)?;
    endpoint(state, caller, id, endpoint_id).await?;
    let number = match event {
        Some(text) => Some(EventId::parse(text).ok_or_else(|| {
            ServiceError::invalid("/event", format!("{text:?} is not an event id (evt_…)"))
        })?),
        None => None,
    };
    let now = sandbox.now_ms();
    let requeued = state
        .store
        .requeue_deliveries(id, endpoint_id, number, now)
        .await?;
    if let Some(event) = event.filter(|_| requeued == 0) {
        return Err(ServiceError::NotFound(format!(
            "event {event} was never delivered to {endpoint_id}"
        )));
    }
    sandbox.next_delivery.note(now);
    Ok(requeued)
}
