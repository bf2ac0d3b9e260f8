//! The event catalog of a revision: the event types its sandboxes emit,
//! each with a schema and a golden payload. Types come from the spec's
//! `webhooks` (OpenAPI 3.1) and operations' `callbacks`, and from
//! `events/<type>.yaml` in the project folder (which may add types, name a
//! schema, or give the golden payload).

use std::collections::BTreeMap;

use sbx_spec::{
    Direction, SchemaCompiler, SchemaValidator,
    synth::{self, Plans},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{behaviours::templates::Templates, compile::project::FileProblem};

/// `events/<type>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(default)]
    description: Option<String>,
    /// `{$ref: "#/components/schemas/…"}`: the payload's schema.
    #[serde(default)]
    schema: Option<Value>,
    /// The golden payload sent when an event is triggered without data.
    #[serde(default)]
    payload: Option<Value>,
    /// Or a JSON template (`templates/<name>.json.j2`) rendering it when
    /// the event is triggered, with the sandbox's `now()`, `env`, `sandbox`.
    #[serde(default)]
    template: Option<String>,
}

#[derive(Debug)]
pub struct EventType {
    pub name: String,
    pub description: Option<String>,
    /// Where it is declared: `webhooks`, `callbacks` or `events/<type>.yaml`.
    pub source: String,
    /// JSON pointer of its payload schema in the spec.
    pub schema_pointer: Option<String>,
    validator: Option<SchemaValidator>,
    pub golden: Value,
    /// Renders the payload when triggered (else `golden` is sent).
    pub template: Option<String>,
}

impl EventType {
    /// Why `data` does not match the type's schema, if it does not.
    pub fn check(&self, data: &Value) -> Result<(), String> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let violations = validator.violations(data);
        if violations.is_empty() {
            return Ok(());
        }
        Err(format!(
            "does not match the schema of {}: {}",
            self.name,
            crate::behaviours::fixtures::summarize(&violations)
        ))
    }
}

/// What the portal and `GET …/event-types` show of a type.
#[derive(Debug, Clone, Serialize)]
pub struct EventTypeSummary {
    pub name: String,
    pub description: Option<String>,
    pub source: String,
    pub golden: Value,
}

#[derive(Debug, Default)]
pub struct EventCatalog {
    pub types: BTreeMap<String, EventType>,
}

/// A declared payload: where its schema is, its example, its description.
struct Declared {
    template: Option<String>,
    source: String,
    pointer: Option<String>,
    example: Option<Value>,
    /// The example is a project file's `payload` (which must be valid).
    example_from_file: bool,
    description: Option<String>,
}

