//! A spec revision compiled for serving: router, validators and the
//! synthesis cache, built once and shared by every sandbox on the revision.

use sbx_spec::{
    ApiModel, Direction, MediaTypeSpec, Operation, ParamLocation, Problem, ResponseSpec,
    SchemaCompiler, SchemaValidator, Screen, synth::Plans,
};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::{
    behaviours::behaviour::{BehaviourInputs, CompiledBehaviours},
    behaviours::script::ScriptLimits,
    compile::project::{FileProblem, ProjectFiles},
    pipeline::cache::{SynthCache, Synthesized},
    request::params::{self, RawParams},
    request::router::{RouteMatch, Router},
};

/// Every problem found compiling a revision: spec problems have the file
/// `spec` and a pointer; project files have their path, line and column.
#[derive(Debug, thiserror::Error)]
#[error("the project does not compile ({} problem(s))", .0.len())]
pub struct CompileError(pub Vec<FileProblem>);

fn spec_problems(problems: Vec<Problem>) -> CompileError {
    CompileError(
        problems
            .into_iter()
            .map(|p| FileProblem::new("spec", p.message).pointer(p.pointer))
            .collect(),
    )
}

/// A validator compiled on first use. Compiling one walks every schema its
/// `$ref`s reach, which for a 20 MB spec (Microsoft Graph: 11,000 operations)
/// adds up to most of a minute; lazily, import takes a second and each
/// operation pays a few milliseconds once. Schemas are checked against the
/// JSON Schema meta-schema at import, so a compile rarely fails here; when
/// it does, the value goes unchecked rather than the request failing.
#[derive(Debug)]
pub struct LazyValidator {
    pointer: Option<String>,
    direction: Direction,
    compiler: Arc<SchemaCompiler>,
    cell: OnceLock<Option<SchemaValidator>>,
    screen: OnceLock<Option<Screen>>,
}

impl LazyValidator {
    fn new(pointer: &Option<String>, direction: Direction, compiler: &Arc<SchemaCompiler>) -> Self {
        Self {
            pointer: pointer.clone(),
            direction,
            compiler: compiler.clone(),
            cell: OnceLock::new(),
            screen: OnceLock::new(),
        }
    }

    pub fn get(&self) -> Option<&SchemaValidator> {
        self.cell
            .get_or_init(|| {
                let pointer = self.pointer.as_ref()?;
                self.compiler.compile(pointer, self.direction).ok()
            })
            .as_ref()
    }

    /// The schema's screen: certain acceptance of a valid JSON body without
    /// parsing it into a tree. `None` where there is no validator either.
    pub fn screen(&self) -> Option<&Screen> {
        self.get()?;
        self.screen
            .get_or_init(|| {
                let pointer = self.pointer.as_ref()?;
                self.compiler.screen(pointer, self.direction)
            })
            .as_ref()
    }
}

#[derive(Debug)]
pub struct CompiledMedia {
    pub spec: MediaTypeSpec,
    pub validator: LazyValidator,
    /// The schema with its top-level `$ref` resolved (form field coercion).
    pub schema: Value,
    /// Member order of behaviours' bodies, planned on first use.
    order: OnceLock<crate::pipeline::order::Plan>,
    /// How long the latest synthesis of this schema took, in microseconds
    /// (`u32::MAX` until one was measured).
    synthesis_us: std::sync::atomic::AtomicU32,
    /// Syntheses of this schema, for timing one in [`TIMED_EVERY`].
    syntheses: std::sync::atomic::AtomicU32,
    /// Each example as answered: itself, or repaired to the schema when the
    /// spec's own example breaks it; checked on first use.
    served_examples: Box<[OnceLock<Arc<Synthesized>>]>,
    /// The synthesis plan of the schema, looked up once.
    plan: OnceLock<Option<sbx_spec::synth::Root>>,
}

/// Longest synthesis an async worker does itself; a schema measured
/// slower than this is synthesized on the blocking pool.
const INLINE_SYNTHESIS: std::time::Duration = std::time::Duration::from_millis(1);

