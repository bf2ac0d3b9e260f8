//! Routing and the whole request pipeline on the demo payments project,
//! routing on a generated 2,000-path spec, behaviours (stateful reads and
//! creates, a 10-line script) beside the same endpoint without them, and
//! the load harness's GET with a new id every call and its stateful create.

use std::{path::Path, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use sbx_engine::{
    AuthMode, CompiledRevision, ProjectFiles, Request, SandboxContext, SandboxState, ScriptLimits,
    handle,
};
use serde_json::{Map, json};

const DEMO: &str = include_str!("../../../examples/payments/openapi.yaml");

fn compile(text: &str, files: &ProjectFiles) -> Arc<CompiledRevision> {
    let model = sbx_spec::load_api(text, &sbx_spec::Limits::default()).expect("loads");
    Arc::new(
        CompiledRevision::compile_project(model, files, &ScriptLimits::default())
            .expect("compiles"),
    )
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

/// One operation answering `{"greeting", "length"}`, scripted or not.
const GREETING_SPEC: &str = r#"{"openapi": "3.1.0", "info": {"title": "g", "version": "1"},
  "paths": {"/greet/{name}": {"get": {"operationId": "greet",
    "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                   {"name": "lang", "in": "query", "schema": {"type": "string"}}],
    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
      "type": "object", "required": ["greeting", "length"],
      "properties": {"greeting": {"type": "string"}, "length": {"type": "integer"}, "lang": {"type": "string"}}}}}}}}}}}"#;

/// The 10-line script of the performance target: reads `req`, writes a body.
const GREETING_SCRIPT: &str = r#"
let name = req.params.name;
let lang = req.query.lang ?? "en";
let greeting = if lang == "fr" {
    "Bonjour " + name
} else {
    "Hello " + name
};
resp.status = 200;
resp.body = #{ greeting: greeting, length: greeting.len(), lang: lang };
"#;

