//! Entity lifecycles: the states a collection's records move through and
//! the transitions allowed between them (`lifecycles/<collection>.yaml`).
//! Every write to such a record is checked; a transition can be triggered
//! by an operation (`on:`), by time (`after:`, a job on the sandbox clock),
//! or by any behaviour that changes the state member.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::Value;

use crate::{
    Response,
    behaviours::call::Call,
    behaviours::jobs::JobAction,
    compile::project::FileProblem,
    compile::resources::Resources,
    pipeline::cache::Synthesized,
    pipeline::failure::{Failure, FailureKind},
    pipeline::problem::ProblemType,
    state::Record,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleSpec {
    /// The record member holding the state.
    #[serde(default = "default_field")]
    field: String,
    /// The states a record may be created in; the first is the default.
    initial: OneOrMany,
    states: Vec<String>,
    #[serde(default)]
    transitions: Vec<TransitionSpec>,
}

fn default_field() -> String {
    "status".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionSpec {
    from: OneOrMany,
    to: String,
    /// An operation (addressing a record of the collection) that makes it.
    #[serde(default)]
    on: Option<String>,
    /// Made automatically this long (ISO 8601) after entering `from`.
    #[serde(default)]
    after: Option<String>,
    /// An event emitted with the record when the transition is made.
    #[serde(default)]
    emit: Option<String>,
    /// Made when a developer triggers this event on the record
    /// (`POST …/resources/{collection}/{id}/transition {"event": …}`).
    #[serde(default)]
    on_event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug)]
pub struct Transition {
    pub from: Vec<String>,
    pub to: String,
    pub on: Option<usize>,
    pub after: Option<String>,
    pub emit: Option<String>,
    pub on_event: Option<String>,
}

#[derive(Debug)]
pub struct Lifecycle {
    pub collection: String,
    pub field: String,
    /// States a record may start in; never empty, the first is the default.
    pub initial: Vec<String>,
    pub states: Vec<String>,
    pub transitions: Vec<Transition>,
}

/// A write that would move a record along no declared transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disallowed(pub String);

impl Lifecycle {
    /// The state of a record created without one.
    pub fn default_state(&self) -> &str {
        self.initial.first().map_or("", String::as_str)
    }

    /// The state a record value is in.
    pub fn state_of<'a>(&self, value: &'a Value) -> Option<&'a str> {
        value.get(&self.field).and_then(Value::as_str)
    }

    /// States reachable from `state` in one transition.
    pub fn next_states(&self, state: &str) -> BTreeSet<&str> {
        self.transitions
            .iter()
            .filter(|t| t.from.iter().any(|f| f == state))
            .map(|t| t.to.as_str())
            .collect()
    }

    /// The transition from `from` to `to` (`None` when the state stays or the
    /// record is new), or why there is none.
    pub fn check(
        &self,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<Option<&Transition>, Disallowed> {
        if !self.states.iter().any(|s| s == to) {
            return Err(Disallowed(format!(
                "{to:?} is not a state of {}; states: {}",
                self.collection,
                self.states.join(", ")
            )));
        }
        let Some(from) = from else {
            if self.initial.iter().any(|s| s == to) {
                return Ok(None);
            }
            return Err(Disallowed(format!(
                "{} records start as {}, not {to}",
                self.collection,
                self.initial.join(" or ")
            )));
        };
        if from == to {
            return Ok(None);
        }
        self.transitions
            .iter()
            .find(|t| t.to == to && t.from.iter().any(|f| f == from))
            .map(Some)
            .ok_or_else(|| {
                let next = self.next_states(from);
                Disallowed(format!(
                    "{} {id} is {from} and cannot become {to}; from {from} it can become {}",
                    self.collection,
                    if next.is_empty() {
                        "nothing (a final state)".to_owned()
                    } else {
                        next.into_iter().collect::<Vec<_>>().join(" or ")
                    }
                ))
            })
    }

    /// The state `event` moves a record in `state` to.
    pub fn on_event(&self, state: &str, event: &str) -> Result<&str, Disallowed> {
        let from_here = || {
            self.transitions
                .iter()
                .filter(|t| t.from.iter().any(|f| f == state))
        };
        if let Some(t) = from_here().find(|t| t.on_event.as_deref() == Some(event)) {
            return Ok(&t.to);
        }
        let events: Vec<&str> = from_here().filter_map(|t| t.on_event.as_deref()).collect();
        Err(Disallowed(format!(
            "event {event} moves no {} record that is {state}; from {state}: {}",
            self.collection,
            if events.is_empty() {
                "no events".to_owned()
            } else {
                events.join(", ")
            }
        )))
    }

    /// Transitions made by time once a record enters `state`.
    pub fn timed_from<'a>(&'a self, state: &'a str) -> impl Iterator<Item = &'a Transition> {
        self.transitions
            .iter()
            .filter(move |t| t.after.is_some() && t.from.iter().any(|f| f == state))
    }
}

