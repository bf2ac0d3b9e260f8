//! Screens: a JSON body checked against its schema while it is read, with
//! no `Value` tree built. A screen says "valid" only when it is certain;
//! for anything else (an invalid body, a number it cannot compare exactly)
//! the caller runs the full validator, which alone reports violations.
//!
//! The keywords a request schema mostly uses (`type`, `properties`,
//! `required`, `additionalProperties`, `items`, string `enum`s, lengths,
//! bounds, local `$ref`s) are checked here. A subschema with any other
//! keyword and no `$ref` inside (a `pattern`, a `format`, a `oneOf` of
//! scalars) is read into a `Value` and handed to a small validator
//! compiled for it alone. A schema that would need a validator for a
//! subschema with references gets no screen: such a validator compiles
//! everything it reaches, and the full validator already has.

use std::{collections::HashMap, fmt, sync::OnceLock};

use serde::{
    Deserialize,
    de::{
        self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
    },
};
use serde_json::{Map, Value};

use crate::{SchemaValidator, pointer};

/// Subschemas compiled per screen at most; a larger schema gets none.
const MAX_NODES: usize = 4_096;

/// Integers up to this magnitude are exact as `f64`, so their bounds
/// compare exactly.
const EXACT_INTEGER: u64 = 1 << 53;

/// Keywords that assert nothing: what a screen may ignore.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "$comment",
    "$defs",
    "definitions",
    "discriminator",
    "nullable",
];

/// A schema compiled for checking bodies as they are read.
pub struct Screen {
    nodes: Vec<Node>,
}

impl fmt::Debug for Screen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Screen({} nodes)", self.nodes.len())
    }
}

type NodeId = usize;

enum Node {
    /// `true`, `{}` or annotations only.
    Any,
    Rules(Box<Rules>),
    /// Checked by a validator compiled for this subschema when first
    /// reached; `None` when that failed (never certain).
    Delegate(Value, OnceLock<Option<SchemaValidator>>),
}

/// Which JSON types a schema admits, as bits.
#[derive(Clone, Copy)]
struct Types(u8);

impl Types {
    const NULL: u8 = 1;
    const BOOLEAN: u8 = 2;
    const INTEGER: u8 = 4;
    /// Numbers with a fraction (integers are admitted by `INTEGER`).
    const FRACTION: u8 = 8;
    const STRING: u8 = 16;
    const ARRAY: u8 = 32;
    const OBJECT: u8 = 64;
    const ALL: u8 = 127;

    fn named(name: &str) -> Option<u8> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "integer" => Self::INTEGER,
            "number" => Self::INTEGER | Self::FRACTION,
            "string" => Self::STRING,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => return None,
        })
    }

    fn admits(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
}

/// No `type`: every type.
impl Default for Types {
    fn default() -> Self {
        Self(Self::ALL)
    }
}

/// What a schema asserts; the default asserts nothing.
#[derive(Default)]
struct Rules {
    types: Types,
    /// Allowed strings, when the schema has an `enum` of strings.
    strings: Option<Vec<String>>,
    min_length: usize,
    max_length: Option<usize>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    min_items: usize,
    max_items: Option<usize>,
    items: Option<NodeId>,
    /// Declared properties, sorted by name.
    properties: Vec<(String, NodeId)>,
    /// Required names, sorted; at most 64 (one bit each).
    required: Vec<String>,
    extra: Extra,
}

/// What `additionalProperties` says of undeclared members.
#[derive(Clone, Copy, Default)]
enum Extra {
    #[default]
    Any,
    Forbidden,
    Checked(NodeId),
}

impl Rules {
    fn within_bounds(&self, number: f64) -> bool {
        self.minimum.is_none_or(|low| number >= low)
            && self.maximum.is_none_or(|high| number <= high)
            && self.exclusive_minimum.is_none_or(|low| number > low)
            && self.exclusive_maximum.is_none_or(|high| number < high)
    }
}