/// The JSON request body of a path item's first method that has one.
fn declared_in(document: &Value, path_item: &str, source: String) -> Option<Declared> {
    let item = document.pointer(path_item)?;
    let item = sbx_spec::pointer::follow(document, item)?;
    for method in ["post", "put", "patch", "get", "delete"] {
        let Some(operation) = item.get(method) else {
            continue;
        };
        let body = operation
            .get("requestBody")
            .and_then(|b| sbx_spec::pointer::follow(document, b));
        let media = body
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
            .and_then(|content| {
                content.iter().find(|(media, _)| {
                    crate::request::body::is_json(&crate::request::body::essence(media))
                })
            });
        let description = operation
            .get("summary")
            .or_else(|| operation.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some((media_type, media)) = media else {
            return Some(Declared {
                template: None,
                source,
                pointer: None,
                example: None,
                example_from_file: false,
                description,
            });
        };
        let example = media.get("example").cloned().or_else(|| {
            let examples = media.get("examples")?.as_object()?;
            let first = examples.values().next()?;
            sbx_spec::pointer::follow(document, first)?
                .get("value")
                .cloned()
        });
        let pointer = media.get("schema").map(|_| {
            format!(
                "{path_item}/{method}/requestBody/content/{}/schema",
                sbx_spec::pointer::escape(media_type)
            )
        });
        return Some(Declared {
            template: None,
            source,
            pointer,
            example,
            example_from_file: false,
            description,
        });
    }
    None
}

impl EventCatalog {
    pub fn compile(
        plans: &Plans,
        compiler: &SchemaCompiler,
        (files, templates): (&BTreeMap<String, Value>, &Templates),
        problems: &mut Vec<FileProblem>,
    ) -> Self {
        let document = &**plans.document();
        let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
        for (name, _) in document
            .get("webhooks")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let at = sbx_spec::pointer::join("/webhooks", name);
            if let Some(found) = declared_in(document, &at, "webhooks".to_owned()) {
                declared.entry(name.clone()).or_insert(found);
            }
        }
        for (path, item) in document
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for (method, operation) in item.as_object().into_iter().flatten() {
                for (name, callback) in operation
                    .get("callbacks")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let base = format!(
                        "{}/{method}/callbacks/{}",
                        sbx_spec::pointer::join("/paths", path),
                        sbx_spec::pointer::escape(name)
                    );
                    let expressions = sbx_spec::pointer::follow(document, callback)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(expression) = expressions.keys().next() {
                        let at = sbx_spec::pointer::join(&base, expression);
                        if let Some(found) = declared_in(document, &at, "callbacks".to_owned()) {
                            declared.entry(name.clone()).or_insert(found);
                        }
                    }
                }
            }
        }
        for (name, content) in files {
            let file = format!("events/{name}.yaml");
            let spec: EventFile = match serde_json::from_value(content.clone()) {
                Ok(spec) => spec,
                Err(error) => {
                    problems.push(FileProblem::new(file, error.to_string()));
                    continue;
                }
            };
            let pointer = match &spec.schema {
                None => None,
                Some(schema) => match schema.get("$ref").and_then(Value::as_str) {
                    Some(reference)
                        if reference.starts_with("#/")
                            && document.pointer(&reference[1..]).is_some() =>
                    {
                        Some(reference[1..].to_owned())
                    }
                    _ => {
                        problems.push(
                            FileProblem::new(
                                &file,
                                "schema must be {$ref: \"#/…\"} naming a schema of the spec",
                            )
                            .pointer("/schema"),
                        );
                        continue;
                    }
                },
            };
            if spec.payload.is_some() && spec.template.is_some() {
                problems.push(FileProblem::new(
                    &file,
                    "give a payload or a template, not both",
                ));
                continue;
            }
            if let Some(template) = &spec.template
                && !(templates.contains(template)
                    && crate::behaviours::templates::is_json_template(template))
            {
                problems.push(
                    FileProblem::new(
                        &file,
                        format!("no JSON template {template:?} (templates/<name>.json.j2)"),
                    )
                    .pointer("/template"),
                );
                continue;
            }
            let entry = declared.entry(name.clone()).or_insert(Declared {
                template: None,
                source: file.clone(),
                pointer: None,
                example: None,
                example_from_file: false,
                description: None,
            });
            entry.pointer = pointer.or(entry.pointer.take());
            if let Some(template) = spec.template {
                // The golden payload is a sample rendering.
                match templates.render(
                    &template,
                    &serde_json::json!({"env": {}, "sandbox": "sbx-sample"}),
                ) {
                    Ok(sample) => entry.example = Some(sample),
                    Err(message) => {
                        problems.push(FileProblem::new(&file, message).pointer("/template"));
                        continue;
                    }
                }
                entry.template = Some(template);
                entry.example_from_file = true;
            }
            if let Some(payload) = spec.payload {
                entry.example = Some(payload);
                entry.example_from_file = true;
            }
            entry.description = spec.description.or(entry.description.take());
        }
        let mut types = BTreeMap::new();
        for (name, declared) in declared {
            let validator = declared
                .pointer
                .as_ref()
                .and_then(|p| compiler.compile(p, Direction::Request).ok());
            let synthesized = |pointer: &str, validator: Option<&SchemaValidator>| {
                let seed = synth::seed_from([b"event".as_slice(), name.as_bytes()]);
                plans.synthesize(pointer, seed, validator).value
            };
            let from_file = declared.example_from_file;
            let file = format!("events/{name}.yaml");
            let mut event = EventType {
                name: name.clone(),
                description: declared.description,
                source: declared.source,
                schema_pointer: declared.pointer.clone(),
                validator: None,
                golden: Value::Object(serde_json::Map::new()),
                template: declared.template,
            };
            event.golden = match (declared.example, &declared.pointer) {
                (Some(example), _) => example,
                (None, Some(pointer)) => synthesized(pointer, validator.as_ref()),
                (None, None) => Value::Object(serde_json::Map::new()),
            };
            event.validator = validator;
            if let Err(message) = event.check(&event.golden) {
                match &declared.pointer {
                    // A spec's own example that breaks its schema is
                    // replaced, as responses' are; a project file's is an error.
                    Some(pointer) if !from_file => {
                        event.golden = synthesized(pointer, event.validator.as_ref());
                    }
                    _ => {
                        let at = if from_file { file } else { event.source };
                        problems.push(
                            FileProblem::new(at, format!("the golden payload {message}"))
                                .pointer("/payload"),
                        );
                        continue;
                    }
                }
            }
            types.insert(name, event);
        }
        Self { types }
    }

    pub fn summaries(&self) -> Vec<EventTypeSummary> {
        self.types
            .values()
            .map(|t| EventTypeSummary {
                name: t.name.clone(),
                description: t.description.clone(),
                source: t.source.clone(),
                golden: t.golden.clone(),
            })
            .collect()
    }
}
