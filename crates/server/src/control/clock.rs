//! A sandbox's test clock, the jobs waiting on it, and the lifecycle
//! history of its records (dated by that clock).

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, now_ms, rfc3339},
    http::error::{ApiError, ApiJson},
    http::middleware::RequestId,
    runtime::registry::LiveSandbox,
    service::caller::Caller,
    service::{
        ServiceError,
        clock::{self as service, ClockMove, History, Move},
        sandboxes::live,
    },
    workers::scheduler::RunReport,
};

/// Most pending and failed jobs listed.
const LISTED_JOBS: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// Sandbox time it falls due.
    pub due_at: String,
    pub scheduled_at: String,
    /// What it does: `{"kind": "script", "name"}`, `{"kind": "emit",
    /// "event_type"}`, `{"kind": "update", "collection", "id"}` or
    /// `{"kind": "transition", "collection", "id", "from", "to", "after"}`.
    #[schema(value_type = Object)]
    pub action: Value,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Why it failed, for a failed job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<sbx_store::JobRecord> for JobView {
    fn from(job: sbx_store::JobRecord) -> Self {
        Self {
            id: job.id.to_string(),
            due_at: rfc3339(job.due_at_ms),
            scheduled_at: rfc3339(job.scheduled_at_ms),
            action: job.action,
            payload: job.payload,
            error: job.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    /// The sandbox's time.
    pub now: String,
    pub frozen: bool,
    /// How far the clock is from real time, in milliseconds.
    pub offset_ms: i64,
    /// When the sandbox expires, as this clock reads it (expiry itself
    /// counts real time: advancing the clock does not end the sandbox).
    pub expires_at: Option<String>,
    /// Jobs waiting on the clock, earliest first (at most 100).
    pub pending_jobs: Vec<JobView>,
    /// Jobs that failed, latest first (at most 100).
    pub failed_jobs: Vec<JobView>,
    /// Jobs this change of the clock ran (POST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran_jobs: Option<usize>,
    /// How many of them failed (POST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_now: Option<usize>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockChange {
    /// Moves the clock forward by an ISO 8601 duration (`P30D`, `PT2H`, `P1M`).
    pub advance: Option<String>,
    /// Stops the clock at this RFC 3339 instant.
    pub freeze_at: Option<String>,
    /// `true`: stops the clock where it is.
    pub freeze: Option<bool>,
    /// `true`: the clock runs again from where it stood.
    pub resume: Option<bool>,
}

async fn clock_view(
    state: &AppState,
    sandbox: &LiveSandbox,
    ran: Option<RunReport>,
) -> Result<ClockView, ApiError> {
    let clock = sandbox.clock();
    let real = now_ms();
    let now = clock.now_ms(real);
    let pending = state
        .store
        .pending_jobs(&sandbox.id, None, LISTED_JOBS)
        .await?;
    let failed = state.store.failed_jobs(&sandbox.id, LISTED_JOBS).await?;
    Ok(ClockView {
        now: rfc3339(now),
        frozen: clock.frozen_ms.is_some(),
        offset_ms: now - real,
        expires_at: sandbox
            .expires_at_ms()
            .map(|at| rfc3339(now.saturating_add(at - real))),
        pending_jobs: pending.into_iter().map(JobView::from).collect(),
        failed_jobs: failed.into_iter().map(JobView::from).collect(),
        ran_jobs: ran.map(|r| r.ran),
        failed_now: ran.map(|r| r.failed),
    })
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/clock", operation_id = "getSandboxClock", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = ClockView), (status = 404)), security(("bearer" = [])))]
pub async fn clock(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ClockView>, ApiError> {
    let sandbox = live(&state, &caller, &id)?;
    Ok(Json(clock_view(&state, &sandbox, None).await?))
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/clock", operation_id = "moveSandboxClock", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ClockChange,
    responses((status = 200, body = ClockView, description = "the clock moved; every job that fell due on the way has run, in time order, and its effects are committed"),
              (status = 404), (status = 409, description = "more jobs fell due than one advance runs; the clock stopped at the first left waiting"),
              (status = 422, description = "not exactly one change, or a bad duration or instant")),
    security(("bearer" = [])))]
pub async fn change_clock(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(change): ApiJson<ClockChange>,
) -> Result<Json<ClockView>, ApiError> {
    let (sandbox, report) =
        service::move_clock(&state, &caller, &id, change.parse()?, &request_id).await?;
    Ok(Json(clock_view(&state, &sandbox, Some(report)).await?))
}

impl ClockChange {
    fn parse(self) -> Result<ClockMove, ServiceError> {
        match (self.advance, self.freeze_at, self.freeze, self.resume) {
            (Some(duration), None, None, None) => Ok(ClockMove::Advance(duration)),
            (None, Some(instant), None, None) => Ok(ClockMove::FreezeAt(instant)),
            (None, None, Some(true), None) => Ok(ClockMove::Freeze),
            (None, None, None, Some(true)) => Ok(ClockMove::Resume),
            _ => Err(ServiceError::invalid(
                "",
                "send exactly one of {\"advance\": \"P30D\"}, {\"freeze_at\": \"…\"}, {\"freeze\": true}, {\"resume\": true}",
            )),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/resources/{collection}/{rid}/history", operation_id = "getResourceHistory", tag = "sandboxes",
    params(("id" = String, Path), ("collection" = String, Path), ("rid" = String, Path, description = "the record's id")),
    responses((status = 200, body = History), (status = 404, description = "no such sandbox, collection without a lifecycle, or a record never seen")),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, collection, rid)): Path<(String, String, String)>,
) -> Result<Json<History>, ApiError> {
    Ok(Json(
        service::history(&state, &caller, &id, collection, rid).await?,
    ))
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Move the record to this state.
    pub to: Option<String>,
    /// Trigger this event on the record: the lifecycle's `on_event`
    /// transition out of its present state says where it goes.
    pub event: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/resources/{collection}/{rid}/transition", operation_id = "transitionResource", tag = "sandboxes",
    params(("id" = String, Path), ("collection" = String, Path), ("rid" = String, Path, description = "the record's id")),
    request_body = TransitionRequest,
    responses((status = 200, body = History, description = "moved, as a behaviour would move it: the transition's event is emitted and its timed transitions scheduled"),
              (status = 404, description = "no such sandbox, record, or lifecycle"),
              (status = 409, description = "the lifecycle allows no such move from the record's state"),
              (status = 422, description = "not exactly one of to, event")),
    security(("bearer" = [])))]
pub async fn transition(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, collection, rid)): Path<(String, String, String)>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<TransitionRequest>,
) -> Result<Json<History>, ApiError> {
    let to = match (body.to, body.event) {
        (Some(to), None) => Move::ToState(to),
        (None, Some(event)) => Move::ByEvent(event),
        _ => {
            return Err(ServiceError::invalid(
                "",
                "send exactly one of {\"to\": \"<state>\"}, {\"event\": \"<event type>\"}",
            )
            .into());
        }
    };
    let moved = service::transition(&state, &caller, &id, (collection, rid), to, &request_id);
    Ok(Json(moved.await?))
}
