//! Deterministic example data from JSON Schema 2020-12.
//!
//! The same schema, seed and attempt always give the same value. Values look
//! real: formats are honoured, property names pick matching fakes (`email`,
//! `city`, `amount`, `created_at`…), and every constraint the schema states is
//! aimed at. Each schema is compiled once into a plan (see [`plan`]); a
//! value the plan cannot prove valid is checked with the schema's
//! validator, and another attempt made when it fails (see
//! [`Plans::synthesize`]).

mod fakes;
mod merge;
mod patterns;
mod plan;
mod sink;

use std::sync::{Arc, RwLock};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

pub use patterns::PatternCache;
use plan::{Arena, ArrayPlan, Kind, Node, NodeId, ObjectPlan, StringPlan};
use sink::{JsonSink, Sink, ValueSink};

use crate::{SchemaValidator, pointer::follow};

/// Nesting below which optional properties are still filled in.
const OPTIONAL_DEPTH: usize = 4;
/// Nesting at which generation stops recursing (recursive schemas).
const MAX_DEPTH: usize = 12;
/// Nesting, composition included, past which only a minimal value is made.
const MAX_COMPOSED_DEPTH: usize = 48;
/// Values generated per attempt before the rest are minimal.
const NODE_BUDGET: usize = 20_000;
/// Attempts made to find a value that validates.
pub const MAX_ATTEMPTS: u32 = 12;

/// Derives a 64-bit seed from parts, stable across platforms and releases.
pub fn seed_from<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut seed = SeedHasher::default();
    for part in parts {
        seed.part(&[part]);
    }
    seed.finish()
}

/// [`seed_from`] fed part by part, a part in pieces: a caller whose parts
/// are joined text (`name=value`) hashes them without joining them.
#[derive(Default)]
pub struct SeedHasher(Sha256);

impl SeedHasher {
    /// Adds the part made of `pieces` one after another.
    pub fn part(&mut self, pieces: &[&[u8]]) {
        let length: usize = pieces.iter().map(|p| p.len()).sum();
        self.0.update((length as u64).to_le_bytes());
        for piece in pieces {
            self.0.update(piece);
        }
    }

    pub fn finish(self) -> u64 {
        let digest = self.0.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("digest is 32 bytes"))
    }
}

/// A realistic value of `kind`, a string format (`uuid`, `date-time`,
/// `email`…) or a property name (`name`, `city`, `iban`…), drawn from `seed`.
pub fn fake(kind: &str, seed: u64) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    fakes::formatted(kind, &mut rng).unwrap_or_else(|| fakes::for_name(Some(kind), 64, &mut rng))
}

/// A random string of `length` lowercase letters and digits, drawn from `seed`.
pub fn alphanumeric(length: usize, seed: u64) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    fakes::alphanumeric(&mut rng, length)
}

/// A string matching `pattern` (ECMA-262) of `min..=max` characters, drawn
/// from `seed`; `None` when the pattern cannot be generated.
pub fn matching(pattern: &str, min: usize, max: usize, seed: u64) -> Option<String> {
    static PATTERNS: std::sync::LazyLock<PatternCache> =
        std::sync::LazyLock::new(PatternCache::default);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    PATTERNS.sample(pattern, &mut rng, min, max)
}

/// Synthesis plans of one document, compiled as schemas are first asked
/// for and shared by every synthesis after (see [`plan`]).
#[derive(Debug)]
pub struct Plans {
    document: Arc<Value>,
    patterns: PatternCache,
    arena: RwLock<Arena>,
}

/// A synthesized value, and whether it validates.
#[derive(Debug)]
pub struct Synthesis {
    pub value: Value,
    pub valid: bool,
    /// Valid by construction: the plan proved it, no validator ran.
    pub proven: bool,
}

impl Plans {
    pub fn new(document: Arc<Value>) -> Self {
        Self {
            document,
            patterns: PatternCache::default(),
            arena: RwLock::default(),
        }
    }

    pub fn document(&self) -> &Arc<Value> {
        &self.document
    }

