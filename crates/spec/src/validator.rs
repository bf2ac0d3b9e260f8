//! JSON Schema validators compiled from schemas inside the spec document.
//!
//! The normalized document is registered once under [`DOCUMENT_URI`]; a
//! validator for the schema at a JSON pointer is then just
//! `{"$ref": "urn:sbx:spec#<pointer>"}`, so `#/components/...` references
//! inside it resolve against the document, recursive schemas included.

use std::sync::Arc;

use base64::Engine;
use jsonschema::{Draft, Registry, error::ValidationErrorKind};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{pointer::pointer_to_fragment, screen::Screen};

const REQUEST_URI: &str = "urn:sbx:request";
const RESPONSE_URI: &str = "urn:sbx:response";

/// Which side of the exchange a schema is checked for. OpenAPI's `readOnly`
/// properties are never required in requests, `writeOnly` never in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// Builds validators for schemas of one document, sharing its index.
pub struct SchemaCompiler {
    registry: Registry<'static>,
    request_document: Arc<Value>,
    response_document: Arc<Value>,
}

impl std::fmt::Debug for SchemaCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCompiler")
    }
}

/// One way a value fails its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into the validated value.
    pub pointer: String,
    pub message: String,
    /// JSON pointer to the broken rule, within the schema.
    pub schema_path: String,
    /// The value that broke it.
    pub got: Value,
    /// The member a `required` rule found missing.
    pub missing: Option<String>,
    /// The members an `additionalProperties: false` rule found undeclared.
    pub unexpected: Vec<String>,
}

/// A compiled schema.
pub struct SchemaValidator {
    inner: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaValidator")
    }
}

/// Violations reported per value; enough to fix a request, never a flood.
const MAX_VIOLATIONS: usize = 50;

impl SchemaCompiler {
    pub fn new(document: Arc<Value>) -> Result<Self, String> {
        let (request_document, response_document) = views(&document);
        let request_document = request_document.map_or_else(|| document.clone(), Arc::new);
        let response_document = response_document.map_or(document, Arc::new);
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(REQUEST_URI, request_document.clone())
            .and_then(|builder| builder.add(RESPONSE_URI, response_document.clone()))
            .and_then(|builder| builder.prepare())
            .map_err(|e| format!("cannot index the document's schemas: {e}"))?;
        Ok(Self {
            registry,
            request_document,
            response_document,
        })
    }

    /// The document as responses see it: what synthesis should read.
    pub fn response_document(&self) -> &Arc<Value> {
        &self.response_document
    }

    /// A validator for the schema at `pointer` in the document.
    pub fn compile(&self, pointer: &str, direction: Direction) -> Result<SchemaValidator, String> {
        let uri = match direction {
            Direction::Request => REQUEST_URI,
            Direction::Response => RESPONSE_URI,
        };
        let schema = json!({"$ref": format!("{uri}#{}", pointer_to_fragment(pointer))});
        build(options().with_registry(&self.registry), &schema)
    }
}

/// How every validator checks: 2020-12, formats asserted (OpenAPI's
/// `byte` included), unknown formats ignored.
fn options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .with_format("byte", |s: &str| {
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        })
}

fn build(
    options: jsonschema::ValidationOptions<'_>,
    schema: &Value,
) -> Result<SchemaValidator, String> {
    options
        .build(schema)
        .map(|inner| SchemaValidator { inner })
        .map_err(|e| format!("invalid schema: {e}"))
}

impl SchemaValidator {
    /// A validator for a schema with no `$ref` in it, on its own.
    pub(crate) fn standalone(schema: &Value) -> Option<Self> {
        build(options(), schema).ok()
    }
}

impl SchemaCompiler {
    /// A screen for the schema at `pointer`: accepts what its validator
    /// accepts without reading the body into a tree (see [`Screen`]).
    pub fn screen(&self, pointer: &str, direction: Direction) -> Option<Screen> {
        let document = match direction {
            Direction::Request => &self.request_document,
            Direction::Response => &self.response_document,
        };
        Screen::build(document, pointer)
    }
}

impl SchemaValidator {
    pub fn is_valid(&self, value: &Value) -> bool {
        self.inner.is_valid(value)
    }

    /// Every violation (up to a cap), each with where it is in `value`.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        self.inner
            .iter_errors(value)
            .take(MAX_VIOLATIONS)
            .map(|error| Violation {
                pointer: error.instance_path().to_string(),
                message: error.to_string(),
                schema_path: error.schema_path().to_string(),
                got: error.instance().clone().into_owned(),
                missing: match error.kind() {
                    ValidationErrorKind::Required { property } => {
                        property.as_str().map(str::to_owned)
                    }
                    _ => None,
                },
                unexpected: match error.kind() {
                    ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.clone(),
                    _ => Vec::new(),
                },
            })
            .collect()
    }
}

/// The request and response views of a document, when they differ from it.
fn views(document: &Value) -> (Option<Value>, Option<Value>) {
    // A view is a whole copy of the document: made only when some schema
    // requires a flagged property (Microsoft Graph marks 102 properties
    // `readOnly` and requires none of them).
    let differs = |flag: &str| {
        contains_true_flag(document, flag) && requires_flagged(document, document, flag)
    };
    let request = differs("readOnly").then(|| without_required_flagged(document, "readOnly"));
    let response = differs("writeOnly").then(|| without_required_flagged(document, "writeOnly"));
    (request, response)
}

