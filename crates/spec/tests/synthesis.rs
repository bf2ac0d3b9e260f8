//! Synthesized values validate against the schema they came from.

use std::sync::Arc;

use proptest::prelude::*;
use sbx_spec::{
    Direction, SchemaCompiler,
    synth::{PatternCache, synthesize_valid},
};
use serde_json::{Value, json};

fn check(schema: Value) -> Value {
    let doc = Arc::new(json!({"components": {"schemas": {"S": schema, "Pet": {
    "type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "integer", "format": "int64"},
        "name": {"type": "string"},
        "owner": {"$ref": "#/components/schemas/Pet"}
    }}}}}));
    let compiler = SchemaCompiler::new(doc.clone()).unwrap();
    let validator = compiler
        .compile("/components/schemas/S", Direction::Response)
        .unwrap();
    let cache = PatternCache::default();
    for seed in 0..20 {
        let (value, valid) = synthesize_valid(
            &doc,
            "/components/schemas/S",
            seed,
            &cache,
            Some(&validator),
        );
        assert!(
            valid,
            "seed {seed}: {value} fails {:?}",
            validator.violations(&value)
        );
    }
    synthesize_valid(&doc, "/components/schemas/S", 7, &cache, Some(&validator)).0
}

#[test]
fn formats_and_constraints() {
    check(
        json!({"type": "object", "required": ["a","b","c","d","e","f","g","h","i"], "properties": {
            "a": {"type": "string", "format": "date-time"},
            "b": {"type": "string", "format": "email"},
            "c": {"type": "string", "format": "uuid"},
            "d": {"type": "string", "format": "ipv6"},
            "e": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
            "f": {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 5},
            "g": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "multipleOf": 0.01},
            "h": {"type": "array", "minItems": 3, "maxItems": 3, "uniqueItems": true, "items": {"type": "integer", "minimum": 1, "maximum": 5}},
            "i": {"type": "string", "minLength": 30, "maxLength": 31},
            "secret": {"type": "string", "writeOnly": true},
            "date": {"type": "string", "format": "date"},
            "time": {"type": "string", "format": "time"},
            "uri": {"type": "string", "format": "uri"},
            "host": {"type": "string", "format": "hostname"},
            "b64": {"type": "string", "format": "byte"}
        }}),
    );
}

#[test]
fn write_only_properties_are_never_emitted() {
    let value = check(
        json!({"type": "object", "properties": {"password": {"type": "string", "writeOnly": true}, "x": {"type": "string"}}}),
    );
    assert!(value.get("password").is_none());
}

