//! Member order of a behaviour's JSON answer. Script values pass through
//! Rhai maps, which order members by name; answers read better (and match
//! the spec's examples) with members in the order the schema declares them.

use serde_json::{Map, Value};

use crate::resources::properties;

/// Nesting followed; deeper values keep their order.
const MAX_DEPTH: usize = 32;

/// `value` with object members in the order of `schema`'s properties
/// (undeclared members after them, as they were).
pub fn by_schema(document: &Value, schema: &Value, value: Value) -> Value {
    reorder(document, schema, value, 0)
}

fn reorder(document: &Value, schema: &Value, value: Value, depth: usize) -> Value {
    let Some(schema) = sbx_spec::pointer::follow(document, schema) else {
        return value;
    };
    if depth >= MAX_DEPTH {
        return value;
    }
    match value {
        Value::Object(mut members) => {
            let schema = branch(document, schema, &members);
            let declared = properties(document, schema);
            if declared.is_empty() {
                return Value::Object(members);
            }
            let mut ordered = Map::with_capacity(members.len());
            for (name, member_schema) in declared {
                if let Some(member) = members.remove(name) {
                    ordered.insert(
                        name.to_owned(),
                        reorder(document, member_schema, member, depth + 1),
                    );
                }
            }
            ordered.extend(members);
            Value::Object(ordered)
        }
        Value::Array(items) => match schema.get("items") {
            Some(item_schema) => Value::Array(
                items
                    .into_iter()
                    .map(|item| reorder(document, item_schema, item, depth + 1))
                    .collect(),
            ),
            None => Value::Array(items),
        },
        other => other,
    }
}

/// For `oneOf`/`anyOf`, the branch declaring most of `members`.
fn branch<'a>(document: &'a Value, schema: &'a Value, members: &Map<String, Value>) -> &'a Value {
    let branches = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|b| sbx_spec::pointer::follow(document, b));
    let covered = |b: &Value| {
        properties(document, b)
            .iter()
            .filter(|(name, _)| members.contains_key(*name))
            .count()
    };
    branches
        .max_by_key(|b| covered(b))
        .filter(|b| covered(b) > 0)
        .unwrap_or(schema)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_follow_the_schema_then_the_rest() {
        let document =
            json!({"components": {"schemas": {"Base": {"properties": {"id": {}, "name": {}}}}}});
        let schema = json!({"allOf": [{"$ref": "#/components/schemas/Base"}],
                            "properties": {"tags": {"items": {"properties": {"z": {}, "a": {}}}}}});
        let value = json!({"extra": 1, "tags": [{"a": 1, "z": 2}], "name": "n", "id": 7});
        let one_of =
            json!({"oneOf": [{"properties": {"q": {}}}, {"properties": {"type": {}, "b": {}}}]});
        let picked = by_schema(&document, &one_of, json!({"b": 1, "type": "x"}));
        assert_eq!(
            serde_json::to_string(&picked).unwrap(),
            r#"{"type":"x","b":1}"#
        );
        let ordered = by_schema(&document, &schema, value);
        assert_eq!(
            serde_json::to_string(&ordered).unwrap(),
            r#"{"id":7,"name":"n","tags":[{"z":2,"a":1}],"extra":1}"#
        );
    }
}
