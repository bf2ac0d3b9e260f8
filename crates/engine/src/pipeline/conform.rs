//! A stored record answered through an operation whose response schema it
//! does not meet (a member the request never carried, a value of another
//! type, an undeclared member of a closed object, a delete answer that
//! needs `deleted: true`) is repaired, not sent broken: each violation is
//! fixed from a value synthesized for the same schema, so every answer
//! from a record validates, as every synthesized one does.

use sbx_spec::{SchemaValidator, Violation};
use serde_json::Value;

/// Repair rounds before giving up on the record and answering the base.
const MAX_ROUNDS: usize = 8;

/// `record` repaired until `validator` accepts it, from `base` (a valid
/// value of the same schema): missing members are taken from the base,
/// undeclared ones dropped, broken ones replaced by the base's (or dropped
/// when it has none). When that does not converge, the base itself.
pub fn conformed(record: &Value, base: Option<&Value>, validator: &SchemaValidator) -> Value {
    let mut value = record.clone();
    for _ in 0..MAX_ROUNDS {
        let mut violations = validator.violations(&value);
        if violations.is_empty() {
            return value;
        }
        // Deepest and last first: removing from an array shifts what follows.
        violations.sort_by(|a, b| b.pointer.cmp(&a.pointer));
        let mut changed = false;
        for violation in &violations {
            changed |= repair(&mut value, base, violation);
        }
        if !changed {
            break;
        }
    }
    base.cloned().unwrap_or(value)
}

/// Fixes one violation; whether anything changed.
fn repair(value: &mut Value, base: Option<&Value>, violation: &Violation) -> bool {
    let at = violation.pointer.as_str();
    if let Some(missing) = &violation.missing {
        let target = format!("{at}/{}", sbx_spec::pointer::escape(missing));
        let Some(fill) = base.and_then(|b| base_at(b, &target)) else {
            return false;
        };
        return match value.pointer_mut(at) {
            Some(Value::Object(object)) => object.insert(missing.clone(), fill.clone()).is_none(),
            _ => false,
        };
    }
    if !violation.unexpected.is_empty() {
        return match value.pointer_mut(at) {
            Some(Value::Object(object)) => {
                let before = object.len();
                object.retain(|name, _| !violation.unexpected.contains(name));
                object.len() != before
            }
            _ => false,
        };
    }
    match base.and_then(|b| base_at(b, at)) {
        Some(fill) => match value.pointer_mut(at) {
            // An object failing a rule that names no member (`anyOf`,
            // `oneOf`): completing it from the base may be enough.
            Some(Value::Object(object))
                if fill
                    .as_object()
                    .is_some_and(|f| f.keys().any(|k| !object.contains_key(k))) =>
            {
                for (name, member) in fill.as_object().into_iter().flatten() {
                    if !object.contains_key(name) {
                        object.insert(name.clone(), member.clone());
                    }
                }
                true
            }
            Some(slot) if slot != fill => {
                *slot = fill.clone();
                true
            }
            _ => false,
        },
        None => remove(value, at),
    }
}

/// The base's value at `pointer`, or at the same place in its first array
/// items (`/data/3/amount` → `/data/0/amount`): a base list holds fewer
/// items than the record's.
fn base_at<'b>(base: &'b Value, pointer: &str) -> Option<&'b Value> {
    base.pointer(pointer).or_else(|| {
        let first_items: Vec<&str> = pointer
            .split('/')
            .map(|token| {
                if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
                    "0"
                } else {
                    token
                }
            })
            .collect();
        base.pointer(&first_items.join("/"))
    })
}

/// Removes the member or item at `pointer` (never the root).
fn remove(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, token)) = pointer.rsplit_once('/') else {
        return false;
    };
    let token = sbx_spec::pointer::unescape(token);
    match value.pointer_mut(parent) {
        Some(Value::Object(object)) => object.shift_remove(&token).is_some(),
        Some(Value::Array(items)) => match token.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validator(schema: Value) -> SchemaValidator {
        let document = std::sync::Arc::new(json!({"s": schema}));
        let compiler = sbx_spec::SchemaCompiler::new(document).expect("the document indexes");
        compiler
            .compile("/s", sbx_spec::Direction::Response)
            .expect("the schema compiles")
    }

    #[test]
    fn records_are_completed_and_repaired_from_the_base() {
        let schema = json!({"type": "object", "required": ["id", "deleted", "object"], "additionalProperties": false,
            "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean", "enum": [true]},
                "object": {"type": "string", "enum": ["customer"]}, "to": {"type": "string", "pattern": "^\\+"}}});
        let validator = validator(schema);
        let base = json!({"id": "cus_base", "deleted": true, "object": "customer", "to": "+1"});
        let record =
            json!({"id": "cus_1", "object": "customer", "email": "a@b.c", "to": "nesciunt"});
        assert_eq!(
            conformed(&record, Some(&base), &validator),
            json!({"id": "cus_1", "object": "customer", "to": "+1", "deleted": true})
        );
    }

    #[test]
    fn list_items_are_repaired_from_the_first_base_item() {
        let schema = json!({"type": "object", "properties": {"data": {"type": "array", "items": {
            "type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}}}}});
        let validator = validator(schema);
        let base = json!({"data": [{"amount": 5}]});
        let record = json!({"data": [{"amount": 1}, {"amount": "x"}, {}]});
        assert_eq!(
            conformed(&record, Some(&base), &validator),
            json!({"data": [{"amount": 1}, {"amount": 5}, {"amount": 5}]})
        );
    }

    #[test]
    fn what_cannot_be_repaired_answers_the_base() {
        let validator = validator(json!({"type": "object", "required": ["a"]}));
        let base = json!({"a": 1});
        assert_eq!(conformed(&json!([1]), Some(&base), &validator), base);
    }
}
