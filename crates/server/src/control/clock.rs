//! A sandbox's test clock, the jobs waiting on it, and the lifecycle
//! history of its records (dated by that clock).

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use sbx_store::Origin;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use sbx_engine::jobs::{NotMade, Target};

use crate::{
    app::{AppState, now_ms, rfc3339},
    control::sandboxes::{invalid, live},
    data_plane::persist,
    error::{ApiError, ApiJson},
    middleware::RequestId,
    registry::LiveSandbox,
    scheduler::{self, RunReport},
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
            id: job.id,
            due_at: rfc3339(job.due_at_ms),
            scheduled_at: rfc3339(job.scheduled_at_ms),
            action: serde_json::from_str(&job.action).unwrap_or_default(),
            payload: serde_json::from_str(&job.payload).unwrap_or_default(),
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
            .expires_at_ms
            .map(|at| rfc3339(now.saturating_add(at - real))),
        pending_jobs: pending.into_iter().map(JobView::from).collect(),
        failed_jobs: failed.into_iter().map(JobView::from).collect(),
        ran_jobs: ran.map(|r| r.ran),
        failed_now: ran.map(|r| r.failed),
    })
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/clock", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = ClockView), (status = 404)), security(("admin" = [])))]
pub async fn clock(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClockView>, ApiError> {
    let sandbox = live(&state, &id)?;
    Ok(Json(clock_view(&state, &sandbox, None).await?))
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/clock", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ClockChange,
    responses((status = 200, body = ClockView, description = "the clock moved; every job that fell due on the way has run, in time order, and its effects are committed"),
              (status = 404), (status = 409, description = "more jobs fell due than one advance runs; the clock stopped at the first left waiting"),
              (status = 422, description = "not exactly one change, or a bad duration or instant")),
    security(("admin" = [])))]
