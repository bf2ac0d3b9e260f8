//! The webhook delivery worker: sends every due delivery of the outbox,
//! signed as Standard Webhooks says, through the egress policy; records
//! each attempt; retries failures on the sandbox's schedule (on its clock,
//! so advancing the clock fires the retries due meanwhile); dead-letters
//! what the schedule gives up on; disables endpoints that keep failing.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use sbx_engine::UpstreamRequest;
use sbx_store::{AttemptRecord, DeliveryClaim, DueDelivery, EventId};
use sbx_webhooks::{Faults, RetrySchedule};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, rfc3339},
    runtime::registry::LiveSandbox,
};

/// How often the worker looks for due deliveries.
const POLL: Duration = Duration::from_millis(100);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries sent at once per sandbox.
const BATCH: u32 = 64;
/// How long a claimed delivery stays this server's without its attempt
/// being recorded (real time): past every attempt's timeout, so only a
/// server that died loses its claims.
const CLAIM_MS: i64 = 60_000;
/// Longest part of a receiver's answer kept with the attempt.
const EXCERPT_BYTES: usize = 1024;

/// What a receiver gets: the event as Standard Webhooks shapes it.
pub fn body(event: EventId, event_type: &str, created_at_ms: i64, data: &Value) -> Vec<u8> {
    json!({
        "id": event.to_string(),
        "type": event_type,
        "timestamp": rfc3339(created_at_ms),
        "data": data,
    })
    .to_string()
    .into_bytes()
}

/// Sends due deliveries until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    super::every(POLL, shutdown, || async { start_due(&state) }).await;
}

/// Starts the due deliveries of every sandbox, each sandbox on its own
/// task: a slow receiver of one never holds up another's deliveries.
fn start_due(state: &AppState) {
    for sandbox in state.registry.all() {
        if !sandbox.served_here() {
            continue;
        }
        let now_ms = sandbox.now_ms();
        if sandbox.next_delivery.get().is_none_or(|due| due > now_ms) {
            continue;
        }
        let Ok(running) = sandbox.delivering.clone().try_lock_owned() else {
            continue;
        };
        let worker = state.clone();
        state.workers.spawn(async move {
            deliver_or_retry(&worker, &sandbox, now_ms).await;
            drop(running);
        });
    }
}

/// Sends the due deliveries of every sandbox and returns when they are
/// made (one round of the worker, waiting for rounds already running).
pub async fn deliver_all_due(state: &AppState) {
    let rounds = state.registry.all().into_iter().map(|sandbox| async move {
        let now_ms = sandbox.now_ms();
        if !sandbox.served_here() {
            return;
        }
        if sandbox.next_delivery.get().is_none_or(|due| due > now_ms) {
            return;
        }
        let _running = sandbox.delivering.lock().await;
        deliver_or_retry(state, &sandbox, now_ms).await;
    });
    join_all(rounds).await;
}

async fn deliver_or_retry(state: &AppState, sandbox: &Arc<LiveSandbox>, now_ms: i64) {
    if let Err(error) = deliver_due(state, sandbox, now_ms).await {
        tracing::warn!(sandbox = %sandbox.id, %error, "webhook delivery failed; retrying later");
        sandbox
            .next_delivery
            .set(Some(now_ms.saturating_add(5_000)));
    }
}

/// Sends every delivery of `sandbox` due by `now_ms` (sandbox time).
async fn deliver_due(
    state: &AppState,
    sandbox: &Arc<LiveSandbox>,
    now_ms: i64,
) -> Result<(), sbx_store::StoreError> {
    sandbox.next_delivery.begin();
    loop {
        let real_ms = crate::app::now_ms();
        let claim = DeliveryClaim {
            claimer: state.replica.to_string(),
            now_ms: real_ms,
            until_ms: real_ms + CLAIM_MS,
        };
        let due = state
            .store
            .claim_deliveries(&sandbox.id, now_ms, BATCH, &claim)
            .await?;
        if due.is_empty() {
            break;
        }
        // Endpoints that asked for reordering get theirs newest first, one
        // at a time; the rest go out together.
        let (mut reordered, together): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|d| faults(&d.endpoint).reorder);
        let attempts = together
            .into_iter()
            .map(|d| attempt(state, sandbox, d, now_ms));
        for recorded in join_all(attempts).await {
            recorded?;
        }
        reordered.reverse();
        for delivery in reordered {
            attempt(state, sandbox, delivery, now_ms).await?;
        }
    }
    let next = state.store.due_deliveries(&sandbox.id, i64::MAX, 1).await?;
    sandbox
        .next_delivery
        .set(next.first().map(|d| d.next_attempt_ms));
    Ok(())
}

