//! Behaviour scripts in Rhai: compiled once per revision, run per request
//! under hard limits, with no ambient I/O. Helpers reach the request being
//! served through [`crate::behaviours::call::current`].

use std::{
    cell::Cell,
    collections::BTreeMap,
    rc::Rc,
    sync::OnceLock,
    time::{Duration, Instant},
};

use rhai::{
    AST, Dynamic, Engine, EvalAltResult, ImmutableString, Module, Position, Scope,
    module_resolvers::StaticModuleResolver,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    Response,
    behaviours::call::{self, Call},
    behaviours::forward,
    behaviours::jobs::{JobAction, ScheduledJob},
    behaviours::lifecycle::Refused,
    behaviours::stateful,
    compile::project::{FileProblem, ForwardRule},
    compile::resources::{CollectionSpec, IdKind},
    pipeline::failure::{Failure, FailureKind},
    pipeline::problem::ProblemType,
    pipeline::respond::{self, BodySource},
};

/// Hard limits on one script run. Defaults are documented in
/// `docs/configuration.md`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Rhai operations per request (roughly: expressions evaluated).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Longest string, in bytes.
    pub max_string_bytes: usize,
    /// Most elements of one array.
    pub max_array_len: usize,
    /// Most members of one object map.
    pub max_map_len: usize,
    /// Wall time per request, in milliseconds (templates too).
    pub timeout_ms: u64,
    /// Bytes one template render may produce (strings built by `~`, `+`,
    /// `*` and filters, values printed).
    pub template_memory_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_depth: 32,
            max_string_bytes: 1024 * 1024,
            max_array_len: 10_000,
            max_map_len: 10_000,
            timeout_ms: 1_000,
            template_memory_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How long a script may run on an async worker before it yields and the
/// request is run again on the blocking pool.
pub const INLINE_SLICE: Duration = Duration::from_millis(2);

/// Helpers that write records or call out may not run on an async worker:
/// there, they stop the script, which is run again where it may block.
fn blocking_allowed(call: &Call) -> Result<(), Box<EvalAltResult>> {
    if call.sandbox.may_block {
        return Ok(());
    }
    call.yielded.set(true);
    Err(EvalAltResult::ErrorRuntime(Dynamic::from(Halt), Position::NONE).into())
}

/// A compiled behaviour.
#[derive(Debug)]
pub struct Script {
    /// `behaviours/<operationId>.rhai`
    pub file: String,
    ast: AST,
}

/// The revision's script engine: helpers registered, modules resolved.
/// A revision without scripts builds it on first use (a scenario's `when`
/// rule), if ever: the engine and its packages are a megabyte of code a
/// plain mock never needs resident.
pub struct Scripts {
    engine: OnceLock<Engine>,
    limits: ScriptLimits,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts")
            .field("limits", &self.limits)
            .finish()
    }
}

thread_local! {
    /// When the running script must stop.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Why a script run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The limit breached, when one was.
    pub limit: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::compile::project::write_location(f, &self.file, self.line, self.column)?;
        write!(f, ": {}", self.message)
    }
}

impl ScriptError {
    pub fn response(&self) -> Response {
        let kind = if self.limit.is_some() {
            ProblemType::ScriptLimit
        } else {
            ProblemType::ScriptError
        };
        kind.response_with(
            kind.status(),
            &self.to_string(),
            Some(json!({
                "script": self.file,
                "line": self.line,
                "column": self.column,
                "limit": self.limit,
            })),
        )
    }
}

fn position(pos: Position) -> (Option<usize>, Option<usize>) {
    (pos.line(), pos.position())
}