impl Screen {
    /// The screen of the schema at `pointer` in `document` (the view of
    /// the document its validator checks against). `None` when the schema
    /// is too large to screen or would delegate a subschema with references.
    pub(crate) fn build(document: &Value, pointer: &str) -> Option<Self> {
        let mut builder = Builder {
            document,
            nodes: Vec::new(),
            ids: HashMap::new(),
            pending: Vec::new(),
            exhausted: false,
        };
        builder.node(pointer);
        while let Some((id, at)) = builder.pending.pop() {
            builder.nodes[id] = match builder.rules(&at) {
                Some(Some(rules)) => Node::Rules(Box::new(rules)),
                Some(None) => Node::Any,
                None => {
                    let schema = pointer::get(document, &at)?;
                    if needs_document(schema) {
                        return None;
                    }
                    Node::Delegate(schema.clone(), OnceLock::new())
                }
            };
        }
        (!builder.exhausted).then_some(Self {
            nodes: builder.nodes,
        })
    }

    /// Whether `bytes` are one JSON document valid against the schema, for
    /// certain. `false` means "run the validator", not "invalid".
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let screened = Check {
            screen: self,
            node: 0,
        }
        .deserialize(&mut deserializer);
        screened.is_ok() && deserializer.end().is_ok()
    }
}

/// Compiles nodes from a work list, so a deep schema cannot overflow the
/// stack.
struct Builder<'a> {
    document: &'a Value,
    nodes: Vec<Node>,
    /// Node of each schema pointer (after `$ref`s).
    ids: HashMap<String, NodeId>,
    pending: Vec<(NodeId, String)>,
    /// The node budget ran out: no screen.
    exhausted: bool,
}

impl Builder<'_> {
    /// The node of the schema at `at`, queued for compiling the first time;
    /// `None` past the node budget.
    fn node(&mut self, at: &str) -> Option<NodeId> {
        let target = match pointer::get(self.document, at) {
            Some(schema) if pure_reference(schema) => {
                match pointer::resolve(self.document, schema, at) {
                    Ok((_, target)) => target,
                    // A broken chain: the validator decides.
                    Err(_) => at.to_owned(),
                }
            }
            _ => at.to_owned(),
        };
        if let Some(&id) = self.ids.get(&target) {
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            self.exhausted = true;
            return None;
        }
        let id = self.nodes.len();
        self.nodes.push(Node::Any);
        self.ids.insert(target.clone(), id);
        self.pending.push((id, target));
        Some(id)
    }

    /// The rules of the schema at `at`: `Some(None)` when it asserts
    /// nothing, `None` when it uses a keyword a screen does not model.
    fn rules(&mut self, at: &str) -> Option<Option<Rules>> {
        let schema = match pointer::get(self.document, at)? {
            Value::Bool(true) => return Some(None),
            Value::Object(schema) => schema,
            _ => return None,
        };
        if schema.contains_key("$ref") {
            return None;
        }
        let mut rules = Rules::default();
        let mut asserts = false;
        for (keyword, value) in schema {
            asserts |= !is_annotation(keyword);
            match keyword.as_str() {
                "type" => rules.types = types(value)?,
                "enum" => rules.strings = Some(strings(value, &mut rules.types)?),
                "minLength" => rules.min_length = count(value)?,
                "maxLength" => rules.max_length = Some(count(value)?),
                "minimum" => rules.minimum = Some(bound(value)?),
                "maximum" => rules.maximum = Some(bound(value)?),
                "exclusiveMinimum" => rules.exclusive_minimum = Some(bound(value)?),
                "exclusiveMaximum" => rules.exclusive_maximum = Some(bound(value)?),
                "minItems" => rules.min_items = count(value)?,
                "maxItems" => rules.max_items = Some(count(value)?),
                "items" => rules.items = Some(self.node(&pointer::join(at, "items"))?),
                "properties" => {
                    let declared = value.as_object()?;
                    let base = pointer::join(at, "properties");
                    for name in declared.keys() {
                        let id = self.node(&pointer::join(&base, name))?;
                        rules.properties.push((name.clone(), id));
                    }
                    rules.properties.sort_by(|a, b| a.0.cmp(&b.0));
                }
                "required" => {
                    let names = value.as_array()?;
                    rules.required = names
                        .iter()
                        .map(|n| n.as_str().map(str::to_owned))
                        .collect::<Option<_>>()?;
                    rules.required.sort();
                    rules.required.dedup();
                    if rules.required.len() > 64 {
                        return None;
                    }
                }
                "additionalProperties" => {
                    rules.extra = match value {
                        Value::Bool(false) => Extra::Forbidden,
                        _ => Extra::Checked(self.node(&pointer::join(at, "additionalProperties"))?),
                    };
                }
                // Formats apply to strings only.
                "format" if !admits_strings(schema) => {}
                keyword if is_annotation(keyword) => {}
                _ => return None,
            }
        }
        Some(asserts.then_some(rules))
    }
}

