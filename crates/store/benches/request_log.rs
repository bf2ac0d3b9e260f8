//! Writing to the store: batches of 500 request-log entries the size of a
//! logged `GET /customers/{id}` (~1.9 KB: headers, body, trace) with the
//! sandbox already at its 10,000-entry retention, so every batch also
//! forgets as many as it adds — the steady state of a sandbox under load;
//! and one request's change (a record written), committed alone — a
//! stateful write when nothing else is queued. On SQLite, and on
//! PostgreSQL when `SBX_BENCH_POSTGRES_URL` names a server (a new database
//! is made there; `scripts/postgres.sh` starts one), twice: as tools open
//! it (`postgres`) and as a server holding it does (`postgres_fenced`:
//! every write checked against the holder).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sbx_store::{ChangeSet, LogRecord, PgStore, ResourceRow, SandboxRecord, SqliteStore, Store};

const BATCH: usize = 500;
const SANDBOX: &str = "sbx-oo0sx5ap74vy";
const KEEP: u32 = 10_000;

const TRACE: &str = r#"[{"stage":"resolve","verdict":"passed","summary":"sandbox sbx-oo0sx5ap74vy found by its path prefix /sbx/{id}"},{"stage":"route","verdict":"passed","summary":"GET /v1/customers/cus_demo_alice is operation getCustomer (GET /customers/{customer_id})","detail":{"operation":"getCustomer","spec":"/paths/~1customers~1{customer_id}/get"}},{"stage":"auth","verdict":"passed","summary":"the operation's security requirements are met"},{"stage":"validate","verdict":"passed","summary":"the parameters and body match the contract"},{"stage":"scenario","verdict":"passed","summary":"none of the 4 scenario(s) applied; the operation's own answer"},{"stage":"respond","verdict":"passed","summary":"answered 200 from the sandbox's customers collection"}]"#;

fn entry(n: usize) -> LogRecord {
    LogRecord {
        seq: 0,
        sandbox_id: SANDBOX.into(),
        request_id: format!("req_{n:024x}").into(),
        at_ms: 1_795_519_356_000 + n as i64,
        method: "GET".to_owned(),
        path: "/v1/customers/cus_demo_alice".to_owned(),
        query: None,
        operation: Some("getCustomer".to_owned()),
        status: 200,
        latency_us: 310,
        scenario: None,
        chaos: None,
        replayed: false,
        request_headers: serde_json::from_str(r#"{"host":"127.0.0.1:18480","user-agent":"curl/7.88.1","accept":"*/*","authorization":"Bearer [redacted]"}"#).unwrap(),
        request_body: String::new(),
        response_headers: serde_json::from_str(r#"{"content-type":"application/json","request-id":"req_RwwJkW5wOtLz6b"}"#).unwrap(),
        response_body: r#"{"id":"cus_demo_alice","object":"customer","name":"Alice Martin","email":"alice@example.com","account":"acct_demo_gold","created_at":"2026-01-05T10:00:00Z","metadata":{"tier":"gold"}}"#.to_owned(),
        trace: serde_json::from_str(TRACE).unwrap(),
        sandbox_at_ms: Some(1_795_519_356_000 + n as i64),
        trace_id: None,
    }
}

fn save_logs(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite: Arc<dyn Store> = Arc::new(
        runtime
            .block_on(SqliteStore::open_dir(dir.path()))
            .expect("a store"),
    );
    save_logs_on(c, &runtime, "sqlite", sqlite.as_ref());
    if let Ok(server) = std::env::var("SBX_BENCH_POSTGRES_URL") {
        let (postgres, fenced) = runtime.block_on(async {
            let plain =
                PgStore::create_database(&server, &format!("sbx_bench_{}", std::process::id()))
                    .await
                    .expect("a database");
            let held = PgStore::create_database(
                &server,
                &format!("sbx_bench_fenced_{}", std::process::id()),
            )
            .await
            .expect("a database");
            let fenced = PgStore::open_url_as(&held, "rep_bench")
                .await
                .expect("a store");
            let hold = fenced
                .try_hold(&sbx_store::Holder {
                    replica: "rep_bench".to_owned(),
                    address: "http://127.0.0.1:1".to_owned(),
                    since_ms: 1,
                    epoch: 0,
                })
                .await
                .expect("held")
                .expect("free");
            let plain: Arc<dyn Store> = Arc::new(PgStore::open_url(&plain).await.expect("a store"));
            (plain, (Arc::new(fenced) as Arc<dyn Store>, hold))
        });
        save_logs_on(c, &runtime, "postgres", postgres.as_ref());
        save_logs_on(c, &runtime, "postgres_fenced", fenced.0.as_ref());
    }
}

fn save_logs_on(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    backend: &str,
    store: &dyn Store,
) {
    let sandbox = SandboxRecord {
        id: SANDBOX.into(),
        project: "payments".into(),
        revision: 1,
        key_hash: "hash".to_owned(),
        seed: SANDBOX.to_owned(),
        auth: sbx_engine::AuthMode::Spec,
        label: None,
        created_at_ms: 1,
        expires_at_ms: None,
        pinned: false,
        env: serde_json::Map::new(),
        chaos: None,
        scenario: None,
        clock_offset_ms: 0,
        clock_frozen_ms: None,
        seeded_at_ms: 1,
        webhook_schedule: sbx_webhooks::ScheduleName::Standard,
        owner: None,
        last_active_at_ms: None,
        rate_limits: None,
        isolation: None,
    };
    runtime.block_on(async {
        store
            .create_project(
                "payments",
                "openapi: 3.1.0",
                &sbx_engine::ProjectFiles::default(),
                "system",
                1,
            )
            .await
            .expect("a project");
        store
            .create_sandbox(&sandbox, &[])
            .await
            .expect("a sandbox");
    });
    let mut next = 0;
    let mut batch = || {
        let logs: Vec<LogRecord> = (next..next + BATCH).map(entry).collect();
        next += BATCH;
        logs
    };
    for _ in 0..(KEEP as usize / BATCH) {
        runtime
            .block_on(store.save_logs(&batch(), KEEP))
            .expect("saved");
    }
    let mut group = c.benchmark_group("request_log");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("save_500_at_retention/{backend}"), |b| {
        b.iter_batched(
            &mut batch,
            |logs| {
                runtime
                    .block_on(store.save_logs(&logs, KEEP))
                    .expect("saved")
            },
            criterion::BatchSize::PerIteration,
        );
    });
    let mut written = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("one_change/{backend}"), |b| {
        b.iter(|| {
            written += 1;
            let change = ChangeSet {
                sandbox_id: SANDBOX.to_owned(),
                rows: vec![ResourceRow {
                    collection: "customers".to_owned(),
                    id: format!("cus_{written}"),
                    scope: String::new(),
                    seq: written,
                    value: Some(r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#.to_owned()),
                    version: written,
                }],
                ..ChangeSet::default()
            };
            runtime
                .block_on(store.save_changes(&[change]))
                .expect("saved")
        });
    });
    group.finish();
}

criterion_group!(benches, save_logs);
criterion_main!(benches);
