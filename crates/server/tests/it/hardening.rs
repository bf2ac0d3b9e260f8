//! What an attacker or a careless client can do to the server as a whole:
//! hold connections open, fill the disk through the audit log, read the
//! data dir, call the control plane from a browser, or import files,
//! specs and templates that should not be accepted.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{PETSTORE, send, spawn_app, spawn_app_with, test_config};

/// Reads until the server closes the connection; how long that took, or
/// `None` when it was still open after `patience`.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            patience.saturating_sub(started.elapsed()),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn half_sent_and_silent_connections_are_closed() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.limits.header_read_timeout_ms = 300;
        config.limits.idle_timeout_ms = 600;
    })
    .await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let patience = Duration::from_secs(10);

    // Headers that never end (slowloris).
    let mut half = TcpStream::connect(&address).await.unwrap();
    half.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, patience).await.is_some(),
        "a half-sent request keeps its connection"
    );

    // Headers trickled a byte at a time, each well within the idle limit:
    // the head's own deadline closes it.
    let trickled = TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = trickled.into_split();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let closed = async {
        let mut buffer = [0u8; 64];
        matches!(reader.read(&mut buffer).await, Ok(0) | Err(_))
    };
    assert!(
        tokio::time::timeout(patience, closed).await == Ok(true),
        "a request head trickled in keeps its connection"
    );
    trickle.abort();

    // A connection that says nothing.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_within(&mut silent, patience).await.is_some(),
        "a silent connection stays open"
    );

    // A kept-alive connection is answered, then closed once idle.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let read = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, patience).await.is_some(),
        "an idle kept-alive connection stays open"
    );

    // The server serves on.
    let (status, _) = send(app.client.get(format!("{}/api/v1/health", app.url))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refused_calls_are_audited_capped_and_rate_limited_per_client() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.audit.refused_per_minute = 5;
    })
    .await;
    let long = "x".repeat(30_000);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = app
            .client
            .delete(format!("{}/api/v1/sandboxes/{long}", app.url))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "urn:sbx:problem:too-many-refusals");
        }
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right token still works from the same address.
    let (status, audit) = send(app.admin(Method::GET, "/audit?actor=anonymous")).await;
    assert_eq!(status, 200, "{audit}");
    let items = audit["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        5,
        "only the refusals within the limit are audited"
    );
    for item in items {
        let target = item["target"].as_str().unwrap();
        assert!(target.len() <= 520, "{} bytes kept", target.len());
        assert!(target.ends_with('…'));
    }
}