/// Keywords whose meaning depends on the document around a schema.
const CONTEXTUAL: &[&str] = &[
    "$ref",
    "$dynamicRef",
    "$id",
    "$anchor",
    "$dynamicAnchor",
    "$schema",
    "$vocabulary",
];

/// Whether a keyword of [`CONTEXTUAL`] appears anywhere in `schema`: it
/// cannot be validated on its own.
fn needs_document(schema: &Value) -> bool {
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if CONTEXTUAL.iter().any(|keyword| map.contains_key(*keyword)) {
                    return true;
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    false
}

fn is_annotation(keyword: &str) -> bool {
    keyword.starts_with("x-") || ANNOTATIONS.contains(&keyword)
}

/// A `$ref` with nothing beside it but annotations.
fn pure_reference(schema: &Value) -> bool {
    schema.as_object().is_some_and(|map| {
        map.contains_key("$ref") && map.keys().all(|k| k == "$ref" || is_annotation(k))
    })
}

/// Whether a schema's `type` (if any) admits strings.
fn admits_strings(schema: &Map<String, Value>) -> bool {
    schema
        .get("type")
        .is_none_or(|t| types(t).is_none_or(|t| t.admits(Types::STRING)))
}

fn types(value: &Value) -> Option<Types> {
    match value {
        Value::String(name) => Types::named(name).map(Types),
        Value::Array(names) => names.iter().try_fold(Types(0), |types, name| {
            Some(Types(types.0 | Types::named(name.as_str()?)?))
        }),
        _ => None,
    }
}

/// An `enum` of strings (and `null`); narrows `types` to what it allows.
fn strings(value: &Value, types: &mut Types) -> Option<Vec<String>> {
    let mut allowed = 0;
    let mut strings = Vec::new();
    for member in value.as_array()? {
        match member {
            Value::String(text) => {
                allowed |= Types::STRING;
                strings.push(text.clone());
            }
            Value::Null => allowed |= Types::NULL,
            _ => return None,
        }
    }
    types.0 &= allowed;
    Some(strings)
}

fn count(value: &Value) -> Option<usize> {
    usize::try_from(value.as_u64()?).ok()
}

/// A numeric bound that compares exactly as `f64`.
fn bound(value: &Value) -> Option<f64> {
    let number = value.as_number()?;
    let exact = match (number.as_u64(), number.as_i64()) {
        (Some(unsigned), _) => unsigned <= EXACT_INTEGER,
        (None, Some(signed)) => signed.unsigned_abs() <= EXACT_INTEGER,
        (None, None) => true,
    };
    exact.then(|| number.as_f64()).flatten()
}

/// Reading one value against one node; an error stops the read (not
/// certain).
#[derive(Clone, Copy)]
struct Check<'s> {
    screen: &'s Screen,
    node: NodeId,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match &self.screen.nodes[self.node] {
            Node::Any => IgnoredAny::deserialize(deserializer).map(drop),
            Node::Rules(rules) => deserializer.deserialize_any(RulesVisitor {
                screen: self.screen,
                rules,
            }),
            Node::Delegate(schema, validator) => {
                let value = Value::deserialize(deserializer)?;
                let validator = validator.get_or_init(|| SchemaValidator::standalone(schema));
                match validator {
                    Some(validator) if validator.is_valid(&value) => Ok(()),
                    _ => Err(D::Error::custom(UNSURE)),
                }
            }
        }
    }
}

const UNSURE: &str = "not certainly valid";

struct RulesVisitor<'s> {
    screen: &'s Screen,
    rules: &'s Rules,
}

impl RulesVisitor<'_> {
    fn require<E: de::Error>(&self, types: u8, holds: bool) -> Result<(), E> {
        if self.rules.types.admits(types) && holds {
            Ok(())
        } else {
            Err(E::custom(UNSURE))
        }
    }

    fn integer<E: de::Error>(&self, magnitude: u64, value: f64) -> Result<(), E> {
        let exact = magnitude <= EXACT_INTEGER;
        self.require(Types::INTEGER, exact && self.rules.within_bounds(value))
    }
}