fn benches(c: &mut Criterion) {
    let demo = compile(DEMO, &ProjectFiles::default());
    let project_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments");
    let project = compile(
        DEMO,
        &sbx_engine::project::read_dir(&project_dir).expect("example project"),
    );
    let big = compile(&large_spec(), &ProjectFiles::default());
    c.bench_function("route/demo_templated", |b| {
        b.iter(|| {
            std::hint::black_box(
                demo.router
                    .at("GET", std::hint::black_box("/v1/payments/pay_123")),
            )
        })
    });
    c.bench_function("route/2000_paths", |b| {
        b.iter(|| {
            std::hint::black_box(
                big.router
                    .at("GET", std::hint::black_box("/resource777/42/items/7")),
            )
        })
    });

    let key_check =
        |_: sbx_engine::Credential<'_>, _: &sbx_spec::Operation| sbx_engine::KeyVerdict::Valid;
    let state = Arc::new(SandboxState::load(
        &project.behaviours.fixtures,
        Vec::new(),
        0,
    ));
    let env = Arc::new(Map::new());
    let context = SandboxContext {
        id: "sbx-bench",
        seed: 1,
        auth: AuthMode::Spec,
        key_check: &key_check,
        rate_check: &|| Ok(()),
        state: &state,
        env: &env,
        upstream: None,
        functions: None,
        now_ms: 1_767_225_600_000,
        may_block: false,
        chaos: None,
        default_scenario: None,
        chaos_draw: None,
        trace: false,
        base_url: "http://127.0.0.1:4010".into(),
    };
    let auth = vec![(
        "authorization".to_owned(),
        "Bearer sk_test_bench".to_owned(),
    )];
    let mut run = |name: &str, revision: &Arc<CompiledRevision>, request: &Request<'_>| {
        // As the server does: a request whose cold synthesis is not yet
        // measured runs once where it may block, then on the worker.
        let warm = SandboxContext {
            may_block: true,
            ..context
        };
        handle(revision, &warm, request);
        c.bench_function(name, |b| {
            b.iter(|| {
                std::hint::black_box(handle(revision, &context, std::hint::black_box(request)))
            })
        });
    };
    run(
        "handle/get_synthesized",
        &demo,
        &get("/v1/accounts/acct_demo_gold", &auth),
    );
    run(
        "handle/get_stateful",
        &project,
        &get("/v1/accounts/acct_demo_gold", &auth),
    );

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

    let plain = compile(GREETING_SPEC, &ProjectFiles::default());
    let mut files = ProjectFiles::default();
    files
        .behaviours
        .insert("greet".into(), GREETING_SCRIPT.into());
    let scripted = compile(GREETING_SPEC, &files);
    let greet = Request {
        method: "GET",
        path: "/greet/ada",
        query: Some("lang=fr"),
        headers: &auth,
        body: b"",
    };
    run("handle/greet_unscripted", &plain, &greet);

    run("handle/greet_scripted", &scripted, &greet);

    // Creates, each batch in a fresh sandbox: one that fills up would
    // measure refusals instead.
    let fixtures = &demo.behaviours.fixtures;
    let first = SandboxState::load(fixtures, Vec::new(), 0);
    match answer(
        &demo,
        &SandboxContext {
            state: &Arc::new(first),
            ..context
        },
        &post,
    ) {
        sbx_engine::Decision::Answer(outcome) => assert_eq!(outcome.response.status, 201),
        sbx_engine::Decision::Yield(_) => unreachable!("answered where it may block"),
    }
    c.bench_function("handle/post_validated", |b| {
        b.iter_custom(|iterations| {
            let mut took = std::time::Duration::ZERO;
            let mut left = iterations;
            while left > 0 {
                let batch = left.min(5_000);
                let state = Arc::new(SandboxState::load(fixtures, Vec::new(), 0));
                let fresh = SandboxContext {
                    state: &state,
                    ..context
                };
                let started = std::time::Instant::now();
                for _ in 0..batch {
                    std::hint::black_box(answer(&demo, &fresh, &post));
                }
                took += started.elapsed();
                left -= batch;
            }
            took
        })
    });

    // The load harness's stateful create (bench/create.lua): a new record
    // per request, ids cycling after 90,000 so the sandbox's collection is
    // as large as the harness makes it (later creates replace).
    let behaviours_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/behaviours");
    let behaviours = compile(
        &std::fs::read_to_string(behaviours_dir.join("openapi.yaml")).expect("bench/behaviours"),
        &sbx_engine::project::read_dir(&behaviours_dir).expect("bench project"),
    );
    let items = Arc::new(SandboxState::load(
        &behaviours.behaviours.fixtures,
        Vec::new(),
        0,
    ));
    let stored = SandboxContext {
        state: &items,
        ..context
    };
    let json_only = vec![("content-type".to_owned(), "application/json".to_owned())];
    let create = |n: u64| {
        format!(
            r#"{{"id": "bench_{}", "name": "Widget", "price": 19.99, "tags": ["a", "b"]}}"#,
            n % 90_000
        )
    };
    let mut created = 0u64;
    c.bench_function("handle/create_item", |b| {
        b.iter(|| {
            created += 1;
            let body = create(created);
            let request = Request {
                method: "POST",
                path: "/v1/items",
                query: None,
                headers: &json_only,
                body: body.as_bytes(),
            };
            std::hint::black_box(answer(&behaviours, &stored, &request))
        })
    });

    // The load harness's varied GET: a fresh id every time, so every
    // answer is synthesized anew (the cache only ever misses).
    let load_spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/spec.yaml"),
    )
    .expect("bench/spec.yaml");
    let load = compile(&load_spec, &ProjectFiles::default());
    let warm = SandboxContext {
        may_block: true,
        ..context
    };
    handle(&load, &warm, &get("/v1/items/1", &auth));
    match handle(&load, &context, &get("/v1/items/2", &auth)) {
        sbx_engine::Decision::Answer(outcome) => assert_eq!(
            outcome.response.status,
            200,
            "{}",
            String::from_utf8_lossy(&outcome.response.body)
        ),
        sbx_engine::Decision::Yield(_) => panic!("a fresh id yields"),
    }
    let mut next = 1u64;
    c.bench_function("handle/get_varied", |b| {
        b.iter(|| {
            next += 1;
            let path = format!("/v1/items/{next}");
            let request = get(&path, &auth);
            std::hint::black_box(answer(&load, &context, &request))
        })
    });
}

/// The server's way: a request that yields (a cold value of a schema
/// whose synthesis was once slow) runs again where it may block.
fn answer(
    revision: &Arc<CompiledRevision>,
    context: &SandboxContext<'_>,
    request: &Request<'_>,
) -> sbx_engine::Decision {
    match handle(revision, context, request) {
        sbx_engine::Decision::Yield(_) => {
            let blocking = SandboxContext {
                may_block: true,
                ..*context
            };
            handle(revision, &blocking, request)
        }
        answered => answered,
    }
}

/// A GET of `path` with `headers`.
fn get<'a>(path: &'a str, headers: &'a Vec<(String, String)>) -> Request<'a> {
    Request {
        method: "GET",
        path,
        query: None,
        headers,
        body: b"",
    }
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
