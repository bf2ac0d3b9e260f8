//! Scenario packs: named outcomes per operation (the card decline, the
//! frozen account), chosen by the `X-Sandbox-Scenario` header, by rules on
//! the request (`when:`), by the state of the record addressed
//! (`when_state:`), or by the sandbox's default scenario.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Response,
    behaviours::call::Call,
    behaviours::conditions::{self, Condition, Inputs},
    behaviours::jobs::JobAction,
    behaviours::script::Scripts,
    behaviours::templates::Templates,
    compile::project::FileProblem,
    compile::resources::Resources,
    pipeline::cache::Synthesized,
    pipeline::failure::{Failure, FailureKind},
    pipeline::problem::ProblemType,
    pipeline::respond::{BodySource, Prefer, Rendered},
};

/// One outcome as written in a pack.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeSpec {
    status: u16,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// A literal body.
    #[serde(default)]
    body: Option<Value>,
    /// A named example of the operation.
    #[serde(default)]
    example: Option<String>,
    /// A template rendering the body.
    #[serde(default)]
    template: Option<String>,
    /// The spec's declared error for `status`, with this message.
    #[serde(default)]
    message: Option<String>,
    /// Added before answering (`300ms`, `2s`).
    #[serde(default)]
    delay: Option<String>,
    /// A Rhai expression on `req` choosing this outcome.
    #[serde(default)]
    when: Option<String>,
    /// A Rhai expression on `record` (the record addressed) choosing it.
    #[serde(default)]
    when_state: Option<String>,
    /// A merge patch applied to the record addressed.
    #[serde(default)]
    set: Option<Map<String, Value>>,
    /// Events emitted: `{type, payload?}` (the answer's body by default).
    #[serde(default)]
    emit: Vec<EmitSpec>,
    /// Jobs left on the sandbox clock.
    #[serde(default)]
    schedule: Vec<ScheduleSpec>,
}

/// `{after, job | emit | set, payload?}`: run `jobs/<job>.rhai`, emit an
/// event, or merge `set` into the record addressed, `after` from now.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    after: String,
    #[serde(default)]
    job: Option<String>,
    #[serde(default)]
    emit: Option<String>,
    #[serde(default)]
    set: Option<Map<String, Value>>,
    /// The job's or event's payload; the answer's body by default.
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitSpec {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Debug)]
enum Body {
    Literal(Arc<Synthesized>),
    Example(String),
    Template(String),
    Message(String),
    Spec,
}

#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub status: u16,
    pub description: Option<String>,
    headers: Vec<(String, String)>,
    body: Body,
    pub delay: Duration,
    when: Option<Condition>,
    when_state: Option<Condition>,
    set: Option<Map<String, Value>>,
    emit: Vec<EmitSpec>,
    schedule: Vec<ScheduleSpec>,
}

impl Scenario {
    /// Whether answering with it changes a record.
    pub fn writes(&self) -> bool {
        self.set.is_some()
    }

    /// Whether its answer is rendered from a template.
    pub fn renders_template(&self) -> bool {
        matches!(self.body, Body::Template(_))
    }

    /// How this scenario is reached besides the header.
    pub fn trigger(&self) -> &'static str {
        match (&self.when, &self.when_state) {
            (Some(_), _) => "request",
            (None, Some(_)) => "state",
            (None, None) => "header",
        }
    }
}

/// What the scenario launcher shows of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub status: u16,
    pub description: Option<String>,
    /// `header` (only by name), `request` (a rule on the request) or
    /// `state` (a rule on the record addressed).
    pub trigger: &'static str,
}

/// What compiling scenario packs needs of the revision.
pub struct ScenarioInputs<'a> {
    pub operation_ids: Vec<&'a str>,
    pub examples: Vec<Vec<&'a str>>,
    pub scripts: &'a Scripts,
    pub templates: &'a Templates,
    pub jobs: &'a BTreeMap<String, crate::behaviours::script::Script>,
    pub resources: &'a Resources,
    pub document: &'a Value,
    /// Per operation: the JSON request body's schema.
    pub request_schemas: Vec<Option<&'a Value>>,
    /// Per operation: the schema of the record it addresses.
    pub record_schemas: Vec<Option<&'a Value>>,
}