impl<'de> Visitor<'de> for RulesVisitor<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.require(Types::BOOLEAN, true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.require(Types::NULL, true)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.integer(value, value as f64)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.integer(value.unsigned_abs(), value as f64)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        // A float with no fraction is an integer to JSON Schema: the
        // validator decides those.
        self.require(Types::FRACTION, self.rules.within_bounds(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        let rules = self.rules;
        let length_holds = (rules.min_length == 0 && rules.max_length.is_none()) || {
            let length = value.chars().count();
            length >= rules.min_length && rules.max_length.is_none_or(|max| length <= max)
        };
        let listed = rules
            .strings
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|s| s == value));
        self.require(Types::STRING, length_holds && listed)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.require(Types::ARRAY, true)?;
        let rules = self.rules;
        let mut count = 0;
        match rules.items {
            Some(node) => {
                let check = Check {
                    screen: self.screen,
                    node,
                };
                while seq.next_element_seed(check)?.is_some() {
                    count += 1;
                }
            }
            None => {
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
            }
        }
        let sized = count >= rules.min_items && rules.max_items.is_none_or(|max| count <= max);
        self.require(Types::ARRAY, sized)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.require(Types::OBJECT, true)?;
        let rules = self.rules;
        let mut seen: u64 = 0;
        while let Some(member) = map.next_key_seed(MemberName { rules })? {
            if let Some(bit) = member.required {
                seen |= 1 << bit;
            }
            let extra = member.declared.map_or(rules.extra, Extra::Checked);
            match extra {
                Extra::Checked(node) => map.next_value_seed(Check {
                    screen: self.screen,
                    node,
                })?,
                Extra::Any => drop(map.next_value::<IgnoredAny>()?),
                Extra::Forbidden => return Err(A::Error::custom(UNSURE)),
            }
        }
        let all = if rules.required.len() == 64 {
            u64::MAX
        } else {
            (1u64 << rules.required.len()) - 1
        };
        self.require(Types::OBJECT, seen == all)
    }
}

/// What a member's name means to an object's rules.
struct Member {
    declared: Option<NodeId>,
    required: Option<usize>,
}

