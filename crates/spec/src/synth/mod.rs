//! Deterministic example data from JSON Schema 2020-12.
//!
//! The same schema, seed and attempt always give the same value. Values look
//! real: formats are honoured, property names pick matching fakes (`email`,
//! `city`, `amount`, `created_at`…), and every constraint the schema states is
//! aimed at. A caller that must guarantee validity checks the result with
//! the schema's validator and asks for another attempt when it fails (see
//! [`synthesize_valid`]).

mod fakes;
mod merge;
mod patterns;

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

pub use patterns::PatternCache;

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
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("digest is 32 bytes"))
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

/// Generates a value for the schema at `pointer` that passes `validator`,
/// trying up to [`MAX_ATTEMPTS`] variations; the last attempt is returned
/// (with `false`) when none validates.
pub fn synthesize_valid(
    document: &Value,
    pointer: &str,
    seed: u64,
    patterns: &PatternCache,
    validator: Option<&SchemaValidator>,
) -> (Value, bool) {
    let Some(schema) = document.pointer(pointer) else {
        return (Value::Null, false);
    };
    let mut last = Value::Null;
    for attempt in 0..MAX_ATTEMPTS {
        let mut synth = Synthesizer::new(document, seed.wrapping_add(u64::from(attempt)), patterns);
        // Schema examples first; they are what the provider wants shown.
        synth.use_examples = attempt == 0;
        // Later attempts fill fewer optional members: fewer ways to fail.
        synth.optional_depth = if attempt >= MAX_ATTEMPTS / 2 {
            0
        } else {
            OPTIONAL_DEPTH
        };
        last = synth.generate(schema, 0, None);
        match validator {
            Some(v) if !v.is_valid(&last) => continue,
            _ => return (last, true),
        }
    }
    (last, false)
}

pub struct Synthesizer<'a> {
    document: &'a Value,
    rng: Xoshiro256PlusPlus,
    patterns: &'a PatternCache,
    pub use_examples: bool,
    pub optional_depth: usize,
    budget: usize,
}

impl<'a> Synthesizer<'a> {
    pub fn new(document: &'a Value, seed: u64, patterns: &'a PatternCache) -> Self {
        Self {
            document,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            patterns,
            use_examples: true,
            optional_depth: OPTIONAL_DEPTH,
            budget: NODE_BUDGET,
        }
    }

