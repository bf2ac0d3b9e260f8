//! Synthesis plans: each schema a response can reach, compiled once into a
//! node that says what to generate with no `$ref` to follow, no keyword to
//! look up and no property name to classify per value. Nodes are shared
//! by every plan of one document (a revision's responses reach the same
//! components), and each knows whether what it makes always validates, so
//! a value made without doubt skips the validator.
//!
//! A node is keyed by the address of its schema (the document, or an
//! `allOf` merge the arena keeps alive), plus the property name and `$ref`
//! where they change what is generated. Compilation walks a work list, not
//! the call stack: a chain of ten thousand schemas cannot overflow it.

use std::{collections::HashMap, sync::Arc};

use serde_json::{Map, Value};

use super::{MAX_COMPOSED_DEPTH, fakes::NameFake, merge, minimal, patterns::PatternCache};
use crate::pointer;

pub type NodeId = usize;

/// Nodes compiled per document at most; past it, schemas answer their
/// minimal value (only a hostile document gets near).
const MAX_NODES: usize = 2_000_000;

#[derive(Debug)]
pub struct Node {
    /// The value where recursion or the node budget stops.
    pub minimal: Value,
    /// The schema's own example, answered on the first attempt.
    pub example: Option<Value>,
    pub kind: Kind,
    /// What this node makes (without example, minimal value or fallback)
    /// always validates against its schema.
    pub certain: bool,
}

#[derive(Debug)]
pub enum Kind {
    /// No object schema (`true`, `false`, an unresolvable `$ref`): a word.
    Word,
    Const(Value),
    /// The non-`null` members of `enum`; none answers `null`.
    Enum(Vec<Value>),
    /// A base schema answered as the first subtype its discriminator maps.
    Subtype(NodeId),
    /// `allOf` merged into one schema, then tagged as its subtype.
    AllOf {
        merged: NodeId,
        tag: Option<TagRule>,
    },
    /// `oneOf`/`anyOf`: one branch drawn, tagged by the discriminator.
    Choice {
        branches: Vec<(NodeId, Option<String>)>,
        property: Option<String>,
    },
    Object(ObjectPlan),
    Array(ArrayPlan),
    Integer {
        low: f64,
        high: f64,
        multiple: Option<f64>,
    },
    Number {
        low: f64,
        high: f64,
        /// `multipleOf` and its decimal places.
        multiple: Option<(f64, i32)>,
    },
    Boolean,
    Null,
    String(StringPlan),
    /// Nested deeper than synthesis ever reaches: the minimal value.
    Minimal,
}

#[derive(Debug)]
pub struct ObjectPlan {
    /// Declared properties in order (`writeOnly` ones left out), and
    /// whether each is required.
    pub properties: Vec<(String, NodeId, bool)>,
    pub max_properties: Option<usize>,
    /// Required names with no declared schema: from `additionalProperties`
    /// when it is a schema, else a word.
    pub undeclared: Vec<(String, Option<NodeId>)>,
    pub min_properties: usize,
    /// `additionalProperties`, unless `false`.
    pub extra: Option<NodeId>,
    /// No `properties`, an `additionalProperties` schema: a map.
    pub wants_map: bool,
}

#[derive(Debug)]
pub struct ArrayPlan {
    pub min: usize,
    pub max: usize,
    pub prefix: Vec<NodeId>,
    pub items: NodeId,
    pub unique: bool,
}

#[derive(Debug)]
pub struct StringPlan {
    pub min: usize,
    pub max: usize,
    pub format: Option<String>,
    /// `pattern`, when it has one: its generator, if it compiles.
    pub pattern: Option<Option<Arc<rand_regex::Regex>>>,
    pub fake: NameFake,
}

/// How a subtype made through `allOf` says which subtype it is.
#[derive(Debug)]
pub struct TagRule {
    pub property: String,
    /// The mapping's tag for the `$ref` that reached the subtype.
    pub named: Option<String>,
    pub mapping: Vec<String>,
}