/// Reads a member's name (borrowed when it has no escapes) and looks it up.
struct MemberName<'s> {
    rules: &'s Rules,
}

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Member;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName<'_> {
    type Value = Member;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        let rules = self.rules;
        Ok(Member {
            declared: rules
                .properties
                .binary_search_by(|(declared, _)| declared.as_str().cmp(name))
                .ok()
                .map(|at| rules.properties[at].1),
            required: rules
                .required
                .binary_search_by(|required| required.as_str().cmp(name))
                .ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::{Direction, SchemaCompiler};

    /// The screen and the validator of `#/components/schemas/Body`.
    fn compiled(schemas: Value) -> (Screen, SchemaValidator) {
        let document = Arc::new(json!({"components": {"schemas": schemas}}));
        let compiler = Arc::new(SchemaCompiler::new(document).unwrap());
        let pointer = "/components/schemas/Body";
        let screen = compiler.screen(pointer, Direction::Request).unwrap();
        let validator = compiler.compile(pointer, Direction::Request).unwrap();
        (screen, validator)
    }

    fn new_item() -> Value {
        json!({"Body": {
            "type": "object",
            "required": ["name", "price", "currency"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 80},
                "price": {"type": "integer", "minimum": 0},
                "currency": {"type": "string", "enum": ["usd", "eur", "gbp"]},
                "tags": {"type": "array", "maxItems": 10, "items": {"type": "string"}}
            }
        }})
    }

    #[test]
    fn accepts_valid_bodies_without_the_validator() {
        let (screen, _) = compiled(new_item());
        for body in [
            r#"{"name": "Widget", "price": 1999, "currency": "usd", "tags": ["a", "b"]}"#,
            r#"{"currency": "gbp", "price": 0, "name": "\u00e9t\u00e9"}"#,
            r#"{"name": "x", "price": 1, "currency": "eur", "name": "again"}"#,
        ] {
            assert!(screen.accepts(body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn refuses_every_invalid_body() {
        let (screen, validator) = compiled(new_item());
        for body in [
            r#"{"price": 1999, "currency": "usd"}"#,
            r#"{"name": "", "price": 1, "currency": "usd"}"#,
            r#"{"name": "w", "price": -1, "currency": "usd"}"#,
            r#"{"name": "w", "price": 1.5, "currency": "usd"}"#,
            r#"{"name": "w", "price": 1, "currency": "jpy"}"#,
            r#"{"name": "w", "price": 1, "currency": "usd", "colour": "red"}"#,
            r#"{"name": "w", "price": 1, "currency": "usd", "tags": [1]}"#,
            r#"{"name": "w", "price": 1, "currency": "usd", "tags": "a"}"#,
            r#"{"name": 7, "price": 1, "currency": "usd"}"#,
            r#"{"name": "w", "price": 1, "currency": "usd"} trailing"#,
            r#"{"name": "w", "price": 1, "currency": "usd""#,
            r#"[]"#,
            r#"null"#,
        ] {
            assert!(!screen.accepts(body.as_bytes()), "{body}");
            let valid = serde_json::from_str(body).is_ok_and(|v| validator.is_valid(&v));
            assert!(!valid, "{body} is valid");
        }
    }

    #[test]
    fn leaves_integral_floats_and_huge_integers_to_the_validator() {
        let (screen, validator) = compiled(new_item());
        let body = r#"{"name": "w", "price": 1.0, "currency": "usd"}"#;
        assert!(!screen.accepts(body.as_bytes()));
        assert!(validator.is_valid(&serde_json::from_str(body).unwrap()));
        let huge = r#"{"name": "w", "price": 18014398509481985, "currency": "usd"}"#;
        assert!(!screen.accepts(huge.as_bytes()));
    }

    #[test]
    fn delegates_keywords_it_does_not_model() {
        let (screen, _) = compiled(json!({"Body": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^itm_[a-z0-9]{4}$"},
                "email": {"type": "string", "format": "email"},
                "pet": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
            }
        }}));
        assert!(screen.accepts(br#"{"id": "itm_ab12", "email": "a@example.com", "pet": 3}"#));
        assert!(!screen.accepts(br#"{"id": "itm_AB12"}"#));
        assert!(!screen.accepts(br#"{"email": "nope"}"#));
        assert!(!screen.accepts(br#"{"pet": true}"#));
    }

    #[test]
    fn follows_references_including_recursion() {
        let (screen, _) = compiled(json!({
            "Body": {"$ref": "#/components/schemas/Node"},
            "Node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
                }
            }
        }));
        assert!(screen.accepts(br#"{"name": "a", "children": [{"name": "b", "children": []}]}"#));
        assert!(!screen.accepts(br#"{"name": "a", "children": [{"children": []}]}"#));
        let deep = format!(
            "{}{}",
            r#"{"name":"a","children":["#.repeat(200),
            "]}".repeat(200)
        );
        assert!(
            !screen.accepts(deep.as_bytes()),
            "past serde_json's depth limit"
        );
    }

    #[test]
    fn readonly_members_are_not_required_of_requests() {
        let (screen, _) = compiled(json!({"Body": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {"id": {"type": "string", "readOnly": true}, "name": {"type": "string"}}
        }}));
        assert!(screen.accepts(br#"{"name": "a"}"#));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
            prop_oneof![Just("usd"), Just("eur"), Just("name"), Just("price")]
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("name".to_owned()),
                            Just("price".to_owned()),
                            Just("currency".to_owned()),
                            Just("tags".to_owned()),
                            "[a-z]{1,2}"
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What the screen accepts, the validator accepts: on every shape
        /// it models, against values built to come close.
        #[test]
        fn never_accepts_what_the_validator_refuses(value in any_json(), which in 0usize..4) {
            let schemas = [
                new_item(),
                json!({"Body": {"type": ["string", "null"], "enum": ["usd", null], "maxLength": 3}}),
                json!({"Body": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMaximum": 10, "minimum": -5}}}),
                json!({"Body": {"properties": {"name": {"type": "boolean"}}, "required": ["price"], "additionalProperties": {"type": "integer"}}}),
            ];
            let (screen, validator) = compiled(schemas[which].clone());
            let bytes = serde_json::to_vec(&value).unwrap();
            if screen.accepts(&bytes) {
                prop_assert!(validator.is_valid(&value), "{value}");
            }
        }
    }
}