/// Checks the member chains a rule reads (`req.body.a.b`, `record.status`)
/// against the schema they read from; free-form objects are not checked.
fn check_members(
    rule: &str,
    root: &str,
    document: &Value,
    schema: Option<&Value>,
) -> Result<(), String> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let pattern = format!(
        r"\b{}((?:\??\.[A-Za-z_][A-Za-z0-9_]*)+)",
        regex::escape(root)
    );
    let Ok(chains) = regex::Regex::new(&pattern) else {
        return Ok(());
    };
    for found in chains.captures_iter(rule) {
        let mut current = schema;
        let mut path = root.to_owned();
        for member in found[1]
            .split('.')
            .map(|m| m.trim_end_matches('?'))
            .filter(|m| !m.is_empty())
        {
            let declared = declared_members(document, current);
            if declared.is_empty() {
                break;
            }
            let Some((_, next)) = declared.iter().find(|(name, _)| *name == member) else {
                let names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{path} has no member {member:?}; it has {}",
                    names.join(", ")
                ));
            };
            path = format!("{path}.{member}");
            current = next;
        }
    }
    Ok(())
}

/// Members a schema declares, its `allOf`, `oneOf` and `anyOf` parts included.
fn declared_members<'a>(document: &'a Value, schema: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let Some(schema) = sbx_spec::pointer::follow(document, schema) else {
        return Vec::new();
    };
    let mut members = crate::compile::resources::properties(document, schema);
    for key in ["oneOf", "anyOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(branch) = sbx_spec::pointer::follow(document, branch) {
                members.extend(crate::compile::resources::properties(document, branch));
            }
        }
    }
    members
}

/// Compiles the scenario packs: one list per operation, in the packs' order.
pub fn compile(
    packs: &BTreeMap<String, Value>,
    inputs: &ScenarioInputs<'_>,
    problems: &mut Vec<FileProblem>,
) -> Vec<Vec<Scenario>> {
    let mut by_operation: Vec<Vec<Scenario>> =
        inputs.operation_ids.iter().map(|_| Vec::new()).collect();
    for (pack, content) in packs {
        let file = format!("scenarios/{pack}.yaml");
        let Value::Object(operations) = content else {
            if !content.is_null() {
                problems.push(FileProblem::new(
                    &file,
                    "must map operation ids to scenarios",
                ));
            }
            continue;
        };
        for (operation_id, scenarios) in operations {
            let at = sbx_spec::pointer::join("", operation_id);
            let Some(index) = inputs
                .operation_ids
                .iter()
                .position(|id| id == operation_id)
            else {
                problems.push(
                    FileProblem::new(&file, format!("the spec has no operation {operation_id:?}"))
                        .pointer(at),
                );
                continue;
            };
            let Value::Object(scenarios) = scenarios else {
                problems.push(
                    FileProblem::new(&file, "must map scenario names to outcomes").pointer(at),
                );
                continue;
            };
            for (name, outcome) in scenarios {
                let at = sbx_spec::pointer::join(&at, name);
                if by_operation[index].iter().any(|s| s.name == *name) {
                    problems.push(
                        FileProblem::new(
                            &file,
                            format!("scenario {name:?} is declared twice for {operation_id}"),
                        )
                        .pointer(at),
                    );
                    continue;
                }
                match compile_one(name, outcome, index, inputs) {
                    Ok(scenario) => by_operation[index].push(scenario),
                    Err((pointer, message)) => problems
                        .push(FileProblem::new(&file, message).pointer(format!("{at}{pointer}"))),
                }
            }
        }
    }
    by_operation
}

