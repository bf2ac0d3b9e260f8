//! Code sessions on the Docker runtime, against a real engine (`.ci/run`
//! installs `docker.io` and starts `dockerd`). Where no engine answers,
//! the test says so and is skipped: bwrap is the runtime tested
//! everywhere.

use reqwest::Method;
use sbx_server::config::SessionRuntime;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, send, spawn_app_with};

/// The engine's socket: `DOCKER_HOST`'s, or the default one, when there.
fn engine() -> Option<String> {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    std::path::Path::new(&socket).exists().then_some(socket)
}

async fn docker_app() -> Option<TestApp> {
    let Some(socket) = engine() else {
        eprintln!(
            "skipped: no Docker engine here (no DOCKER_HOST socket nor /var/run/docker.sock); .ci/run starts one"
        );
        return None;
    };
    let data = tempfile::tempdir().unwrap();
    Some(
        spawn_app_with(data, |config| {
            config.session_runtime = SessionRuntime::Docker {
                socket: Some(socket),
                image: None,
            };
        })
        .await,
    )
}

async fn run(app: &TestApp, id: &str, body: Value) -> Value {
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    run
}

/// The containers the engine holds for a session, by its label.
fn containers_of(session: &str) -> String {
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.smartsandbox/session={session}"),
        ])
        .env("DOCKER_HOST", format!("unix://{}", engine().unwrap()))
        .output()
        .expect("the docker CLI (docker.io) runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn docker_sessions_run_code_locked_down_and_leave_nothing() {
    let Some(app) = docker_app().await else {
        return;
    };
    let (status, session) = send(app.admin(Method::POST, "/sessions").json(&json!({
        "template": "python",
        "env": {"GREETING": "hej"},
        "resources": {"memory_bytes": 96 << 20, "cpu_seconds": 2, "disk_bytes": 16 << 20},
    })))
    .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    assert!(!containers_of(&id).is_empty(), "a container per session");

    let hello = run(
        &app,
        &id,
        json!({"code": "import os; print('hi', os.environ['GREETING'])"}),
    )
    .await;
    assert_eq!(
        (hello["status"].as_str(), hello["stdout"].as_str()),
        (Some("ok"), Some("hi hej\n")),
        "{hello}"
    );
    // A run alone in its container is accounted as a jail's is: the
    // container's peak memory (reset at its start) and CPU time.
    let peak = hello["peak_memory_bytes"]
        .as_u64()
        .expect("a run alone has its peak");
    assert!(peak > 1 << 20 && peak < 96 << 20, "{hello}");
    assert!(hello["cpu_ms"].is_u64(), "{hello}");

    // Files written through the API are the container's, and back.
    let (status, _) = send(
        app.admin(Method::PUT, &format!("/sessions/{id}/files?path=in.txt"))
            .body("from the API"),
    )
    .await;
    assert_eq!(status, 201);
    let copied = run(
        &app,
        &id,
        json!({"command": "tr a-z A-Z < in.txt > out.txt && id -u && id -g"}),
    )
    .await;
    let ids: Vec<u32> = copied["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id >= 2_000_000),
        "never root: {copied}"
    );
    let out = app
        .admin(Method::GET, &format!("/sessions/{id}/files?path=out.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.text().await.unwrap(), "FROM THE API");

    // Locked down: no capabilities, no network, a read-only root, the
    // seccomp denylist.
    let probes = run(&app, &id, json!({"language": "shell", "command": concat!(
        "grep CapEff /proc/self/status; ",
        "touch /usr/x 2>/dev/null && echo root-writable; ",
        "touch /etc/x 2>/dev/null && echo etc-writable; ",
        "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), 2)' 2>/dev/null && echo online; ",
        "unshare -U true 2>/dev/null && echo unshared; ",
        "cat /etc/shadow 2>/dev/null && echo shadow; ",
        "mount -t tmpfs none /mnt 2>/dev/null && echo mounted; ",
        "curl -s -m 2 http://169.254.169.254/ 2>/dev/null && echo metadata; ",
        // A workspace is memory, charged to the container: the disk
        // bound (16 MiB) comes first.
        "head -c 32M /dev/zero > big 2>/dev/null && echo unbounded; rm -f big; ",
        "echo done",
    )})).await;
    assert_eq!(
        probes["stdout"], "CapEff:\t0000000000000000\ndone\n",
        "{probes}"
    );

    // Ended for the right reasons.
    let timed_out = run(
        &app,
        &id,
        json!({"command": "sleep 30", "timeout_seconds": 1}),
    )
    .await;
    assert_eq!(timed_out["status"], "timeout", "{timed_out}");
    let bomb = run(
        &app,
        &id,
        json!({"code": "b = []\nwhile True: b.append(bytearray(1 << 20))"}),
    )
    .await;
    assert_eq!(bomb["status"], "oom", "{bomb}");
    let spin = run(
        &app,
        &id,
        json!({"code": "while True: pass", "timeout_seconds": 20}),
    )
    .await;
    assert_eq!(spin["status"], "cpu_limit", "{spin}");
    let after = run(&app, &id, json!({"command": "echo still here"})).await;
    assert_eq!(after["stdout"], "still here\n", "{after}");

    // One agent, the container's first process, starts every run: what a
    // run leaves (here holding its stdout) ends with it, and a kill from
    // inside does not take the agent down.
    let started = std::time::Instant::now();
    let left = run(
        &app,
        &id,
        json!({"command": "sleep 60 & echo $PPID; kill -9 1 2>/dev/null; echo left"}),
    )
    .await;
    assert_eq!(
        (left["status"].as_str(), left["stdout"].as_str()),
        (Some("ok"), Some("1\nleft\n")),
        "{left}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let alive = run(
        &app,
        &id,
        json!({"command": concat!(
            "for f in /proc/[0-9]*/stat; do read -r line < $f; case \"$line\" in ",
            "*'(sleep) Z'*) ;; *'(sleep)'*) echo alive ;; esac; done; echo checked",
        )}),
    )
    .await;
    assert_eq!(alive["stdout"], "checked\n", "{alive}");

    // A container removed behind the server's back ends its session,
    // saying why.
    let (_, gone) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "shell"})),
    )
    .await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f", &containers_of(&gone)])
        .env("DOCKER_HOST", format!("unix://{}", engine().unwrap()))
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let ended = crate::sessions::ended(&app, &gone).await;
    assert_eq!(ended["reason"], "runtime_error", "{ended}");
    assert!(
        ended["detail"]
            .as_str()
            .unwrap()
            .contains("removed from outside"),
        "{ended}"
    );

    // Files that fill its memory (a workspace's pages are the
    // container's): no run could start, so it ends, saying why.
    let (_, full) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "shell", "resources": {"memory_bytes": 64 << 20}})),
    )
    .await;
    let full = full["id"].as_str().unwrap().to_owned();
    run(
        &app,
        &full,
        json!({"command": "head -c 58M /dev/zero > big"}),
    )
    .await;
    let ended = crate::sessions::ended(&app, &full).await;
    assert_eq!(ended["reason"], "oom", "{ended}");
    assert!(
        ended["detail"].as_str().unwrap().contains("its files hold"),
        "{ended}"
    );

    // Deleting it removes its container.
    let (status, _) = send(app.admin(Method::DELETE, &format!("/sessions/{id}"))).await;
    assert_eq!(status, 204);
    eventually(
        "its container to go",
        std::time::Duration::from_secs(10),
        || async { containers_of(&id).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_runtime_that_cannot_start_says_what_it_needs() {
    let data = tempfile::tempdir().unwrap();
    let app = spawn_app_with(data, |config| {
        config.session_runtime = SessionRuntime::Docker {
            socket: Some("/nonexistent/docker.sock".to_owned()),
            image: None,
        };
    })
    .await;
    let (status, problem) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "python"})),
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("no Docker engine answers") && detail.contains("docker.io"),
        "{detail}"
    );
}