/// A record schema's members, each with its `enum` when it has one.
pub type Members = Vec<(String, Option<Vec<Value>>)>;

/// The revision's lifecycles.
#[derive(Debug, Default)]
pub struct Lifecycles {
    pub all: Vec<Lifecycle>,
}

/// The transition an operation triggers (`on:`): the lifecycle's index,
/// the transition's, and the path parameter holding the record id.
pub type Trigger = (usize, usize, String);

impl Lifecycles {
    pub fn of(&self, collection: &str) -> Option<&Lifecycle> {
        self.all.iter().find(|l| l.collection == collection)
    }

    /// What compiling needs of the revision: its operations' ids and path
    /// templates, inferred collections, and each collection's record schema.
    /// The lifecycles, and the transition each operation triggers.
    pub fn compile(
        files: &BTreeMap<String, Value>,
        operations: &[(&str, &str)],
        resources: &Resources,
        record_schema: &dyn Fn(usize) -> Option<Members>,
        problems: &mut Vec<FileProblem>,
    ) -> (Self, Vec<Option<Trigger>>) {
        let mut lifecycles = Self { all: Vec::new() };
        let mut triggers: Vec<Option<Trigger>> = vec![None; operations.len()];
        for (collection, content) in files {
            let file = format!("lifecycles/{collection}.yaml");
            let mut report = |pointer: &str, message: String| {
                problems.push(FileProblem::new(&file, message).pointer(pointer));
            };
            let Some((index, _)) = resources.collection(collection) else {
                let known: Vec<&str> = resources
                    .collections
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                report(
                    "",
                    format!(
                        "no operation of the spec serves a collection named {collection:?}; collections: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            };
            let spec: LifecycleSpec = match serde_json::from_value(content.clone()) {
                Ok(spec) => spec,
                Err(error) => {
                    report("", error.to_string());
                    continue;
                }
            };
            let before = lifecycles.all.len();
            let lifecycle = compile_one(
                collection,
                spec,
                operations,
                resources,
                index,
                record_schema(index),
                &mut report,
            );
            if let Some(lifecycle) = lifecycle {
                for (t, transition) in lifecycle.transitions.iter().enumerate() {
                    let Some(operation) = transition.on else {
                        continue;
                    };
                    if let Some((other, _, _)) = &triggers[operation] {
                        report(
                            &format!("/transitions/{t}/on"),
                            format!(
                                "{} already triggers a transition of {}",
                                operations[operation].0, lifecycles.all[*other].collection
                            ),
                        );
                        continue;
                    }
                    let param = record_param(operations[operation].1, resources, operation, index);
                    triggers[operation] = param.map(|p| (before, t, p));
                }
                lifecycles.all.push(lifecycle);
            }
        }
        (lifecycles, triggers)
    }
}

/// The path parameter naming the record an operation acts on: its
/// binding's id parameter, else the last parameter of its path.
fn record_param(
    path: &str,
    resources: &Resources,
    operation: usize,
    collection: usize,
) -> Option<String> {
    if let Some(binding) = &resources.bindings[operation]
        && binding.collection == collection
        && let Some(param) = &binding.id_param
    {
        return Some(param.clone());
    }
    let last = path.rsplit('{').next().filter(|_| path.contains('{'))?;
    last.split_once('}').map(|(name, _)| name.to_owned())
}

fn compile_one(
    collection: &str,
    spec: LifecycleSpec,
    operations: &[(&str, &str)],
    resources: &Resources,
    index: usize,
    members: Option<Members>,
    report: &mut dyn FnMut(&str, String),
) -> Option<Lifecycle> {
    let problems_before = std::cell::Cell::new(0usize);
    let mut fail = |pointer: &str, message: String| {
        problems_before.set(problems_before.get() + 1);
        report(pointer, message);
    };
    let mut seen = BTreeSet::new();
    for (i, state) in spec.states.iter().enumerate() {
        if !seen.insert(state.as_str()) {
            fail(
                &format!("/states/{i}"),
                format!("state {state:?} is declared twice"),
            );
        }
    }
    if spec.states.is_empty() {
        fail("/states", "declare at least one state".into());
    }
    let known = |state: &str| spec.states.iter().any(|s| s == state);
    let initial = spec.initial.into_vec();
    if initial.is_empty() {
        fail("/initial", "name the state records start in".into());
    }
    for state in initial.iter().filter(|s| !known(s)) {
        fail(
            "/initial",
            format!(
                "initial state {state:?} is not one of the states: {}",
                spec.states.join(", ")
            ),
        );
    }
    if let Some(members) = &members {
        match members.iter().find(|(name, _)| *name == spec.field) {
            None => fail(
                "/field",
                format!(
                    "{collection} records have no member {:?}; they have {}",
                    spec.field,
                    members
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some((_, Some(allowed))) => {
                for (i, state) in spec.states.iter().enumerate() {
                    if !allowed.iter().any(|v| v.as_str() == Some(state)) {
                        fail(
                            &format!("/states/{i}"),
                            format!(
                                "the spec does not allow {}: {state:?} (its enum: {})",
                                spec.field,
                                allowed
                                    .iter()
                                    .map(Value::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
            }
            Some((_, None)) => {}
        }
    }
    let mut transitions = Vec::new();
    for (t, transition) in spec.transitions.into_iter().enumerate() {
        let at = format!("/transitions/{t}");
        let from = transition.from.into_vec();
        for state in from.iter().chain([&transition.to]) {
            if !known(state) {
                fail(
                    &at,
                    format!(
                        "{state:?} is not one of the states: {}",
                        spec.states.join(", ")
                    ),
                );
            }
        }
        let on = match &transition.on {
            None => None,
            Some(id) => match operations.iter().position(|(op, _)| op == id) {
                Some(operation)
                    if record_param(operations[operation].1, resources, operation, index)
                        .is_some() =>
                {
                    Some(operation)
                }
                Some(_) => {
                    fail(
                        &format!("{at}/on"),
                        format!("operation {id} addresses no record (its path has no parameter)"),
                    );
                    None
                }
                None => {
                    fail(
                        &format!("{at}/on"),
                        format!("the spec has no operation {id:?}"),
                    );
                    None
                }
            },
        };
        if let Some(after) = &transition.after
            && let Err(message) = crate::state::clock::add_duration(0, after)
        {
            fail(&format!("{at}/after"), message);
        }
        if transition.emit.as_deref() == Some("") {
            fail(
                &format!("{at}/emit"),
                "an event type must not be empty".into(),
            );
        }
        transitions.push(Transition {
            from,
            to: transition.to,
            on,
            after: transition.after,
            emit: transition.emit,
            on_event: transition.on_event,
        });
    }
    // Every state must be reachable from an initial one.
    let mut reached: BTreeSet<&str> = initial.iter().map(String::as_str).collect();
    let mut queue: VecDeque<&str> = reached.iter().copied().collect();
    while let Some(state) = queue.pop_front() {
        for t in transitions
            .iter()
            .filter(|t| t.from.iter().any(|f| f == state))
        {
            if reached.insert(t.to.as_str()) {
                queue.push_back(t.to.as_str());
            }
        }
    }
    for (i, state) in spec.states.iter().enumerate() {
        if !reached.contains(state.as_str()) {
            fail(
                &format!("/states/{i}"),
                format!(
                    "state {state:?} is unreachable from the initial state{} {}",
                    if initial.len() > 1 { "s" } else { "" },
                    initial.join(", ")
                ),
            );
        }
    }
    (problems_before.get() == 0).then(|| Lifecycle {
        collection: collection.to_owned(),
        field: spec.field,
        initial,
        states: spec.states,
        transitions,
    })
}

/// Why a write was refused.
#[derive(Debug)]
pub enum Refused {
    Full(crate::state::Full),
    Disallowed(Disallowed),
}

impl Refused {
    pub fn into_message(self) -> String {
        match self {
            Self::Full(full) => full.to_string(),
            Self::Disallowed(Disallowed(message)) => message,
        }
    }

    /// The answer to a request whose write was refused: the spec's
    /// declared 409 (else 400, 422) for a disallowed transition.
    pub fn response(self, call: &Call) -> Response {
        match self {
            Self::Full(full) => ProblemType::SandboxFull.response(&full.to_string()),
            Self::Disallowed(Disallowed(reason)) => crate::behaviours::stateful::error(
                call,
                &[409, 400, 422],
                &Failure::new(FailureKind::Conflict, &reason),
                ProblemType::InvalidTransition,
            ),
        }
    }
}

/// Stores a record, holding it to its collection's lifecycle: a record
/// without a state starts in the initial one; a state change must follow
/// a declared transition, is recorded in the history, emits the
/// transition's event and schedules the timed transitions out of the new
/// state.
pub fn write(
    call: &Call,
    collection: &str,
    id: &str,
    scope: &str,
    seq: Option<u64>,
    value: Value,
) -> Result<Record, Refused> {
    write_shared(call, collection, id, scope, seq, Synthesized::shared(value))
}

/// [`write`] for a value already shared (an answer's): stored without a copy.
pub fn write_shared(
    call: &Call,
    collection: &str,
    id: &str,
    scope: &str,
    seq: Option<u64>,
    value: Arc<Synthesized>,
) -> Result<Record, Refused> {
    let state = &call.sandbox.state;
    let put = |value: Arc<Synthesized>| {
        state
            .put(
                collection,
                id,
                scope,
                seq,
                value,
                &mut call.journal.borrow_mut().changes,
            )
            .map_err(Refused::Full)
    };
    let Some(lifecycle) = call.revision.behaviours.lifecycles.of(collection) else {
        return put(value);
    };
    let from = state
        .get(collection, id)
        .and_then(|r| lifecycle.state_of(r.value.value()).map(str::to_owned));
    let (to, value) = match lifecycle.state_of(value.value()) {
        Some(to) => (to.to_owned(), value),
        None => {
            let state = lifecycle.default_state().to_owned();
            let mut started = value.value().clone();
            if let Some(object) = started.as_object_mut() {
                object.insert(lifecycle.field.clone(), Value::String(state.clone()));
            }
            (state, Synthesized::shared(started))
        }
    };
    let transition = lifecycle
        .check(id, from.as_deref(), &to)
        .map_err(Refused::Disallowed)?;
    let record = put(value)?;
    if from.as_deref() == Some(to.as_str()) {
        return Ok(record);
    }
    call.record_transition(collection, id, from, &to);
    if let Some(event_type) = transition.and_then(|t| t.emit.as_ref()) {
        call.emit(event_type.clone(), record.value.value().clone());
    }
    for timed in lifecycle.timed_from(&to) {
        let after = timed.after.clone().unwrap_or_default();
        let action = JobAction::Transition {
            collection: collection.to_owned(),
            id: id.to_owned(),
            from: to.clone(),
            to: timed.to.clone(),
            after: after.clone(),
        };
        // `after` was checked at import; a date past the calendar is dropped.
        let _ = call.schedule(&after, action, Value::Null);
    }
    Ok(record)
}
