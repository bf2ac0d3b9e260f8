//! Scheduled jobs: work a behaviour, a scenario or a lifecycle leaves for
//! later on the sandbox clock (`schedule("P2D", "settle", payload)`). The
//! server persists them and runs them when the clock reaches them; here is
//! what one job does when it runs.

use std::{rc::Rc, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    behaviours::call::{Call, CallRequest, CallSandbox, Journal},
    behaviours::lifecycle::{self, Refused},
    behaviours::stateful,
    compile::revision::CompiledRevision,
    state::SandboxState,
};

/// Most jobs one request or job may schedule.
pub const MAX_JOBS_PER_CALL: usize = 1_000;

/// What a job does when it falls due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobAction {
    /// Runs `jobs/<name>.rhai` with the payload.
    Script { name: String },
    /// Emits an event with the payload.
    Emit { event_type: String },
    /// Merges the payload into a record (lifecycle rules apply).
    Update { collection: String, id: String },
    /// A lifecycle's timed transition: made only if the record is still
    /// in `from`.
    Transition {
        collection: String,
        id: String,
        from: String,
        to: String,
        after: String,
    },
}

impl JobAction {
    /// How history and logs name this job as a cause.
    pub fn describe(&self) -> String {
        match self {
            Self::Script { name } => format!("job {name}"),
            Self::Emit { event_type } => format!("scheduled event {event_type}"),
            Self::Update { collection, id } => format!("scheduled update of {collection} {id}"),
            Self::Transition { after, .. } => format!("after {after}"),
        }
    }
}

/// A job waiting on a sandbox clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob {
    pub id: String,
    /// Sandbox time it falls due, Unix milliseconds.
    pub due_ms: i64,
    pub action: JobAction,
    pub payload: Value,
    pub scheduled_at_ms: i64,
}

/// The sandbox a job runs in.
pub struct JobSandbox {
    pub id: String,
    pub seed: u64,
    pub state: Arc<SandboxState>,
    pub env: Arc<Map<String, Value>>,
}

/// A call with no request, for work done outside one: a job, or a
/// transition the developer triggers. `label` and `payload` seed its draws.
fn background_call(
    revision: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    now_ms: i64,
    label: &str,
    payload: &Value,
    cause: String,
) -> Rc<Call> {
    Rc::new(Call::for_job(
        revision.clone(),
        CallSandbox {
            id: sandbox.id.clone(),
            seed: sandbox.seed,
            state: sandbox.state.clone(),
            env: sandbox.env.clone(),
            upstream: None,
            functions: None,
            now_ms,
            may_block: true,
            base_url: String::new(),
        },
        CallRequest {
            method: "JOB".to_owned(),
            path: label.to_owned(),
            raw_query: None,
            accept: None,
            path_params: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(payload.clone()),
            raw_body: payload.to_string().into_bytes(),
        },
        cause,
    ))
}

/// Runs one due job with the clock at its due time: what it changed, and
/// why it failed if it did (its changes up to the failure stay, as a
/// request's do).
pub fn run(
    revision: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    job: &ScheduledJob,
) -> (Journal, Result<(), String>) {
    let _turn = sandbox.state.write_turn();
    let call = background_call(
        revision,
        sandbox,
        job.due_ms,
        &job.id,
        &job.payload,
        job.action.describe(),
    );
    let result = perform(&call, job);
    let journal = std::mem::take(&mut *call.journal.borrow_mut());
    (journal, result)
}

/// The payload of an event triggered without data: its type's template
/// rendered in `sandbox` at sandbox time `now_ms` (`now()`, `env`,
/// `sandbox`, `uuid()`), else its golden payload; checked against its schema.
pub fn event_payload(
    revision: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    now_ms: i64,
    event: &crate::behaviours::events::EventType,
) -> Result<Value, String> {
    let Some(template) = &event.template else {
        return Ok(event.golden.clone());
    };
    let call = background_call(
        revision,
        sandbox,
        now_ms,
        &event.name,
        &Value::Null,
        format!("event {}", event.name),
    );
    let _entered = crate::behaviours::call::enter(&call);
    let context = serde_json::json!({"env": call.env_map(), "sandbox": sandbox.id});
    let payload = revision.behaviours.templates.render(template, &context)?;
    event.check(&payload)?;
    Ok(payload)
}