    /// The plan of the schema at `pointer`, compiled the first time (what
    /// its first synthesis pays once, apart from what each one costs);
    /// `None` when the pointer names nothing.
    pub fn root(&self, pointer: &str) -> Option<Root> {
        if let Some(compiled) = self.arena.read().ok().and_then(|a| a.root(pointer)) {
            return compiled.map(Root);
        }
        let mut arena = self.arena.write().ok()?;
        arena
            .compile(&self.document, pointer, &self.patterns)
            .map(Root)
    }

    /// [`Self::synthesize`] for a root already looked up (a caller that
    /// synthesizes one schema often keeps its root), with the validator
    /// asked for only when a value needs checking: a schema whose values
    /// are proven valid never compiles one (a compiled validator of a
    /// Stripe response holds ~7 MiB).
    pub fn synthesize_root<'v>(
        &self,
        root: Root,
        seed: u64,
        validator: &dyn Fn() -> Option<&'v SchemaValidator>,
    ) -> Synthesis {
        match self.arena.read() {
            Ok(arena) => attempts(&arena, Some(root.0), seed, validator),
            Err(_) => nothing(),
        }
    }

    /// [`Self::synthesize_root`] written as JSON: a value its plan proves
    /// valid is written straight out, never built as a tree (most of what
    /// a fresh answer cost was building, hashing and freeing the tree). A
    /// doubtful one is read back and checked; when it fails, the next
    /// attempts are made as trees.
    pub fn synthesize_json<'v>(
        &self,
        root: Root,
        seed: u64,
        validator: &dyn Fn() -> Option<&'v SchemaValidator>,
    ) -> Made {
        let Ok(arena) = self.arena.read() else {
            return Made::Value(nothing());
        };
        let as_trees = || Made::Value(attempts(&arena, Some(root.0), seed, validator));
        if !arena.nodes[root.0].certain {
            return as_trees();
        }
        let mut generator = Generator::new(&arena.nodes, seed, 0);
        let mut sink = JsonSink::with_capacity(JSON_CAPACITY);
        generator.generate(root.0, 0, &mut sink);
        let json = sink.finish();
        if !generator.doubtful {
            return Made::Json(json);
        }
        // Past serde_json's nesting limit (a deep `const`), made as trees.
        let Ok(value) = serde_json::from_slice::<Value>(&json) else {
            return as_trees();
        };
        match validator() {
            Some(v) if !v.is_valid(&value) => {
                Made::Value(attempts_from(&arena, root.0, seed, 1, validator))
            }
            _ => Made::Checked(value, json),
        }
    }

    /// Generates a value for the schema at `pointer` that passes
    /// `validator`, trying up to [`MAX_ATTEMPTS`] variations; the last
    /// attempt is returned (not valid) when none validates. A value the
    /// plan proves valid is not validated again.
    pub fn synthesize(
        &self,
        pointer: &str,
        seed: u64,
        validator: Option<&SchemaValidator>,
    ) -> Synthesis {
        match self.root(pointer) {
            Some(root) => self.synthesize_root(root, seed, &|| validator),
            None => nothing(),
        }
    }
}

/// [`Plans::synthesize`] for a document synthesized from once (compiling
/// its plan is not amortized).
pub fn synthesize_valid(
    document: &Value,
    pointer: &str,
    seed: u64,
    patterns: &PatternCache,
    validator: Option<&SchemaValidator>,
) -> (Value, bool) {
    let mut arena = Arena::default();
    let root = arena.compile(document, pointer, patterns);
    let made = attempts(&arena, root, seed, &|| validator);
    (made.value, made.valid)
}

/// Bytes first reserved for a value written as JSON: most answers fit.
const JSON_CAPACITY: usize = 512;

/// What [`Plans::synthesize_json`] made.
#[derive(Debug)]
pub enum Made {
    /// Proven valid: only its JSON was written.
    Json(Vec<u8>),
    /// Written as JSON, read back and validated: both.
    Checked(Value, Vec<u8>),
    /// Made as trees (see [`Synthesis`]): its plan proves nothing, or the
    /// JSON attempt failed its check.
    Value(Synthesis),
}

