//! What answers an operation beyond the spec's own examples: a script, a
//! forward rule, a stateful collection or a template — compiled once per
//! revision, chosen per request.

use std::{collections::BTreeMap, rc::Rc, sync::Arc};

use bytes::Bytes;
use sbx_spec::{ApiModel, synth::Plans};
use serde_json::{Map, Value};

use crate::{
    Response,
    behaviours::call::Call,
    behaviours::fixtures::{self, RecordMaker},
    behaviours::functions::{self, Function, FunctionSources},
    behaviours::lifecycle::{Lifecycles, Trigger},
    behaviours::scenarios::{self, Scenario, ScenarioInputs, ScenarioSummary},
    behaviours::script::{Script, ScriptLimits, ScriptOutcome, Scripts},
    behaviours::stateful,
    behaviours::templates::{self, Templates},
    compile::project::{FileProblem, ForwardRule, ProjectFiles, ProjectSettings},
    compile::redaction::Redactions,
    compile::resources::{self, Resources},
    compile::revision::CompiledOperation,
    pipeline::cache::Synthesized,
    pipeline::problem::ProblemType,
    pipeline::respond::{self, BodySource, Prefer, Rendered},
    state::{FixtureRecord, ResourceChange, SandboxState},
};

/// Where a request runs. A hostile or slow script must never hold an async
/// worker, yet handing every scripted request to another thread costs more
/// than most scripts take to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// On the async worker: bounded work only.
    Inline,
    /// On the worker for at most [`crate::behaviours::script::INLINE_SLICE`] and without
    /// side effects; a script that runs longer, writes records or calls out
    /// yields and the request is run again on the blocking pool.
    TryInline,
    /// On the blocking pool (forwarding).
    Blocking,
}

#[derive(Debug)]
pub struct CompiledBehaviours {
    pub env: Map<String, Value>,
    pub settings: ProjectSettings,
    pub resources: Resources,
    pub scripts: Scripts,
    /// One per operation of the revision, in its order.
    operations: Vec<OperationBehaviour>,
    pub templates: Templates,
    pub fixtures: Vec<FixtureRecord>,
    /// `jobs/<name>.rhai`, run by scheduled jobs.
    pub job_scripts: BTreeMap<String, Script>,
    pub lifecycles: Lifecycles,
    /// What the request log masks in bodies.
    pub redactions: Redactions,
    /// The project's function files, when an operation has one.
    pub functions: Option<Arc<FunctionSources>>,
}

/// What a project adds to one operation of the spec.
#[derive(Debug, Default)]
pub struct OperationBehaviour {
    /// `behaviours/<operationId>.rhai`.
    pub script: Option<Script>,
    /// `functions/<operationId>.py` (or `.js`): a Lambda handler.
    pub function: Option<Function>,
    /// Forwarded upstream (`project.yaml` `forward:`).
    pub forward: Option<ForwardRule>,
    /// The template answering it (`templates/<operationId>.json.j2`).
    pub template: Option<String>,
    /// Its scenarios, in the packs' order.
    pub scenarios: Vec<Scenario>,
    /// The lifecycle transition it triggers (`on:`).
    pub trigger: Option<Trigger>,
}

/// An operation's place among its revision's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OperationIndex(pub usize);

/// What compiling behaviours needs of the revision.
pub struct BehaviourInputs<'a> {
    pub model: &'a ApiModel,
    pub operations: &'a [CompiledOperation],
    pub response_document: &'a Value,
    /// Synthesis over the response document.
    pub plans: &'a Plans,
    pub limits: &'a ScriptLimits,
}

