//! One request as behaviours see it: owned, so that scripts and templates
//! (which need `'static` data) can reach it through [`current`] while they
//! run on this thread.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::Arc,
};

use sbx_spec::synth::seed_from;
use serde_json::{Map, Value};

use crate::{
    behaviours::forward::Upstream,
    behaviours::jobs::{JobAction, MAX_JOBS_PER_CALL, ScheduledJob},
    compile::revision::{CompiledOperation, CompiledRevision},
    pipeline::cache::Synthesized,
    pipeline::respond::{self, BodySource, Exchange, Prefer, Rendered},
    state::{ResourceChange, SandboxState},
};

/// An event a behaviour emitted, for the webhook outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedEvent {
    pub event_type: String,
    pub payload: Value,
    pub created_at_ms: i64,
}

/// A record's move from one lifecycle state to another, for its history.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub collection: String,
    pub id: String,
    /// `None`: the record was created in `to`.
    pub from: Option<String>,
    pub to: String,
    /// Sandbox time of the change.
    pub at_ms: i64,
    /// What made it: `operation createPayment`, `scenario card_declined`,
    /// `after P2D`, `job settle`.
    pub cause: String,
}

/// What a request or job changed, for the server to persist.
#[derive(Debug, Default)]
pub struct Journal {
    pub changes: Vec<ResourceChange>,
    pub events: Vec<EmittedEvent>,
    pub jobs: Vec<ScheduledJob>,
    pub transitions: Vec<StateChange>,
}

pub struct Call {
    pub revision: Arc<CompiledRevision>,
    pub operation: usize,
    pub sandbox: CallSandbox,
    pub request: CallRequest,
    pub journal: RefCell<Journal>,
    /// The response a script ended the request with (`fail`).
    pub halted: RefCell<Option<crate::Response>>,
    /// Set when a script running on an async worker needed to block.
    pub yielded: Cell<bool>,
    /// The scenario selected for this request (an index into the operation's).
    pub scenario: Cell<Option<usize>>,
    /// How the behaviour's script failed, for `explain`.
    pub script_error: RefCell<Option<crate::behaviours::script::ScriptError>>,
    /// What the operation's function printed, for `explain`.
    pub function_logs: RefCell<Option<String>>,
    /// Set for a scheduled job (which has no operation and no real
    /// request): what it is, as history names causes.
    pub job: Option<String>,
    /// Seed of this request's random draws (`uuid()`, new ids), made on first use.
    entropy: std::cell::OnceCell<u64>,
    draws: Cell<u64>,
}

/// The parts of a [`Call`] that come from the request.
pub struct CallRequest {
    pub method: String,
    /// The path below the sandbox root, as sent.
    pub path: String,
    pub raw_query: Option<String>,
    pub accept: Option<String>,
    pub path_params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// Lower-case names; filled only for scripts and forwarding.
    pub headers: Vec<(String, String)>,
    /// The parsed request body (JSON, form or text).
    pub body: Option<Value>,
    pub raw_body: Vec<u8>,
}

/// The parts of a [`Call`] that come from the sandbox.
pub struct CallSandbox {
    pub id: String,
    pub seed: u64,
    pub state: Arc<SandboxState>,
    /// The sandbox's overrides of the project's environment.
    pub env: Arc<Map<String, Value>>,
    pub upstream: Option<Arc<dyn Upstream>>,
    /// Where function behaviours run; `None` refuses them.
    pub functions: Option<Arc<dyn crate::behaviours::functions::Functions>>,
    pub now_ms: i64,
    /// Whether this thread may block (see [`crate::SandboxContext::may_block`]).
    pub may_block: bool,
    /// See [`crate::SandboxContext::base_url`]; empty in jobs.
    pub base_url: String,
}

impl Call {
    pub fn new(
        revision: Arc<CompiledRevision>,
        operation: usize,
        sandbox: CallSandbox,
        request: CallRequest,
    ) -> Self {
        Self {
            revision,
            operation,
            sandbox,
            request,
            journal: RefCell::default(),
            halted: RefCell::default(),
            yielded: Cell::new(false),
            scenario: Cell::new(None),
            script_error: RefCell::new(None),
            function_logs: RefCell::new(None),
            job: None,
            entropy: std::cell::OnceCell::new(),
            draws: Cell::new(0),
        }
    }

    /// A call for a scheduled job: `request` carries its id and payload
    /// (which seed its random draws); request helpers refuse to run.
    pub fn for_job(
        revision: Arc<CompiledRevision>,
        sandbox: CallSandbox,
        request: CallRequest,
        job: String,
    ) -> Self {
        Self {
            job: Some(job),
            ..Self::new(revision, 0, sandbox, request)
        }
    }

    /// What is making changes, as a record's history names it.
    pub fn cause(&self) -> String {
        if let Some(job) = &self.job {
            return job.clone();
        }
        let operation = &self.operation().operation.id;
        match self.scenario_name() {
            Some(scenario) => format!("scenario {scenario} ({operation})"),
            None => format!("operation {operation}"),
        }
    }

    /// Schedules `action` at `when` (an ISO 8601 duration from now, or an
    /// RFC 3339 instant) on the sandbox clock; the job's id.
    pub fn schedule(
        &self,
        when: &str,
        action: JobAction,
        payload: Value,
    ) -> Result<String, String> {
        let due_ms = crate::state::clock::resolve_when(self.sandbox.now_ms, when)?;
        let mut journal = self.journal.borrow_mut();
        if journal.jobs.len() >= MAX_JOBS_PER_CALL {
            return Err(format!(
                "one request or job may schedule at most {MAX_JOBS_PER_CALL} jobs"
            ));
        }
        let id = format!("job_{}", sbx_spec::synth::alphanumeric(14, unique_seed()));
        journal.jobs.push(ScheduledJob {
            id: id.clone(),
            due_ms,
            action,
            payload,
            scheduled_at_ms: self.sandbox.now_ms,
        });
        Ok(id)
    }