/// The compiled plan of one schema (see [`Plans::root`]).
#[derive(Debug, Clone, Copy)]
pub struct Root(NodeId);

/// What a pointer that names no schema synthesizes.
fn nothing() -> Synthesis {
    Synthesis {
        value: Value::Null,
        valid: false,
        proven: false,
    }
}

fn attempts<'v>(
    arena: &Arena,
    root: Option<NodeId>,
    seed: u64,
    validator: &dyn Fn() -> Option<&'v SchemaValidator>,
) -> Synthesis {
    match root {
        Some(root) => attempts_from(arena, root, seed, 0, validator),
        None => nothing(),
    }
}

/// The attempts from `first` on: each a variation of the last, until one
/// validates.
fn attempts_from<'v>(
    arena: &Arena,
    root: NodeId,
    seed: u64,
    first: u32,
    validator: &dyn Fn() -> Option<&'v SchemaValidator>,
) -> Synthesis {
    let mut last = Value::Null;
    for attempt in first..MAX_ATTEMPTS {
        let mut generator = Generator::new(&arena.nodes, seed, attempt);
        last = generator.value_of(root, 0);
        let proven = arena.nodes[root].certain && !generator.doubtful;
        // Asked for only here: a proven value never compiles the validator.
        let check = if proven { None } else { validator() };
        match check {
            Some(v) if !v.is_valid(&last) => continue,
            _ => {
                return Synthesis {
                    value: last,
                    valid: true,
                    proven,
                };
            }
        }
    }
    Synthesis {
        value: last,
        valid: false,
        proven: false,
    }
}

/// One attempt at a value, walking compiled nodes.
struct Generator<'a> {
    nodes: &'a [Node],
    rng: Xoshiro256PlusPlus,
    use_examples: bool,
    optional_depth: usize,
    budget: usize,
    /// Set when the value took a path its plan cannot vouch for (an
    /// example, a minimal value, a fallback): it must be validated.
    doubtful: bool,
}

