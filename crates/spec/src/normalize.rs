//! Rewrites OpenAPI 3.0 schema dialect to JSON Schema 2020-12, so that one
//! validator and one synthesizer serve every spec version.

use serde_json::{Map, Value, json};

use crate::SpecVersion;

/// Keywords whose value is a single subschema.
const SUBSCHEMA: &[&str] = &[
    "additionalProperties",
    "items",
    "not",
    "contains",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
];
/// Keywords whose value is an array of subschemas.
const SUBSCHEMA_ARRAYS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const SUBSCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// Keywords that describe without constraining.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "deprecated",
    "example",
    "examples",
    "default",
    "readOnly",
    "writeOnly",
    "externalDocs",
    "xml",
];

pub fn to_json_schema_2020(document: &mut Value, version: SpecVersion) {
    let legacy = version != SpecVersion::OpenApi31;
    if let Some(Value::Object(schemas)) = document.pointer_mut("/components/schemas") {
        schemas.values_mut().for_each(|s| convert_schema(s, legacy));
    }
    // Bundled copies of external files are schemas more often than not;
    // the conversion leaves other objects (parameters, responses) alone.
    if let Some(Value::Object(bundled)) = document.get_mut("x-sbx-bundled") {
        bundled.values_mut().for_each(|s| convert_schema(s, legacy));
    }
    convert_schema_positions(document, legacy);
}

/// Finds every `schema` member outside of examples and converts it.
fn convert_schema_positions(value: &mut Value, legacy: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "schema" if child.is_object() => convert_schema(child, legacy),
                    "example" | "examples" | "schemas" => {}
                    _ => convert_schema_positions(child, legacy),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| convert_schema_positions(v, legacy)),
        _ => {}
    }
}

fn convert_schema(schema: &mut Value, legacy: bool) {
    let Value::Object(map) = schema else { return };
    for keyword in SUBSCHEMA {
        if let Some(child) = map.get_mut(*keyword) {
            convert_schema(child, legacy);
        }
    }
    for keyword in SUBSCHEMA_ARRAYS {
        if let Some(Value::Array(children)) = map.get_mut(*keyword) {
            children.iter_mut().for_each(|c| convert_schema(c, legacy));
        }
    }
    // OAS 3.0 allowed a single schema or (loosely) an array under `items`.
    if let Some(Value::Array(children)) = map.get_mut("items") {
        children.iter_mut().for_each(|c| convert_schema(c, legacy));
    }
    for keyword in SUBSCHEMA_MAPS {
        if let Some(Value::Object(children)) = map.get_mut(*keyword) {
            children
                .values_mut()
                .for_each(|c| convert_schema(c, legacy));
        }
    }
    add_integer_format_bounds(map);
    if legacy {
        convert_exclusive_bound(map, "exclusiveMinimum", "minimum");
        convert_exclusive_bound(map, "exclusiveMaximum", "maximum");
        convert_nullable(schema);
    }
}

fn add_integer_format_bounds(map: &mut Map<String, Value>) {
    let (min, max) = match map.get("format").and_then(Value::as_str) {
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("int64") => (i64::MIN, i64::MAX),
        _ => return,
    };
    if !map.contains_key("minimum") && !map.contains_key("exclusiveMinimum") {
        map.insert("minimum".into(), json!(min));
    }
    if !map.contains_key("maximum") && !map.contains_key("exclusiveMaximum") {
        map.insert("maximum".into(), json!(max));
    }
}

/// OAS 3.0 (like draft 4) spells an exclusive bound as a boolean beside the bound.
fn convert_exclusive_bound(map: &mut Map<String, Value>, exclusive: &str, inclusive: &str) {
    match map.get(exclusive) {
        Some(Value::Bool(true)) => {
            map.remove(exclusive);
            if let Some(bound) = map.remove(inclusive) {
                map.insert(exclusive.to_owned(), bound);
            }
        }
        Some(Value::Bool(false)) => {
            map.remove(exclusive);
        }
        _ => {}
    }
}

fn convert_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    match map.remove("nullable") {
        Some(Value::Bool(true)) => {}
        _ => return,
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    let only_annotations = map.keys().all(|k| ANNOTATIONS.contains(&k.as_str()));
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&json!("null")) {
                types.push(json!("null"));
            }
        }
        Some(_) => {}
        None if only_annotations => {
            // `{nullable: true}` alone constrains nothing (OAS 3.0.3: nullable
            // needs a `type` beside it); typically an allOf member.
        }
        None => {
            // A typeless nullable schema ($ref, allOf, ...) accepts null as an alternative.
            let inner = std::mem::take(map);
            *schema = json!({"anyOf": [Value::Object(inner), {"type": "null"}]});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(schema: Value) -> Value {
        let mut doc = json!({"components": {"schemas": {"S": schema}}});
        to_json_schema_2020(&mut doc, SpecVersion::OpenApi30);
        doc["components"]["schemas"]["S"].take()
    }

    #[test]
    fn nullable_becomes_a_null_type() {
        assert_eq!(
            convert(json!({"type": "string", "nullable": true, "enum": ["a"]})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            convert(json!({"$ref": "#/x", "nullable": true})),
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]})
        );
    }

    #[test]
    fn boolean_exclusive_bounds_become_numeric() {
        assert_eq!(
            convert(
                json!({"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 5, "exclusiveMaximum": false})
            ),
            json!({"type": "number", "maximum": 5, "exclusiveMinimum": 1})
        );
    }

    #[test]
    fn nested_schemas_are_converted() {
        let out = convert(
            json!({"type": "object", "properties": {"a": {"type": "integer", "nullable": true}}}),
        );
        assert_eq!(out["properties"]["a"]["type"], json!(["integer", "null"]));
    }
}