    /// Notes a lifecycle state change for the record's history.
    pub fn record_transition(&self, collection: &str, id: &str, from: Option<String>, to: &str) {
        let cause = self.cause();
        self.journal.borrow_mut().transitions.push(StateChange {
            collection: collection.to_owned(),
            id: id.to_owned(),
            from,
            to: to.to_owned(),
            at_ms: self.sandbox.now_ms,
            cause,
        });
    }

    pub fn operation(&self) -> &CompiledOperation {
        &self.revision.operations[self.operation]
    }

    /// The declared response `prefer` selects (the success one by
    /// default), rendered with `body`.
    pub fn render(
        &self,
        prefer: &Prefer,
        body: BodySource<'_>,
    ) -> Result<Rendered, crate::Response> {
        let operation = self.operation();
        let declared = respond::select(operation, prefer)?;
        respond::render(
            &self.revision,
            self.sandbox.seed,
            operation,
            declared,
            &self.exchange(),
            body,
        )
    }

    /// The synthesized success body when it is an object (the base that
    /// created records and list envelopes are filled into), else `{}`.
    pub fn synthesized_object(&self) -> Result<Value, crate::Response> {
        Ok(self
            .synthesized()?
            .map_or_else(|| Value::Object(Map::new()), |v| v.value().clone()))
    }

    /// The operation's synthesized success answer when it is an object,
    /// shared (the cache's): for a caller that only reads it.
    pub fn synthesized(&self) -> Result<Option<Arc<Synthesized>>, crate::Response> {
        Ok(self
            .render(&Prefer::default(), BodySource::Default)?
            .value
            .filter(|v| v.value().is_object()))
    }

    pub fn exchange(&self) -> Exchange<'_> {
        Exchange {
            accept: self.request.accept.as_deref(),
            path_params: &self.request.path_params,
            // Behaviours synthesize where they run (their answers are
            // composed from several renders, errors included).
            yielded: None,
        }
    }

    /// The next seed of this request's random draws.
    pub fn draw(&self) -> u64 {
        // Same sandbox, same state, same request: same draws (determinism).
        let entropy = *self.entropy.get_or_init(|| {
            let request = &self.request;
            seed_from([
                &self.sandbox.seed.to_le_bytes()[..],
                &self.sandbox.state.version().to_le_bytes(),
                request.method.as_bytes(),
                request.path.as_bytes(),
                request.raw_query.as_deref().unwrap_or("").as_bytes(),
                &request.raw_body,
            ])
        });
        let n = self.draws.get();
        self.draws.set(n + 1);
        seed_from([&entropy.to_le_bytes()[..], &n.to_le_bytes()])
    }

    /// A deterministic UUID (version 4 layout).
    pub fn uuid(&self) -> String {
        sbx_spec::synth::fake("uuid", self.draw())
    }

    /// An environment parameter: the sandbox's override, else the project's.
    pub fn env_value(&self, key: &str) -> Option<Value> {
        self.sandbox
            .env
            .get(key)
            .or_else(|| self.revision.behaviours.env.get(key))
            .cloned()
    }

    /// The environment with the sandbox's overrides applied.
    pub fn env_map(&self) -> Map<String, Value> {
        let mut env = self.revision.behaviours.env.clone();
        env.extend(self.sandbox.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Path parameters percent-decoded, as scripts and templates see them.
    pub fn decoded_path_params(&self) -> Vec<(String, String)> {
        self.request
            .path_params
            .iter()
            .map(|(name, value)| (name.clone(), decode(value)))
            .collect()
    }

    /// One path parameter, percent-decoded.
    pub fn path_param(&self, name: &str) -> Option<String> {
        let (_, value) = self.request.path_params.iter().find(|(n, _)| n == name)?;
        Some(decode(value))
    }

    /// The operation answering, as the revision's behaviours index it.
    pub fn index(&self) -> crate::behaviours::behaviour::OperationIndex {
        crate::behaviours::behaviour::OperationIndex(self.operation)
    }

    /// The name of the scenario selected for this request.
    pub fn scenario_name(&self) -> Option<&str> {
        let index = self.scenario.get()?;
        let scenarios = self.revision.behaviours.scenarios_of(self.index());
        Some(scenarios[index].name.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn now_rfc3339(&self) -> String {
        crate::state::clock::rfc3339(self.sandbox.now_ms)
    }

    pub fn emit(&self, event_type: String, payload: Value) {
        self.journal.borrow_mut().events.push(EmittedEvent {
            event_type,
            payload,
            created_at_ms: self.sandbox.now_ms,
        });
    }
}

/// A seed never drawn before in this process nor (with its start time in
/// it) in an earlier one: job ids must be unique even when the same
/// request schedules the same jobs twice.
fn unique_seed() -> u64 {
    use std::sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering},
    };
    static NONCE: LazyLock<u64> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed_from([&nanos.to_le_bytes()[..], &std::process::id().to_le_bytes()])
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    seed_from([&NONCE.to_le_bytes()[..], &n.to_le_bytes()])
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

thread_local! {
    static CURRENT: RefCell<Vec<Rc<Call>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `call` the current one on this thread until dropped.
pub struct Entered(());

pub fn enter(call: &Rc<Call>) -> Entered {
    CURRENT.with(|c| c.borrow_mut().push(call.clone()));
    Entered(())
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

/// The call a script or template on this thread runs for.
pub fn current() -> Option<Rc<Call>> {
    CURRENT.with(|c| c.borrow().last().cloned())
}
