//! `allOf` flattening: one effective schema to generate from.

use serde_json::{Map, Value};

use crate::pointer::follow;

/// Nested `allOf` levels flattened before giving up (recursive `allOf`).
const MAX_ALL_OF_DEPTH: usize = 16;

/// The schema with its `allOf` members (and theirs) merged into one.
pub fn all_of(document: &Value, schema: &Value) -> Value {
    let mut merged = Map::new();
    merge_into(document, &mut merged, schema, 0);
    Value::Object(merged)
}

/// `a` and `b` merged as if both were members of one `allOf`.
pub fn merge_pair(document: &Value, a: &Value, b: &Value) -> Value {
    let mut merged = Map::new();
    merge_into(document, &mut merged, a, 0);
    merge_into(document, &mut merged, b, 0);
    Value::Object(merged)
}

fn merge_into(document: &Value, merged: &mut Map<String, Value>, schema: &Value, depth: usize) {
    if depth > MAX_ALL_OF_DEPTH {
        return;
    }
    let schema = follow(document, schema).unwrap_or(&Value::Bool(true));
    let Some(object) = schema.as_object() else {
        return;
    };
    for (key, value) in object {
        match key.as_str() {
            "allOf" => {
                for member in value.as_array().into_iter().flatten() {
                    merge_into(document, merged, member, depth + 1);
                }
            }
            "properties" => {
                let target = merged
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Value::Object(target), Value::Object(source)) = (target, value) {
                    for (name, property) in source {
                        match target.get_mut(name) {
                            // Both sides constrain the property: it must satisfy both.
                            Some(existing) if existing != property => {
                                let both = Value::Array(vec![existing.take(), property.clone()]);
                                let mut combined = Map::new();
                                combined.insert("allOf".into(), both);
                                *existing = Value::Object(combined);
                            }
                            Some(_) => {}
                            None => {
                                target.insert(name.clone(), property.clone());
                            }
                        }
                    }
                }
            }
            "required" => {
                let target = merged
                    .entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let (Value::Array(target), Value::Array(source)) = (target, value) {
                    for name in source {
                        if !target.contains(name) {
                            target.push(name.clone());
                        }
                    }
                }
            }
            "minimum" | "exclusiveMinimum" | "minLength" | "minItems" | "minProperties" => {
                keep_stricter(merged, key, value, |new, old| new > old);
            }
            "maximum" | "exclusiveMaximum" | "maxLength" | "maxItems" | "maxProperties" => {
                keep_stricter(merged, key, value, |new, old| new < old);
            }
            "$ref" | "$id" | "$schema" => {}
            _ => {
                merged.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
}

fn keep_stricter(
    merged: &mut Map<String, Value>,
    key: &str,
    value: &Value,
    stricter: fn(f64, f64) -> bool,
) {
    let replace = match (merged.get(key).and_then(Value::as_f64), value.as_f64()) {
        (Some(old), Some(new)) => stricter(new, old),
        (None, _) => true,
        _ => false,
    };
    if replace {
        merged.insert(key.to_owned(), value.clone());
    }
}