impl<'a> Generator<'a> {
    /// Attempt number `attempt` for `seed`.
    fn new(nodes: &'a [Node], seed: u64, attempt: u32) -> Self {
        Self {
            nodes,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(u64::from(attempt))),
            // Schema examples first; they are what the provider wants shown.
            use_examples: attempt == 0,
            // Later attempts fill fewer optional members: fewer ways to fail.
            optional_depth: if attempt >= MAX_ATTEMPTS / 2 {
                0
            } else {
                OPTIONAL_DEPTH
            },
            budget: NODE_BUDGET,
            doubtful: false,
        }
    }

    /// The value of node `id` as a tree: what a caller that reads or
    /// changes it (a discriminator's tag, a uniqueness check) needs.
    fn value_of(&mut self, id: NodeId, depth: usize) -> Value {
        let mut sink = ValueSink::default();
        self.generate(id, depth, &mut sink);
        sink.finish()
    }

    fn minimal(&mut self, id: NodeId, out: &mut impl Sink) {
        self.doubtful = true;
        out.value(&self.nodes[id].minimal);
    }

    /// A member or item of a value at `depth`: minimal past [`MAX_DEPTH`].
    fn member(&mut self, id: NodeId, depth: usize, out: &mut impl Sink) {
        if depth >= MAX_DEPTH {
            self.minimal(id, out);
        } else {
            self.generate(id, depth + 1, out);
        }
    }

    fn generate(&mut self, id: NodeId, depth: usize, out: &mut impl Sink) {
        // Composition counts as nesting too (`A: oneOf: [$ref: A, …]`), so
        // every path through a schema ends here at the latest.
        // A node budget bounds the work a hostile schema (several required
        // recursive members) can ask for: past it, only minimal values.
        if depth > MAX_COMPOSED_DEPTH || self.budget == 0 {
            return self.minimal(id, out);
        }
        self.budget -= 1;
        let node = &self.nodes[id];
        match &node.kind {
            // `true` accepts anything, `false` nothing; a string is a fine answer to both.
            Kind::Word => return out.string(fakes::word(&mut self.rng)),
            Kind::Const(value) => return out.value(value),
            Kind::Enum(values) if values.is_empty() => return out.null(),
            Kind::Enum(values) => {
                return out.value(&values[self.rng.random_range(0..values.len())]);
            }
            _ => {}
        }
        if self.use_examples
            && let Some(example) = &node.example
        {
            self.doubtful = true;
            return out.value(example);
        }
        match &node.kind {
            Kind::Subtype(subtype) => self.generate(*subtype, depth + 1, out),
            Kind::AllOf {
                merged,
                tag: Some(tag),
            } => {
                let mut value = self.value_of(*merged, depth + 1);
                tag.apply(&mut value);
                out.owned(value);
            }
            Kind::AllOf { merged, tag: None } => self.generate(*merged, depth + 1, out),
            Kind::Choice { branches, property } => {
                let (branch, tag) = &branches[self.rng.random_range(0..branches.len())];
                let (Some(property), Some(tag)) = (property, tag) else {
                    return self.generate(*branch, depth + 1, out);
                };
                let mut value = self.value_of(*branch, depth + 1);
                if let Value::Object(map) = &mut value {
                    map.insert(property.clone(), Value::String(tag.clone()));
                }
                out.owned(value);
            }
            Kind::Object(object) => self.object(object, depth, out),
            Kind::Array(array) => self.array(array, depth, out),
            Kind::Integer {
                low,
                high,
                multiple,
            } => out.number(self.integer(*low, *high, *multiple)),
            Kind::Number {
                low,
                high,
                multiple,
            } => out.number(self.number(*low, *high, *multiple)),
            Kind::Boolean => out.boolean(self.rng.random_bool(0.5)),
            Kind::Null => out.null(),
            Kind::String(string) => out.string(self.string(string)),
            Kind::Word | Kind::Const(_) | Kind::Enum(_) | Kind::Minimal => self.minimal(id, out),
        }
    }

    fn object(&mut self, object: &ObjectPlan, depth: usize, out: &mut impl Sink) {
        let target = if object.wants_map && depth < self.optional_depth {
            object.min_properties.max(1)
        } else {
            object.min_properties
        };
        // The names written, kept only where made-up names must not repeat one.
        let mut names: Option<Vec<String>> = (object.extra.is_some() && target > 0).then(Vec::new);
        let mut written = 0;
        out.begin_object(object.properties.len() + object.undeclared.len());
        for (key, property, required) in &object.properties {
            if !required && (depth >= self.optional_depth || depth >= MAX_DEPTH) {
                continue;
            }
            if !required && object.max_properties.is_some_and(|m| written >= m) {
                continue;
            }
            out.key(key);
            self.member(*property, depth, out);
            written += 1;
            if let Some(names) = &mut names {
                names.push(key.clone());
            }
        }
        // Required names with no declared schema still have to be present.
        for (key, schema) in &object.undeclared {
            out.key(key);
            match schema {
                Some(schema) => self.generate(*schema, depth + 1, out),
                None => out.string(fakes::word(&mut self.rng)),
            }
            written += 1;
            if let Some(names) = &mut names {
                names.push(key.clone());
            }
        }
        if let (Some(extra), Some(mut names)) = (object.extra, names) {
            let mut index = 1;
            while written < target && index < 64 {
                let key = format!("{}_{index}", fakes::word(&mut self.rng));
                if !names.contains(&key) {
                    out.key(&key);
                    self.member(extra, depth, out);
                    written += 1;
                    names.push(key);
                }
                index += 1;
            }
        }
        out.end_object();
    }

    fn array(&mut self, array: &ArrayPlan, depth: usize, out: &mut impl Sink) {
        let wanted = if depth >= self.optional_depth || depth >= MAX_DEPTH {
            array.min
        } else {
            array
                .min
                .max(self.rng.random_range(1..=2))
                .max(array.prefix.len())
        };
        let count = wanted.min(array.max);
        let schema_at = |index: usize| array.prefix.get(index).copied().unwrap_or(array.items);
        if !array.unique {
            out.begin_array(count);
            for index in 0..count {
                self.member(schema_at(index), depth, out);
            }
            out.end_array();
            if count < array.min {
                self.doubtful = true;
            }
            return;
        }
        // Unique items are compared: made as trees.
        let mut items: Vec<Value> = Vec::with_capacity(count);
        let mut tries = 0;
        while items.len() < count && tries < count * 8 + 8 {
            tries += 1;
            let mut sink = ValueSink::default();
            self.member(schema_at(items.len()), depth, &mut sink);
            let value = sink.finish();
            if items.contains(&value) {
                continue;
            }
            items.push(value);
        }
        if items.len() < array.min {
            self.doubtful = true;
        }
        out.owned(Value::Array(items));
    }

    fn integer(&mut self, low: f64, high: f64, multiple: Option<f64>) -> Number {
        let value = match multiple {
            Some(m) => {
                let (k_low, k_high) = ((low / m).ceil(), (high / m).floor());
                if k_low > k_high {
                    low
                } else {
                    self.range_f64(k_low, k_high).round() * m
                }
            }
            None => self.range_f64(low, high).round(),
        };
        let clamped = value.clamp(low, high.max(low));
        // f64 covers every bound a JSON document can state; i64 is the wire type.
        Number::from(clamped as i64)
    }

    fn number(&mut self, low: f64, high: f64, multiple: Option<(f64, i32)>) -> Number {
        let value = match multiple {
            Some((m, decimals)) => {
                let (k_low, k_high) = ((low / m).ceil(), (high / m).floor());
                let k = if k_low > k_high {
                    k_low
                } else {
                    self.range_f64(k_low, k_high).round()
                };
                // Round away binary noise so the quotient stays integral for the validator.
                round_to(k * m, decimals)
            }
            None => round_to(self.range_f64(low, high), 2).clamp(low, high.max(low)),
        };
        Number::from_f64(value).unwrap_or_else(|| 0.into())
    }

    fn range_f64(&mut self, low: f64, high: f64) -> f64 {
        if !(low.is_finite() && high.is_finite()) || high <= low {
            return low;
        }
        low + self.rng.random::<f64>() * (high - low)
    }

    fn string(&mut self, string: &StringPlan) -> String {
        let (min, max) = (string.min, string.max);
        let format = string.format.as_deref();
        let text = if let Some(generator) = &string.pattern {
            match generator
                .as_ref()
                .and_then(|g| patterns::sample(g, &mut self.rng, min, max))
            {
                Some(text) => return text,
                None => {
                    self.doubtful = true;
                    fakes::word(&mut self.rng)
                }
            }
        } else if let Some(text) = format.and_then(|f| fakes::formatted(f, &mut self.rng)) {
            text
        } else {
            string.fake.generate(&mut self.rng)
        };
        let length = text.chars().count();
        if format.is_some() && !(min..=max).contains(&length) {
            // Cut or padded, a formatted value may no longer be one.
            self.doubtful = true;
        }
        match format {
            Some("date-time") if length < min => pad_date_time(text, min),
            _ => fit_length(text, min, max, &mut self.rng),
        }
    }
}