/// A schema known to synthesize fast is timed once in this many
/// syntheses: two clock reads cost about as much as a small answer's seed.
const TIMED_EVERY: u32 = 32;

impl CompiledMedia {
    fn new(spec: &MediaTypeSpec, validator: LazyValidator, schema: Value) -> Self {
        Self {
            validator,
            schema,
            served_examples: spec.examples.iter().map(|_| OnceLock::new()).collect(),
            spec: spec.clone(),
            order: OnceLock::new(),
            synthesis_us: std::sync::atomic::AtomicU32::new(u32::MAX),
            syntheses: std::sync::atomic::AtomicU32::new(0),
            plan: OnceLock::new(),
        }
    }

    /// The synthesis plan of this media type's schema, compiled the first
    /// time; `None` without a schema.
    pub fn plan(&self, plans: &sbx_spec::synth::Plans) -> Option<sbx_spec::synth::Root> {
        *self.plan.get_or_init(|| {
            let pointer = self.spec.schema_pointer.as_deref()?;
            plans.root(pointer)
        })
    }

    /// The example at `index` as answered, once checked against the schema;
    /// `check` gives the answer the first time.
    pub fn served_example(
        &self,
        index: usize,
        check: impl FnOnce(&Value) -> Result<Arc<Synthesized>, crate::Response>,
    ) -> Result<Arc<Synthesized>, crate::Response> {
        let slot = &self.served_examples[index];
        if let Some(served) = slot.get() {
            return Ok(served.clone());
        }
        let served = check(&self.spec.examples[index].1)?;
        Ok(slot.get_or_init(|| served).clone())
    }

    /// Whether a cold value of this schema may be synthesized on an async
    /// worker: once one was measured, and fast.
    pub fn cheap_to_synthesize(&self) -> bool {
        let us = self.synthesis_us.load(std::sync::atomic::Ordering::Relaxed);
        u128::from(us) < INLINE_SYNTHESIS.as_micros()
    }

    /// Whether to time this synthesis: each one until the schema is known
    /// to be cheap, then one in [`TIMED_EVERY`].
    pub fn times_synthesis(&self) -> bool {
        let count = self
            .syntheses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        !self.cheap_to_synthesize() || count.is_multiple_of(TIMED_EVERY)
    }

    /// Records how long a synthesis of this schema took: the latest
    /// counts, so one run slowed by a busy machine sends only the next
    /// cold value to the blocking pool, where it is measured again.
    pub fn synthesized_in(&self, took: std::time::Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX - 1);
        self.synthesis_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// The member order of this media type's schema.
    pub fn order_plan(&self, document: &Value) -> &crate::pipeline::order::Plan {
        self.order.get_or_init(|| {
            self.spec
                .schema_pointer
                .as_ref()
                .and_then(|p| document.pointer(p))
                .map(|schema| crate::pipeline::order::Plan::new(document, schema))
                .unwrap_or_default()
        })
    }
}

#[derive(Debug)]
pub struct CompiledHeader {
    pub name: String,
    pub schema_pointer: Option<String>,
    pub validator: LazyValidator,
}

#[derive(Debug)]
pub struct CompiledResponse {
    pub spec: ResponseSpec,
    pub content: Vec<CompiledMedia>,
    pub headers: Vec<CompiledHeader>,
}

#[derive(Debug)]
pub struct CompiledOperation {
    pub operation: Operation,
    /// One validator per `operation.parameters` entry.
    pub parameter_validators: Vec<LazyValidator>,
    pub request_content: Vec<CompiledMedia>,
    pub responses: Vec<CompiledResponse>,
}

/// What a client needs to know of an operation (the import answer).
#[derive(Debug, Clone, Serialize)]
pub struct OperationSummary {
    pub id: String,
    pub method: String,
    pub path: String,
}

