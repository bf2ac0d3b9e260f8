//! minijinja templates of a revision: compiled once, rendered with the
//! request as context. A template named `*.json.j2` (or `*.json`) declares
//! JSON output: values print as JSON (strings quoted, escaped) and the
//! rendered text must parse.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as TemplateValue};
use serde_json::{Map, Value, json};

use crate::{
    behaviours::call,
    behaviours::script::ScriptLimits,
    behaviours::template_bounds::{self, Budget, Exceeded},
    compile::project::FileProblem,
};

/// Instructions a template may execute per render (loops included), at
/// most: fewer when its loops repeat long raw text (see [`Templates::fuel`]).
pub const TEMPLATE_FUEL: u64 = 200_000;
/// Fewest instructions a render is given, however long its raw text.
const MIN_FUEL: u64 = 1_000;
/// `now()` while checking templates at import.
const SAMPLE_NOW: &str = "2026-01-01T00:00:00Z";
/// Largest rendered output, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;
/// What a render may do on an async worker before it yields to the
/// blocking pool: instructions, bytes produced, time.
const INLINE_FUEL: u64 = 20_000;
const INLINE_BYTES: usize = 256 * 1024;
const INLINE_TIME: Duration = Duration::from_millis(20);

pub struct Templates {
    /// None when the revision has no templates: a plain mock never pays
    /// for minijinja's built-ins (code resident, maps built).
    env: Option<Environment<'static>>,
    names: Vec<String>,
    /// Bytes and time one render may use where it may block.
    bytes: usize,
    timeout: Duration,
}

/// Where a render runs: it is bounded tighter on an async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inline,
    Blocking,
}

/// Why a render gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// It must run again where it may block ([`Mode::Blocking`]).
    #[error("the template must run where it may block")]
    Yield,
    #[error("{0}")]
    Failed(String),
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names)
            .finish()
    }
}

/// Whether a template's output must be JSON.
pub fn is_json_template(name: &str) -> bool {
    let name = name
        .strip_suffix(".j2")
        .or_else(|| name.strip_suffix(".jinja"))
        .unwrap_or(name);
    name.ends_with(".json")
}

fn location(error: &minijinja::Error, file: &str) -> FileProblem {
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message}: {detail}");
    }
    FileProblem::new(format!("templates/{file}"), message).at(error.line(), None)
}