#[test]
fn composition_and_recursion() {
    check(
        json!({"oneOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 1}]}),
    );
    check(
        json!({"allOf": [{"$ref": "#/components/schemas/Pet"}, {"type": "object", "properties": {"tag": {"type": "string"}}}]}),
    );
    check(json!({"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}));
    check(json!({"type": ["string", "null"], "enum": ["a", null]}));
    check(
        json!({"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2}),
    );
}

#[test]
fn discriminators_name_the_branch() {
    let value = check(json!({
        "oneOf": [{"$ref": "#/components/schemas/Pet"}],
        "discriminator": {"propertyName": "kind", "mapping": {"pet": "#/components/schemas/Pet"}}
    }));
    assert_eq!(value["kind"], "pet");
}

#[test]
fn same_seed_same_value() {
    let doc = json!({"s": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "number"}}}});
    let cache = PatternCache::default();
    let a = synthesize_valid(&doc, "/s", 42, &cache, None).0;
    let b = synthesize_valid(&doc, "/s", 42, &cache, None).0;
    let c = synthesize_valid(&doc, "/s", 43, &cache, None).0;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// Random schemas from the keywords real specs use.
fn arb_schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (any::<Option<u8>>(), any::<Option<u8>>()).prop_map(|(min, len)| {
            let mut s = json!({"type": "string"});
            if let Some(min) = min { s["minLength"] = json!(min % 20); }
            if let Some(len) = len { s["maxLength"] = json!(20 + len % 20); }
            s
        }),
        (-1000i64..1000, 0i64..1000, 1i64..10).prop_map(|(min, span, step)| json!({"type": "integer", "minimum": min, "maximum": min + span + step, "multipleOf": step})),
        (-100.0f64..100.0, 0.0f64..50.0).prop_map(|(min, span)| json!({"type": "number", "minimum": min, "maximum": min + span + 0.5})),
        Just(json!({"type": "boolean"})),
        prop::sample::select(vec!["date-time", "date", "uuid", "email", "uri", "ipv4", "ipv6", "hostname", "byte"]).prop_map(|f| json!({"type": "string", "format": f})),
        prop::sample::select(vec!["^[a-z]{2,5}$", "^\\d{3}-\\d{2}$", "[A-F0-9]{8}", "^(foo|bar)+$"]).prop_map(|p| json!({"type": "string", "pattern": p})),
        prop::collection::vec("[a-z]{1,6}", 1..4).prop_map(|v| json!({"enum": v})),
        Just(json!({"type": ["integer", "null"]})),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map("[a-z_]{1,8}", inner.clone(), 0..5).prop_flat_map(|props| {
                let names: Vec<String> = props.keys().cloned().collect();
                (Just(props), prop::sample::subsequence(names.clone(), 0..=names.len()))
            }).prop_map(|(props, required)| json!({"type": "object", "properties": props, "required": required})),
            (inner.clone(), 0u64..3, 0u64..3).prop_map(|(items, min, extra)| json!({"type": "array", "items": items, "minItems": min, "maxItems": min + extra})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|branches| json!({"anyOf": branches})),
            (inner.clone(), inner).prop_map(|(a, b)| json!({"allOf": [
                {"type": "object", "properties": {"left": a}, "required": ["left"]},
                {"type": "object", "properties": {"right": b}}
            ]})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_generated_schema_gets_a_valid_value(schema in arb_schema(), seed in any::<u64>()) {
        let doc = Arc::new(json!({"s": schema}));
        let compiler = SchemaCompiler::new(doc.clone()).unwrap();
        let validator = compiler.compile("/s", Direction::Response).unwrap();
        let (value, valid) = synthesize_valid(&doc, "/s", seed, &PatternCache::default(), Some(&validator));
        prop_assert!(valid, "{} fails {:?}", value, validator.violations(&value));
    }
}

#[test]
fn patterns_meet_length_bounds_and_date_times_stay_valid_when_padded() {
    let value = check(
        json!({"type": "object", "required": ["sha", "at"], "properties": {
            "sha": {"type": "string", "pattern": "^[0-9a-fA-F]+$", "minLength": 40, "maxLength": 40},
            "at": {"type": "string", "format": "date-time", "minLength": 24}
        }}),
    );
    assert_eq!(value["sha"].as_str().unwrap().len(), 40);
}

#[test]
fn prefixed_patterns_reach_long_lengths() {
    // Ids like Stripe's and Twilio's: a literal prefix, then one repeated
    // class, asked for at least 18 characters.
    for (pattern, min, max) in [
        ("^pay_[a-z0-9_]+$", 18, usize::MAX),
        ("^AC[0-9a-f]{32}$", 34, 34),
        ("^acct_[a-z0-9]{4,20}$", 18, 25),
    ] {
        for seed in 0..20 {
            let id = sbx_spec::synth::matching(pattern, min, max, seed)
                .unwrap_or_else(|| panic!("{pattern} at {min}..{max}"));
            assert!((min..=max).contains(&id.len()), "{pattern}: {id}");
            assert!(
                regex::Regex::new(pattern).unwrap().is_match(&id),
                "{pattern}: {id}"
            );
        }
    }
}

#[test]
fn self_referential_composition_terminates() {
    let doc = Arc::new(json!({"components": {"schemas": {
        "A": {"oneOf": [{"$ref": "#/components/schemas/A"}, {"allOf": [{"$ref": "#/components/schemas/A"}]}]},
        "B": {"anyOf": [{"$ref": "#/components/schemas/B"}, {"type": "integer"}]}
    }}}));
    let cache = PatternCache::default();
    let compiler = SchemaCompiler::new(doc.clone()).unwrap();
    // A has no finite instance; synthesis must still return.
    let _ = synthesize_valid(&doc, "/components/schemas/A", 1, &cache, None);
    let validator = compiler
        .compile("/components/schemas/B", Direction::Response)
        .unwrap();
    let (value, valid) =
        synthesize_valid(&doc, "/components/schemas/B", 1, &cache, Some(&validator));
    assert!(valid, "{value}");
}

#[test]
fn exponential_schemas_are_cut_by_the_node_budget() {
    let doc = json!({"components": {"schemas": {"T": {"type": "object", "required": ["a", "b", "c"], "properties": {
        "a": {"$ref": "#/components/schemas/T"}, "b": {"$ref": "#/components/schemas/T"}, "c": {"$ref": "#/components/schemas/T"}
    }}}}});
    let started = std::time::Instant::now();
    let _ = synthesize_valid(
        &doc,
        "/components/schemas/T",
        1,
        &PatternCache::default(),
        None,
    );
    assert!(started.elapsed().as_secs() < 5);
}