    fn deref<'v>(&self, schema: &'v Value) -> &'v Value
    where
        'a: 'v,
    {
        follow(self.document, schema).unwrap_or(&Value::Bool(true))
    }

    /// One value for `schema`; `name` is the property it will be stored under.
    pub fn generate(&mut self, schema: &Value, depth: usize, name: Option<&str>) -> Value {
        // Composition counts as nesting too (`A: oneOf: [$ref: A, …]`), so
        // every path through a schema ends here at the latest.
        // A node budget bounds the work a hostile schema (several required
        // recursive members) can ask for: past it, only minimal values.
        if depth > MAX_COMPOSED_DEPTH || self.budget == 0 {
            return minimal(self.document, schema);
        }
        self.budget -= 1;
        let reference = schema.get("$ref").and_then(Value::as_str);
        let schema = self.deref(schema);
        let Some(object) = schema.as_object() else {
            // `true` accepts anything, `false` nothing; a string is a fine answer to both.
            return Value::String(fakes::word(&mut self.rng));
        };
        if let Some(value) = object.get("const") {
            return value.clone();
        }
        if let Some(Value::Array(values)) = object.get("enum")
            && !values.is_empty()
        {
            let non_null: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
            if non_null.is_empty() {
                return Value::Null;
            }
            return non_null[self.rng.random_range(0..non_null.len())].clone();
        }
        if self.use_examples {
            if let Some(Value::Array(examples)) = object.get("examples")
                && let Some(first) = examples.first()
            {
                return first.clone();
            }
            if let Some(example) = object.get("example") {
                return example.clone();
            }
        }
        // A base whose discriminator maps its subtypes (`Media` → `Photo`,
        // `Video`) is answered as one of them, as the API would.
        if let Some(subtype) = mapped_subtype(object, reference) {
            let target = serde_json::json!({"$ref": subtype});
            if self
                .document
                .pointer(subtype.trim_start_matches('#'))
                .is_some()
            {
                return self.generate(&target, depth + 1, name);
            }
        }
        if object.contains_key("allOf") {
            let merged = merge::all_of(self.document, schema);
            let mut value = self.generate(&merged, depth + 1, name);
            // A subtype of a base with a discriminator (`Photo: allOf: [Media, …]`)
            // says which subtype it is.
            if let Some(discriminator) = merged.get("discriminator") {
                tag_subtype(&mut value, discriminator, reference);
            }
            return value;
        }
        for combinator in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = object.get(combinator)
                && !branches.is_empty()
            {
                return self.generate_choice(object, combinator, branches, depth, name);
            }
        }
        match self.pick_type(schema, object) {
            "object" => self.generate_object(object, depth),
            "array" => self.generate_array(object, depth, name),
            "integer" => self.generate_integer(object, name),
            "number" => self.generate_number(object, name),
            "boolean" => Value::Bool(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => Value::String(self.generate_string(object, name)),
        }
    }

    fn pick_type(&mut self, schema: &Value, object: &Map<String, Value>) -> &'static str {
        // The first type that is not `null`; read in place, as this runs
        // for every node synthesized.
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

    fn generate_choice(
        &mut self,
        object: &Map<String, Value>,
        combinator: &str,
        branches: &[Value],
        depth: usize,
        name: Option<&str>,
    ) -> Value {
        // Prefer branches that are not just `null`, so answers carry data.
        let candidates: Vec<&Value> = branches
            .iter()
            .filter(|b| self.deref(b).get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        let candidates = if candidates.is_empty() {
            branches.iter().collect()
        } else {
            candidates
        };
        let branch = candidates[self.rng.random_range(0..candidates.len())];
        // Keywords beside the combinator (shared properties) apply too.
        let mut base = object.clone();
        base.remove(combinator);
        let mut value = if base
            .keys()
            .any(|k| matches!(k.as_str(), "properties" | "required" | "type"))
        {
            let merged = merge::merge_pair(self.document, &Value::Object(base), branch);
            self.generate(&merged, depth + 1, name)
        } else {
            self.generate(branch, depth + 1, name)
        };
        if let (Some(discriminator), Value::Object(map)) = (object.get("discriminator"), &mut value)
            && let Some(property) = discriminator.get("propertyName").and_then(Value::as_str)
            && let Some(tag) = discriminator_tag(discriminator, branch)
        {
            map.insert(property.to_owned(), Value::String(tag));
        }
        value
    }

    fn generate_object(&mut self, object: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let max_properties = object
            .get("maxProperties")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (key, property) in properties {
                let is_required = required.contains(&key.as_str());
                if !is_required && (depth >= self.optional_depth || depth >= MAX_DEPTH) {
                    continue;
                }
                if !is_required && max_properties.is_some_and(|m| out.len() >= m) {
                    continue;
                }
                if crate::flagged(self.document, property, "writeOnly") {
                    continue;
                }
                if depth >= MAX_DEPTH {
                    out.insert(key.clone(), minimal(self.document, property));
                    continue;
                }
                let value = self.generate(property, depth + 1, Some(key));
                out.insert(key.clone(), value);
            }
        }
        // Required names with no declared schema still have to be present.
        let properties = object.get("properties");
        for key in &required {
            let write_only = || {
                properties
                    .and_then(|p| p.get(*key))
                    .is_some_and(|p| crate::flagged(self.document, p, "writeOnly"))
            };
            if !out.contains_key(*key) && !write_only() {
                let value = match object.get("additionalProperties") {
                    Some(extra @ Value::Object(_)) => self.generate(extra, depth + 1, Some(key)),
                    _ => Value::String(fakes::word(&mut self.rng)),
                };
                out.insert((*key).to_owned(), value);
            }
        }
        let min_properties = object
            .get("minProperties")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let extra_schema = match object.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(schema @ Value::Object(_)) => Some(schema.clone()),
            _ => Some(Value::Bool(true)),
        };
        let wants_map = object.get("properties").is_none()
            && matches!(object.get("additionalProperties"), Some(Value::Object(_)));
        let target = if wants_map && depth < self.optional_depth {
            min_properties.max(1)
        } else {
            min_properties
        };
        if let Some(extra_schema) = extra_schema {
            let mut index = 1;
            while out.len() < target && index < 64 {
                let key = format!("{}_{index}", fakes::word(&mut self.rng));
                if !out.contains_key(&key) {
                    let value = if depth >= MAX_DEPTH {
                        minimal(self.document, &extra_schema)
                    } else {
                        self.generate(&extra_schema, depth + 1, None)
                    };
                    out.insert(key, value);
                }
                index += 1;
            }
        }
        Value::Object(out)
    }

    fn generate_array(
        &mut self,
        object: &Map<String, Value>,
        depth: usize,
        name: Option<&str>,
    ) -> Value {
        let (min, max) = bounds_of(object, "minItems", "maxItems", 64);
        let prefix: &[Value] = object
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let items = object.get("items").cloned().unwrap_or(Value::Bool(true));
        let wanted = if depth >= self.optional_depth || depth >= MAX_DEPTH {
            min
        } else {
            min.max(self.rng.random_range(1..=2)).max(prefix.len())
        };
        let count = wanted.min(max);
        let unique = object.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        let mut out: Vec<Value> = Vec::with_capacity(count);
        let mut tries = 0;
        while out.len() < count && tries < count * 8 + 8 {
            tries += 1;
            let schema = prefix.get(out.len()).unwrap_or(&items);
            let value = if depth >= MAX_DEPTH {
                minimal(self.document, schema)
            } else {
                self.generate(schema, depth + 1, name)
            };
            if unique && out.contains(&value) {
                continue;
            }
            out.push(value);
        }
        Value::Array(out)
    }

    fn generate_integer(&mut self, object: &Map<String, Value>, name: Option<&str>) -> Value {
        let (hint_low, hint_high) = fakes::integer_range(name);
        let (low, high) = bounds(object, hint_low as f64, hint_high as f64, true);
        let multiple = object
            .get("multipleOf")
            .and_then(Value::as_f64)
            .filter(|m| *m > 0.0);
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
        Value::Number(Number::from(clamped as i64))
    }

    fn generate_number(&mut self, object: &Map<String, Value>, name: Option<&str>) -> Value {
        let (hint_low, hint_high) = fakes::number_range(name);
        let (low, high) = bounds(object, hint_low, hint_high, false);
        let value = match object
            .get("multipleOf")
            .and_then(Value::as_f64)
            .filter(|m| *m > 0.0)
        {
            Some(m) => {
                let (k_low, k_high) = ((low / m).ceil(), (high / m).floor());
                let k = if k_low > k_high {
                    k_low
                } else {
                    self.range_f64(k_low, k_high).round()
                };
                // Round away binary noise so the quotient stays integral for the validator.
                let v = k * m;
                let decimals = decimals_of(m);
                round_to(v, decimals)
            }
            None => round_to(self.range_f64(low, high), 2).clamp(low, high.max(low)),
        };
        Number::from_f64(value).map_or(Value::Number(0.into()), Value::Number)
    }

    fn range_f64(&mut self, low: f64, high: f64) -> f64 {
        if !(low.is_finite() && high.is_finite()) || high <= low {
            return low;
        }
        low + self.rng.random::<f64>() * (high - low)
    }

    fn generate_string(&mut self, object: &Map<String, Value>, name: Option<&str>) -> String {
        let (min, max) = bounds_of(object, "minLength", "maxLength", 4096);
        let format = object.get("format").and_then(Value::as_str);
        let text = if let Some(pattern) = object.get("pattern").and_then(Value::as_str) {
            match self.patterns.sample(pattern, &mut self.rng, min, max) {
                Some(text) => return text,
                None => fakes::word(&mut self.rng),
            }
        } else if let Some(text) = format.and_then(|f| fakes::formatted(f, &mut self.rng)) {
            text
        } else {
            fakes::for_name(name, max, &mut self.rng)
        };
        match format {
            Some("date-time") if text.chars().count() < min => pad_date_time(text, min),
            _ => fit_length(text, min, max, &mut self.rng),
        }
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

/// Sets the discriminator property of `value` (a subtype made through
/// `allOf`) to the tag naming `reference`, or to the first tag when the
/// value's own is none of the mapping's.
fn tag_subtype(value: &mut Value, discriminator: &Value, reference: Option<&str>) {
    let (Some(property), Some(Value::Object(mapping)), Value::Object(map)) = (
        discriminator.get("propertyName").and_then(Value::as_str),
        discriminator.get("mapping"),
        value,
    ) else {
        return;
    };
    let named = reference.and_then(|reference| {
        let branch = serde_json::json!({"$ref": reference});
        discriminator_tag(discriminator, &branch).filter(|tag| mapping.contains_key(tag))
    });
    let current = map.get(property).and_then(Value::as_str);
    let tag = match named {
        Some(tag) => tag,
        None if current.is_some_and(|c| mapping.contains_key(c)) => return,
        None => match mapping.keys().next() {
            Some(first) => first.clone(),
            None => return,
        },
    };
    map.insert(property.to_owned(), Value::String(tag));
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