/// Whether the property `name` of `properties` is marked `flag`.
fn flagged_member(
    document: &Value,
    properties: &serde_json::Map<String, Value>,
    name: &Value,
    flag: &str,
) -> bool {
    name.as_str()
        .and_then(|name| properties.get(name))
        .is_some_and(|p| crate::flagged(document, p, flag))
}

/// Whether an object schema in `value` requires a property marked `flag`.
fn requires_flagged(value: &Value, document: &Value, flag: &str) -> bool {
    match value {
        Value::Object(map) => {
            let requires = match (map.get("properties"), map.get("required")) {
                (Some(Value::Object(properties)), Some(Value::Array(required))) => required
                    .iter()
                    .any(|name| flagged_member(document, properties, name, flag)),
                _ => false,
            };
            requires || map.values().any(|v| requires_flagged(v, document, flag))
        }
        Value::Array(items) => items.iter().any(|v| requires_flagged(v, document, flag)),
        _ => false,
    }
}

fn contains_true_flag(value: &Value, flag: &str) -> bool {
    match value {
        Value::Object(map) => {
            map.get(flag) == Some(&Value::Bool(true))
                || map.values().any(|v| contains_true_flag(v, flag))
        }
        Value::Array(items) => items.iter().any(|v| contains_true_flag(v, flag)),
        _ => false,
    }
}

/// A copy of the document in which no object schema requires a property
/// marked with `flag`.
fn without_required_flagged(document: &Value, flag: &str) -> Value {
    fn walk(value: &mut Value, document: &Value, flag: &str) {
        match value {
            Value::Object(map) => {
                if let (Some(Value::Object(properties)), Some(Value::Array(required))) =
                    (map.get("properties"), map.get("required"))
                {
                    let kept: Vec<Value> = required
                        .iter()
                        .filter(|n| !flagged_member(document, properties, n, flag))
                        .cloned()
                        .collect();
                    map.insert("required".into(), Value::Array(kept));
                }
                map.values_mut().for_each(|v| walk(v, document, flag));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, document, flag)),
            _ => {}
        }
    }
    let mut copy = document.clone();
    walk(&mut copy, document, flag);
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_through_document_refs_including_recursion() {
        let doc = Arc::new(json!({
            "components": {"schemas": {
                "Node": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
                }}
            }},
            "paths": {"/x/{id}": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Node"}}}}}}}}
        }));
        let compiler = SchemaCompiler::new(doc).unwrap();
        let validator = compiler
            .compile(
                "/paths/~1x~1{id}/get/responses/200/content/application~1json/schema",
                Direction::Response,
            )
            .unwrap();
        assert!(validator.is_valid(&json!({"name": "a", "children": [{"name": "b"}]})));
        let violations = validator.violations(&json!({"name": "a", "children": [{"nom": 1}]}));
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].pointer, "/children/0");
    }

    #[test]
    fn formats_are_checked() {
        let doc =
            Arc::new(json!({"s": {"type": "string", "format": "email"}, "b": {"format": "byte"}}));
        let compiler = SchemaCompiler::new(doc).unwrap();
        assert!(
            !compiler
                .compile("/s", Direction::Response)
                .unwrap()
                .is_valid(&json!("nope"))
        );
        assert!(
            compiler
                .compile("/s", Direction::Response)
                .unwrap()
                .is_valid(&json!("a@example.com"))
        );
        assert!(
            !compiler
                .compile("/b", Direction::Response)
                .unwrap()
                .is_valid(&json!("%%%"))
        );
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn read_only_is_not_required_in_requests_nor_write_only_in_responses() {
        let doc = Arc::new(
            json!({"s": {"type": "object", "required": ["id", "password"], "properties": {
                "id": {"type": "string", "readOnly": true},
                "password": {"type": "string", "writeOnly": true}
            }}}),
        );
        let compiler = SchemaCompiler::new(doc.clone()).unwrap();
        assert!(
            compiler
                .compile("/s", Direction::Request)
                .unwrap()
                .is_valid(&json!({"password": "x"}))
        );
        assert!(
            compiler
                .compile("/s", Direction::Response)
                .unwrap()
                .is_valid(&json!({"id": "x"}))
        );
        assert!(
            !compiler
                .compile("/s", Direction::Response)
                .unwrap()
                .is_valid(&json!({"password": "x"}))
        );
        // The response view is a copy of its own: it differs.
        assert!(!Arc::ptr_eq(compiler.response_document(), &doc));
    }

    /// A flag no `required` list names changes nothing: the document is
    /// shared, not copied (a copy of Microsoft Graph is 150+ MiB).
    #[test]
    fn flags_that_no_schema_requires_make_no_copy() {
        let doc = Arc::new(
            json!({"s": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "password": {"type": "string", "writeOnly": true}
            }}}),
        );
        let compiler = SchemaCompiler::new(doc.clone()).unwrap();
        assert!(Arc::ptr_eq(compiler.response_document(), &doc));
        let response = compiler.compile("/s", Direction::Response).unwrap();
        assert!(!response.is_valid(&json!({})));
        assert!(response.is_valid(&json!({"name": "x"})));
    }
}
