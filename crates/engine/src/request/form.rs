//! Form-encoded values decoded into the JSON value their schema describes:
//! `application/x-www-form-urlencoded` and `multipart/form-data` bodies per
//! their encoding object, and `deepObject` query parameters.
//!
//! Keys nest by brackets as the SDKs send them (`metadata[order]=42`,
//! `items[0][price]=p`, `expand[]=data.customer`); repeated keys and
//! delimited text (`explode: false`) make arrays; text becomes the type the
//! schema declares, looking through `$ref`, `allOf`, `anyOf` and `oneOf`.

use sbx_spec::{ParamStyle, PropertyEncoding};
use serde_json::{Map, Value};

use crate::{request::params::coerce_to, schema_view::SchemaView};

/// Deepest bracket nesting decoded; deeper keys stay literal.
const MAX_DEPTH: usize = 32;

/// One decoded field value before it is typed.
#[derive(Debug, Clone)]
pub enum Leaf {
    /// Text, typed by the schema (`"42"` → `42` for an integer).
    Text(String),
    /// Already typed: a JSON part of a multipart body.
    Value(Value),
}

/// Fields as they arrive, nested by their bracketed keys.
#[derive(Debug, Default)]
pub struct Fields {
    entries: Vec<(String, Node)>,
}

#[derive(Debug)]
enum Node {
    Leaves(Vec<Leaf>),
    Nested(Fields),
}

impl Fields {
    /// Adds one `name=value` pair; `name` may carry bracketed keys.
    pub fn insert(&mut self, name: &str, leaf: Leaf) {
        let keys = split_key(name);
        self.insert_at(&keys, leaf);
    }

    fn insert_at(&mut self, keys: &[&str], leaf: Leaf) {
        let (first, rest) = match keys {
            [] => return,
            [first, rest @ ..] => (*first, rest),
        };
        // `[]` appends: every occurrence is a new element.
        let existing = if first.is_empty() {
            None
        } else {
            self.entries.iter().position(|(k, _)| k == first)
        };
        let index = existing.unwrap_or_else(|| {
            let node = if rest.is_empty() {
                Node::Leaves(Vec::new())
            } else {
                Node::Nested(Fields::default())
            };
            self.entries.push((first.to_owned(), node));
            self.entries.len() - 1
        });
        let node = &mut self.entries[index].1;
        match (node, rest.is_empty()) {
            (Node::Leaves(leaves), true) => leaves.push(leaf),
            (Node::Nested(fields), false) => fields.insert_at(rest, leaf),
            // A key used both as a value and as a container: the later shape wins.
            (node, true) => *node = Node::Leaves(vec![leaf]),
            (node, false) => {
                let mut fields = Fields::default();
                fields.insert_at(rest, leaf);
                *node = Node::Nested(fields);
            }
        }
    }

    /// The value of the member `name` (a `deepObject` parameter) as `schema` describes it.
    pub fn into_member(mut self, name: &str, schema: &Value, document: &Value) -> Option<Value> {
        let index = self.entries.iter().position(|(key, _)| key == name)?;
        let (_, node) = self.entries.swap_remove(index);
        Some(Schemas::new(document).shape(node, schema, None))
    }

    /// The fields as the object `schema` describes; `encoding` says how the
    /// top-level properties were serialized.
    pub fn into_value(
        self,
        schema: &Value,
        encoding: &[(String, PropertyEncoding)],
        document: &Value,
    ) -> Value {
        let schemas = Schemas::new(document);
        let mut object = Map::new();
        for (key, node) in self.entries {
            let property = schemas.view.property(schema, &key);
            let encoding = encoding.iter().find(|(name, _)| *name == key);
            let value = schemas.shape(node, property, encoding.map(|(_, e)| e));
            object.insert(key, value);
        }
        // A form cannot say "an empty list": a required array it leaves
        // out is one (`minItems` still applies).
        for name in schemas.view.required(schema) {
            if !object.contains_key(name)
                && schemas.view.is_array(schemas.view.property(schema, name))
            {
                object.insert(name.to_owned(), Value::Array(Vec::new()));
            }
        }
        Value::Object(object)
    }
}