/// The type a value is generated as: the first named that is not `null`.
fn pick_type(schema: &Value, object: &Map<String, Value>) -> &'static str {
    let chosen = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => {
            let mut named = types.iter().filter_map(Value::as_str).peekable();
            match named.peek() {
                None => infer_type(object),
                Some(_) => named.find(|t| *t != "null").unwrap_or("null"),
            }
        }
        _ => infer_type(object),
    };
    match chosen {
        "object" => "object",
        "array" => "array",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "null" => "null",
        _ => "string",
    }
}

/// A `min*`/`max*` keyword pair as a range; the minimum is capped so a
/// hostile `minLength: 1e12` cannot make synthesis allocate without end.
fn bounds_of(
    object: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    min_cap: u64,
) -> (usize, usize) {
    let min = object
        .get(min_key)
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(min_cap) as usize;
    let max = object
        .get(max_key)
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    (min, max)
}

fn infer_type(object: &Map<String, Value>) -> &'static str {
    if object.contains_key("properties")
        || object.contains_key("additionalProperties")
        || object.contains_key("required")
    {
        "object"
    } else if object.contains_key("items") || object.contains_key("prefixItems") {
        "array"
    } else if object.contains_key("minimum")
        || object.contains_key("maximum")
        || object.contains_key("multipleOf")
    {
        "number"
    } else {
        "string"
    }
}