/// One attempt at `delivery`, recorded with what it leads to.
async fn attempt(
    state: &AppState,
    sandbox: &LiveSandbox,
    delivery: DueDelivery,
    now_ms: i64,
) -> Result<(), sbx_store::StoreError> {
    let real_ms = crate::app::now_ms();
    let endpoint = &delivery.endpoint;
    let id = delivery.event_id.to_string();
    let payload = body(
        delivery.event_id,
        &delivery.event_type,
        delivery.event_created_at_ms,
        &delivery.payload,
    );
    let faults = faults(endpoint);
    // Receivers check the timestamp against their own clock: real time,
    // not the sandbox's (skewed when the endpoint asked for it).
    let timestamp = real_ms / 1000 + faults.skew_seconds.unwrap_or(0);
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret,
        endpoint.previous_secret_expires_ms,
    ) && until > real_ms
    {
        secrets.push(previous);
    }
    let headers = match sbx_webhooks::signature_header(&secrets, &id, timestamp, &payload) {
        Ok(signature) => vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), id.clone()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ("webhook-signature".to_owned(), signature),
        ],
        Err(error) => {
            tracing::error!(endpoint = %endpoint.id, %error, "an endpoint secret does not sign");
            Vec::new()
        }
    };
    let request = UpstreamRequest {
        method: "POST".to_owned(),
        url: endpoint.url.clone(),
        headers: headers.clone(),
        body: payload,
        timeout: ATTEMPT_TIMEOUT,
    };
    let started = std::time::Instant::now();
    let sent = if headers.is_empty() {
        Err(sbx_engine::UpstreamError::Failed(
            "the endpoint's secret cannot sign".to_owned(),
        ))
    } else {
        let duplicate = faults
            .duplicate
            .is_some_and(|p| f64::from(rand_fraction()) < p)
            .then(|| request.clone());
        let sent = match received(state, &sandbox.id, &request, real_ms) {
            Some(answer) => Ok(answer),
            None => state.upstream.send_async(request).await,
        };
        if let Some(again) = duplicate
            && sent.as_ref().is_ok_and(|r| (200..300).contains(&r.status))
        {
            // The same delivery, same `webhook-id`, sent twice.
            let _ = state.upstream.send_async(again).await;
        }
        sent
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status, excerpt, error) = match &sent {
        Ok(response) => {
            let excerpt =
                String::from_utf8_lossy(&response.body[..response.body.len().min(EXCERPT_BYTES)])
                    .into_owned();
            let error = (!(200..300).contains(&response.status))
                .then(|| format!("the endpoint answered {}", response.status));
            (Some(response.status), Some(excerpt), error)
        }
        Err(error) => (None, None, Some(error.to_string())),
    };
    let attempt = delivery.attempts + 1;
    let schedule = RetrySchedule::named(sandbox.webhook_schedule);
    let (delivery_state, next_attempt_ms) = if error.is_none() {
        ("delivered", None)
    } else {
        let draw = f64::from(rand_fraction());
        match schedule.delay_before(usize::try_from(attempt).unwrap_or(usize::MAX), draw) {
            Some(delay) => (
                "pending",
                Some(now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))),
            ),
            None => ("dead", None),
        }
    };
    let failures = if error.is_some() {
        endpoint.failures_in_row + 1
    } else {
        0
    };
    let limit = state.config.webhook_disable_after_failures;
    let disable_endpoint = (failures >= limit).then(|| {
        format!(
            "disabled after {failures} failed deliveries in a row; the last: {}",
            error.as_deref().unwrap_or("")
        )
    });
    state.metrics.webhook_attempt(match delivery_state {
        "pending" => "retrying",
        other => other,
    });
    let record = AttemptRecord {
        delivery_id: delivery.id,
        endpoint_id: endpoint.id.clone(),
        attempt,
        at_ms: now_ms,
        request_headers: Value::Object(
            headers
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect(),
        )
        .to_string(),
        status,
        body_excerpt: excerpt,
        latency_ms,
        error,
        state: delivery_state,
        next_attempt_ms,
        disable_endpoint,
    };
    state.store.record_attempt(&record).await
}

/// The built-in receiver's answer, when `request` is to the sandbox's
/// receiver: kept in memory rather than sent (see `runtime::receiver`).
fn received(
    state: &AppState,
    sandbox_id: &str,
    request: &UpstreamRequest,
    at_ms: i64,
) -> Option<sbx_engine::UpstreamResponse> {
    state
        .receiver
        .take(
            &state.public_url,
            sandbox_id,
            &request.url,
            &request.headers,
            &request.body,
            at_ms,
        )
        .then(|| sbx_engine::UpstreamResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        })
}

/// The faults an endpoint opted into (none when unreadable).
fn faults(endpoint: &sbx_store::EndpointRecord) -> Faults {
    endpoint.faults.clone().unwrap_or_default()
}

/// A uniform draw in `[0, 1)` for retry jitter and injected duplicates.
fn rand_fraction() -> f32 {
    use rand::RngExt;
    rand::rng().random::<f32>()
}