impl Templates {
    /// Compiles every template. Outside a request (the import-time check
    /// of JSON templates) helpers answer fixed sample values.
    pub fn compile(
        sources: &BTreeMap<String, String>,
        project_env: &Map<String, Value>,
        limits: &ScriptLimits,
        problems: &mut Vec<FileProblem>,
    ) -> Self {
        let bytes = limits.template_memory_bytes;
        let timeout = Duration::from_millis(limits.timeout_ms);
        if sources.is_empty() {
            return Self {
                env: None,
                names: Vec::new(),
                bytes,
                timeout,
            };
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        template_bounds::register(&mut env);
        // In JSON templates a missing value prints as `null`, not nothing.
        env.set_formatter(|out, state, value| {
            template_bounds::printed(state, value)?;
            if value.is_undefined() && is_json_template(state.name()) {
                out.write_str("null").map_err(minijinja::Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_function("uuid", || {
            call::current().map_or_else(|| sbx_spec::synth::fake("uuid", 0), |c| c.uuid())
        });
        env.add_function("now", || {
            call::current().map_or_else(|| SAMPLE_NOW.to_owned(), |c| c.now_rfc3339())
        });
        env.add_function("fake", |kind: &str| {
            sbx_spec::synth::fake(kind, call::current().map_or(0, |c| c.draw()))
        });
        let mut names = Vec::new();
        let mut repeated_raw = 0;
        for (name, source) in sources {
            let instrumented = match template_bounds::instrument(source) {
                Ok(instrumented) => instrumented,
                Err(problem) => {
                    problems.push(FileProblem::new(format!("templates/{name}"), problem));
                    continue;
                }
            };
            repeated_raw = repeated_raw.max(instrumented.max_repeated_raw);
            match env.add_template_owned(name.clone(), instrumented.source) {
                Ok(()) => names.push(name.clone()),
                Err(error) => problems.push(location(&error, name)),
            }
        }
        env.set_fuel(Some(Self::fuel(bytes, repeated_raw)));
        let templates = Self {
            env: Some(env),
            names,
            bytes,
            timeout,
        };
        // JSON templates are tried against an empty request: a syntax
        // mistake in the JSON around the tags shows up here, at import.
        for name in templates.names.iter().filter(|n| is_json_template(n)) {
            let sample = json!({"req": {"params": {}, "query": {}, "headers": {}, "body": null}, "env": project_env});
            let sample = from_json(&sample);
            if let Ok(text) = templates.render_text(name, &sample, Mode::Blocking)
                && let Err(error) = serde_json::from_str::<Value>(&text)
            {
                problems.push(
                    FileProblem::new(
                        format!("templates/{name}"),
                        format!("renders invalid JSON (with an empty request): {error}"),
                    )
                    .at(Some(error.line()), Some(error.column())),
                );
            }
        }
        templates
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The fuel of every render: [`TEMPLATE_FUEL`], less when raw text
    /// that loops or macros repeat is long, so that fuel times that text
    /// stays within the byte budget (raw text is printed without a hook).
    fn fuel(bytes: usize, repeated_raw: usize) -> u64 {
        let by_raw = u64::try_from(bytes / repeated_raw.max(1)).unwrap_or(u64::MAX);
        by_raw.clamp(MIN_FUEL, TEMPLATE_FUEL)
    }

    fn render_text(
        &self,
        name: &str,
        context: &TemplateValue,
        mode: Mode,
    ) -> Result<String, RenderError> {
        let env = self.env.as_ref();
        let template = env
            .and_then(|env| env.get_template(name).ok())
            .ok_or_else(|| {
                RenderError::Failed(format!(
                    "no template named {name:?}; known: {}",
                    self.names.join(", ")
                ))
            })?;
        let budget = match mode {
            Mode::Inline => Budget {
                bytes: self.bytes.min(INLINE_BYTES),
                deadline: Instant::now() + INLINE_TIME.min(self.timeout),
                fuel_slice: Some(INLINE_FUEL),
            },
            Mode::Blocking => Budget {
                bytes: self.bytes,
                deadline: Instant::now() + self.timeout,
                fuel_slice: None,
            },
        };
        let (rendered, exceeded) = template_bounds::within(budget, || template.render(context));
        let text = match (rendered, exceeded) {
            (Ok(text), _) => text,
            (Err(_), Some(Exceeded::Slice)) => return Err(RenderError::Yield),
            (Err(error), _) if error.kind() == ErrorKind::OutOfFuel && mode == Mode::Inline => {
                return Err(RenderError::Yield);
            }
            (Err(error), _) => {
                let limit = if error.kind() == ErrorKind::OutOfFuel {
                    let fuel = env.and_then(Environment::fuel).unwrap_or(TEMPLATE_FUEL);
                    format!(" (limit: {fuel} instructions)")
                } else {
                    String::new()
                };
                return Err(RenderError::Failed(format!(
                    "{}{limit}",
                    location(&error, name)
                )));
            }
        };
        if text.len() > MAX_OUTPUT_BYTES {
            return Err(RenderError::Failed(format!(
                "templates/{name}: output of {} bytes exceeds the limit of {MAX_OUTPUT_BYTES}",
                text.len()
            )));
        }
        Ok(text)
    }

    /// Renders `name` where it may block (a job, an import-time check): a
    /// JSON value for JSON templates, a string otherwise.
    pub fn render(&self, name: &str, context: &Value) -> Result<Value, String> {
        let context = from_json(context);
        self.render_in(name, &context, Mode::Blocking)
            .map_err(|error| error.to_string())
    }

    /// Renders `name` for `call`: on an async worker a render that outgrows
    /// its slice stops, and the request runs again on the blocking pool.
    pub fn render_for(
        &self,
        call: &call::Call,
        name: &str,
        context: &TemplateValue,
    ) -> Result<Value, String> {
        let mode = if call.sandbox.may_block {
            Mode::Blocking
        } else {
            Mode::Inline
        };
        self.render_in(name, context, mode).map_err(|error| {
            if error == RenderError::Yield {
                call.yielded.set(true);
            }
            error.to_string()
        })
    }

    fn render_in(
        &self,
        name: &str,
        context: &TemplateValue,
        mode: Mode,
    ) -> Result<Value, RenderError> {
        let text = self.render_text(name, context, mode)?;
        if is_json_template(name) {
            serde_json::from_str(&text).map_err(|error| {
                RenderError::Failed(format!(
                    "templates/{name} rendered invalid JSON at line {}, column {}: {error}",
                    error.line(),
                    error.column()
                ))
            })
        } else {
            Ok(Value::String(text))
        }
    }
}

/// The context templates see: `req`, `env`, `sandbox`, and `extra`'s
/// members; `now()`, `uuid()` and `fake(kind)` are functions. Built as
/// template values directly: through JSON, building it cost a templated
/// answer a sixth of its time.
pub fn context(call: &call::Call, extra: Option<&Map<String, Value>>) -> TemplateValue {
    let mut members = vec![
        ("req", request_context(call)),
        ("env", from_json(call.env_map())),
        ("sandbox", TemplateValue::from(call.sandbox.id.as_str())),
    ];
    for (name, value) in extra.into_iter().flatten() {
        members.push((name.as_str(), from_json(value)));
    }
    TemplateValue::from_pairs(members)
}

fn from_json(value: impl serde::Serialize) -> TemplateValue {
    TemplateValue::from(minijinja::value::Serde(value))
}

/// The request as templates see it (scripts see the same members, built
/// as Rhai values: `script::request_dynamic`).
fn request_context(call: &call::Call) -> TemplateValue {
    // A repeated name (`?tag=a&tag=b`) is a list of its values.
    let pairs = |pairs: &[(String, String)]| {
        let mut grouped: Vec<(&str, Vec<&str>)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            match grouped.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value),
                None => grouped.push((name, vec![value])),
            }
        }
        TemplateValue::from_pairs(grouped.into_iter().map(|(name, values)| {
            let value = match values.as_slice() {
                [one] => TemplateValue::from(*one),
                many => TemplateValue::from_iter(many.iter().copied()),
            };
            (name, value)
        }))
    };
    let none = || TemplateValue::from(());
    TemplateValue::from_pairs([
        ("method", TemplateValue::from(call.request.method.as_str())),
        ("path", TemplateValue::from(call.request.path.as_str())),
        (
            "operation",
            TemplateValue::from(call.operation().operation.id.as_str()),
        ),
        ("params", pairs(&call.decoded_path_params())),
        ("query", pairs(&call.request.query)),
        ("headers", pairs(&call.request.headers)),
        (
            "body",
            call.request.body.as_ref().map_or_else(none, from_json),
        ),
        ("sandbox", TemplateValue::from(call.sandbox.id.as_str())),
        (
            "scenario",
            call.scenario_name().map_or_else(none, TemplateValue::from),
        ),
    ])
}
