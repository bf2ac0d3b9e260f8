//! JSON Schema validators compiled from schemas inside the spec document.
//!
//! The normalized document is registered once under [`DOCUMENT_URI`]; a
//! validator for the schema at a JSON pointer is then just
//! `{"$ref": "urn:sbx:spec#<pointer>"}`, so `#/components/...` references
//! inside it resolve against the document, recursive schemas included.

use std::sync::Arc;

use base64::Engine;
use jsonschema::{Draft, Registry};
use serde::Serialize;
use serde_json::{Value, json};

use crate::pointer::pointer_to_fragment;

const DOCUMENT_URI: &str = "urn:sbx:spec";

/// Builds validators for schemas of one document, sharing its index.
pub struct SchemaCompiler {
    registry: Registry<'static>,
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
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(DOCUMENT_URI, document)
            .and_then(|builder| builder.prepare())
            .map_err(|e| format!("cannot index the document's schemas: {e}"))?;
        Ok(Self { registry })
    }

    /// A validator for the schema at `pointer` in the document.
    pub fn compile(&self, pointer: &str) -> Result<SchemaValidator, String> {
        let schema = json!({"$ref": format!("{DOCUMENT_URI}#{}", pointer_to_fragment(pointer))});
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .with_format("byte", |s: &str| {
                base64::engine::general_purpose::STANDARD.decode(s).is_ok()
            })
            .build(&schema)
            .map(|inner| SchemaValidator { inner })
            .map_err(|e| format!("invalid schema: {e}"))
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
            })
            .collect()
    }
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
            .compile("/paths/~1x~1{id}/get/responses/200/content/application~1json/schema")
            .unwrap();
        assert!(validator.is_valid(&json!({"name": "a", "children": [{"name": "b"}]})));
        let violations = validator.violations(&json!({"name": "a", "children": [{"nom": 1}]}));
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].pointer, "/children/0");
    }

    #[test]
    fn formats_are_checked() {
        let doc = Arc::new(json!({"s": {"type": "string", "format": "email"}, "b": {"format": "byte"}}));
        let compiler = SchemaCompiler::new(doc).unwrap();
        assert!(!compiler.compile("/s").unwrap().is_valid(&json!("nope")));
        assert!(compiler.compile("/s").unwrap().is_valid(&json!("a@example.com")));
        assert!(!compiler.compile("/b").unwrap().is_valid(&json!("%%%")));
    }
}