impl TagRule {
    pub fn apply(&self, value: &mut Value) {
        let Value::Object(map) = value else { return };
        let tag = match &self.named {
            Some(tag) => tag.clone(),
            None => {
                let current = map.get(&self.property).and_then(Value::as_str);
                if current.is_some_and(|c| self.mapping.iter().any(|m| m == c)) {
                    return;
                }
                match self.mapping.first() {
                    Some(first) => first.clone(),
                    None => return,
                }
            }
        };
        map.insert(self.property.clone(), Value::String(tag));
    }
}

/// Where a schema lives: the document, or a merge the arena owns.
#[derive(Clone)]
enum Source {
    Document,
    Merged(Arc<Value>),
}

/// A schema to compile: its place, the `$ref` that reached it, the name it
/// is stored under, and how many merges deep it sits.
struct Pending {
    id: NodeId,
    source: Source,
    pointer: String,
    reference: Option<String>,
    name: Option<String>,
    merges: usize,
    /// A `$ref` whose siblings assert something synthesis ignores.
    constrained_ref: bool,
}

/// Every node compiled for one document, and its roots by pointer.
#[derive(Debug, Default)]
pub struct Arena {
    pub nodes: Vec<Node>,
    roots: HashMap<String, Option<NodeId>>,
    memo: HashMap<KeyHash, NodeId>,
    /// The shared word nodes: for `true` (certain) and for no schema.
    words: [Option<NodeId>; 2],
    /// Merged schemas, kept alive: their addresses are node keys.
    merges: Vec<Arc<Value>>,
}

/// A node's key: its schema's address, and the name and `$ref` that
/// reached it where they matter.
type KeyHash = (usize, Option<Box<str>>, Option<Box<str>>, bool);

impl Arena {
    /// The root node of the schema at `pointer`, if compiled.
    pub fn root(&self, pointer: &str) -> Option<Option<NodeId>> {
        self.roots.get(pointer).copied()
    }

    /// Compiles the schema at `pointer` and all it reaches (what an
    /// earlier root compiled is shared).
    pub fn compile(
        &mut self,
        document: &Value,
        pointer: &str,
        patterns: &PatternCache,
    ) -> Option<NodeId> {
        if let Some(root) = self.root(pointer) {
            return root;
        }
        let root = document.pointer(pointer).map(|schema| {
            let first = self.nodes.len();
            let mut queue = Vec::new();
            let root = self.edge(
                document,
                (&Source::Document, schema, pointer),
                None,
                0,
                &mut queue,
            );
            while let Some(pending) = queue.pop() {
                self.build(document, patterns, pending, &mut queue);
            }
            self.settle_certainty(first);
            root
        });
        self.roots.insert(pointer.to_owned(), root);
        root
    }

