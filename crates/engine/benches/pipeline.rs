//! Routing and the whole request pipeline on the demo payments spec, and
//! routing on a generated 2,000-path spec.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sbx_engine::{AuthMode, CompiledRevision, Request, SandboxContext, handle};
use serde_json::{Map, json};

const DEMO: &str = include_str!("../../server/src/demo/payments.yaml");

fn compile(text: &str) -> CompiledRevision {
    let model = sbx_spec::load_api(text, &sbx_spec::Limits::default()).expect("loads");
    CompiledRevision::compile(model).expect("compiles")
}

fn large_spec() -> String {
    let mut paths = Map::new();
    for i in 0..1000 {
        let ok = json!({"responses": {"200": {"description": "ok"}}});
        paths.insert(format!("/resource{i}"), json!({"get": ok, "post": ok}));
        paths.insert(
            format!("/resource{i}/{{id}}/items/{{item}}"),
            json!({"get": ok, "delete": ok}),
        );
    }
    json!({"openapi": "3.1.0", "info": {"title": "big", "version": "1"}, "paths": paths})
        .to_string()
}

fn benches(c: &mut Criterion) {
    let demo = compile(DEMO);
    let big = compile(&large_spec());
    c.bench_function("route/demo_templated", |b| {
        b.iter(|| black_box(demo.router.at("GET", black_box("/v1/payments/pay_123"))))
    });
    c.bench_function("route/2000_paths", |b| {
        b.iter(|| black_box(big.router.at("GET", black_box("/resource777/42/items/7"))))
    });

    let key_matches = |_: &str| true;
    let context = SandboxContext {
        id: "sbx-bench",
        seed: 1,
        auth: AuthMode::Spec,
        key_matches: &key_matches,
    };
    let get_headers = vec![(
        "authorization".to_owned(),
        "Bearer sk_test_bench".to_owned(),
    )];
    let get = Request {
        method: "GET",
        path: "/v1/customers/cus_1",
        query: None,
        headers: &get_headers,
        body: b"",
    };
    c.bench_function("handle/get_synthesized", |b| {
        b.iter(|| black_box(handle(&demo, &context, black_box(&get))))
    });
    let post_headers = vec![
        (
            "authorization".to_owned(),
            "Bearer sk_test_bench".to_owned(),
        ),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let body = br#"{"amount": 2000, "currency": "usd", "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}"#;
    let post = Request {
        method: "POST",
        path: "/v1/payments",
        query: None,
        headers: &post_headers,
        body,
    };
    c.bench_function("handle/post_validated", |b| {
        b.iter(|| black_box(handle(&demo, &context, black_box(&post))))
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