impl CompiledBehaviours {
    pub fn compile<'a>(
        inputs: &BehaviourInputs<'a>,
        files: &ProjectFiles,
    ) -> Result<Self, Vec<FileProblem>> {
        let model = inputs.model;
        let mut problems = Vec::new();
        files.check_names(&mut problems);
        let index_of = |id: &str| model.operations.iter().position(|o| o.id == id);
        let known = || {
            let ids: Vec<&str> = model
                .operations
                .iter()
                .map(|o| o.id.as_str())
                .take(20)
                .collect();
            ids.join(", ")
        };
        let mut sources = Vec::new();
        for (id, source) in &files.behaviours {
            match index_of(id) {
                Some(index) => sources.push((index, id.clone(), source.as_str())),
                None => problems.push(FileProblem::new(
                    format!("behaviours/{id}.rhai"),
                    format!("the spec has no operation {id:?}; operations: {}", known()),
                )),
            }
        }
        let (scripts, compiled, job_scripts) = Scripts::compile(
            inputs.limits,
            &files.modules,
            &sources,
            &files.jobs,
            &mut problems,
        );
        let mut operations: Vec<OperationBehaviour> = model
            .operations
            .iter()
            .map(|_| OperationBehaviour::default())
            .collect();
        for (index, script) in compiled {
            operations[index].script = Some(script);
        }
        let (functions, function_sources) = functions::compile(
            &files.functions,
            &files.settings.functions,
            &index_of,
            &|index| operations[index].script.is_some(),
            &mut problems,
        );
        for (index, function) in functions {
            operations[index].function = Some(function);
        }
        for (id, rule) in &files.settings.forward {
            let Some(index) = index_of(id) else {
                problems.push(
                    FileProblem::new(
                        "project.yaml",
                        format!("forward: the spec has no operation {id:?}"),
                    )
                    .pointer(sbx_spec::pointer::join("/forward", id)),
                );
                continue;
            };
            if !(rule.url.starts_with("http://") || rule.url.starts_with("https://")) {
                problems.push(
                    FileProblem::new(
                        "project.yaml",
                        format!(
                            "forward URL {:?} must start with http:// or https://",
                            rule.url
                        ),
                    )
                    .pointer(sbx_spec::pointer::join("/forward", id)),
                );
            }
            operations[index].forward = Some(rule.clone());
        }
        let limits = files.settings.rate_limits;
        for (name, rate) in [
            ("per_key", limits.per_key),
            ("per_sandbox", limits.per_sandbox),
        ] {
            if let Some(problem) = rate.and_then(crate::project::Rate::problem) {
                problems.push(
                    FileProblem::new("project.yaml", format!("rate_limits.{name}: {problem}"))
                        .pointer(format!("/rate_limits/{name}")),
                );
            }
        }
        let redactions = Redactions::compile(&files.settings.redact, &mut problems);
        let templates =
            Templates::compile(&files.templates, &files.env, inputs.limits, &mut problems);
        for (behaviour, operation) in operations.iter_mut().zip(&model.operations) {
            behaviour.template = [
                format!("{}.json.j2", operation.id),
                format!("{}.j2", operation.id),
            ]
            .into_iter()
            .find(|name| templates.contains(name));
        }
        let fixture_names: Vec<&str> = files.fixtures.keys().map(String::as_str).collect();
        let mut resources = resources::infer(
            &model.document,
            &model.operations,
            &fixture_names,
            &mut problems,
        );
        map_request_members(inputs, &mut resources, &files.settings, &mut problems);
        let operation_paths: Vec<(&str, &str)> = model
            .operations
            .iter()
            .map(|o| (o.id.as_str(), o.path.as_str()))
            .collect();
        let (lifecycles, triggers) = Lifecycles::compile(
            &files.lifecycles,
            &operation_paths,
            &resources,
            &|collection| record_members(inputs, &resources, collection),
            &mut problems,
        );
        let fixtures = fixtures::compile(
            &files.fixtures,
            &resources,
            &lifecycles,
            inputs.operations,
            |media| RecordMaker {
                plans: inputs.plans,
                media,
            },
            &mut problems,
        );
        let scenarios = scenarios::compile(
            &files.scenarios,
            &ScenarioInputs {
                operation_ids: model.operations.iter().map(|o| o.id.as_str()).collect(),
                examples: model
                    .operations
                    .iter()
                    .map(|o| {
                        o.responses
                            .iter()
                            .flat_map(|r| &r.content)
                            .flat_map(|m| m.examples.iter().map(|(n, _)| n.as_str()))
                            .collect()
                    })
                    .collect(),
                scripts: &scripts,
                templates: &templates,
                jobs: &job_scripts,
                resources: &resources,
                document: &model.document,
                request_schemas: inputs
                    .operations
                    .iter()
                    .map(|o| {
                        let media = o.request_content.iter().find(|m| {
                            crate::request::body::is_json(&crate::request::body::essence(
                                &m.spec.media_type,
                            ))
                        })?;
                        model.document.pointer(media.spec.schema_pointer.as_ref()?)
                    })
                    .collect(),
                record_schemas: resources
                    .bindings
                    .iter()
                    .map(|b| {
                        let media = fixtures::record_media(
                            inputs.operations,
                            &resources,
                            b.as_ref()?.collection,
                        )?;
                        model.document.pointer(media.spec.schema_pointer.as_ref()?)
                    })
                    .collect(),
            },
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        for ((operation, declared), trigger) in operations.iter_mut().zip(scenarios).zip(triggers) {
            operation.scenarios = declared;
            operation.trigger = trigger;
        }
        Ok(Self {
            env: files.env.clone(),
            settings: files.settings.clone(),
            resources,
            scripts,
            operations,
            templates,
            fixtures,
            job_scripts,
            lifecycles,
            redactions,
            functions: function_sources,
        })
    }

    /// What the project adds to `operation`.
    pub fn operation(&self, operation: OperationIndex) -> &OperationBehaviour {
        &self.operations[operation.0]
    }

    /// The scenarios `operation` declares, in the packs' order.
    pub fn scenarios_of(&self, operation: OperationIndex) -> &[Scenario] {
        &self.operation(operation).scenarios
    }

    /// What the API lists of `operation`'s scenarios.
    pub fn scenario_summaries(&self, operation: OperationIndex) -> Vec<ScenarioSummary> {
        scenarios::summaries(self.scenarios_of(operation))
    }

    /// The stateful collection `operation` is bound to, if any.
    pub fn binding(&self, operation: OperationIndex) -> Option<&resources::Binding> {
        self.resources.bindings[operation.0].as_ref()
    }

    /// The lifecycle transition `operation` triggers (`on:`): the
    /// lifecycle, the transition, and the path parameter holding the id.
    pub fn trigger(&self, operation: OperationIndex) -> Option<&Trigger> {
        self.operation(operation).trigger.as_ref()
    }

    /// Whether anything but the spec's examples and synthesis answers `operation`.
    pub fn is_active(&self, operation: OperationIndex) -> bool {
        let own = self.operation(operation);
        !self.scenarios_of(operation).is_empty()
            || own.script.is_some()
            || own.function.is_some()
            || own.forward.is_some()
            || self.binding(operation).is_some()
            || own.template.is_some()
            || self.trigger(operation).is_some()
    }

    /// Whether answering `operation` may change records, and so must hold
    /// the sandbox's write turn; `safe` for GET, HEAD and OPTIONS, which
    /// change a stateful collection only through a script, a lifecycle
    /// or a scenario.
    pub fn may_write(&self, operation: OperationIndex, safe: bool) -> bool {
        // A function answers from its own process, never the records: its
        // requests need no turn (they overlap, each in a worker).
        if self.operation(operation).function.is_some() {
            return self.scenarios_of(operation).iter().any(|s| s.writes());
        }
        self.operation(operation).script.is_some()
            || self.trigger(operation).is_some()
            || self.scenarios_of(operation).iter().any(|s| s.writes())
            || (!safe && self.binding(operation).is_some())
    }

    /// Where a request for `operation` should run. Scripts and templates
    /// start on the async worker within a small slice (time, fuel, bytes)
    /// and yield to the blocking pool when they outgrow it.
    pub fn execution(&self, operation: OperationIndex) -> Execution {
        let own = self.operation(operation);
        if own.script.is_some()
            || own.template.is_some()
            || self
                .scenarios_of(operation)
                .iter()
                .any(|s| s.renders_template())
        {
            Execution::TryInline
        } else if own.forward.is_some() || own.function.is_some() {
            Execution::Blocking
        } else {
            Execution::Inline
        }
    }

    /// Whether `operation` needs the request headers (scripts, forwarding,
    /// scenario rules).
    pub fn reads_headers(&self, operation: OperationIndex) -> bool {
        self.execution(operation) != Execution::Inline || !self.scenarios_of(operation).is_empty()
    }

    /// Whether the answer without a script writes records or calls out.
    pub fn default_may_block(&self, operation: OperationIndex) -> bool {
        self.scenarios_of(operation).iter().any(|s| s.writes())
            || self.operation(operation).forward.is_some()
            || self.binding(operation).is_some_and(|b| {
                !matches!(b.action, resources::Action::Get | resources::Action::List)
            })
    }
}