    /// The node for `schema` (at `pointer` in `source`), allocated and
    /// queued the first time its key is seen.
    fn edge(
        &mut self,
        document: &Value,
        (source, schema, at): (&Source, &Value, &str),
        name: Option<&str>,
        merges: usize,
        queue: &mut Vec<Pending>,
    ) -> NodeId {
        let reference = pointer::reference_of(schema);
        let constrained_ref = reference.is_some()
            && schema
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k != "$ref" && !is_annotation(k)));
        // A `$ref` leads into the document; anything else stays where it is.
        let (target, source, at, merges) = if reference.is_some() {
            match resolve(document, schema) {
                Some((target, at)) => (Some(target), Source::Document, at, 0),
                None => (None, Source::Document, String::new(), 0),
            }
        } else {
            (Some(schema), source.clone(), at.to_owned(), merges)
        };
        let Some(target) = target else {
            return self.word_node(false);
        };
        let key: KeyHash = (
            std::ptr::from_ref(target) as usize,
            name.filter(|_| name_matters(target)).map(Into::into),
            reference
                .filter(|_| reference_matters(target))
                .map(Into::into),
            constrained_ref,
        );
        if let Some(&id) = self.memo.get(&key) {
            return id;
        }
        let id = self.placeholder();
        let pending = Pending {
            id,
            source,
            pointer: at,
            reference: key.2.as_deref().map(str::to_owned),
            name: key.1.as_deref().map(str::to_owned),
            merges,
            constrained_ref,
        };
        self.memo.insert(key, id);
        queue.push(pending);
        id
    }

    fn placeholder(&mut self) -> NodeId {
        self.nodes.push(Node {
            minimal: Value::Null,
            example: None,
            kind: Kind::Minimal,
            certain: false,
        });
        self.nodes.len() - 1
    }

    fn word_node(&mut self, certain: bool) -> NodeId {
        if let Some(id) = self.words[usize::from(certain)] {
            return id;
        }
        let id = self.placeholder();
        self.words[usize::from(certain)] = Some(id);
        self.nodes[id] = Node {
            minimal: Value::String(String::new()),
            example: None,
            kind: Kind::Word,
            certain,
        };
        id
    }

    /// Compiles one queued schema; its children are queued in turn.
    fn build(
        &mut self,
        document: &Value,
        patterns: &PatternCache,
        pending: Pending,
        queue: &mut Vec<Pending>,
    ) {
        let schema = match &pending.source {
            Source::Document => pointer::get(document, &pending.pointer),
            Source::Merged(value) => pointer::get(value, &pending.pointer),
        };
        let schema = schema.unwrap_or(&Value::Bool(true));
        let minimal = minimal(document, schema);
        // Beyond the deepest merge synthesis reaches, or the node budget.
        if pending.merges > MAX_COMPOSED_DEPTH + 1 || self.nodes.len() > MAX_NODES {
            self.nodes[pending.id].minimal = minimal;
            return;
        }
        let mut compiler = NodeCompiler {
            arena: self,
            document,
            patterns,
            pending: &pending,
            queue,
        };
        let (kind, example, certain) = compiler.kind(schema);
        self.nodes[pending.id] = Node {
            minimal,
            example,
            kind,
            certain: certain && !pending.constrained_ref,
        };
    }

    /// A node is certain only if everything it can generate from is: one
    /// uncertain child makes its ancestors uncertain (cycles included).
    /// Nodes from `first` on are new; older ones never reach them.
    fn settle_certainty(&mut self, first: NodeId) {
        let mut parents: Vec<Vec<NodeId>> = vec![Vec::new(); self.nodes.len() - first];
        let mut reaches_doubt = Vec::new();
        for (id, node) in self.nodes.iter().enumerate().skip(first) {
            for child in children(&node.kind) {
                if child >= first {
                    parents[child - first].push(id);
                } else if !self.nodes[child].certain {
                    reaches_doubt.push(id);
                }
            }
        }
        for id in reaches_doubt {
            self.nodes[id].certain = false;
        }
        let mut doubtful: Vec<NodeId> = (first..self.nodes.len())
            .filter(|&id| !self.nodes[id].certain)
            .collect();
        while let Some(id) = doubtful.pop() {
            for &parent in &parents[id - first] {
                if self.nodes[parent].certain {
                    self.nodes[parent].certain = false;
                    doubtful.push(parent);
                }
            }
        }
    }
}

fn children(kind: &Kind) -> Vec<NodeId> {
    match kind {
        Kind::Subtype(child) => vec![*child],
        Kind::AllOf { merged, .. } => vec![*merged],
        Kind::Choice { branches, .. } => branches.iter().map(|(b, _)| *b).collect(),
        Kind::Object(object) => object
            .properties
            .iter()
            .map(|(_, p, _)| *p)
            .chain(object.undeclared.iter().filter_map(|(_, n)| *n))
            .chain(object.extra)
            .collect(),
        Kind::Array(array) => array.prefix.iter().copied().chain([array.items]).collect(),
        _ => Vec::new(),
    }
}