/// The innermost error and the outermost position inside `file` (nested
/// function calls report where the call was made).
fn describe(error: &EvalAltResult, file: &str, limits: &ScriptLimits) -> ScriptError {
    let mut root = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = root
    {
        root = inner;
    }
    let (limit, message) = match root {
        EvalAltResult::ErrorTooManyOperations(_) => (
            Some("max_operations"),
            format!("ran more than {} operations", limits.max_operations),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            Some("max_call_depth"),
            format!("nested calls deeper than {}", limits.max_call_depth),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let (limit, size) = if what.contains("string") || what.contains("String") {
                ("max_string_bytes", limits.max_string_bytes)
            } else if what.contains("rray") {
                ("max_array_len", limits.max_array_len)
            } else {
                ("max_map_len", limits.max_map_len)
            };
            (Some(limit), format!("{what} exceeds the limit of {size}"))
        }
        EvalAltResult::ErrorTerminated(..) => (
            Some("timeout_ms"),
            format!("ran longer than {} ms", limits.timeout_ms),
        ),
        other => (None, other.to_string()),
    };
    let (line, column) = position(error.position());
    ScriptError {
        file: file.to_owned(),
        line,
        column,
        limit,
        message,
    }
}

type Fallible = Result<Dynamic, Box<EvalAltResult>>;

fn runtime(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE).into()
}

fn host() -> Result<Rc<Call>, Box<EvalAltResult>> {
    call::current().ok_or_else(|| runtime("helpers are available only while serving a request"))
}

/// The call, for helpers that answer a request (jobs have none).
fn request_host(helper: &str) -> Result<Rc<Call>, Box<EvalAltResult>> {
    let call = host()?;
    if call.job.is_some() {
        return Err(runtime(format!(
            "{helper}() answers a request; a job has none (use the data API, emit and schedule)"
        )));
    }
    Ok(call)
}

fn to_dynamic(value: &Value) -> Fallible {
    Ok(dynamic_of(value))
}

/// A JSON value as a Rhai value, built directly (serde's generic path
/// costs more than most scripts take to run).
pub(crate) fn dynamic_of(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(dynamic_of).collect()),
        Value::Object(members) => Dynamic::from_map(
            members
                .iter()
                .map(|(k, v)| (k.as_str().into(), dynamic_of(v)))
                .collect(),
        ),
    }
}

fn to_value(value: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    rhai::serde::from_dynamic::<Value>(value)
}

fn to_map(value: &Dynamic) -> Result<Map<String, Value>, Box<EvalAltResult>> {
    match to_value(value)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(runtime(format!("expected an object map, got {other}"))),
    }
}

/// The collection as the spec declares it, or an ad-hoc one for scripts.
fn collection(call: &Call, name: &str) -> CollectionSpec {
    call.revision
        .behaviours
        .resources
        .collection(name)
        .map(|(_, spec)| spec.clone())
        .unwrap_or_else(|| CollectionSpec {
            name: name.to_owned(),
            id_field: "id".to_owned(),
            wrapper: None,
            request_members: Default::default(),
            id_kind: IdKind::Prefixed(format!(
                "{}_",
                name.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(3)
                    .collect::<String>()
            )),
        })
}

fn id_of(id: &Dynamic) -> Result<String, Box<EvalAltResult>> {
    Ok(stateful::id_text(&to_value(id)?))
}

/// A response the script ends the request with (`fail`), recorded on the call.
#[derive(Debug, Clone)]
struct Halt;

fn halt(call: &Call, response: Response) -> Box<EvalAltResult> {
    *call.halted.borrow_mut() = Some(response);
    EvalAltResult::ErrorRuntime(Dynamic::from(Halt), Position::NONE).into()
}

fn fail(status: i64, body: Dynamic, headers: Dynamic) -> Fallible {
    let call = host()?;
    if call.job.is_some() {
        // In a job, `fail` fails the job with its message.
        return Err(runtime(format!(
            "fail({status}): {}",
            text_of(&to_value(&body)?)
        )));
    }
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| runtime(format!("fail(): {status} is not an HTTP status")))?;
    let mut response = match to_value(&body)? {
        Value::String(reason) => {
            let failure = Failure::new(FailureKind::of_status(status), &reason);
            stateful::error(&call, &[status], &failure, ProblemType::Failed)
        }
        Value::Null => {
            let failure = Failure::new(FailureKind::of_status(status), "failed by the behaviour");
            stateful::error(&call, &[status], &failure, ProblemType::Failed)
        }
        value => json_response(status, &value),
    };
    for (name, value) in to_map(&headers)? {
        response
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        response
            .headers
            .push((name.to_ascii_lowercase(), text_of(&value)));
    }
    Err(halt(&call, response))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn json_response(status: u16, value: &Value) -> Response {
    Response {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_vec(value).unwrap_or_default().into(),
    }
}