#[tokio::test]
async fn the_data_dir_and_database_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.petstore("none").await;
    let mode = |name: &str| {
        std::fs::metadata(app.data_dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    if crate::helpers::on_postgres() {
        // The database is PostgreSQL's; the dir holds the keys.
        assert_eq!(mode("secrets-key"), 0o600);
        return;
    }
    for file in ["sbx.db", "sbx.db-wal", "sbx.db-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

#[tokio::test]
async fn browsers_may_call_sandboxes_from_anywhere_but_the_control_plane_only_from_its_origins() {
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.control_origins = vec!["https://portal.example".to_owned()];
    })
    .await;
    let sandbox = app.petstore("none").await;
    let preflight = |url: String, origin: &'static str| {
        app.client
            .request(Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let control = format!("{}/api/v1/sandboxes", app.url);
    let evil = preflight(control.clone(), "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&evil), None);
    let portal = preflight(control, "https://portal.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&portal).as_deref(), Some("https://portal.example"));
    let data = preflight(sandbox.url("/pets"), "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&data).as_deref(), Some("*"));
}

#[tokio::test]
async fn file_names_that_are_paths_and_pure_reference_cycles_are_refused() {
    let app = spawn_app().await;
    for name in ["../escape.j2", "/etc/passwd", "a\u{0}b.j2", ".hidden.j2"] {
        let (status, problem) = send(app.admin(Method::POST, "/projects").json(&json!({
            "name": "named",
            "spec": PETSTORE,
            "templates": {name: "{{ 1 }}"},
        })))
        .await;
        assert_eq!(status, 422, "{name:?}: {problem}");
        assert!(
            problem.to_string().contains("is not a valid file name"),
            "{problem}"
        );
    }
    let cyclic = PETSTORE.replace(
        "  schemas:\n",
        "  schemas:\n    Loop: { $ref: \"#/components/schemas/Pool\" }\n    Pool: { $ref: \"#/components/schemas/Loop\" }\n",
    );
    assert_ne!(cyclic, PETSTORE);
    let (status, problem) = send(
        app.admin(Method::POST, "/projects")
            .json(&json!({"name": "cyclic", "spec": cyclic})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("circular"), "{problem}");
}

/// An answer synthesis cannot make valid (its schema contradicts itself)
/// goes out flagged as drift, never as if it were valid.
#[tokio::test]
async fn an_unsatisfiable_answer_is_flagged_as_drift() {
    const SPEC: &str = r#"
openapi: 3.0.3
info: { title: Odd, version: "1" }
paths:
  /odd:
    get:
      operationId: getOdd
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: { type: object, required: [code], properties: { code: { type: string, minLength: 5, maxLength: 2 } } }
"#;
    let app = spawn_app().await;
    let sandbox = app.open_sandbox("odd", SPEC).await;
    let response = app.client.get(sandbox.url("/odd")).send().await.unwrap();
    let drift = response
        .headers()
        .get("x-sandbox-drift")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        drift.as_deref().is_some_and(|d| d.contains("/code")),
        "{drift:?}"
    );
}

/// Peak resident memory of this process (the server runs in it), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The probe's template: a 10 MB string concatenated into 160 MB. Eight
/// of them at once are each stopped at the memory budget (a 500 naming
/// it) long before they are built, and another sandbox is served as usual
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_bombs_stop_at_their_budget_while_other_sandboxes_are_served() {
    const BOMB: &str = r#"{% set s = "x" * 10000000 %}{% set t = s ~ s ~ s ~ s ~ s ~ s ~ s ~ s %}{% set u = t ~ t %}{{ u|length }}"#;
    let app = spawn_app().await;
    let hostile = crate::behaviours::shop_project("bomb");
    let mut hostile = hostile;
    hostile["templates"] = json!({"getReceipt.j2": BOMB});
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&hostile)).await;
    assert_eq!(status, 201, "{body}");
    let attacked = app
        .create_sandbox(json!({"project": "bomb", "auth": "none"}))
        .await;
    let bystander = app.petstore("none").await;
    let before = peak_rss();

    let attacks: Vec<_> = (0..8)
        .map(|_| {
            let request = app.client.get(attacked.url("/receipts/ord_1"));
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answer = send(request).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let started = std::time::Instant::now();
        let (status, _) = send(app.client.get(bystander.url("/pets/1"))).await;
        assert_eq!(status, 200);
        latencies.push(started.elapsed());
    }
    for attack in attacks {
        let ((status, problem), took) = attack.await.unwrap();
        assert_eq!(status, 500, "{problem}");
        assert_eq!(
            problem["type"], "urn:sbx:problem:template-error",
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("template_memory_bytes"),
            "{problem}"
        );
        assert!(took < Duration::from_secs(10), "an attack took {took:?}");
    }
    latencies.sort();
    let p99 = latencies[98];
    // The target (50 ms) is measured on a release build (bench/README.md);
    // a debug build on a busy CI machine gets more room.
    assert!(p99 < Duration::from_millis(500), "bystander p99 {p99:?}");
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 1 << 30, "peak memory grew by {} MB", grown >> 20);
}

/// Eight scripts copying megabyte strings at once: each stops at its
/// wall-clock limit however many run (they take turns on the bounded
/// pool, one sandbox at most half of it), and another sandbox is served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_scripts_keep_their_time_limit_under_contention() {
    const LIMIT_MS: u64 = 300;
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.scripts.timeout_ms = LIMIT_MS;
    })
    .await;
    let shop = crate::behaviours::shop(&app).await;
    let bystander = app.petstore("none").await;
    let started = std::time::Instant::now();
    let attacks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(send(app.client.get(shop.url("/hostile/copies")))))
        .collect();
    let mut latencies = Vec::new();
    while latencies.len() < 50 {
        let asked = std::time::Instant::now();
        let (status, _) = send(app.client.get(bystander.url("/pets/1"))).await;
        assert_eq!(status, 200);
        latencies.push(asked.elapsed());
    }
    for attack in attacks {
        let (status, problem) = attack.await.unwrap();
        assert_eq!(status, 500, "{problem}");
        assert_eq!(problem["limit"], "timeout_ms", "{problem}");
    }
    // Eight runs of at most the limit each, one at a time for this sandbox.
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(8 * LIMIT_MS * 2 + 2_000),
        "eight runs took {took:?}"
    );
    latencies.sort();
    assert!(
        latencies[49] < Duration::from_millis(500),
        "bystander {:?}",
        latencies[49]
    );
}

#[tokio::test]
async fn the_server_refuses_to_start_on_a_config_out_of_range() {
    let data_dir = tempfile::tempdir().unwrap();
    type Spoil = fn(&mut sbx_server::Config);
    let bad: [(&str, Spoil); 3] = [
        ("reaper_interval_seconds", |c| {
            c.reaper_interval = Duration::ZERO
        }),
        ("admin_token", |c| {
            c.admin_token = Some("short".to_owned().into())
        }),
        ("control_origins", |c| {
            c.control_origins = vec!["portal.example.com".into()]
        }),
    ];
    for (setting, spoil) in bad {
        let mut config = test_config(data_dir.path());
        spoil(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = sbx_server::start(config, listener).await.err();
        let message = format!("{:#}", refused.expect("an invalid config is refused"));
        assert!(message.contains(setting), "{setting}: {message}");
    }
}