#[tokio::test]
async fn docker_sessions_reach_allowlisted_hosts_and_serve_functions() {
    // A service on the host's loopback, which the operator lets sessions
    // reach: through the session's egress relay only.
    let service = crate::helpers::serve_router(axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { "hi from the host" }),
    ))
    .await;
    let port = service.rsplit(':').next().unwrap().to_owned();
    let Some(socket) = engine() else {
        eprintln!("skipped: no Docker engine here; .ci/run starts one");
        return;
    };
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.egress_allow = vec!["127.0.0.1/32".into()];
        config.session_runtime = SessionRuntime::Docker {
            socket: Some(socket),
            image: None,
        };
    })
    .await;
    let (status, created) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "python", "network": {"allow": ["127.0.0.1"]}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let code = format!(
        "import os, urllib.request\nfor name in ('NO_PROXY', 'no_proxy'): os.environ.pop(name)\nprint(urllib.request.urlopen('http://127.0.0.1:{port}/hello', timeout=10).read().decode())"
    );
    let through = run(&app, &id, json!({ "code": code })).await;
    assert_eq!(through["stdout"], "hi from the host\n", "{through}");
    let direct = run(
        &app,
        &id,
        json!({"command": format!("curl -s --noproxy '*' -m 3 http://127.0.0.1:{port}/hello || echo unreachable")}),
    )
    .await;
    assert_eq!(direct["stdout"], "unreachable\n", "{direct}");

    // A function behaviour's worker is a long-lived exec in the sandbox's
    // container: the example's order is answered by its Python handler.
    let project = crate::functions::orders_project("orders", &[]);
    let sandbox = crate::functions::project_sandbox(&app, &project).await;
    let response = reqwest::Client::new()
        .post(sandbox.url("/orders"))
        .json(&json!({"items": [{"sku": "tea", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["total_cents"], 900, "{order}");
}

#[tokio::test]
async fn docker_builds_a_template_in_a_container_and_its_sessions_see_it_read_only() {
    let Some(socket) = engine() else {
        eprintln!("skipped: no Docker engine here; .ci/run starts one");
        return;
    };
    let registries = crate::templates::registry_addresses().await;
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.egress_allow = registries;
        config.session_runtime = SessionRuntime::Docker {
            socket: Some(socket),
            image: None,
        };
    })
    .await;
    // The build is a session like any other: a container whose egress
    // relay reaches only PyPI.
    crate::templates::toml_template_builds_read_only(&app).await;
}