/// Where a developer-triggered transition goes.
pub enum Target<'a> {
    /// This state.
    State(&'a str),
    /// Where the lifecycle's `on_event` transition for this event goes.
    Event(&'a str),
}

/// Why a developer-triggered transition was not made.
#[derive(Debug)]
pub enum NotMade {
    /// No such record, or its collection has no lifecycle.
    NotFound(String),
    /// The lifecycle forbids it (or the sandbox is full).
    Refused(String),
}

/// Moves a record along its lifecycle at the developer's request (like
/// Stripe's test helpers), at sandbox time `now_ms`: what changed, and the
/// record as it now is.
pub fn transition(
    revision: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    now_ms: i64,
    (collection, id): (&str, &str),
    target: Target<'_>,
) -> (Journal, Result<Value, NotMade>) {
    let cause = match target {
        Target::State(_) => "control plane".to_owned(),
        Target::Event(event) => format!("event {event}"),
    };
    let _turn = sandbox.state.write_turn();
    let call = background_call(revision, sandbox, now_ms, id, &Value::Null, cause);
    let result =
        (|| {
            let lifecycle = revision.behaviours.lifecycles.of(collection).ok_or_else(|| {
            NotMade::NotFound(format!(
                "collection {collection:?} declares no lifecycle (lifecycles/{collection}.yaml)"
            ))
        })?;
            let record = sandbox.state.get(collection, id).ok_or_else(|| {
                NotMade::NotFound(format!("no {collection} record has id {id:?}"))
            })?;
            let current = lifecycle.state_of(record.value.value()).unwrap_or("");
            let to = match target {
                Target::State(state) if state == current => {
                    return Err(NotMade::Refused(format!(
                        "{collection} {id} is already {state}"
                    )));
                }
                Target::State(state) => state,
                Target::Event(event) => lifecycle
                    .on_event(current, event)
                    .map_err(|d| NotMade::Refused(d.0))?,
            };
            let mut value = record.value.value().clone();
            if let Some(object) = value.as_object_mut() {
                object.insert(lifecycle.field.clone(), Value::String(to.to_owned()));
            }
            lifecycle::write(
                &call,
                collection,
                id,
                &record.scope,
                Some(record.seq),
                value,
            )
            .map(|stored| stored.value.value().clone())
            .map_err(|refused| NotMade::Refused(refused.into_message()))
        })();
    let journal = std::mem::take(&mut *call.journal.borrow_mut());
    (journal, result)
}

fn perform(call: &Rc<Call>, job: &ScheduledJob) -> Result<(), String> {
    let revision = &call.revision;
    match &job.action {
        JobAction::Script { name } => {
            let script = revision
                .behaviours
                .job_scripts
                .get(name)
                .ok_or_else(|| format!("the project has no job {name:?} (jobs/{name}.rhai)"))?;
            revision
                .behaviours
                .scripts
                .run_job(call, script, job)
                .map_err(|e| e.to_string())
        }
        JobAction::Emit { event_type } => {
            call.emit(event_type.clone(), job.payload.clone());
            Ok(())
        }
        JobAction::Update { collection, id } => {
            let record = call
                .sandbox
                .state
                .get(collection, id)
                .ok_or_else(|| format!("no {collection} record has id {id:?}"))?;
            let value = stateful::merged(record.value.value(), Some(&job.payload), true);
            lifecycle::write(call, collection, id, &record.scope, Some(record.seq), value)
                .map(|_| ())
                .map_err(Refused::into_message)
        }
        JobAction::Transition {
            collection,
            id,
            from,
            to,
            ..
        } => {
            let Some(record) = call.sandbox.state.get(collection, id) else {
                return Ok(()); // Deleted meanwhile: nothing to move.
            };
            let Some(lifecycle) = revision.behaviours.lifecycles.of(collection) else {
                return Ok(());
            };
            if lifecycle.state_of(record.value.value()) != Some(from.as_str()) {
                return Ok(()); // It moved on meanwhile.
            }
            let mut value = record.value.value().clone();
            if let Some(object) = value.as_object_mut() {
                object.insert(lifecycle.field.clone(), Value::String(to.clone()));
            }
            lifecycle::write(call, collection, id, &record.scope, Some(record.seq), value)
                .map(|_| ())
                .map_err(Refused::into_message)
        }
    }
}