pub async fn change_clock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(change): ApiJson<ClockChange>,
) -> Result<Json<ClockView>, ApiError> {
    let sandbox = live(&state, &id)?;
    // One clock change (and one job runner) at a time per sandbox.
    let _jobs = sandbox.jobs.lock().await;
    let clock = sandbox.clock();
    let real = now_ms();
    let (mut changed, described) = match (
        &change.advance,
        &change.freeze_at,
        change.freeze,
        change.resume,
    ) {
        (Some(duration), None, None, None) => (
            clock
                .advanced(duration, real)
                .map_err(|message| invalid("/advance", message))?,
            format!("advance {duration}"),
        ),
        (None, Some(instant), None, None) => {
            let at = crate::clock::parse_instant(instant)
                .map_err(|message| invalid("/freeze_at", message))?;
            (clock.frozen_at(at), format!("freeze at {instant}"))
        }
        (None, None, Some(true), None) => (clock.frozen_at(clock.now_ms(real)), "freeze".into()),
        (None, None, None, Some(true)) => (clock.resumed(real), "resume".into()),
        _ => {
            return Err(invalid(
                "",
                "send exactly one of {\"advance\": \"P30D\"}, {\"freeze_at\": \"…\"}, {\"freeze\": true}, {\"resume\": true}".into(),
            ));
        }
    };
    let target = changed.now_ms(real);
    let report = scheduler::run_due(&state, &sandbox, target)
        .await
        .map_err(ApiError::internal)?;
    if let Some(stopped) = report.stopped_at_ms {
        changed = changed.moved_to(stopped, real);
    }
    state
        .store
        .set_sandbox_clock(&id, changed.offset_ms, changed.frozen_ms)
        .await?;
    state
        .store
        .add_clock_change(&sbx_store::ClockChange {
            sandbox_id: id.clone(),
            at_ms: real,
            from_ms: clock.now_ms(real),
            to_ms: changed.now_ms(real),
            change: described,
            request_id: Some(request_id),
        })
        .await?;
    sandbox.set_clock(changed);
    if let Some(stopped) = report.stopped_at_ms {
        return Err(ApiError::conflict(format!(
            "{} jobs ran, the most one advance runs; the clock stopped at {}, where more are due (does a job keep scheduling itself?). Advance again to go on.",
            report.ran,
            rfc3339(stopped)
        )));
    }
    Ok(Json(clock_view(&state, &sandbox, Some(report)).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    /// `null` when the record was created in `to`.
    pub from: Option<String>,
    pub to: String,
    /// Sandbox time of the change.
    pub at: String,
    /// What made it: `operation createPayment`, `scenario card_declined
    /// (createPayment)`, `after P2D`, `job settle`.
    pub cause: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub collection: String,
    pub id: String,
    /// The record's present state, when it still exists.
    pub state: Option<String>,
    pub transitions: Vec<TransitionView>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/resources/{collection}/{rid}/history", tag = "sandboxes",
    params(("id" = String, Path), ("collection" = String, Path), ("rid" = String, Path, description = "the record's id")),
    responses((status = 200, body = History), (status = 404, description = "no such sandbox, collection without a lifecycle, or a record never seen")),
    security(("admin" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Path((id, collection, rid)): Path<(String, String, String)>,
) -> Result<Json<History>, ApiError> {
    let sandbox = live(&state, &id)?;
    Ok(Json(history_of(&state, &sandbox, collection, rid).await?))
}

async fn history_of(
    state: &AppState,
    sandbox: &LiveSandbox,
    collection: String,
    rid: String,
) -> Result<History, ApiError> {
    let compiled = sandbox.serving().compiled;
    let Some(lifecycle) = compiled.behaviours.lifecycles.of(&collection) else {
        return Err(ApiError::not_found(
            "no-lifecycle",
            format!(
                "collection {collection:?} of this sandbox declares no lifecycle (lifecycles/{collection}.yaml)"
            ),
        ));
    };
    let record = sandbox.state.get(&collection, &rid);
    let transitions = state
        .store
        .list_transitions(&sandbox.id, &collection, &rid)
        .await?;
    if record.is_none() && transitions.is_empty() {
        return Err(ApiError::not_found(
            "not-found",
            format!("no {collection} record has id {rid:?}"),
        ));
    }
    Ok(History {
        state: record.and_then(|r| lifecycle.state_of(&r.value.value).map(str::to_owned)),
        collection,
        id: rid,
        transitions: transitions
            .into_iter()
            .map(|t| TransitionView {
                from: t.from,
                to: t.to,
                at: rfc3339(t.at_ms),
                cause: t.cause,
            })
            .collect(),
    })
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

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/resources/{collection}/{rid}/transition", tag = "sandboxes",
    params(("id" = String, Path), ("collection" = String, Path), ("rid" = String, Path, description = "the record's id")),
    request_body = TransitionRequest,
    responses((status = 200, body = History, description = "moved, as a behaviour would move it: the transition's event is emitted and its timed transitions scheduled"),
              (status = 404, description = "no such sandbox, record, or lifecycle"),
              (status = 409, description = "the lifecycle allows no such move from the record's state"),
              (status = 422, description = "not exactly one of to, event")),
    security(("admin" = [])))]
pub async fn transition(
    State(state): State<AppState>,
    Path((id, collection, rid)): Path<(String, String, String)>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(body): ApiJson<TransitionRequest>,
) -> Result<Json<History>, ApiError> {
    let sandbox = live(&state, &id)?;
    if body.to.is_some() == body.event.is_some() {
        return Err(invalid(
            "",
            "send exactly one of {\"to\": \"<state>\"}, {\"event\": \"<event type>\"}".into(),
        ));
    }
    let compiled = sandbox.serving().compiled;
    let context = sandbox.background();
    let now_ms = sandbox.now_ms();
    let (moved_collection, moved_id) = (collection.clone(), rid.clone());
    // It waits for the sandbox's write turn: not on an async worker.
    let (journal, result) = state
        .user_work
        .run(&id, move || {
            let target = match (&body.to, &body.event) {
                (Some(to), _) => Target::State(to),
                (None, event) => Target::Event(event.as_deref().unwrap_or_default()),
            };
            sbx_engine::jobs::transition(
                &compiled,
                &context,
                now_ms,
                (&moved_collection, &moved_id),
                target,
            )
        })
        .await
        .map_err(ApiError::internal)?;
    persist(&state, &id, journal, None, Origin::control(&request_id))
        .await
        .map_err(ApiError::internal)?;
    match result {
        Ok(_) => Ok(Json(history_of(&state, &sandbox, collection, rid).await?)),
        Err(NotMade::NotFound(message)) => Err(ApiError::not_found("not-found", message)),
        Err(NotMade::Refused(message)) => Err(ApiError::conflict(message)),
    }
}