#[derive(Debug)]
pub struct CompiledRevision {
    pub model: ApiModel,
    pub router: Router,
    pub operations: Vec<CompiledOperation>,
    /// Synthesis plans over the response document.
    pub plans: Plans,
    /// Synthesized values by seed (see [`SynthCache`]).
    pub synthesized: SynthCache,
    /// The document as responses see it (`writeOnly` not required).
    pub response_document: std::sync::Arc<Value>,
    /// Scripts, templates, resources, fixtures, forwarding, settings.
    pub behaviours: CompiledBehaviours,
    /// The event types its sandboxes emit.
    pub events: crate::behaviours::events::EventCatalog,
    /// Origins of absolute URLs that answers point into the sandbox instead
    /// (see [`crate::pipeline::links`]).
    pub link_origins: crate::pipeline::links::Origins,
}

impl CompiledRevision {
    /// A spec alone: every answer comes from its examples and synthesis.
    pub fn compile(model: ApiModel) -> Result<Self, CompileError> {
        Self::compile_project(model, &ProjectFiles::default(), &ScriptLimits::default())
    }

    pub fn compile_project(
        model: ApiModel,
        files: &ProjectFiles,
        limits: &ScriptLimits,
    ) -> Result<Self, CompileError> {
        let compiler = Arc::new(SchemaCompiler::new(model.document.clone()).map_err(
            |message| {
                spec_problems(vec![Problem {
                    pointer: String::new(),
                    message,
                }])
            },
        )?);
        let problems = check_schemas(&model);
        if !problems.is_empty() {
            return Err(spec_problems(problems));
        }
        let compile = |pointer: &Option<String>, direction: Direction| {
            LazyValidator::new(pointer, direction, &compiler)
        };
        let document = model.document.clone();
        let resolved = |pointer: &Option<String>| -> Value {
            pointer
                .as_ref()
                .and_then(|p| document.pointer(p))
                .and_then(|s| sbx_spec::pointer::resolve(&document, s, "").ok())
                .map_or(Value::Null, |(s, _)| s.clone())
        };
        let mut operations = Vec::with_capacity(model.operations.len());
        for operation in &model.operations {
            let parameter_validators = operation
                .parameters
                .iter()
                .map(|p| compile(&p.schema_pointer, Direction::Request))
                .collect();
            let request_content = operation
                .request_body
                .iter()
                .flat_map(|b| &b.content)
                .map(|media| {
                    CompiledMedia::new(
                        media,
                        compile(&media.schema_pointer, Direction::Request),
                        resolved(&media.schema_pointer),
                    )
                })
                .collect();
            let responses = operation
                .responses
                .iter()
                .map(|response| CompiledResponse {
                    content: response
                        .content
                        .iter()
                        .map(|media| {
                            CompiledMedia::new(
                                media,
                                compile(&media.schema_pointer, Direction::Response),
                                Value::Null,
                            )
                        })
                        .collect(),
                    headers: response
                        .headers
                        .iter()
                        .map(|h| CompiledHeader {
                            name: h.name.clone(),
                            schema_pointer: h.schema_pointer.clone(),
                            validator: compile(&h.schema_pointer, Direction::Response),
                        })
                        .collect(),
                    spec: response.clone(),
                })
                .collect();
            operations.push(CompiledOperation {
                operation: operation.clone(),
                parameter_validators,
                request_content,
                responses,
            });
        }
        let router = Router::new(&model.base_path, &model.operations);
        let response_document = compiler.response_document().clone();
        let plans = Plans::new(response_document.clone());
        let behaviours = CompiledBehaviours::compile(
            &BehaviourInputs {
                model: &model,
                operations: &operations,
                response_document: &response_document,
                plans: &plans,
                limits,
            },
            files,
        )
        .map_err(CompileError)?;
        let mut event_problems = Vec::new();
        let events = crate::behaviours::events::EventCatalog::compile(
            &Plans::new(model.document.clone()),
            &compiler,
            (&files.events, &behaviours.templates),
            &mut event_problems,
        );
        if !event_problems.is_empty() {
            return Err(CompileError(event_problems));
        }
        let link_origins =
            crate::pipeline::links::Origins::new(sbx_spec::server_origins(&model.document));
        Ok(Self {
            router,
            operations,
            plans,
            synthesized: SynthCache::default(),
            response_document,
            behaviours,
            events,
            link_origins,
            model,
        })
    }