/// Attaches `project.yaml`'s `collections.<name>.members` to the collections
/// they name, refusing unknown collections and record members the record
/// schema does not declare.
fn map_request_members(
    inputs: &BehaviourInputs<'_>,
    resources: &mut Resources,
    settings: &ProjectSettings,
    problems: &mut Vec<FileProblem>,
) {
    for (name, overrides) in &settings.collections {
        let here = sbx_spec::pointer::join("/collections", name);
        let Some((index, _)) = resources.collection(name) else {
            let known: Vec<&str> = resources
                .collections
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            problems.push(
                FileProblem::new(
                    "project.yaml",
                    format!(
                        "collections: no operation of the spec serves a collection named {name:?}; collections: {}",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                )
                .pointer(here),
            );
            continue;
        };
        if let Some(declared) = record_members(inputs, resources, index) {
            for (request, record) in &overrides.members {
                if !declared.iter().any(|(member, _)| member == record) {
                    let names: Vec<&str> = declared.iter().map(|(m, _)| m.as_str()).collect();
                    problems.push(
                        FileProblem::new(
                            "project.yaml",
                            format!(
                                "collections: {request:?} maps to {record:?}, which {name} records do not have; members: {}",
                                names.join(", ")
                            ),
                        )
                        .pointer(sbx_spec::pointer::join(&format!("{here}/members"), request)),
                    );
                }
            }
        }
        resources.collections[index].request_members = overrides.members.clone();
    }
}

/// The members of a collection's records (with their `enum`, if any), as
/// its record schema declares them; `None` when it has no schema.
fn record_members(
    inputs: &BehaviourInputs<'_>,
    resources: &Resources,
    collection: usize,
) -> Option<crate::behaviours::lifecycle::Members> {
    let media = fixtures::record_media(inputs.operations, resources, collection)?;
    let document = &inputs.model.document;
    let schema = document.pointer(media.spec.schema_pointer.as_ref()?)?;
    let members = resources::properties(document, sbx_spec::pointer::follow(document, schema)?);
    if members.is_empty() {
        return None;
    }
    Some(
        members
            .into_iter()
            .map(|(name, schema)| {
                let allowed = sbx_spec::pointer::follow(document, schema)
                    .and_then(|s| s.get("enum"))
                    .and_then(Value::as_array)
                    .cloned();
                (name.to_owned(), allowed)
            })
            .collect(),
    )
}

/// The answer without a script: forward, stateful, template, or the spec's.
pub fn default_answer(call: &Rc<Call>) -> Result<Rendered, Response> {
    let behaviours = &call.revision.behaviours;
    if let Some(index) = call.scenario.get() {
        return crate::behaviours::scenarios::answer(call, index);
    }
    if let Some(rule) = &behaviours.operation(call.index()).forward {
        let request = crate::behaviours::forward::build(call, rule);
        let response = crate::behaviours::forward::send(call, request)?;
        return Ok(Rendered {
            response: crate::behaviours::forward::to_response(response),
            value: None,
        });
    }
    if let Some(binding) = behaviours.binding(call.index()) {
        return stateful::answer(call, binding);
    }
    if let Some(name) = &behaviours.operation(call.index()).template {
        // Template helpers (`now()`, `uuid()`…) find the request through this.
        let _entered = crate::behaviours::call::enter(call);
        let value = behaviours
            .templates
            .render_for(call, name, &templates::context(call, None))
            .map_err(|message| template_failure(&message))?;
        return render_value(call, None, value);
    }
    call.render(&Prefer::default(), BodySource::Default)
}

fn template_failure(message: &str) -> Response {
    ProblemType::TemplateError.response(message)
}

/// `value` as the body of the declared response for `status` (the
/// operation's success response when `None`).
fn render_value(call: &Call, status: Option<u16>, value: Value) -> Result<Rendered, Response> {
    let prefer = Prefer {
        code: status,
        example: None,
    };
    let value = Arc::new(Synthesized::new(value));
    let declared = match respond::select(call.operation(), &prefer) {
        Ok(Some((status, response))) if !response.content.is_empty() => status,
        // An undeclared status, or a body where the spec declares none:
        // sent as JSON as the behaviour asked, and reported as drift.
        other => {
            let status = match other {
                Ok(Some((status, _))) => status,
                _ => status.unwrap_or(200),
            };
            return Ok(Rendered {
                response: crate::behaviours::script::json_response(status, value.value()),
                value: Some(value),
            });
        }
    };
    call.render(
        &Prefer {
            code: Some(declared),
            example: None,
        },
        BodySource::Given(value),
    )
}

/// A script's body with members in the order the declared response's
/// schema gives them (Rhai maps sort them by name).
fn ordered(call: &Call, status: u16, value: Value) -> Value {
    let prefer = Prefer {
        code: Some(status),
        example: None,
    };
    let media = respond::select(call.operation(), &prefer)
        .ok()
        .flatten()
        .and_then(|(_, response)| {
            response.content.iter().find(|m| {
                crate::request::body::is_json(&crate::request::body::essence(&m.spec.media_type))
            })
        });
    match media {
        Some(media) => media
            .order_plan(&call.revision.response_document)
            .apply(value),
        None => value,
    }
}

/// Runs the behaviour of `call`'s operation. A selected scenario answers
/// instead of a function (which, unlike a script, cannot hand over to it).
pub fn answer(call: &Rc<Call>) -> Result<Rendered, Response> {
    let behaviours = &call.revision.behaviours;
    if let Some(function) = &behaviours.operation(call.index()).function
        && call.scenario.get().is_none()
    {
        return functions::answer(call, function);
    }
    let Some(script) = &behaviours.operation(call.index()).script else {
        return default_answer(call);
    };
    let default_status = respond::select(call.operation(), &Prefer::default())
        .ok()
        .flatten()
        .map_or(200, |(status, _)| status);
    let outcome = behaviours
        .scripts
        .run(call, script, default_status)
        .map_err(|error| {
            tracing::warn!(
                target: "sbx::script",
                sandbox = %call.sandbox.id,
                script = %error.file,
                line = error.line,
                limit = error.limit,
                "{}", error.message
            );
            let response = error.response();
            call.script_error.replace(Some(error));
            response
        })?;
    let (status, headers, body) = match outcome {
        ScriptOutcome::Yield => {
            return Err(Response {
                status: 503,
                headers: Vec::new(),
                body: Bytes::new(),
            });
        }
        ScriptOutcome::Halted(response) => {
            return Ok(Rendered {
                response,
                value: None,
            });
        }
        ScriptOutcome::Answer {
            status,
            headers,
            body,
        } => (status, headers, body),
    };
    let mut rendered = match body {
        None if status == default_status => default_answer(call)?,
        None => {
            let prefer = Prefer {
                code: Some(status),
                example: None,
            };
            call.render(&prefer, BodySource::Default)?
        }
        Some(Value::String(text))
            if headers.iter().any(|(n, v)| {
                n == "content-type"
                    && !crate::request::body::is_json(&crate::request::body::essence(v))
            }) =>
        {
            Rendered {
                response: Response {
                    status,
                    headers: Vec::new(),
                    body: text.into_bytes().into(),
                },
                value: None,
            }
        }
        Some(value) => render_value(call, Some(status), ordered(call, status, value))?,
    };
    for (name, value) in headers {
        rendered.response.headers.retain(|(n, _)| *n != name);
        rendered.response.headers.push((name, value));
    }
    Ok(rendered)
}

/// Completes and checks `records` (a collection → records map, as in a
/// fixtures file) and inserts them into `state`, journaling the changes.
pub fn seed(
    revision: &crate::CompiledRevision,
    sandbox_seed: u64,
    state: &SandboxState,
    records: &Map<String, Value>,
    now_ms: i64,
) -> Result<Vec<ResourceChange>, Vec<FileProblem>> {
    // Ids are read and records written as one step (see `SandboxState::write_turn`).
    let _turn = state.write_turn();
    let resources = &revision.behaviours.resources;
    let mut problems = Vec::new();
    let mut prepared = Vec::new();
    for (collection, list) in records {
        let file = sbx_spec::pointer::join("", collection);
        let Some((index, spec)) = resources.collection(collection) else {
            problems.push(FileProblem::new(
                file,
                format!("no collection named {collection:?}"),
            ));
            continue;
        };
        let Value::Array(items) = list else {
            problems.push(FileProblem::new(file, "must be a list of records"));
            continue;
        };
        let maker = RecordMaker {
            plans: &revision.plans,
            media: fixtures::record_media(&revision.operations, resources, index),
        };
        let (mut seq, mut next_int) = state.next_ids(collection);
        for (i, item) in items.iter().enumerate() {
            let Value::Object(record) = item else {
                problems.push(
                    FileProblem::new(&file, "a record must be an object").pointer(format!("/{i}")),
                );
                continue;
            };
            let id = match record.get(&spec.id_field).filter(|v| !v.is_null()) {
                Some(id) => id.clone(),
                None => stateful::id_at(sandbox_seed, spec, seq, next_int),
            };
            seq += 1;
            next_int += 1;
            let mut record = record.clone();
            if let Err((member, message)) =
                fixtures::start_state(&revision.behaviours.lifecycles, collection, &mut record)
            {
                problems.push(
                    FileProblem::new(&file, message)
                        .pointer(sbx_spec::pointer::join(&format!("/{i}"), &member)),
                );
                continue;
            }
            match maker.make(spec, &id, &record) {
                Ok((mut value, relative)) => {
                    for date in relative {
                        if let Some(slot) = value.pointer_mut(&date.pointer) {
                            *slot = date.resolve(now_ms);
                        }
                    }
                    prepared.push((collection.clone(), stateful::id_text(&id), value))
                }
                Err(message) => {
                    problems.push(FileProblem::new(&file, message).pointer(format!("/{i}")))
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if state.len() + prepared.len() > crate::state::MAX_RECORDS {
        return Err(vec![FileProblem::new(
            "",
            crate::state::Full::Records.to_string(),
        )]);
    }
    let mut journal = Vec::new();
    for (collection, id, value) in prepared {
        if state
            .put(
                &collection,
                &id,
                "",
                None,
                Synthesized::shared(value),
                &mut journal,
            )
            .is_err()
        {
            break;
        }
    }
    Ok(journal)
}