/// The inclusive range a number must fall in, hints narrowed to the schema.
fn bounds(object: &Map<String, Value>, hint_low: f64, hint_high: f64, integer: bool) -> (f64, f64) {
    let step = if integer { 1.0 } else { 0.01 };
    let low = object.get("minimum").and_then(Value::as_f64).or_else(|| {
        object
            .get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .map(|m| if integer { m.floor() + 1.0 } else { m + step })
    });
    let high = object.get("maximum").and_then(Value::as_f64).or_else(|| {
        object
            .get("exclusiveMaximum")
            .and_then(Value::as_f64)
            .map(|m| if integer { m.ceil() - 1.0 } else { m - step })
    });
    let (low, high) = match (low, high) {
        (Some(l), Some(h)) => (l, h),
        (Some(l), None) => (
            l,
            if hint_high > l {
                hint_high.max(l + 1.0).min(l + 100_000.0)
            } else {
                l + 1000.0
            },
        ),
        (None, Some(h)) => (if hint_low < h { hint_low } else { h - 1000.0 }, h),
        (None, None) => (hint_low, hint_high),
    };
    let (low, high) = if integer {
        (low.ceil(), high.floor())
    } else {
        (low, high)
    };
    // Keep well inside what i64 and JSON numbers carry exactly.
    let limit = 9.0e15;
    (low.clamp(-limit, limit), high.clamp(-limit, limit))
}

fn decimals_of(step: f64) -> i32 {
    let mut decimals = 0;
    let mut scaled = step;
    while decimals < 10 && (scaled - scaled.round()).abs() > 1e-9 {
        scaled *= 10.0;
        decimals += 1;
    }
    decimals
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

/// Lengthens an RFC 3339 date-time with fractional seconds, which keeps it valid.
fn pad_date_time(text: String, min: usize) -> String {
    let Some(stem) = text.strip_suffix('Z') else {
        return text;
    };
    let digits = min.saturating_sub(stem.chars().count() + 2).max(1);
    format!("{stem}.{}Z", "0".repeat(digits))
}

/// Pads or cuts `text` to fit `[min, max]` characters.
fn fit_length(mut text: String, min: usize, max: usize, rng: &mut Xoshiro256PlusPlus) -> String {
    let length = text.chars().count();
    if length > max {
        text = text.chars().take(max).collect();
    }
    while text.chars().count() < min {
        text.push(char::from(b'a' + rng.random_range(0..26u8)));
    }
    text
}

/// The smallest value a schema plausibly accepts, for where recursion
/// stops: within the schema's bounds (`minLength`, `minimum`, `minItems`),
/// never deeper than a few levels.
fn minimal(document: &Value, schema: &Value) -> Value {
    minimal_at(document, schema, 0)
}

fn minimal_at(document: &Value, schema: &Value, depth: usize) -> Value {
    const MAX_DEPTH: usize = 4;
    let schema = follow(document, schema).unwrap_or(&Value::Bool(true));
    let types = crate::declared_types(schema);
    if types.contains(&"null") {
        return Value::Null;
    }
    let empty = Map::new();
    let object = schema.as_object().unwrap_or(&empty);
    if let Some(value) = object.get("const") {
        return value.clone();
    }
    if let Some(first) = object
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    match types.first().copied().unwrap_or_else(|| infer_type(object)) {
        "object" => Value::Object(Map::new()),
        "array" => {
            let (min, _) = bounds_of(object, "minItems", "maxItems", 16);
            let item = object.get("items").unwrap_or(&Value::Bool(true));
            if min == 0 || depth >= MAX_DEPTH {
                return Value::Array(Vec::new());
            }
            Value::Array(vec![minimal_at(document, item, depth + 1); min])
        }
        kind @ ("integer" | "number") => {
            let integer = kind == "integer";
            let (low, high) = bounds(object, 0.0, 0.0, integer);
            // The value closest to zero within the bounds.
            let value = if low > 0.0 {
                low
            } else if high < 0.0 {
                high
            } else {
                0.0
            };
            if integer {
                Value::Number(Number::from(value as i64))
            } else {
                Number::from_f64(value).map_or(Value::Number(0.into()), Value::Number)
            }
        }
        "boolean" => Value::Bool(false),
        _ => {
            let (min, _) = bounds_of(object, "minLength", "maxLength", 4096);
            Value::String("a".repeat(min))
        }
    }
}

/// The first subtype (`#/components/schemas/Photo`) the discriminator of a
/// base schema reached by `reference` maps to; none for a schema that
/// composes itself (`oneOf`, `allOf`) or is itself one of the targets.
fn mapped_subtype(object: &Map<String, Value>, reference: Option<&str>) -> Option<String> {
    let reference = reference?;
    if ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| object.contains_key(*k))
    {
        return None;
    }
    let Some(Value::Object(mapping)) = object.get("discriminator")?.get("mapping") else {
        return None;
    };
    let targets: Vec<String> = mapping
        .values()
        .filter_map(Value::as_str)
        .map(|t| {
            if t.starts_with('#') {
                t.to_owned()
            } else {
                format!("#/components/schemas/{t}")
            }
        })
        .collect();
    if targets.iter().any(|t| t == reference) {
        return None;
    }
    targets.into_iter().next()
}