    /// The operation a request is for (see [`Router::route`]): where
    /// several share its path and method, the first whose path parameters
    /// are valid and whose request body takes `content_type` (Azure's
    /// `/persistedfaces` taking a JSON URL, and `#overload=stream` the
    /// image's bytes).
    pub fn route(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
    ) -> RouteMatch {
        self.router
            .route(method, path, query, |index, path_params| {
                let operation = &self.operations[index];
                self.takes_body(operation, content_type) && self.path_valid(operation, path_params)
            })
    }

    fn takes_body(&self, operation: &CompiledOperation, content_type: Option<&str>) -> bool {
        match (content_type, &operation.operation.request_body) {
            (Some(content_type), Some(body)) => crate::request::body::match_declared(
                body.content.iter().map(|m| m.media_type.as_str()),
                content_type,
            )
            .is_some(),
            _ => true,
        }
    }

    fn path_valid(&self, operation: &CompiledOperation, path_params: &[(String, String)]) -> bool {
        let no_headers: Vec<(String, String)> = Vec::new();
        let raw = RawParams {
            path: path_params,
            query: &[],
            headers: &no_headers,
            document: &self.model.document,
        };
        let parameters = operation.operation.parameters.iter();
        parameters
            .zip(&operation.parameter_validators)
            .filter(|(param, _)| param.location == ParamLocation::Path)
            .all(|(param, validator)| match params::extract(param, &raw) {
                Ok(Some(value)) => validator.get().is_none_or(|v| v.is_valid(&value)),
                Ok(None) | Err(_) => false,
            })
    }

    pub fn summaries(&self) -> Vec<OperationSummary> {
        self.model
            .operations
            .iter()
            .map(|op| OperationSummary {
                id: op.id.clone(),
                method: op.method.clone(),
                path: op.path.clone(),
            })
            .collect()
    }
}

/// Checks every schema the revision uses, and every component schema,
/// against the JSON Schema 2020-12 meta-schema: the spec problems a
/// validator compile would find, found in linear time.
fn check_schemas(model: &ApiModel) -> Vec<Problem> {
    let meta = jsonschema::draft202012::meta::validator();
    let document = &model.document;
    let mut pointers: Vec<String> = Vec::new();
    for operation in &model.operations {
        pointers.extend(
            operation
                .parameters
                .iter()
                .filter_map(|p| p.schema_pointer.clone()),
        );
        let bodies = operation.request_body.iter().flat_map(|b| &b.content);
        let responses = operation.responses.iter().flat_map(|r| &r.content);
        pointers.extend(
            bodies
                .chain(responses)
                .filter_map(|m| m.schema_pointer.clone()),
        );
        let headers = operation.responses.iter().flat_map(|r| &r.headers);
        pointers.extend(headers.filter_map(|h| h.schema_pointer.clone()));
    }
    if let Some(serde_json::Value::Object(schemas)) = document.pointer("/components/schemas") {
        pointers.extend(
            schemas
                .keys()
                .map(|name| sbx_spec::pointer::join("/components/schemas", name)),
        );
    }
    pointers.sort();
    pointers.dedup();
    let mut problems = Vec::new();
    for pointer in pointers {
        let Some(schema) = document.pointer(&pointer) else {
            continue;
        };
        if let Err(error) = meta.validate(schema) {
            let at = error.instance_path().to_string();
            let mut message = format!("invalid schema: {error}");
            if message.len() > 300 {
                message = format!("invalid schema: {}", error.masked());
            }
            problems.push(Problem {
                pointer: format!("{pointer}{at}"),
                message,
            });
            if problems.len() >= sbx_spec::MAX_PROBLEMS {
                break;
            }
        }
    }
    problems
}
