//! Scheduled jobs on sandbox clocks: advancing runs them in time order,
//! synchronously, each at its own `now()`; they persist across restarts
//! and fire in real time.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, millis, send, spawn_app, spawn_app_with};

const SPEC: &str = r##"
openapi: 3.0.3
info: { title: Ticks, version: "1" }
paths:
  /ticks:
    get:
      operationId: listTicks
      parameters:
        - { name: limit, in: query, schema: { type: integer } }
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: { type: array, items: { $ref: "#/components/schemas/Tick" } }
    post:
      operationId: createTick
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Tick" }
  /ticks/{tick_id}:
    get:
      operationId: getTick
      parameters:
        - { name: tick_id, in: path, required: true, schema: { type: string } }
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Tick" }
  /plans:
    post:
      operationId: createPlan
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                count: { type: integer }
                step: { type: integer }
                job: { type: string }
                chain: { type: integer }
      responses:
        "202":
          description: scheduled
          content:
            application/json:
              schema: { type: object }
components:
  schemas:
    Tick:
      type: object
      properties:
        id: { type: string }
        n: { type: integer }
        at: { type: string }
"##;

/// `POST /plans {count, step, job}` schedules `count` jobs, the i-th
/// `(count - i) * step` from now (so they are scheduled in the reverse of
/// the order they fall due); a tick job records its number and `now()`.
fn project(name: &str) -> Value {
    json!({
        "name": name,
        "spec": SPEC,
        "behaviours": {
            "createPlan": r#"
                let count = req.body.count;
                let ids = [];
                for i in 0..count {
                    ids.push(schedule(`PT${(count - i) * req.body.step}S`, req.body.job ?? "tick", #{ n: i, chain: req.body.chain ?? 0 }));
                }
                resp.body = #{ scheduled: ids.len(), first: ids[0] };
            "#
        },
        "jobs": {
            "tick": r#"
                insert("ticks", #{ id: `tick_${payload.n}`, n: payload.n, at: now(), job: job.id, due: job.due_at });
                if payload.chain > 0 {
                    schedule("PT1S", "tick", #{ n: payload.n + 1000, chain: payload.chain - 1 });
                }
            "#,
            "broken": r#"throw "the ledger is closed";"#
        }
    })
}

async fn ticks_sandbox(app: &TestApp) -> crate::helpers::Sandbox {
    app.frozen_sandbox(&project("ticks")).await
}

#[tokio::test]
async fn advancing_runs_a_thousand_jobs_in_time_order_each_at_its_due_time() {
    let app = spawn_app().await;
    let sandbox = ticks_sandbox(&app).await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    let (status, plan) = send(
        app.client
            .post(sandbox.url("/plans"))
            .json(&json!({"count": 1000, "step": 60})),
    )
    .await;
    assert_eq!(
        (status, plan["scheduled"].clone()),
        (202, json!(1000)),
        "{plan}"
    );

    let (_, waiting) = send(app.admin(Method::GET, &clock)).await;
    let pending = waiting["pending_jobs"].as_array().unwrap();
    assert_eq!(pending.len(), 100, "the first hundred are listed");
    assert_eq!(pending[0]["due_at"], "2030-01-01T00:01:00Z");
    assert_eq!(
        pending[0]["action"],
        json!({"kind": "script", "name": "tick"})
    );
    assert_eq!(pending[0]["payload"]["n"], 999);

    // Nothing has run before the clock reaches it.
    let (_, none) = send(app.client.get(sandbox.url("/ticks?limit=1000"))).await;
    assert_eq!(none, json!([]));

    // Half-way: exactly the 500 due by then, and the call returns only
    // once they have run and been committed.
    let (status, half) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "PT500M"})),
    )
    .await;
    assert_eq!(
        (status, half["ran_jobs"].clone()),
        (200, json!(500)),
        "{half}"
    );
    let (_, ticks) = send(app.client.get(sandbox.url("/ticks?limit=1000"))).await;
    assert_eq!(ticks.as_array().map(Vec::len), Some(500), "{ticks}");

    let (_, rest) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P1D"})),
    )
    .await;
    assert_eq!(rest["ran_jobs"], 500);
    assert_eq!(rest["pending_jobs"], json!([]));
    let (_, ticks) = send(app.client.get(sandbox.url("/ticks?limit=1000"))).await;
    let ticks = ticks.as_array().unwrap();
    assert_eq!(ticks.len(), 1000);
    let start = millis("2030-01-01T00:00:00Z");
    let mut last = i64::MIN;
    for tick in ticks {
        let n = tick["n"].as_i64().unwrap();
        let at = millis(tick["at"].as_str().unwrap());
        assert_eq!(
            at,
            start + (1000 - n) * 60_000,
            "job {n} saw now() = its due time"
        );
        assert_eq!(tick["at"], tick["due"]);
        assert!(at >= last, "jobs ran in time order");
        last = at;
    }
    assert_eq!(rest["now"], "2030-01-02T08:20:00Z");
}

