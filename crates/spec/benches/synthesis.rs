//! Synthesis and validation cost for a typical ~200-byte resource.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use sbx_spec::{Direction, SchemaCompiler, synth::Plans};
use serde_json::json;

fn document() -> Arc<serde_json::Value> {
    Arc::new(json!({"components": {"schemas": {"Payment": {
        "type": "object",
        "required": ["id", "amount", "currency", "status", "created_at"],
        "properties": {
            "id": {"type": "string", "pattern": "^pay_[a-z0-9]{14}$"},
            "amount": {"type": "integer", "minimum": 50},
            "currency": {"type": "string", "enum": ["usd", "eur", "gbp"]},
            "status": {"type": "string", "enum": ["processing", "succeeded", "failed"]},
            "customer": {"type": "string", "format": "email"},
            "description": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"}
        }
    }}}}))
}

fn benches(c: &mut Criterion) {
    let document = document();
    let compiler = SchemaCompiler::new(document.clone()).expect("compiles");
    let pointer = "/components/schemas/Payment";
    let validator = compiler
        .compile(pointer, Direction::Response)
        .expect("compiles");
    let plans = Plans::new(document.clone());
    let mut seed = 0u64;
    c.bench_function("synthesize/payment", |b| {
        b.iter(|| {
            seed += 1;
            black_box(plans.synthesize(pointer, seed, Some(&validator)))
        })
    });
    let value = plans.synthesize(pointer, 7, Some(&validator)).value;
    c.bench_function("validate/payment_valid", |b| {
        b.iter(|| black_box(validator.is_valid(black_box(&value))))
    });
    let invalid = json!({"id": 5, "amount": "x", "currency": "yen"});
    c.bench_function("validate/payment_violations", |b| {
        b.iter(|| black_box(validator.violations(black_box(&invalid))))
    });
}

criterion_group!(synthesis, benches);
criterion_main!(synthesis);