/// `a[b][0][]` → `["a", "b", "0", ""]`; a key whose brackets do not close
/// (or nest deeper than [`MAX_DEPTH`]) is one literal name.
fn split_key(name: &str) -> Vec<&str> {
    let Some(open) = name.find('[').filter(|&i| i > 0) else {
        return vec![name];
    };
    let mut keys = vec![&name[..open]];
    let mut rest = &name[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return vec![name];
        };
        keys.push(&inner[..close]);
        rest = &inner[close + 1..];
        if keys.len() > MAX_DEPTH {
            return vec![name];
        }
    }
    if rest.is_empty() { keys } else { vec![name] }
}

/// Shapes decoded fields by their schema.
struct Schemas<'a> {
    view: SchemaView<'a>,
}

impl<'a> Schemas<'a> {
    fn new(document: &'a Value) -> Self {
        Self {
            view: SchemaView::new(document),
        }
    }

    fn shape(&self, node: Node, schema: &'a Value, encoding: Option<&PropertyEncoding>) -> Value {
        match node {
            Node::Leaves(leaves) => self.leaves(leaves, schema, encoding),
            Node::Nested(fields) => {
                let indexed = fields
                    .entries
                    .iter()
                    .all(|(k, _)| k.is_empty() || k.parse::<u32>().is_ok());
                if indexed && (self.view.is_array(schema) || !self.view.is_object(schema)) {
                    let items = self.view.items(schema);
                    let mut entries = fields.entries;
                    // Stable: `[]` entries keep their order, indices sort.
                    entries.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
                    let mut array = Vec::with_capacity(entries.len());
                    for (_, node) in entries {
                        match (node, self.view.is_array(items)) {
                            // `expand[]=a&expand[]=b`: each `[]` holds one item.
                            (Node::Leaves(leaves), false) => {
                                array.extend(leaves.into_iter().map(|leaf| self.typed(leaf, items)))
                            }
                            (node, _) => array.push(self.shape(node, items, None)),
                        }
                    }
                    Value::Array(array)
                } else {
                    let mut object = Map::new();
                    for (key, node) in fields.entries {
                        let value = self.shape(node, self.view.property(schema, &key), None);
                        object.insert(key, value);
                    }
                    Value::Object(object)
                }
            }
        }
    }

    fn leaves(
        &self,
        mut leaves: Vec<Leaf>,
        schema: &'a Value,
        encoding: Option<&PropertyEncoding>,
    ) -> Value {
        if self.view.is_array(schema) {
            let items = self.view.items(schema);
            let separator = encoding.filter(|e| !e.explode).map(|e| match e.style {
                ParamStyle::SpaceDelimited => ' ',
                ParamStyle::PipeDelimited => '|',
                _ => ',',
            });
            let mut array = Vec::new();
            for leaf in leaves {
                match (leaf, separator) {
                    (Leaf::Text(text), Some(separator)) if !text.is_empty() => array.extend(
                        text.split(separator)
                            .map(|item| self.typed(Leaf::Text(item.to_owned()), items)),
                    ),
                    (leaf, _) => array.push(self.typed(leaf, items)),
                }
            }
            return Value::Array(array);
        }
        if leaves.len() > 1 && schema.is_null() {
            // Undeclared and repeated: keep every value for the validator to judge.
            return Value::Array(
                leaves
                    .into_iter()
                    .map(|leaf| self.typed(leaf, schema))
                    .collect(),
            );
        }
        match leaves.pop() {
            Some(leaf) => self.typed(leaf, schema),
            None => Value::Null,
        }
    }

