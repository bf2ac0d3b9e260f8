//! OpenAPI documents in, a normalized operation model out.
//!
//! Everything a sandbox needs to know about a spec is decided here, once per
//! revision: the document is parsed under explicit limits, Swagger 2.0 is
//! converted to OpenAPI 3.0, OpenAPI 3.0 schemas are rewritten to JSON Schema
//! 2020-12 (so one validator dialect serves both versions), every internal
//! `$ref` is checked, and operations are extracted into [`ApiModel`].
//! [`synth`] then produces deterministic example data from the same schemas.

pub mod bundle;
mod error;
mod load;
mod model;
mod normalize;
mod patterns;
pub mod pointer;
mod screen;
mod swagger2;
pub mod synth;
mod validator;

pub use error::{Problem, SpecError};
pub use load::{Limits, parse_document};
pub use model::{
    ApiModel, MediaTypeSpec, Operation, ParamLocation, ParamStyle, Parameter, PropertyEncoding,
    RequestBody, ResponseHeader, ResponseSpec, SecurityRequirement, SecurityScheme, StatusKey,
    server_origins,
};
pub use screen::Screen;
pub use validator::{Direction, SchemaCompiler, SchemaValidator, Violation};

use std::sync::Arc;

use serde_json::Value;

/// Which OpenAPI flavour a document was written in, before normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SpecVersion {
    Swagger2,
    OpenApi30,
    OpenApi31,
}

/// Parses, converts, checks and models a spec in one call.
///
/// This is the only entry point the server needs: it returns either a model
/// whose every reference resolves, or every problem found, each with the JSON
/// pointer where it was found.
pub fn load_api(text: &str, limits: &Limits) -> Result<ApiModel, SpecError> {
    let document = parse_document(text, limits)?;
    load_api_value(document)
}

/// [`load_api`] for a document that is already parsed (and possibly bundled).
pub fn load_api_value(mut document: Value) -> Result<ApiModel, SpecError> {
    let version = detect_version(&document)?;
    if version == SpecVersion::Swagger2 {
        document = swagger2::convert(document)?;
    }
    let mut problems = pointer::check_references(&document);
    if !problems.is_empty() {
        problems.truncate(MAX_PROBLEMS);
        return Err(SpecError::Invalid(problems));
    }
    normalize::to_json_schema_2020(&mut document, version);
    let warnings = patterns::drop_invalid_patterns(&mut document);
    model::extract(Arc::new(document), version, warnings)
}

/// Error lists are cut here so a broken 10 MB spec cannot produce a 100 MB answer.
pub const MAX_PROBLEMS: usize = 200;

fn detect_version(document: &Value) -> Result<SpecVersion, SpecError> {
    let Some(object) = document.as_object() else {
        return Err(SpecError::single(
            "",
            "the document must be a JSON or YAML object",
        ));
    };
    if let Some(swagger) = object.get("swagger") {
        return match swagger.as_str() {
            Some("2.0") => Ok(SpecVersion::Swagger2),
            _ => Err(SpecError::single(
                "/swagger",
                format!("unsupported Swagger version {swagger}; only 2.0 is supported"),
            )),
        };
    }
    match object.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0") => Ok(SpecVersion::OpenApi30),
        Some(v) if v.starts_with("3.1") => Ok(SpecVersion::OpenApi31),
        Some(v) => Err(SpecError::single(
            "/openapi",
            format!("unsupported OpenAPI version \"{v}\"; supported are 2.0, 3.0.x and 3.1.x"),
        )),
        None => Err(SpecError::single(
            "",
            "not an OpenAPI document: neither an `openapi` nor a `swagger` field is present",
        )),
    }
}

/// Whether `flag` (`readOnly`, `writeOnly`) is true for `schema`: on it,
/// behind its `$ref`, or on an `allOf` member (`allOf: [{$ref: Position}]`
/// where `Position` is `writeOnly`), as readers of the spec apply it.
pub fn flagged(document: &Value, schema: &Value, flag: &str) -> bool {
    // One pass over the members, no hashing: this runs for every property
    // of every synthesized object.
    fn walk(document: &Value, schema: &Value, flag: &str, depth: usize) -> bool {
        let Some(members) = schema.as_object() else {
            return false;
        };
        let mut all_of = None;
        for (name, value) in members {
            match name.as_str() {
                "$ref" => {
                    return depth < 8
                        && pointer::follow(document, schema)
                            .is_some_and(|target| walk(document, target, flag, depth + 1));
                }
                "allOf" => all_of = value.as_array(),
                name if name == flag && value == &Value::Bool(true) => return true,
                _ => {}
            }
        }
        depth < 8
            && all_of.is_some_and(|all| all.iter().any(|s| walk(document, s, flag, depth + 1)))
    }
    walk(document, schema, flag, 0)
}

/// The types a schema's `type` keyword names (a string or, in 3.1, an
/// array); empty when it names none.
pub fn declared_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
