//! Questions asked of a schema that hold through `$ref`, `allOf`, `anyOf`
//! and `oneOf`: which types it allows, its items, a member's schema, its
//! required members. Decoding forms and filling error bodies ask them.

use serde_json::Value;

/// How many `$ref`/combinator hops a lookup follows.
const MAX_SCHEMA_HOPS: usize = 16;

/// Schema lookups that follow `$ref`s into `document`.
#[derive(Clone, Copy)]
pub struct SchemaView<'a> {
    document: &'a Value,
}

impl<'a> SchemaView<'a> {
    pub fn new(document: &'a Value) -> Self {
        Self { document }
    }

    pub fn document(&self) -> &'a Value {
        self.document
    }

    /// The schema and the branches of its combinators, `$ref`s followed.
    pub fn branches(&self, schema: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        let mut pending = vec![schema];
        while let Some(schema) = pending.pop() {
            if out.len() >= MAX_SCHEMA_HOPS {
                break;
            }
            let Some(schema) = sbx_spec::pointer::follow(self.document, schema) else {
                continue;
            };
            out.push(schema);
            for combinator in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(members)) = schema.get(combinator) {
                    pending.extend(members.iter().rev());
                }
            }
        }
        out
    }

    pub fn types(&self, schema: &'a Value) -> Vec<&'a str> {
        let mut types = Vec::new();
        for branch in self.branches(schema) {
            for t in sbx_spec::declared_types(branch) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        types
    }

    pub fn is_array(&self, schema: &'a Value) -> bool {
        self.branches(schema)
            .iter()
            .any(|b| sbx_spec::declared_types(b).contains(&"array") || b.get("items").is_some())
    }

    pub fn is_object(&self, schema: &'a Value) -> bool {
        self.branches(schema).iter().any(|b| {
            sbx_spec::declared_types(b).contains(&"object")
                || b.get("properties").is_some()
                || b.get("additionalProperties").is_some()
        })
    }

    pub fn items(&self, schema: &'a Value) -> &'a Value {
        self.branches(schema)
            .into_iter()
            .find_map(|b| b.get("items"))
            .unwrap_or(&Value::Null)
    }

    /// The schema of member `key`: a declared property, else the
    /// `additionalProperties` schema.
    pub fn property(&self, schema: &'a Value, key: &str) -> &'a Value {
        let branches = self.branches(schema);
        branches
            .iter()
            .find_map(|b| b.get("properties").and_then(|p| p.get(key)))
            .or_else(|| {
                branches
                    .iter()
                    .find_map(|b| b.get("additionalProperties").filter(|a| a.is_object()))
            })
            .unwrap_or(&Value::Null)
    }

    /// The members some branch requires.
    pub fn required(&self, schema: &'a Value) -> Vec<&'a str> {
        self.branches(schema)
            .into_iter()
            .filter_map(|b| b.get("required").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }
}