    fn typed(&self, leaf: Leaf, schema: &'a Value) -> Value {
        match leaf {
            Leaf::Value(value) => value,
            Leaf::Text(text) => coerce_to(&text, &self.view.types(schema)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(pairs: &[(&str, &str)], schema: &Value, document: &Value) -> Value {
        let mut fields = Fields::default();
        for (name, value) in pairs {
            fields.insert(name, Leaf::Text((*value).to_owned()));
        }
        fields.into_value(schema, &[], document)
    }

    #[test]
    fn brackets_nest_objects_and_arrays() {
        let schema = json!({"type": "object", "properties": {
            "amount": {"type": "integer"},
            "metadata": {"anyOf": [{"type": "object", "additionalProperties": {"type": "string"}}, {"type": "string", "enum": [""]}]},
            "payment_method_types": {"type": "array", "items": {"type": "string"}},
            "expand": {"type": "array", "items": {"type": "string"}},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/item"}},
        }});
        let document = json!({"components": {"schemas": {"item": {
            "type": "object", "properties": {"quantity": {"type": "integer"}, "tax_rates": {"type": "array", "items": {"type": "string"}}}
        }}}});
        let value = decode(
            &[
                ("amount", "2000"),
                ("metadata[order]", "42"),
                ("payment_method_types[0]", "card"),
                ("payment_method_types[1]", "link"),
                ("expand[]", "customer"),
                ("expand[]", "invoice"),
                ("items[1][quantity]", "3"),
                ("items[0][quantity]", "2"),
                ("items[0][tax_rates][0]", "txr_1"),
            ],
            &schema,
            &document,
        );
        assert_eq!(
            value,
            json!({
                "amount": 2000,
                "metadata": {"order": "42"},
                "payment_method_types": ["card", "link"],
                "expand": ["customer", "invoice"],
                "items": [{"quantity": 2, "tax_rates": ["txr_1"]}, {"quantity": 3}],
            })
        );
    }

    #[test]
    fn a_required_list_left_out_is_empty() {
        let schema = json!({"type": "object", "required": ["message", "actions"], "properties": {
            "message": {"type": "string"}, "actions": {"type": "array", "items": {}}
        }});
        assert_eq!(
            decode(&[("message", "m")], &schema, &Value::Null),
            json!({"message": "m", "actions": []})
        );
    }

    #[test]
    fn numeric_keys_of_a_map_stay_keys() {
        let schema = json!({"properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}}});
        assert_eq!(
            decode(&[("m[0]", "1"), ("m[7]", "2")], &schema, &Value::Null),
            json!({"m": {"0": 1, "7": 2}})
        );
    }

    #[test]
    fn malformed_and_deep_keys_stay_literal() {
        assert_eq!(split_key("a[b"), vec!["a[b"]);
        assert_eq!(split_key("[a]"), vec!["[a]"]);
        assert_eq!(split_key("a[b]c"), vec!["a[b]c"]);
        let deep = format!("a{}", "[x]".repeat(MAX_DEPTH + 1));
        assert_eq!(split_key(&deep), vec![deep.as_str()]);
        // A key used as a value then as a container does not panic.
        let value = decode(
            &[("a", "1"), ("a[b]", "2"), ("a", "3")],
            &json!({}),
            &Value::Null,
        );
        assert_eq!(value, json!({"a": "3"}));
    }

    #[test]
    fn unexploded_arrays_split_on_their_delimiter() {
        let schema =
            json!({"properties": {"ids": {"type": "array", "items": {"type": "integer"}}}});
        let pipes = PropertyEncoding {
            style: ParamStyle::PipeDelimited,
            explode: false,
            content_type: None,
        };
        let mut fields = Fields::default();
        fields.insert("ids", Leaf::Text("1|2".into()));
        assert_eq!(
            fields.into_value(&schema, &[("ids".into(), pipes)], &Value::Null),
            json!({"ids": [1, 2]})
        );
    }
}