fn template(name: &str, context: Dynamic) -> Fallible {
    let call = request_host("template")?;
    let extra = to_map(&context)?;
    let context = crate::behaviours::templates::context(&call, Some(&extra));
    let rendered = call
        .revision
        .behaviours
        .templates
        .render_for(&call, name, &context);
    if call.yielded.get() {
        // Outgrew the async worker's slice: the script stops and runs again.
        return Err(EvalAltResult::ErrorRuntime(Dynamic::from(Halt), Position::NONE).into());
    }
    let value = rendered.map_err(runtime)?;
    to_dynamic(&value)
}

fn example(name: &str) -> Fallible {
    let call = request_host("example")?;
    let found = call
        .operation()
        .responses
        .iter()
        .flat_map(|r| &r.content)
        .flat_map(|m| &m.spec.examples)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            runtime(format!(
                "operation {} declares no example {name:?}",
                call.operation().operation.id
            ))
        })?;
    to_dynamic(&found)
}

fn synth(status: Option<i64>) -> Fallible {
    let call = request_host("synth")?;
    let prefer = respond::Prefer {
        code: status.and_then(|s| u16::try_from(s).ok()),
        example: None,
    };
    // The problem's detail says what is wrong (e.g. the status is not declared).
    let rendered = call
        .render(&prefer, BodySource::Default)
        .map_err(|r| runtime(String::from_utf8_lossy(&r.body).into_owned()))?;
    match rendered.value {
        Some(value) => to_dynamic(value.value()),
        None => Ok(Dynamic::UNIT),
    }
}

fn proceed() -> Fallible {
    let call = request_host("proceed")?;
    if call.revision.behaviours.default_may_block(call.index()) {
        blocking_allowed(&call)?;
    }
    let response = crate::behaviours::behaviour::default_answer(&call)
        .map(|r| r.response)
        .unwrap_or_else(|r| r);
    to_dynamic(&forward::to_value(&response))
}

fn forward_with(target: Option<Dynamic>) -> Fallible {
    let call = request_host("forward")?;
    blocking_allowed(&call)?;
    let operation = call.index();
    let configured = call
        .revision
        .behaviours
        .operation(operation)
        .forward
        .clone();
    let rule = match target.map(|t| to_value(&t)).transpose()? {
        None => configured.ok_or_else(|| {
            runtime("forward(): no upstream is configured for this operation in project.yaml; pass a URL")
        })?,
        Some(Value::String(url)) => ForwardRule {
            url,
            timeout_ms: 5_000,
            set_headers: BTreeMap::new(),
            remove_headers: Vec::new(),
        },
        Some(value) => serde_json::from_value(value)
            .map_err(|e| runtime(format!("forward(): {e}")))?,
    };
    let request = forward::build(&call, &rule);
    let response = forward::send(&call, request)
        .map(forward::to_response)
        .unwrap_or_else(|r| r);
    to_dynamic(&forward::to_value(&response))
}

