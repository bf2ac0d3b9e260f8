//! Scheduled jobs: work a behaviour, a scenario or a lifecycle leaves for
//! later on the sandbox clock (`schedule("P2D", "settle", payload)`). The
//! server persists them and runs them when the clock reaches them; here is
//! what one job does when it runs.

use std::{rc::Rc, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    call::{Call, CallRequest, CallSandbox, Journal},
    lifecycle::{self, Refused},
    revision::CompiledRevision,
    state::SandboxState,
    stateful,
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

/// Runs one due job with the clock at its due time: what it changed, and
/// why it failed if it did (its changes up to the failure stay, as a
/// request's do).
pub fn run(
    revision: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    job: &ScheduledJob,
) -> (Journal, Result<(), String>) {
    let call = Rc::new(Call::for_job(
        revision.clone(),
        CallSandbox {
            id: sandbox.id.clone(),
            seed: sandbox.seed,
            state: sandbox.state.clone(),
            env: sandbox.env.clone(),
            upstream: None,
            now_ms: job.due_ms,
            may_block: true,
        },
        CallRequest {
            method: "JOB".to_owned(),
            path: job.id.clone(),
            raw_query: None,
            accept: None,
            path_params: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(job.payload.clone()),
            raw_body: job.payload.to_string().into_bytes(),
        },
        job.action.describe(),
    ));
    let result = perform(&call, job);
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
            let value = stateful::merged(&record.value.value, Some(&job.payload), true);
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
            if lifecycle.state_of(&record.value.value) != Some(from.as_str()) {
                return Ok(()); // It moved on meanwhile.
            }
            let mut value = record.value.value.clone();
            if let Some(object) = value.as_object_mut() {
                object.insert(lifecycle.field.clone(), Value::String(to.clone()));
            }
            lifecycle::write(call, collection, id, &record.scope, Some(record.seq), value)
                .map(|_| ())
                .map_err(Refused::into_message)
        }
    }
}