/// Where a chain of `$ref`s ends, and its pointer (as [`pointer::follow`]
/// resolves it).
fn resolve<'d>(document: &'d Value, schema: &Value) -> Option<(&'d Value, String)> {
    let mut at = pointer::ref_to_pointer(pointer::reference_of(schema)?)?;
    let mut current = pointer::get(document, &at)?;
    for _ in 1..pointer::MAX_REF_HOPS {
        let Some(reference) = pointer::reference_of(current) else {
            return Some((current, at));
        };
        at = pointer::ref_to_pointer(reference)?;
        current = pointer::get(document, &at)?;
    }
    None
}

/// Keywords that assert nothing (or nothing a generated value could break).
fn is_annotation(keyword: &str) -> bool {
    keyword.starts_with("x-")
        || matches!(
            keyword,
            "title"
                | "description"
                | "default"
                | "examples"
                | "example"
                | "deprecated"
                | "readOnly"
                | "writeOnly"
                | "nullable"
                | "externalDocs"
                | "xml"
                | "$comment"
                | "$id"
                | "$schema"
                | "$anchor"
                | "$defs"
                | "definitions"
                | "contentMediaType"
                | "contentEncoding"
                | "contentSchema"
                | "discriminator"
        )
}

/// Keywords a typed node honours exactly.
fn is_honoured(keyword: &str) -> bool {
    is_annotation(keyword)
        || matches!(
            keyword,
            "type"
                | "properties"
                | "required"
                | "additionalProperties"
                | "items"
                | "prefixItems"
                | "minItems"
                | "maxItems"
                | "uniqueItems"
                | "minLength"
                | "maxLength"
                | "pattern"
                | "format"
                | "minimum"
                | "maximum"
                | "exclusiveMinimum"
                | "exclusiveMaximum"
                | "multipleOf"
        )
}

/// Formats the validator checks and our generators always satisfy.
fn format_is_certain(format: &str) -> bool {
    const CHECKED: &[&str] = &[
        "date",
        "date-time",
        "duration",
        "email",
        "hostname",
        "idn-email",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "iri",
        "iri-reference",
        "json-pointer",
        "regex",
        "relative-json-pointer",
        "time",
        "uri",
        "uri-reference",
        "uri-template",
        "uuid",
        "byte",
    ];
    const GENERATED_VALID: &[&str] = &[
        "date",
        "date-time",
        "email",
        "idn-email",
        "uuid",
        "uri",
        "ipv4",
        "ipv6",
        "hostname",
        "byte",
    ];
    GENERATED_VALID.contains(&format) || !CHECKED.contains(&format)
}

/// Whether the property name changes what a schema generates: it picks
/// fakes and number ranges of scalars, and passes through compositions
/// and arrays; a plain object's members have names of their own.
fn name_matters(schema: &Value) -> bool {
    let Some(object) = schema.as_object() else {
        return false;
    };
    if object.contains_key("const") {
        return false;
    }
    let composed = ["allOf", "oneOf", "anyOf", "discriminator"]
        .iter()
        .any(|k| object.contains_key(*k));
    composed || super::pick_type(schema, object) != "object"
}

/// Whether the `$ref` that reached a schema changes what it generates
/// (its discriminator's subtype, its `allOf` tag).
fn reference_matters(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|o| o.contains_key("discriminator") || o.contains_key("allOf"))
}

/// Whether `value` is of one of `types` (any, when none is named).
fn fits_types(value: &Value, types: &[&str]) -> bool {
    types.is_empty()
        || types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            _ => false,
        })
}

struct NodeCompiler<'c> {
    arena: &'c mut Arena,
    document: &'c Value,
    patterns: &'c PatternCache,
    pending: &'c Pending,
    queue: &'c mut Vec<Pending>,
}

