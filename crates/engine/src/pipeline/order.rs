//! Member order of a behaviour's JSON answer. Script values pass through
//! Rhai maps, which order members by name; answers read better (and match
//! the spec's examples) with members in the order the schema declares them.
//! The order is planned once per response schema and applied per answer.
//! The same plan knows the members the schema marks `writeOnly`, which an
//! answer must never carry back (a card's CVC a script stored).

use serde_json::{Map, Value};

use crate::compile::resources::properties;

/// Nesting planned; deeper values keep their order.
const MAX_DEPTH: usize = 8;
/// Plan nodes per schema (recursive schemas stop growing here).
const NODE_BUDGET: usize = 2_000;

/// How to order a value of one schema.
#[derive(Debug, Default)]
pub struct Plan {
    /// Declared members in order, with the plan of each.
    members: Vec<(String, Plan)>,
    /// The plan of array items.
    items: Option<Box<Plan>>,
    /// `oneOf`/`anyOf` branches: the one declaring most members applies.
    branches: Vec<Plan>,
    /// The schema marks the value `writeOnly`.
    write_only: bool,
    /// Some member, item or branch within is `writeOnly`.
    hides: bool,
    /// The schema admits no members but those declared
    /// (`additionalProperties: false`).
    closed: bool,
}

impl Plan {
    pub fn new(document: &Value, schema: &Value) -> Self {
        let mut budget = NODE_BUDGET;
        build(document, schema, 0, &mut budget)
    }

    /// `value` with object members in the planned order (undeclared
    /// members after them, as they were).
    pub fn apply(&self, value: Value) -> Value {
        match value {
            Value::Object(members) => {
                let plan = self.branch(&members);
                if plan.members.is_empty() {
                    return Value::Object(members);
                }
                let mut members = members;
                let mut ordered = Map::with_capacity(members.len());
                for (name, member_plan) in &plan.members {
                    if let Some(member) = members.remove(name) {
                        ordered.insert(name.clone(), member_plan.apply(member));
                    }
                }
                ordered.extend(members);
                Value::Object(ordered)
            }
            Value::Array(items) => match &self.items {
                Some(plan) => {
                    Value::Array(items.into_iter().map(|item| plan.apply(item)).collect())
                }
                None => Value::Array(items),
            },
            other => other,
        }
    }

    /// Whether the schema admits only its declared members.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the schema declares a member `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.members.iter().any(|(member, _)| member == name)
    }

    /// Whether any member within is `writeOnly` (else stripping finds none).
    pub fn hides_write_only(&self) -> bool {
        self.hides
    }

    /// Removes the members the schema marks `writeOnly`, at any planned
    /// depth; whether any was there.
    pub fn strip_write_only(&self, value: &mut Value) -> bool {
        if !self.hides {
            return false;
        }
        match value {
            Value::Object(members) => {
                let plan = self.branch(members);
                let mut removed = false;
                for (name, member_plan) in &plan.members {
                    if member_plan.write_only {
                        removed |= members.remove(name).is_some();
                    } else if let Some(member) = members.get_mut(name) {
                        removed |= member_plan.strip_write_only(member);
                    }
                }
                removed
            }
            Value::Array(items) => self.items.as_ref().is_some_and(|plan| {
                items
                    .iter_mut()
                    .fold(false, |removed, item| plan.strip_write_only(item) | removed)
            }),
            _ => false,
        }
    }

    fn branch(&self, members: &Map<String, Value>) -> &Plan {
        let covered = |plan: &Plan| {
            plan.members
                .iter()
                .filter(|(name, _)| members.contains_key(name))
                .count()
        };
        self.branches
            .iter()
            .max_by_key(|plan| covered(plan))
            .filter(|plan| covered(plan) > covered(self))
            .unwrap_or(self)
    }
}

fn build(document: &Value, schema: &Value, depth: usize, budget: &mut usize) -> Plan {
    let Some(schema) = sbx_spec::pointer::follow(document, schema) else {
        return Plan::default();
    };
    if depth >= MAX_DEPTH || *budget == 0 {
        return Plan::default();
    }
    *budget -= 1;
    let members: Vec<(String, Plan)> = properties(document, schema)
        .into_iter()
        .map(|(name, member)| (name.to_owned(), build(document, member, depth + 1, budget)))
        .collect();
    let items = schema
        .get("items")
        .map(|items| Box::new(build(document, items, depth + 1, budget)));
    let branches: Vec<Plan> = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .map(|branch| build(document, branch, depth + 1, budget))
        .collect();
    let hides = members.iter().any(|(_, m)| m.write_only || m.hides)
        || items.as_ref().is_some_and(|i| i.hides)
        || branches.iter().any(|b| b.hides);
    Plan {
        members,
        items,
        branches,
        write_only: sbx_spec::flagged(document, schema, "writeOnly"),
        hides,
        closed: schema.get("additionalProperties") == Some(&Value::Bool(false)),
    }
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
        let ordered = Plan::new(&document, &schema).apply(value);
        assert_eq!(
            serde_json::to_string(&ordered).unwrap(),
            r#"{"id":7,"name":"n","tags":[{"z":2,"a":1}],"extra":1}"#
        );
        let one_of =
            json!({"oneOf": [{"properties": {"q": {}}}, {"properties": {"type": {}, "b": {}}}]});
        let picked = Plan::new(&document, &one_of).apply(json!({"b": 1, "type": "x"}));
        assert_eq!(
            serde_json::to_string(&picked).unwrap(),
            r#"{"type":"x","b":1}"#
        );
    }

    #[test]
    fn write_only_members_are_stripped_in_the_branch_that_declares_them() {
        let document = json!({"components": {"schemas": {
            "Card": {"properties": {"type": {}, "number": {}, "cvc": {"writeOnly": true}}},
            "Bank": {"properties": {"type": {}, "iban": {}}}}}});
        let schema = json!({"properties": {"id": {}, "password": {"type": "string", "writeOnly": true},
            "methods": {"items": {"oneOf": [{"$ref": "#/components/schemas/Card"},
                                            {"$ref": "#/components/schemas/Bank"}]}}}});
        let plan = Plan::new(&document, &schema);
        let mut value = json!({"id": 1, "password": "p", "methods": [
            {"type": "card", "number": "4242", "cvc": "123", "extra": true},
            {"type": "bank", "iban": "DE89"}]});
        assert!(plan.strip_write_only(&mut value));
        assert_eq!(
            value,
            json!({"id": 1, "methods": [{"type": "card", "number": "4242", "extra": true},
                                        {"type": "bank", "iban": "DE89"}]})
        );
        assert!(!plan.strip_write_only(&mut value), "nothing left to strip");
        let plain = Plan::new(&document, &json!({"properties": {"id": {}}}));
        assert!(!plain.hides);
    }

    #[test]
    fn recursive_schemas_plan_within_a_budget() {
        let document = json!({"components": {"schemas": {"Node": {"properties": {
            "a": {"$ref": "#/components/schemas/Node"}, "b": {"$ref": "#/components/schemas/Node"},
            "c": {"$ref": "#/components/schemas/Node"}}}}}});
        let schema = json!({"$ref": "#/components/schemas/Node"});
        let plan = Plan::new(&document, &schema);
        let ordered = plan.apply(json!({"c": 1, "a": {"c": 2, "b": 3}}));
        assert_eq!(
            serde_json::to_string(&ordered).unwrap(),
            r#"{"a":{"b":3,"c":2},"c":1}"#
        );
    }
}