/// What the API lists of each scenario.
pub fn summaries(scenarios: &[Scenario]) -> Vec<ScenarioSummary> {
    scenarios
        .iter()
        .map(|s| ScenarioSummary {
            name: s.name.clone(),
            status: s.status,
            description: s.description.clone(),
            trigger: s.trigger(),
        })
        .collect()
}

fn compile_one(
    name: &str,
    outcome: &Value,
    operation: usize,
    inputs: &ScenarioInputs<'_>,
) -> Result<Scenario, (String, String)> {
    let spec: OutcomeSpec =
        serde_json::from_value(outcome.clone()).map_err(|e| (String::new(), e.to_string()))?;
    if !(100..=599).contains(&spec.status) {
        return Err((
            "/status".into(),
            format!("{} is not an HTTP status", spec.status),
        ));
    }
    let given = [
        spec.body.is_some(),
        spec.example.is_some(),
        spec.template.is_some(),
        spec.message.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err((
            String::new(),
            "give at most one of body, example, template, message".into(),
        ));
    }
    let body = if let Some(value) = spec.body {
        Body::Literal(Arc::new(Synthesized::new(value)))
    } else if let Some(example) = spec.example {
        if !inputs.examples[operation].contains(&example.as_str()) {
            return Err((
                "/example".into(),
                format!(
                    "the operation has no example {example:?}; it has {}",
                    inputs.examples[operation].join(", ")
                ),
            ));
        }
        Body::Example(example)
    } else if let Some(template) = spec.template {
        if !inputs.templates.contains(&template) {
            return Err((
                "/template".into(),
                format!("no template named {template:?}"),
            ));
        }
        Body::Template(template)
    } else if let Some(message) = spec.message {
        Body::Message(message)
    } else {
        Body::Spec
    };
    let delay = match &spec.delay {
        Some(text) => crate::behaviours::chaos::ChaosSpec::parse(&format!("latency={text}"))
            .map(|c| c.latency)
            .map_err(|e| ("/delay".to_owned(), e.replace("latency", "delay")))?,
        None => Duration::ZERO,
    };
    let condition =
        |text: &Option<String>, pointer: &str| -> Result<Option<Condition>, (String, String)> {
            let Some(text) = text else {
                return Ok(None);
            };
            if let Some(comparisons) = conditions::native(text) {
                return Ok(Some(Condition::Native(comparisons)));
            }
            inputs
                .scripts
                .compile_condition(text)
                .map(|ast| Some(Condition::Script(ast)))
                .map_err(|e| (pointer.to_owned(), e))
        };
    let when = condition(&spec.when, "/when")?;
    let when_state = condition(&spec.when_state, "/when_state")?;
    if let Some(rule) = &spec.when {
        check_members(
            rule,
            "req.body",
            inputs.document,
            inputs.request_schemas[operation],
        )
        .map_err(|e| ("/when".to_owned(), e))?;
    }
    if let Some(rule) = &spec.when_state {
        check_members(
            rule,
            "record",
            inputs.document,
            inputs.record_schemas[operation],
        )
        .map_err(|e| ("/when_state".to_owned(), e))?;
    }
    let addresses_record = inputs.resources.bindings[operation]
        .as_ref()
        .is_some_and(|b| b.id_param.is_some());
    for (i, job) in spec.schedule.iter().enumerate() {
        let at = format!("/schedule/{i}");
        crate::state::clock::add_duration(0, &job.after).map_err(|e| (format!("{at}/after"), e))?;
        let kinds = [job.job.is_some(), job.emit.is_some(), job.set.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err((at, "give exactly one of job, emit, set".into()));
        }
        if let Some(name) = &job.job
            && !inputs.jobs.contains_key(name)
        {
            let names: Vec<&str> = inputs.jobs.keys().map(String::as_str).collect();
            return Err((
                format!("{at}/job"),
                format!(
                    "no job {name:?} (jobs/{name}.rhai); jobs: {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        if job.set.is_some() && !addresses_record {
            return Err((
                format!("{at}/set"),
                "set needs an operation that addresses a stored record".into(),
            ));
        }
    }
    if (when_state.is_some() || spec.set.is_some()) && !addresses_record {
        return Err((String::new(), "when_state and set need an operation that addresses a stored record (e.g. GET /accounts/{id})".into()));
    }
    Ok(Scenario {
        name: name.to_owned(),
        status: spec.status,
        description: spec.description,
        headers: spec
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body,
        delay,
        when,
        when_state,
        set: spec.set,
        emit: spec.emit,
        schedule: spec.schedule,
    })
}

fn scheduling_failed(message: &str) -> Response {
    ProblemType::ScenarioSchedule.response(message)
}

/// Why a request names a scenario that does not exist.
pub fn unknown(call_operation: &str, name: &str, known: &[ScenarioSummary]) -> Response {
    let names: Vec<&str> = known.iter().map(|s| s.name.as_str()).collect();
    ProblemType::UnknownScenario.response_with(
        400,
        &format!(
            "operation {call_operation} has no scenario {name:?}; {}",
            if names.is_empty() {
                "it has none".to_owned()
            } else {
                format!("it has {}", names.join(", "))
            }
        ),
        Some(serde_json::json!({"scenarios": names})),
    )
}

/// The record the operation addresses, if it is bound to one.
fn addressed_record(call: &Call) -> Option<(&str, crate::state::Record)> {
    let binding = call.revision.behaviours.binding(call.index())?;
    let id = call.path_param(binding.id_param.as_ref()?)?;
    let collection = &call.revision.behaviours.resources.collections[binding.collection].name;
    Some((collection, call.sandbox.state.get(collection, &id)?))
}

/// Picks the scenario for `call`: the header, then request rules, then
/// state rules, then the sandbox default.
pub fn select(
    call: &Call,
    header: Option<&str>,
    default: Option<&str>,
) -> Result<Option<usize>, Response> {
    let behaviours = &call.revision.behaviours;
    let scenarios = behaviours.scenarios_of(call.index());
    if let Some(name) = header {
        return match scenarios.iter().position(|s| s.name == name) {
            Some(index) => Ok(Some(index)),
            None => Err(unknown(
                &call.operation().operation.id,
                name,
                &summaries(behaviours.scenarios_of(call.index())),
            )),
        };
    }
    if scenarios.is_empty() {
        return Ok(None);
    }
    let scripts = &behaviours.scripts;
    if scenarios.iter().any(|s| s.when.is_some()) {
        let params = call.decoded_path_params();
        let inputs = Inputs {
            body: call.request.body.as_ref(),
            query: &call.request.query,
            headers: &call.request.headers,
            params: &params,
            record: None,
        };
        // Built only for a rule that runs in Rhai.
        let mut req = None;
        for (index, scenario) in scenarios.iter().enumerate() {
            let holds = match &scenario.when {
                None => false,
                Some(Condition::Native(comparisons)) => conditions::all_hold(comparisons, &inputs),
                Some(Condition::Script(rule)) => {
                    if req.is_none() {
                        req = Some(
                            crate::behaviours::script::request_dynamic(call)
                                .unwrap_or(rhai::Dynamic::UNIT),
                        );
                    }
                    let req = req.clone().unwrap_or(rhai::Dynamic::UNIT);
                    scripts.condition_holds(rule, req, rhai::Dynamic::UNIT)
                }
            };
            if holds {
                return Ok(Some(index));
            }
        }
    }
    if scenarios.iter().any(|s| s.when_state.is_some())
        && let Some((_, record)) = addressed_record(call)
    {
        let value = &record.value.value();
        let inputs = Inputs {
            body: None,
            query: &[],
            headers: &[],
            params: &[],
            record: Some(value),
        };
        let mut dynamic = None;
        for (index, scenario) in scenarios.iter().enumerate() {
            let holds = match &scenario.when_state {
                None => false,
                Some(Condition::Native(comparisons)) => conditions::all_hold(comparisons, &inputs),
                Some(Condition::Script(rule)) => {
                    let record = dynamic
                        .get_or_insert_with(|| crate::behaviours::script::dynamic_of(value))
                        .clone();
                    scripts.condition_holds(rule, rhai::Dynamic::UNIT, record)
                }
            };
            if holds {
                return Ok(Some(index));
            }
        }
    }
    Ok(default.and_then(|name| scenarios.iter().position(|s| s.name == name)))
}

/// Answers with scenario `index` of `call`'s operation: its body, headers,
/// state change and events.
pub fn answer(call: &Call, index: usize) -> Result<Rendered, Response> {
    let scenario = &call.revision.behaviours.scenarios_of(call.index())[index];
    let prefer = Prefer {
        code: Some(scenario.status),
        example: None,
    };
    let mut rendered = match &scenario.body {
        Body::Literal(value) => call.render(&prefer, BodySource::Given(value.clone()))?,
        Body::Example(name) => call.render(&prefer, BodySource::Example(name))?,
        Body::Template(name) => {
            let value = call
                .revision
                .behaviours
                .templates
                .render_for(
                    call,
                    name,
                    &crate::behaviours::templates::context(call, None),
                )
                .map_err(|m| ProblemType::TemplateError.response(&m))?;
            call.render(
                &prefer,
                BodySource::Given(Arc::new(Synthesized::new(value))),
            )?
        }
        Body::Message(message) => Rendered {
            response: crate::behaviours::stateful::error(
                call,
                &[scenario.status],
                &Failure::new(FailureKind::of_status(scenario.status), message),
                ProblemType::Scenario,
            ),
            value: None,
        },
        Body::Spec => call.render(&prefer, BodySource::Default)?,
    };
    let addressed = addressed_record(call);
    if let Some(patch) = &scenario.set
        && let Some((collection, record)) = &addressed
    {
        let patch = Value::Object(patch.clone());
        let value = crate::behaviours::stateful::merged(record.value.value(), Some(&patch), true);
        match crate::behaviours::lifecycle::write(
            call,
            collection,
            &record.id,
            &record.scope,
            Some(record.seq),
            value,
        ) {
            Err(refused @ crate::behaviours::lifecycle::Refused::Disallowed(_)) => {
                return Err(refused.response(call));
            }
            // A full sandbox keeps the record as it was; the answer still goes out.
            Err(crate::behaviours::lifecycle::Refused::Full(_)) | Ok(_) => {}
        }
    }
    let body = rendered
        .value
        .as_ref()
        .map(|v| v.value().clone())
        .unwrap_or(Value::Null);
    for event in &scenario.emit {
        call.emit(
            event.event_type.clone(),
            event.payload.clone().unwrap_or_else(|| body.clone()),
        );
    }
    for job in &scenario.schedule {
        let payload = job.payload.clone().unwrap_or_else(|| body.clone());
        let action = match (&job.job, &job.emit, &job.set, &addressed) {
            (Some(name), ..) => JobAction::Script { name: name.clone() },
            (_, Some(event_type), ..) => JobAction::Emit {
                event_type: event_type.clone(),
            },
            (_, _, Some(patch), Some((collection, record))) => {
                let action = JobAction::Update {
                    collection: (*collection).to_owned(),
                    id: record.id.clone(),
                };
                call.schedule(&job.after, action, Value::Object(patch.clone()))
                    .map_err(|m| scheduling_failed(&m))?;
                continue;
            }
            _ => continue,
        };
        call.schedule(&job.after, action, payload)
            .map_err(|m| scheduling_failed(&m))?;
    }
    for (name, value) in &scenario.headers {
        rendered.response.headers.retain(|(n, _)| n != name);
        rendered
            .response
            .headers
            .push((name.clone(), value.clone()));
    }
    rendered
        .response
        .headers
        .push(("x-sandbox-scenario".to_owned(), scenario.name.clone()));
    Ok(rendered)
}