impl NodeCompiler<'_> {
    /// A child of the schema being compiled, at `tokens` below it.
    fn child(&mut self, child: &Value, tokens: &[&str], name: Option<&str>) -> NodeId {
        let at = tokens
            .iter()
            .fold(self.pending.pointer.clone(), |at, token| {
                pointer::join(&at, token)
            });
        self.child_at(child, &at, name)
    }

    fn child_at(&mut self, child: &Value, at: &str, name: Option<&str>) -> NodeId {
        self.arena.edge(
            self.document,
            (&self.pending.source, child, at),
            name,
            self.pending.merges,
            self.queue,
        )
    }

    /// A schema made by merging, owned by the arena from now on.
    fn merged(&mut self, value: Value, name: Option<&str>) -> NodeId {
        let value = Arc::new(value);
        self.arena.merges.push(value.clone());
        self.arena.edge(
            self.document,
            (&Source::Merged(value.clone()), &value, ""),
            name,
            self.pending.merges + 1,
            self.queue,
        )
    }

    /// The node's kind, its example, and whether it is certain on its own.
    fn kind(&mut self, schema: &Value) -> (Kind, Option<Value>, bool) {
        let Some(object) = schema.as_object() else {
            return (Kind::Word, None, schema == &Value::Bool(true));
        };
        let types = crate::declared_types(schema);
        let only = |allowed: &[&str]| {
            object
                .keys()
                .all(|k| is_annotation(k) || allowed.contains(&k.as_str()))
        };
        if let Some(value) = object.get("const") {
            let certain = only(&["const", "type"]) && fits_types(value, &types);
            return (Kind::Const(value.clone()), None, certain);
        }
        if let Some(Value::Array(values)) = object.get("enum")
            && !values.is_empty()
        {
            let non_null: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
            let certain = only(&["enum", "type"])
                && if non_null.is_empty() {
                    fits_types(&Value::Null, &types)
                } else {
                    non_null.iter().all(|v| fits_types(v, &types))
                };
            return (Kind::Enum(non_null), None, certain);
        }
        let example = match object.get("examples") {
            Some(Value::Array(examples)) if !examples.is_empty() => examples.first().cloned(),
            _ => object.get("example").cloned(),
        };
        let name = self.pending.name.clone();
        let name = name.as_deref();
        let reference = self.pending.reference.clone();
        if let Some(subtype) = super::mapped_subtype(object, reference.as_deref())
            && self
                .document
                .pointer(subtype.trim_start_matches('#'))
                .is_some()
        {
            let target = serde_json::json!({"$ref": subtype});
            let child = self.child_at(&target, "", name);
            return (Kind::Subtype(child), example, false);
        }
        if object.contains_key("allOf") {
            let merged = merge::all_of(self.document, schema);
            let tag = merged
                .get("discriminator")
                .and_then(|d| tag_rule(d, reference.as_deref()));
            let merged = self.merged(merged, name);
            return (Kind::AllOf { merged, tag }, example, false);
        }
        for combinator in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = object.get(combinator)
                && !branches.is_empty()
            {
                let kind = self.choice(object, combinator, branches, name);
                let certain = combinator == "anyOf"
                    && !object.contains_key("discriminator")
                    && object
                        .keys()
                        .all(|k| k == "anyOf" || (is_annotation(k) && k != "discriminator"));
                return (kind, example, certain);
            }
        }
        let typed_certain = object.keys().all(|k| is_honoured(k))
            && match object.get("type") {
                None => true,
                Some(Value::String(t)) => is_type(t),
                Some(Value::Array(ts)) => ts.iter().all(|t| t.as_str().is_some_and(is_type)),
                Some(_) => false,
            };
        let (kind, certain) = match super::pick_type(schema, object) {
            "object" => self.object(object),
            "array" => self.array(object, name),
            "integer" => integer(object, name),
            "number" => number(object, name),
            "boolean" => (Kind::Boolean, true),
            "null" => (Kind::Null, true),
            _ => self.string(object, name),
        };
        (kind, example, certain && typed_certain)
    }

    fn choice(
        &mut self,
        object: &Map<String, Value>,
        combinator: &str,
        branches: &[Value],
        name: Option<&str>,
    ) -> Kind {
        // Prefer branches that are not just `null`, so answers carry data.
        let indexed: Vec<(usize, &Value)> = branches.iter().enumerate().collect();
        let mut candidates: Vec<(usize, &Value)> = indexed
            .iter()
            .copied()
            .filter(|(_, b)| {
                pointer::follow(self.document, b)
                    .unwrap_or(&Value::Bool(true))
                    .get("type")
                    .and_then(Value::as_str)
                    != Some("null")
            })
            .collect();
        if candidates.is_empty() {
            candidates = indexed;
        }
        // Keywords beside the combinator (shared properties) apply too.
        let mut base = object.clone();
        base.remove(combinator);
        let merge_base = base
            .keys()
            .any(|k| matches!(k.as_str(), "properties" | "required" | "type"));
        let discriminator = object.get("discriminator");
        let property = discriminator
            .and_then(|d| d.get("propertyName"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let base = Value::Object(base);
        let branches = candidates
            .into_iter()
            .map(|(index, branch)| {
                let child = if merge_base {
                    self.merged(merge::merge_pair(self.document, &base, branch), name)
                } else {
                    self.child(branch, &[combinator, &index.to_string()], name)
                };
                let tag = discriminator.and_then(|d| super::discriminator_tag(d, branch));
                (child, tag)
            })
            .collect();
        Kind::Choice { branches, property }
    }

    fn object(&mut self, object: &Map<String, Value>) -> (Kind, bool) {
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut certain = !object.contains_key("minProperties")
            && !object.contains_key("maxProperties")
            && object.get("required").is_none_or(Value::is_array);
        let mut properties = Vec::new();
        let declared = object.get("properties");
        if let Some(Value::Object(declared)) = declared {
            for (key, property) in declared {
                let is_required = required.contains(&key.as_str());
                if crate::flagged(self.document, property, "writeOnly") {
                    certain &= !is_required;
                    continue;
                }
                let child = self.child(property, &["properties", key], Some(key));
                properties.push((key.clone(), child, is_required));
            }
        } else if declared.is_some() {
            certain = false;
        }
        let additional = object.get("additionalProperties");
        let mut undeclared: Vec<(String, Option<NodeId>)> = Vec::new();
        for key in &required {
            let is_declared = declared.and_then(|p| p.get(*key)).is_some();
            if is_declared || undeclared.iter().any(|(k, _)| k == key) {
                continue;
            }
            let node = match additional {
                Some(extra @ Value::Object(_)) => {
                    Some(self.child(extra, &["additionalProperties"], Some(key)))
                }
                _ => None,
            };
            certain &= node.is_some() || !matches!(additional, Some(Value::Bool(false)));
            undeclared.push(((*key).to_owned(), node));
        }
        let extra = match additional {
            Some(Value::Bool(false)) => None,
            Some(extra @ Value::Object(_)) => {
                Some(self.child(extra, &["additionalProperties"], None))
            }
            _ => Some(self.arena.word_node(true)),
        };
        let plan = ObjectPlan {
            properties,
            max_properties: object
                .get("maxProperties")
                .and_then(Value::as_u64)
                .map(|m| m as usize),
            undeclared,
            min_properties: object
                .get("minProperties")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            extra,
            wants_map: declared.is_none() && matches!(additional, Some(Value::Object(_))),
        };
        (Kind::Object(plan), certain)
    }

    fn array(&mut self, object: &Map<String, Value>, name: Option<&str>) -> (Kind, bool) {
        let (min, max) = super::bounds_of(object, "minItems", "maxItems", 64);
        let prefix = match object.get("prefixItems") {
            Some(Value::Array(prefix)) => prefix
                .iter()
                .enumerate()
                .map(|(i, item)| self.child(item, &["prefixItems", &i.to_string()], name))
                .collect(),
            _ => Vec::new(),
        };
        let items = match object.get("items") {
            Some(items) => self.child(items, &["items"], name),
            None => self.arena.word_node(true),
        };
        let stated_min = object.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let certain = min <= max && stated_min <= 64;
        let unique = object.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        let plan = ArrayPlan {
            min,
            max,
            prefix,
            items,
            unique,
        };
        (Kind::Array(plan), certain)
    }

    fn string(&mut self, object: &Map<String, Value>, name: Option<&str>) -> (Kind, bool) {
        let (min, max) = super::bounds_of(object, "minLength", "maxLength", 4096);
        let format = object.get("format").and_then(Value::as_str);
        let pattern = object
            .get("pattern")
            .and_then(Value::as_str)
            .map(|p| self.patterns.generator(p, min, max));
        let stated_min = object.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let certain = min <= max
            && stated_min <= 4096
            && match (&pattern, format) {
                (Some(generator), None) => generator.is_some(),
                (Some(_), Some(_)) => false,
                (None, Some(format)) => format_is_certain(format),
                (None, None) => true,
            };
        let plan = StringPlan {
            min,
            max,
            format: format.map(str::to_owned),
            pattern,
            fake: NameFake::of(name, max),
        };
        (Kind::String(plan), certain)
    }
}

fn is_type(name: &str) -> bool {
    matches!(
        name,
        "object" | "array" | "string" | "integer" | "number" | "boolean" | "null"
    )
}

/// Bounds stated twice, beyond what synthesis keeps exact, or exclusive
/// bounds written as booleans: validity is not certain.
fn bounds_are_plain(object: &Map<String, Value>) -> bool {
    let number = |k: &str| object.get(k).map(Value::as_f64);
    let both = |a: &str, b: &str| object.contains_key(a) && object.contains_key(b);
    !both("minimum", "exclusiveMinimum")
        && !both("maximum", "exclusiveMaximum")
        && ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
            .iter()
            .all(|k| match number(k) {
                None => true,
                Some(Some(v)) => v.abs() <= 9.0e15,
                Some(None) => false,
            })
}

fn integer(object: &Map<String, Value>, name: Option<&str>) -> (Kind, bool) {
    let (hint_low, hint_high) = super::fakes::integer_range(name);
    let (low, high) = super::bounds(object, hint_low as f64, hint_high as f64, true);
    let multiple = object
        .get("multipleOf")
        .and_then(Value::as_f64)
        .filter(|m| *m > 0.0);
    let certain = low <= high
        && bounds_are_plain(object)
        && object.get("multipleOf").is_none_or(|_| {
            multiple.is_some_and(|m| m.fract() == 0.0 && (low / m).ceil() <= (high / m).floor())
        });
    (
        Kind::Integer {
            low,
            high,
            multiple,
        },
        certain,
    )
}

fn number(object: &Map<String, Value>, name: Option<&str>) -> (Kind, bool) {
    let (hint_low, hint_high) = super::fakes::number_range(name);
    let (low, high) = super::bounds(object, hint_low, hint_high, false);
    let multiple = object
        .get("multipleOf")
        .and_then(Value::as_f64)
        .filter(|m| *m > 0.0)
        .map(|m| (m, super::decimals_of(m)));
    let certain = low <= high && bounds_are_plain(object) && !object.contains_key("multipleOf");
    (
        Kind::Number {
            low,
            high,
            multiple,
        },
        certain,
    )
}

/// The tag rule of a merged subtype's discriminator (`None` when it names
/// no property or has no mapping: nothing to tag).
fn tag_rule(discriminator: &Value, reference: Option<&str>) -> Option<TagRule> {
    let property = discriminator.get("propertyName").and_then(Value::as_str)?;
    let Some(Value::Object(mapping)) = discriminator.get("mapping") else {
        return None;
    };
    let named = reference.and_then(|reference| {
        let branch = serde_json::json!({"$ref": reference});
        super::discriminator_tag(discriminator, &branch).filter(|tag| mapping.contains_key(tag))
    });
    Some(TagRule {
        property: property.to_owned(),
        named,
        mapping: mapping.keys().cloned().collect(),
    })
}