/// The discriminator value naming `branch`: a `mapping` key, else the
/// referenced schema's name.
fn discriminator_tag(discriminator: &Value, branch: &Value) -> Option<String> {
    let reference = branch.get("$ref")?.as_str()?;
    if let Some(Value::Object(mapping)) = discriminator.get("mapping") {
        for (tag, target) in mapping {
            let target = target.as_str().unwrap_or("");
            if target == reference || reference.rsplit('/').next() == Some(target) {
                return Some(tag.clone());
            }
        }
    }
    reference.rsplit('/').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Where synthesis stops recursing, the value still keeps the schema's
    /// bounds (it used to be `""` and `0` whatever `minLength` and
    /// `minimum` said).
    #[test]
    fn write_only_members_are_left_out_even_when_required() {
        let document = json!({"components": {"schemas": {
            "Position": {"type": "object", "writeOnly": true,
                         "properties": {"row": {"type": "integer"}}, "required": ["row"]},
            "Gadget": {"type": "object", "required": ["id", "position"], "properties": {
                "id": {"type": "integer"},
                "position": {"allOf": [{"$ref": "#/components/schemas/Position"}], "readOnly": true}
            }}
        }}});
        let (gadget, _) = synthesize_valid(
            &document,
            "/components/schemas/Gadget",
            7,
            &PatternCache::default(),
            None,
        );
        assert!(gadget.get("id").is_some(), "{gadget}");
        assert!(gadget.get("position").is_none(), "{gadget}");
    }

    #[test]
    fn minimal_values_keep_their_bounds() {
        let document = json!({});
        for (schema, expected) in [
            (json!({"type": "string", "minLength": 3}), json!("aaa")),
            (json!({"type": "integer", "minimum": 5}), json!(5)),
            (json!({"type": "integer", "exclusiveMinimum": 5}), json!(6)),
            (json!({"type": "number", "maximum": -2}), json!(-2.0)),
            (
                json!({"type": "integer", "minimum": -3, "maximum": 3}),
                json!(0),
            ),
            (json!({"enum": ["b", "c"]}), json!("b")),
            (
                json!({"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 1}}),
                json!(["a", "a"]),
            ),
            (
                json!({"type": ["string", "null"], "minLength": 2}),
                json!(null),
            ),
        ] {
            assert_eq!(minimal(&document, &schema), expected, "{schema}");
        }
    }
}