/// An engine under `limits`, helpers registered, imports resolving to nothing.
fn new_engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(limits.max_string_bytes);
    engine.set_max_array_size(limits.max_array_len);
    engine.set_max_map_size(limits.max_map_len);
    engine.set_max_modules(64);
    engine.set_max_variables(1_000);
    engine.disable_symbol("eval");
    engine.on_progress(|operations| {
        // Often enough that one slow operation (a megabyte copied)
        // times 64 stays far below the limit, even on a busy core.
        if operations % 64 != 0 {
            return None;
        }
        let late = DEADLINE
            .with(|d| d.get())
            .is_some_and(|at| Instant::now() >= at);
        late.then(|| Dynamic::from("timeout"))
    });
    engine.on_print(|text| tracing::info!(target: "sbx::script", "{text}"));
    engine.on_debug(|text, source, pos| {
            tracing::debug!(target: "sbx::script", source = source.unwrap_or(""), line = pos.line(), "{text}");
        });
    register(&mut engine);
    // Until modules are compiled, imports resolve to nothing.
    engine.set_module_resolver(StaticModuleResolver::new());
    engine
}

fn register(engine: &mut Engine) {
    engine.register_fn("template", |name: &str| template(name, Dynamic::UNIT));
    engine.register_fn("template", template);
    engine.register_fn("example", example);
    engine.register_fn("synth", || synth(None));
    engine.register_fn("synth", |status: i64| synth(Some(status)));
    engine.register_fn("proceed", proceed);
    engine.register_fn("forward", || forward_with(None));
    engine.register_fn("forward", |target: Dynamic| forward_with(Some(target)));
    engine.register_fn("fail", |status: i64| {
        fail(status, Dynamic::UNIT, Dynamic::UNIT)
    });
    engine.register_fn("fail", |status: i64, body: Dynamic| {
        fail(status, body, Dynamic::UNIT)
    });
    engine.register_fn("fail", fail);
    engine.register_fn("env", |key: &str| -> Fallible {
        let call = host()?;
        call.env_value(key)
            .map_or(Ok(Dynamic::UNIT), |v| to_dynamic(&v))
    });
    engine.register_fn("env", |key: &str, default: Dynamic| -> Fallible {
        let call = host()?;
        call.env_value(key).map_or(Ok(default), |v| to_dynamic(&v))
    });
    engine.register_fn("now", || -> Result<ImmutableString, Box<EvalAltResult>> {
        Ok(host()?.now_rfc3339().into())
    });
    engine.register_fn("now_ms", || -> Result<i64, Box<EvalAltResult>> {
        Ok(host()?.sandbox.now_ms)
    });
    engine.register_fn("uuid", || -> Result<ImmutableString, Box<EvalAltResult>> {
        Ok(host()?.uuid().into())
    });
    engine.register_fn(
        "id",
        |prefix: &str| -> Result<ImmutableString, Box<EvalAltResult>> {
            let call = host()?;
            Ok(format!("{prefix}{}", sbx_spec::synth::alphanumeric(14, call.draw())).into())
        },
    );
    engine.register_fn(
        "fake",
        |kind: &str| -> Result<ImmutableString, Box<EvalAltResult>> {
            let call = host()?;
            Ok(sbx_spec::synth::fake(kind, call.draw()).into())
        },
    );
    engine.register_fn(
        "emit",
        |event_type: &str, payload: Dynamic| -> Result<(), Box<EvalAltResult>> {
            let call = host()?;
            call.emit(event_type.to_owned(), to_value(&payload)?);
            Ok(())
        },
    );
    register_data_api(engine);
    register_scheduling(engine);
}