#[tokio::test]
async fn jobs_scheduled_by_jobs_run_in_the_same_advance_when_due_inside_it() {
    let app = spawn_app().await;
    let sandbox = ticks_sandbox(&app).await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    // The same request twice schedules twice (job ids are unique).
    for _ in 0..2 {
        send(
            app.client
                .post(sandbox.url("/plans"))
                .json(&json!({"count": 1, "step": 10, "chain": 3})),
        )
        .await;
    }
    // Due at +10 s, +11 s, +12 s, +13 s; the window ends at +12 s.
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "PT12S"})),
    )
    .await;
    assert_eq!(moved["ran_jobs"], 6, "{moved}");
    let pending = moved["pending_jobs"].as_array().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1]["due_at"], "2030-01-01T00:00:13Z");
    let (_, ticks) = send(app.client.get(sandbox.url("/ticks?limit=1000"))).await;
    let at: Vec<&str> = ticks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["at"].as_str().unwrap())
        .collect();
    assert_eq!(
        at,
        [
            "2030-01-01T00:00:10Z",
            "2030-01-01T00:00:11Z",
            "2030-01-01T00:00:12Z"
        ]
    );
}

#[tokio::test]
async fn failed_jobs_are_kept_with_their_error_and_bad_schedules_say_why() {
    let app = spawn_app().await;
    let sandbox = ticks_sandbox(&app).await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    let (status, _) = send(
        app.client
            .post(sandbox.url("/plans"))
            .json(&json!({"count": 2, "step": 60, "job": "broken"})),
    )
    .await;
    assert_eq!(status, 202);
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "PT1H"})),
    )
    .await;
    assert_eq!(
        (moved["ran_jobs"].clone(), moved["failed_now"].clone()),
        (json!(2), json!(2))
    );
    let failed = moved["failed_jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("the ledger is closed"),
        "{failed:?}"
    );
    assert_eq!(
        moved["pending_jobs"],
        json!([]),
        "failed jobs do not run again"
    );

    // Unknown jobs, bad durations and too many jobs fail the request.
    for (body, expected) in [
        (
            json!({"count": 1, "step": 60, "job": "nope"}),
            "no job \"nope\"",
        ),
        (json!({"count": 1001, "step": 1}), "at most 1000 jobs"),
    ] {
        let (status, problem) = send(app.client.post(sandbox.url("/plans")).json(&body)).await;
        assert_eq!(status, 500, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(expected),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn pending_jobs_survive_a_restart_and_fire_when_real_time_reaches_them() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_owned();
    let mut app = spawn_app_with(data_dir, |_| {}).await;
    let sandbox = ticks_sandbox(&app).await;
    let clock = format!("/sandboxes/{}/clock", sandbox.id);
    send(
        app.client
            .post(sandbox.url("/plans"))
            .json(&json!({"count": 1, "step": 86400})),
    )
    .await;
    app.stop().await;

    let app = spawn_app_with(app.data_dir, |config| config.data_dir = path).await;
    let (_, kept) = send(app.admin(Method::GET, &clock)).await;
    assert_eq!(kept["pending_jobs"][0]["due_at"], "2030-01-02T00:00:00Z");
    let (_, moved) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"advance": "P1D"})),
    )
    .await;
    assert_eq!(moved["ran_jobs"], 1);

    // A running clock: the worker fires jobs due in a second or two
    // (tick_0 again, and tick_1).
    let (_, running) = send(
        app.admin(Method::POST, &clock)
            .json(&json!({"resume": true})),
    )
    .await;
    assert_eq!(running["frozen"], false);
    send(
        app.client
            .post(sandbox.url_on(&app.url, "/plans"))
            .json(&json!({"count": 2, "step": 1})),
    )
    .await;
    eventually(
        "the jobs fired in real time",
        Duration::from_secs(10),
        || async {
            app.drain().await;
            let ticks = app
                .client
                .get(sandbox.url_on(&app.url, "/ticks?limit=1000"));
            let (_, ticks) = send(ticks).await;
            (ticks.as_array().unwrap().len() == 2).then_some(())
        },
    )
    .await;
}
