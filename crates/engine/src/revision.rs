//! A spec revision compiled for serving: router, validators and the
//! synthesis cache, built once and shared by every sandbox on the revision.

use sbx_spec::{
    ApiModel, Direction, MediaTypeSpec, Operation, Problem, ResponseSpec, SchemaCompiler,
    SchemaValidator, synth::PatternCache,
};
use serde::Serialize;
use serde_json::Value;

use crate::{cache::SynthCache, router::Router};

#[derive(Debug, thiserror::Error)]
#[error("the spec's schemas do not compile ({} problem(s))", .0.len())]
pub struct CompileError(pub Vec<Problem>);

#[derive(Debug)]
pub struct CompiledMedia {
    pub spec: MediaTypeSpec,
    pub validator: Option<SchemaValidator>,
    /// The schema with its top-level `$ref` resolved (form field coercion).
    pub schema: Value,
}

#[derive(Debug)]
pub struct CompiledHeader {
    pub name: String,
    pub schema_pointer: Option<String>,
    pub validator: Option<SchemaValidator>,
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
    pub parameter_validators: Vec<Option<SchemaValidator>>,
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
    pub patterns: PatternCache,
    /// Synthesized values by seed (see [`SynthCache`]).
    pub synthesized: SynthCache,
    /// The document as responses see it (`writeOnly` not required).
    pub response_document: std::sync::Arc<Value>,
}

impl CompiledRevision {
    pub fn compile(model: ApiModel) -> Result<Self, CompileError> {
        let compiler = SchemaCompiler::new(model.document.clone()).map_err(|message| {
            CompileError(vec![Problem {
                pointer: String::new(),
                message,
            }])
        })?;
        let mut problems = Vec::new();
        let mut compile =
            |pointer: &Option<String>, direction: Direction| -> Option<SchemaValidator> {
                let pointer = pointer.as_ref()?;
                match compiler.compile(pointer, direction) {
                    Ok(validator) => Some(validator),
                    Err(message) => {
                        if problems.len() < sbx_spec::MAX_PROBLEMS {
                            problems.push(Problem {
                                pointer: pointer.clone(),
                                message,
                            });
                        }
                        None
                    }
                }
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
                .map(|media| CompiledMedia {
                    validator: compile(&media.schema_pointer, Direction::Request),
                    schema: resolved(&media.schema_pointer),
                    spec: media.clone(),
                })
                .collect();
            let responses = operation
                .responses
                .iter()
                .map(|response| CompiledResponse {
                    content: response
                        .content
                        .iter()
                        .map(|media| CompiledMedia {
                            validator: compile(&media.schema_pointer, Direction::Response),
                            schema: Value::Null,
                            spec: media.clone(),
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
        if !problems.is_empty() {
            return Err(CompileError(problems));
        }
        let router = Router::new(&model.base_path, &model.operations);
        Ok(Self {
            router,
            operations,
            patterns: PatternCache::default(),
            synthesized: SynthCache::default(),
            response_document: compiler.response_document().clone(),
            model,
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