/// `schedule(when, job, payload)` and friends: `when` is an ISO 8601
/// duration from now (`P2D`) or an RFC 3339 instant; each returns the job id.
fn register_scheduling(engine: &mut Engine) {
    fn schedule(when: &str, action: JobAction, payload: &Dynamic) -> Fallible {
        let call = host()?;
        let payload = if payload.is_unit() {
            Value::Null
        } else {
            to_value(payload)?
        };
        call.schedule(when, action, payload)
            .map(Dynamic::from)
            .map_err(runtime)
    }
    let job = |when: &str, name: &str, payload: Dynamic| -> Fallible {
        let call = host()?;
        if !call.revision.behaviours.job_scripts.contains_key(name) {
            let names: Vec<&str> = call
                .revision
                .behaviours
                .job_scripts
                .keys()
                .map(String::as_str)
                .collect();
            return Err(runtime(format!(
                "schedule(): no job {name:?} (jobs/{name}.rhai); jobs: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        let action = JobAction::Script {
            name: name.to_owned(),
        };
        schedule(when, action, &payload)
    };
    engine.register_fn("schedule", move |when: &str, name: &str| {
        job(when, name, Dynamic::UNIT)
    });
    engine.register_fn("schedule", job);
    engine.register_fn(
        "schedule_emit",
        |when: &str, event_type: &str, payload: Dynamic| -> Fallible {
            let action = JobAction::Emit {
                event_type: event_type.to_owned(),
            };
            schedule(when, action, &payload)
        },
    );
    engine.register_fn(
        "schedule_update",
        |when: &str, name: &str, id: Dynamic, patch: Dynamic| -> Fallible {
            let action = JobAction::Update {
                collection: name.to_owned(),
                id: id_of(&id)?,
            };
            schedule(when, action, &patch)
        },
    );
    engine.register_fn(
        "transition",
        |name: &str, id: Dynamic, to: &str| -> Fallible {
            let call = host()?;
            blocking_allowed(&call)?;
            let id = id_of(&id)?;
            let lifecycle = call
                .revision
                .behaviours
                .lifecycles
                .of(name)
                .ok_or_else(|| runtime(format!("transition(): {name} has no lifecycle")))?;
            let record =
                call.sandbox.state.get(name, &id).ok_or_else(|| {
                    runtime(format!("transition(): no {name} record has id {id:?}"))
                })?;
            let mut value = record.value.value().clone();
            if let Some(object) = value.as_object_mut() {
                object.insert(lifecycle.field.clone(), Value::String(to.to_owned()));
            }
            store(&call, name, &id, &record.scope, Some(record.seq), value)
        },
    );
}

/// Stores a record for the data API; the stored value back. A transition
/// its lifecycle forbids ends a request with the spec's 409 (a job fails).
fn store(
    call: &Call,
    name: &str,
    id: &str,
    scope: &str,
    seq: Option<u64>,
    value: Value,
) -> Fallible {
    match crate::behaviours::lifecycle::write(call, name, id, scope, seq, value) {
        Ok(record) => to_dynamic(record.value.value()),
        Err(refused @ Refused::Disallowed(_)) if call.job.is_none() => {
            Err(halt(call, refused.response(call)))
        }
        Err(refused) => Err(runtime(refused.into_message())),
    }
}

fn register_data_api(engine: &mut Engine) {
    engine.register_fn("get", |name: &str, id: Dynamic| -> Fallible {
        let call = host()?;
        match call.sandbox.state.get(name, &id_of(&id)?) {
            Some(record) => to_dynamic(record.value.value()),
            None => Ok(Dynamic::UNIT),
        }
    });
    engine.register_fn("find", |name: &str, filter: Dynamic| -> Fallible {
        let call = host()?;
        let filter = to_map(&filter)?;
        match stateful::filtered(&call, name, "", &filter)
            .into_iter()
            .next()
        {
            Some(record) => to_dynamic(record.value.value()),
            None => Ok(Dynamic::UNIT),
        }
    });
    let list = |name: &str, options: Dynamic| -> Fallible {
        let call = host()?;
        let mut filter = to_map(&options)?;
        let number = |v: Option<Value>| v.and_then(|v| v.as_u64()).map(|n| n as usize);
        let limit = number(filter.remove("limit")).unwrap_or(usize::MAX);
        let mut offset = number(filter.remove("offset")).unwrap_or(0);
        let after = filter.remove("after").map(|v| stateful::id_text(&v));
        let records = stateful::filtered(&call, name, "", &filter);
        if let Some(after) = after {
            offset = records
                .iter()
                .position(|r| r.id == after)
                .map_or(records.len(), |i| i + 1);
        }
        let page: Vec<Value> = records
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|r| r.value.value().clone())
            .collect();
        to_dynamic(&Value::Array(page))
    };
    engine.register_fn("list", move |name: &str| list(name, Dynamic::UNIT));
    engine.register_fn("list", list);
    engine.register_fn("insert", |name: &str, value: Dynamic| -> Fallible {
        let call = host()?;
        blocking_allowed(&call)?;
        let spec = collection(&call, name);
        let mut value = Value::Object(to_map(&value)?);
        let id = match value.get(&spec.id_field).filter(|v| !v.is_null()) {
            Some(id) => stateful::id_text(id),
            None => {
                let id = stateful::new_id(&call, &spec);
                stateful::set_id(&mut value, &spec, id.clone(), false);
                stateful::id_text(&id)
            }
        };
        store(&call, name, &id, "", None, value)
    });
    engine.register_fn(
        "update",
        |name: &str, id: Dynamic, patch: Dynamic| -> Fallible {
            let call = host()?;
            blocking_allowed(&call)?;
            let id = id_of(&id)?;
            let Some(record) = call.sandbox.state.get(name, &id) else {
                return Ok(Dynamic::UNIT);
            };
            let value = stateful::merged(record.value.value(), Some(&to_value(&patch)?), true);
            store(&call, name, &id, &record.scope, Some(record.seq), value)
        },
    );
    engine.register_fn(
        "delete",
        |name: &str, id: Dynamic| -> Result<bool, Box<EvalAltResult>> {
            let call = host()?;
            blocking_allowed(&call)?;
            let id = id_of(&id)?;
            Ok(call
                .sandbox
                .state
                .delete(name, &id, &mut call.journal.borrow_mut().changes)
                .is_some())
        },
    );
}

/// `req` as scripts see it: the same members as templates' `req`
/// (as templates see it), built directly as Rhai values
/// because this runs on every scripted request.
pub(crate) fn request_dynamic(call: &Call) -> Fallible {
    fn pairs(pairs: &[(String, String)]) -> Dynamic {
        let mut map = rhai::Map::new();
        for (name, value) in pairs {
            let value = Dynamic::from(value.clone());
            match map.get_mut(name.as_str()) {
                Some(existing) if existing.is_array() => {
                    if let Some(mut items) = existing.write_lock::<rhai::Array>() {
                        items.push(value);
                    }
                }
                Some(existing) => {
                    let first = std::mem::take(existing);
                    *existing = Dynamic::from_array(vec![first, value]);
                }
                None => {
                    map.insert(name.as_str().into(), value);
                }
            }
        }
        Dynamic::from_map(map)
    }
    let request = &call.request;
    let text = |s: &str| Dynamic::from(s.to_owned());
    let mut map = rhai::Map::new();
    map.insert("method".into(), text(&request.method));
    map.insert("path".into(), text(&request.path));
    map.insert("operation".into(), text(&call.operation().operation.id));
    map.insert("params".into(), pairs(&call.decoded_path_params()));
    map.insert("query".into(), pairs(&request.query));
    map.insert("headers".into(), pairs(&request.headers));
    let body = match &request.body {
        Some(body) => to_dynamic(body)?,
        None => Dynamic::UNIT,
    };
    map.insert("body".into(), body);
    map.insert("sandbox".into(), text(&call.sandbox.id));
    map.insert(
        "scenario".into(),
        call.scenario_name().map_or(Dynamic::UNIT, text),
    );
    Ok(Dynamic::from_map(map))
}

/// Arms the wall-time limit for the run on this thread until dropped.
struct Deadline;

impl Deadline {
    fn arm(timeout: Duration) -> Self {
        DEADLINE.with(|d| d.set(Some(Instant::now() + timeout)));
        Deadline
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}

impl Scripts {
    /// Compiles a scenario rule: one Rhai expression over `req` or `record`.
    pub fn compile_condition(&self, text: &str) -> Result<AST, String> {
        self.engine().compile_expression(text).map_err(|error| {
            let (line, column) = position(error.1);
            format!(
                "{} (line {}, column {})",
                error.0,
                line.unwrap_or(1),
                column.unwrap_or(1)
            )
        })
    }

    /// Whether a rule holds for `req` and `record`; a rule that fails to
    /// evaluate (a missing member, a limit) does not hold.
    pub fn condition_holds(&self, rule: &AST, req: Dynamic, record: Dynamic) -> bool {
        let mut scope = Scope::new();
        scope.push("req", req);
        scope.push("record", record);
        let _deadline =
            Deadline::arm(Duration::from_millis(self.limits.timeout_ms).min(INLINE_SLICE));
        self.engine()
            .eval_ast_with_scope::<bool>(&mut scope, rule)
            .unwrap_or(false)
    }

    fn engine(&self) -> &Engine {
        self.engine.get_or_init(|| new_engine(&self.limits))
    }

    /// Compiles modules first (behaviours import them), then behaviours;
    /// every problem is reported with its file, line and column.
    pub fn compile(
        limits: &ScriptLimits,
        modules: &BTreeMap<String, String>,
        behaviours: &[(usize, String, &str)],
        jobs: &BTreeMap<String, String>,
        problems: &mut Vec<FileProblem>,
    ) -> (Self, Vec<(usize, Script)>, BTreeMap<String, Script>) {
        if modules.is_empty() && behaviours.is_empty() && jobs.is_empty() {
            let scripts = Self {
                engine: OnceLock::new(),
                limits: limits.clone(),
            };
            return (scripts, Vec::new(), BTreeMap::new());
        }
        let mut engine = new_engine(limits);
        let mut resolver = StaticModuleResolver::new();
        for (name, source) in modules {
            let file = format!("modules/{name}.rhai");
            let ast = match engine.compile(source) {
                Ok(ast) => ast,
                Err(error) => {
                    let (line, column) = position(error.1);
                    problems.push(FileProblem::new(file, error.0.to_string()).at(line, column));
                    continue;
                }
            };
            let _deadline = Deadline::arm(Duration::from_millis(limits.timeout_ms));
            match Module::eval_ast_as_new(Scope::new(), &ast, &engine) {
                Ok(mut module) => {
                    module.build_index();
                    resolver.insert(name.as_str(), module);
                }
                Err(error) => {
                    let described = describe(&error, &file, limits);
                    problems.push(
                        FileProblem::new(file, described.message)
                            .at(described.line, described.column),
                    );
                }
            }
        }
        engine.set_module_resolver(resolver);
        let mut compile_file = |file: String, source: &str| match engine.compile(source) {
            Ok(mut ast) => {
                ast.set_source(file.clone());
                Some(Script { file, ast })
            }
            Err(error) => {
                let (line, column) = position(error.1);
                problems.push(FileProblem::new(file, error.0.to_string()).at(line, column));
                None
            }
        };
        let scripts = behaviours
            .iter()
            .filter_map(|(operation, id, source)| {
                Some((
                    *operation,
                    compile_file(format!("behaviours/{id}.rhai"), source)?,
                ))
            })
            .collect();
        let job_scripts = jobs
            .iter()
            .filter_map(|(name, source)| {
                Some((
                    name.clone(),
                    compile_file(format!("jobs/{name}.rhai"), source)?,
                ))
            })
            .collect();
        (
            Self {
                engine: OnceLock::from(engine),
                limits: limits.clone(),
            },
            scripts,
            job_scripts,
        )
    }

    /// Runs a job script: `job` (`id`, `name`, `payload`, `due_at`,
    /// `scheduled_at`) and `payload` in scope, the clock at its due time.
    pub fn run_job(
        &self,
        call: &Rc<Call>,
        script: &Script,
        job: &ScheduledJob,
    ) -> Result<(), ScriptError> {
        let _entered = call::enter(call);
        let payload = dynamic_of(&job.payload);
        let mut info = rhai::Map::new();
        info.insert("id".into(), Dynamic::from(job.id.clone()));
        if let JobAction::Script { name } = &job.action {
            info.insert("name".into(), Dynamic::from(name.clone()));
        }
        info.insert("payload".into(), payload.clone());
        info.insert(
            "due_at".into(),
            Dynamic::from(crate::state::clock::rfc3339(job.due_ms)),
        );
        info.insert(
            "scheduled_at".into(),
            Dynamic::from(crate::state::clock::rfc3339(job.scheduled_at_ms)),
        );
        let mut scope = Scope::new();
        scope.push("job", info);
        scope.push("payload", payload);
        let _deadline = Deadline::arm(Duration::from_millis(self.limits.timeout_ms));
        self.engine()
            .run_ast_with_scope(&mut scope, &script.ast)
            .map_err(|error| {
                let mut described = describe(&error, &script.file, &self.limits);
                if let EvalAltResult::ErrorRuntime(value, _) = &*error
                    && value.is::<ImmutableString>()
                {
                    described.message = value.to_string();
                }
                described
            })
    }

    /// Runs `script` for `call`: the response it leaves in `resp`, or
    /// `None` when it set no body and kept the default status (the default
    /// behaviour answers).
    pub fn run(
        &self,
        call: &Rc<Call>,
        script: &Script,
        default_status: u16,
    ) -> Result<ScriptOutcome, ScriptError> {
        let _entered = call::enter(call);
        let mut scope = Scope::new();
        let req = request_dynamic(call).map_err(|e| describe(&e, &script.file, &self.limits))?;
        scope.push("req", req);
        let mut resp = rhai::Map::new();
        resp.insert("status".into(), Dynamic::from(i64::from(default_status)));
        resp.insert("headers".into(), Dynamic::from_map(rhai::Map::new()));
        resp.insert("body".into(), Dynamic::UNIT);
        scope.push("resp", resp);
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        let result = {
            let slice = if call.sandbox.may_block {
                timeout
            } else {
                timeout.min(INLINE_SLICE)
            };
            let _deadline = Deadline::arm(slice);
            self.engine().run_ast_with_scope(&mut scope, &script.ast)
        };
        let out_of_slice = !call.sandbox.may_block
            && result
                .as_ref()
                .is_err_and(|e| matches!(**e, EvalAltResult::ErrorTerminated(..)));
        if call.yielded.get() || out_of_slice {
            call.yielded.set(true);
            return Ok(ScriptOutcome::Yield);
        }
        if let Some(response) = call.halted.borrow_mut().take() {
            return Ok(ScriptOutcome::Halted(response));
        }
        if let Err(error) = result {
            let mut described = describe(&error, &script.file, &self.limits);
            if let EvalAltResult::ErrorRuntime(value, _) = &*error
                && value.is::<ImmutableString>()
            {
                described.message = format!("throw: {value}");
            }
            return Err(described);
        }
        let fault = |message: String| ScriptError {
            file: script.file.clone(),
            line: None,
            column: None,
            limit: None,
            message,
        };
        let resp = scope.get_value::<rhai::Map>("resp").ok_or_else(|| {
            fault("`resp` must stay an object map #{status, headers, body}".into())
        })?;
        let status = match resp.get("status") {
            Some(s) => s
                .as_int()
                .ok()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| {
                    fault(format!(
                        "resp.status must be an HTTP status (100-599), not {s}"
                    ))
                })?,
            None => default_status,
        };
        let headers = match resp.get("headers") {
            Some(h) => to_map(h).map_err(|e| fault(format!("resp.headers: {e}")))?,
            None => Map::new(),
        };
        let body = match resp.get("body") {
            Some(b) if !b.is_unit() => {
                Some(to_value(b).map_err(|e| fault(format!("resp.body: {e}")))?)
            }
            _ => None,
        };
        Ok(ScriptOutcome::Answer {
            status,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), text_of(&v)))
                .collect(),
            body,
        })
    }
}

/// What a script decided.
pub enum ScriptOutcome {
    /// The script must run again where it may block.
    Yield,
    /// `fail(...)` was called.
    Halted(Response),
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        /// `None`: the script set no body.
        body: Option<Value>,
    },
}
