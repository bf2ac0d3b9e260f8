//! A sandbox's test clock, the jobs waiting on it, and the lifecycle of
//! its records (dated by that clock).

use std::sync::Arc;

use sbx_engine::jobs::{NotMade, Target};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::{
    app::{AppState, now_ms, rfc3339},
    runtime::registry::LiveSandbox,
    workers::scheduler::{self, RunReport},
};

impl From<scheduler::RunFailed> for ServiceError {
    fn from(error: scheduler::RunFailed) -> Self {
        Self::Internal(anyhow::Error::new(error).context("running due jobs"))
    }
}

/// A move of the clock.
#[derive(Debug, Clone)]
pub enum ClockMove {
    /// Forward by an ISO 8601 duration (`P30D`, `PT2H`, `P1M`).
    Advance(String),
    /// Stopped at an RFC 3339 instant.
    FreezeAt(String),
    /// Stopped where it is.
    Freeze,
    /// Running again from where it stood.
    Resume,
}

/// Moves the sandbox's clock, running every job that falls due on the way
/// in time order and committing what they did; the new setting and the
/// record of the move are one store transaction. When more jobs fall due
/// than one move runs, the clock stops at the first left waiting and the
/// answer is a `Conflict` saying so.
pub async fn move_clock(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: ClockMove,
    request_id: &str,
) -> ServiceResult<(Arc<LiveSandbox>, RunReport)> {
    let sandbox = live(state, caller, id)?;
    // One clock change (and one job runner) at a time per sandbox.
    let _jobs = sandbox.jobs.lock().await;
    let clock = sandbox.clock();
    let real = now_ms();
    let (mut changed, described) = match &change {
        ClockMove::Advance(duration) => (
            clock
                .advanced(duration, real)
                .map_err(|message| ServiceError::invalid("/advance", message))?,
            format!("advance {duration}"),
        ),
        ClockMove::FreezeAt(instant) => {
            let at = crate::runtime::clock::parse_instant(instant)
                .map_err(|message| ServiceError::invalid("/freeze_at", message))?;
            (clock.frozen_at(at), format!("freeze at {instant}"))
        }
        ClockMove::Freeze => (clock.frozen_at(clock.now_ms(real)), "freeze".into()),
        ClockMove::Resume => (clock.resumed(real), "resume".into()),
    };
    let report = scheduler::run_due(state, &sandbox, changed.now_ms(real)).await?;
    if let Some(stopped) = report.stopped_at_ms {
        changed = changed.moved_to(stopped, real);
    }
    let recorded = state
        .store
        .move_clock(&sbx_store::ClockChange {
            sandbox_id: id.into(),
            at_ms: real,
            from_ms: clock.now_ms(real),
            to_ms: changed.now_ms(real),
            change: described,
            request_id: Some(request_id.to_owned()),
            offset_ms: changed.offset_ms,
            frozen_ms: changed.frozen_ms,
        })
        .await?;
    if !recorded {
        return Err(ServiceError::NotFound(format!(
            "sandbox \"{id}\" does not exist"
        )));
    }
    sandbox.set_clock(changed);
    if let Some(stopped) = report.stopped_at_ms {
        return Err(ServiceError::Conflict(format!(
            "{} jobs ran, the most one advance runs; the clock stopped at {}, where more are due (does a job keep scheduling itself?). Advance again to go on.",
            report.ran,
            rfc3339(stopped)
        )));
    }
    drop(_jobs);
    Ok((sandbox, report))
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

/// A record's lifecycle: its state and every transition it went through.
pub async fn history(
    state: &AppState,
    caller: &Caller,
    id: &str,
    collection: String,
    rid: String,
) -> ServiceResult<History> {
    let sandbox = live(state, caller, id)?;
    history_of(state, &sandbox, collection, rid).await
}

async fn history_of(
    state: &AppState,
    sandbox: &LiveSandbox,
    collection: String,
    rid: String,
) -> ServiceResult<History> {
    let compiled = sandbox.serving().compiled;
    let Some(lifecycle) = compiled.behaviours.lifecycles.of(&collection) else {
        return Err(ServiceError::NoLifecycle(format!(
            "collection {collection:?} of this sandbox declares no lifecycle (lifecycles/{collection}.yaml)"
        )));
    };
    let record = sandbox.state.get(&collection, &rid);
    let transitions = state
        .store
        .list_transitions(&sandbox.id, &collection, &rid)
        .await?;
    if record.is_none() && transitions.is_empty() {
        return Err(ServiceError::NotFound(format!(
            "no {collection} record has id {rid:?}"
        )));
    }
    Ok(History {
        state: record.and_then(|r| lifecycle.state_of(r.value.value()).map(str::to_owned)),
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

/// Where a record is moved: to a state, or by an event.
#[derive(Debug, Clone)]
pub enum Move {
    ToState(String),
    ByEvent(String),
}

/// Moves a record as a behaviour would: the transition's event is emitted
/// and its timed transitions scheduled. A move the lifecycle does not
/// allow is a `Conflict`.
pub async fn transition(
    state: &AppState,
    caller: &Caller,
    id: &str,
    (collection, rid): (String, String),
    to: Move,
    request_id: &str,
) -> ServiceResult<History> {
    let sandbox = live(state, caller, id)?;
    let compiled = sandbox.serving().compiled;
    let context = sandbox.background();
    let now_ms = sandbox.now_ms();
    let (moved_collection, moved_id) = (collection.clone(), rid.clone());
    // It waits for the sandbox's write turn: not on an async worker.
    let (journal, result) = state
        .user_work
        .run(id, move || {
            let target = match &to {
                Move::ToState(to) => Target::State(to),
                Move::ByEvent(event) => Target::Event(event),
            };
            sbx_engine::jobs::transition(
                &compiled,
                &context,
                now_ms,
                (&moved_collection, &moved_id),
                target,
            )
        })
        .await?;
    super::persist_call(state, id, journal, request_id).await?;
    match result {
        Ok(_) => history_of(state, &sandbox, collection, rid).await,
        Err(NotMade::NotFound(message)) => Err(ServiceError::NotFound(message)),
        Err(NotMade::Refused(message)) => Err(ServiceError::Conflict(message)),
    }
}
