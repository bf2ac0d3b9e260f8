//! Code sessions over HTTP: real bubblewrap jails (`.ci/run` installs
//! `bubblewrap`), as a developer would drive them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, send, spawn_app, spawn_app_with};

async fn session(app: &TestApp, body: Value) -> String {
    let (status, session) = send(app.admin(Method::POST, "/sessions").json(&body)).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["status"], "running");
    session["id"].as_str().unwrap().to_owned()
}

/// Reads a server-sent event stream to its end with a client nobody here
/// wrote (Python's `sseclient-py`, which `.ci/run` installs): `(id,
/// event, data)` for each event.
async fn read_stream(
    app: &TestApp,
    path: &str,
    last_event_id: Option<&str>,
) -> Vec<(String, String, Value)> {
    const CLIENT: &str = r#"
import json, sys, requests, sseclient
url, token, last = sys.argv[1:4]
headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
if last:
    headers["Last-Event-ID"] = last
response = requests.get(url, headers=headers, stream=True, timeout=20)
assert response.status_code == 200, response.status_code
assert response.headers["content-type"] == "text/event-stream", response.headers
events = [[e.id, e.event, json.loads(e.data)] for e in sseclient.SSEClient(response).events()]
print(json.dumps(events))
"#;
    let url = format!("{}/api/v1{path}", app.url);
    let mut command = std::process::Command::new("python3");
    command.args([
        "-c",
        CLIENT,
        &url,
        crate::helpers::ADMIN_TOKEN,
        last_event_id.unwrap_or(""),
    ]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs; .ci/run installs requests and sseclient-py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<(String, String, Value)> = serde_json::from_slice(&output.stdout).unwrap();
    events
}

#[tokio::test]
async fn code_runs_in_a_session_and_its_stream_resumes_from_any_event() {
    let app = spawn_app().await;
    let id = session(
        &app,
        json!({"template": "python", "env": {"GREETING": "hej"}}),
    )
    .await;

    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"code": "import os\nprint(os.environ['GREETING'])\nopen('kept.txt', 'w').write('still here')"})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("ok"), Some(0)),
        "{run}"
    );
    assert_eq!(run["stdout"], "hej\n");
    // The workspace outlives a run; other languages share it.
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"language": "node", "code": "console.log(require('fs').readFileSync('kept.txt', 'utf8'))"})),
    )
    .await;
    assert_eq!(run["stdout"], "still here\n", "{run}");

    // Not waited for: its events are streamed, numbered, and resumable.
    let (status, started) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"command": "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo bad >&2; exit 4", "wait": false})),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "running");
    let stream = started["stream_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/api/v1")
        .to_owned();
    let events = read_stream(&app, &stream, None).await;
    let names: Vec<&str> = events.iter().map(|(_, e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"start"));
    assert_eq!(names.last(), Some(&"end"));
    let (_, _, end) = events.last().unwrap();
    assert_eq!(
        (end["status"].as_str(), end["exit_code"].as_i64()),
        (Some("error"), Some(4)),
        "{end}"
    );
    let out: String = events
        .iter()
        .filter(|(_, e, _)| e == "stdout")
        .map(|(_, _, d)| d["data"].as_str().unwrap())
        .collect();
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    // A client that saw up to the second event gets the rest, no more.
    let (second, _, _) = &events[1];
    let rest = read_stream(&app, &stream, Some(second)).await;
    assert_eq!(rest, events[2..].to_vec());
    let (_, stored) = send(app.admin(Method::GET, &stream.replace("/stream", ""))).await;
    assert_eq!(
        (stored["status"].as_str(), stored["stderr"].as_str()),
        (Some("error"), Some("bad\n")),
        "{stored}"
    );
    let (_, listed) = send(app.admin(Method::GET, &format!("/sessions/{id}/executions"))).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);

    // A timeout is named as one; bad input is refused with where and why.
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"code": "import time; time.sleep(30)", "timeout_seconds": 1})),
    )
    .await;
    assert_eq!(run["status"], "timeout", "{run}");
    for (body, pointer) in [
        (json!({}), "/code"),
        (json!({"code": "1", "command": "true"}), "/code"),
        (
            json!({"code": "1", "timeout_seconds": 100000}),
            "/timeout_seconds",
        ),
        (json!({"code": "1", "env": {"1BAD": "x"}}), "/env/1BAD"),
    ] {
        let (status, problem) = send(
            app.admin(Method::POST, &format!("/sessions/{id}/executions"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let (status, problem) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "cobol"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");

    // Deleted: gone, with why, its workspace removed.
    let workspaces = app.data_dir.path().join("sessions");
    assert!(workspaces.join(&id).is_dir());
    let (status, _) = send(app.admin(Method::DELETE, &format!("/sessions/{id}"))).await;
    assert_eq!(status, 204);
    let (_, ended) = send(app.admin(Method::GET, &format!("/sessions/{id}"))).await;
    assert_eq!(
        (ended["status"].as_str(), ended["reason"].as_str()),
        (Some("ended"), Some("deleted")),
        "{ended}"
    );
    let (status, _) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"code": "1"})),
    )
    .await;
    assert_eq!(status, 404);
    for _ in 0..50 {
        if !workspaces.join(&id).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!workspaces.join(&id).exists(), "the workspace is removed");
}

#[tokio::test]
async fn sessions_end_idle_or_at_their_lifetime_but_never_while_running() {
    let app = spawn_app().await;
    let idle = session(
        &app,
        json!({"template": "shell", "idle_timeout_seconds": 1}),
    )
    .await;
    let short = session(
        &app,
        json!({"template": "shell", "lifetime_seconds": 2, "idle_timeout_seconds": 2}),
    )
    .await;
    let busy = session(
        &app,
        json!({"template": "shell", "idle_timeout_seconds": 1}),
    )
    .await;
    let (status, _) = send(
        app.admin(Method::POST, &format!("/sessions/{busy}/executions"))
            .json(&json!({"command": "sleep 3", "wait": false})),
    )
    .await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{idle}"))).await;
    assert_eq!(view["reason"], "idle", "{view}");
    let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{short}"))).await;
    assert_eq!(view["reason"], "ttl_expired", "{view}");
    let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{busy}"))).await;
    assert_eq!(
        view["status"], "running",
        "a running execution is not idle: {view}"
    );

    // Extended: its end moves; past the bound it is refused.
    let (status, view) = send(
        app.admin(Method::PATCH, &format!("/sessions/{busy}"))
            .json(&json!({"lifetime_seconds": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let (status, _) = send(
        app.admin(Method::PATCH, &format!("/sessions/{busy}"))
            .json(&json!({"lifetime_seconds": 0})),
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn the_server_refuses_sessions_past_its_uid_range() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(data_dir, |config| {
        config.session_uids = (2_090_000 + std::process::id() % 1000, 1);
    })
    .await;
    let first = session(&app, json!({"template": "shell"})).await;
    let (status, problem) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "shell"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = send(app.admin(Method::DELETE, &format!("/sessions/{first}"))).await;
    assert_eq!(status, 204);
    // The uid comes back once nothing of the session is left running.
    crate::helpers::eventually("the uid to come back", Duration::from_secs(5), || async {
        let (status, _) = send(
            app.admin(Method::POST, "/sessions")
                .json(&json!({"template": "shell"})),
        )
        .await;
        (status == 201).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_data_dir_opens_only_for_passing_through_and_only_once_sessions_run() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(app.data_dir.path()), 0o700);
    let id = session(&app, json!({"template": "shell"})).await;
    assert_eq!(mode(app.data_dir.path()), 0o711, "passable, not listable");
    assert_eq!(mode(&app.data_dir.path().join("sessions")), 0o711);
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"command": "ls /workspace/.. ; cat /proc/1/cmdline | tr '\\0' ' '"})),
    )
    .await;
    assert_eq!(run["status"], "ok", "{run}");
    assert!(
        !run["stdout"].as_str().unwrap().contains("sbx.db"),
        "the jail sees no data dir: {run}"
    );
}

#[tokio::test]
async fn jails_leave_the_first_cpu_to_the_server() {
    let app = spawn_app().await;
    let id = session(&app, json!({"template": "python"})).await;
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"code": "import os; print(sorted(os.sched_getaffinity(0)))"})),
    )
    .await;
    let cpus = std::thread::available_parallelism().unwrap().get();
    let expected: Vec<usize> = if cpus >= 2 {
        (1..cpus).collect()
    } else {
        vec![0]
    };
    assert_eq!(run["stdout"], format!("{expected:?}\n"), "{run}");
}

#[tokio::test]
async fn the_kernel_holds_a_session_to_its_memory_and_cpu_and_names_an_oom() {
    let app = spawn_app().await;
    let (status, created) =
        send(app.admin(Method::POST, "/sessions").json(
            &json!({"template": "python", "resources": {"memory_bytes": 64 << 20, "cpu": 0.5}}),
        ))
        .await;
    assert_eq!(status, 201, "{created}");
    let resources = &created["resources"];
    assert_eq!(
        (
            resources["memory_bytes"].as_u64(),
            resources["cpu"].as_f64(),
            resources["pids"].as_u64()
        ),
        (Some(64 << 20), Some(0.5), Some(64)),
        "the limits in force, defaults filled in: {created}"
    );
    let id = created["id"].as_str().unwrap();
    let run = |code: &'static str| {
        let request = app
            .admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({ "code": code }));
        async move { send(request).await.1 }
    };
    let bomb = run("chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))").await;
    assert_eq!(bomb["status"], "oom", "{bomb}");
    assert!(
        bomb["peak_memory_bytes"].as_u64().unwrap() <= 64 << 20,
        "{bomb}"
    );
    let spin = run("import time\nend = time.time() + 1.5\nwhile time.time() < end: pass").await;
    assert_eq!(spin["status"], "ok", "{spin}");
    let cpu = spin["cpu_ms"].as_u64().unwrap();
    assert!(
        (450..=1100).contains(&cpu),
        "{cpu} ms in 1.5 s at half a core"
    );
    // The session outlives its runs' deaths.
    let after = run("print('still here')").await;
    assert_eq!(after["stdout"], "still here\n", "{after}");

    for (resources, pointer) in [
        (json!({"cpu": 0}), "/resources/cpu"),
        (json!({"cpu": 1000}), "/resources/cpu"),
        (json!({"memory_bytes": 1024}), "/resources/memory_bytes"),
        (json!({"memory": "1G"}), ""),
    ] {
        let (status, problem) = send(
            app.admin(Method::POST, "/sessions")
                .json(&json!({"template": "shell", "resources": resources})),
        )
        .await;
        assert_eq!(status, 422, "{resources}: {problem}");
        if !pointer.is_empty() {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        }
    }
}

#[tokio::test]
async fn lambda_handlers_run_unchanged_on_an_api_gateway_event() {
    let app = spawn_app().await;
    let id = session(
        &app,
        json!({"template": "python", "resources": {"memory_bytes": 256 << 20}}),
    )
    .await;
    let execute = |body: Value| {
        let request = app
            .admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&body);
        async move { send(request).await }
    };
    // A Powertools app (an event router nobody here wrote, installed by
    // .ci/run) reads the event and answers in API Gateway's shape.
    let powertools = r#"
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
app = APIGatewayHttpResolver()

@app.post("/orders/<order_id>")
def place(order_id):
    event = app.current_event
    return {"id": order_id, "items": event.json_body["items"], "method": event.request_context.http.method}

def handler(event, context):
    print("request", context.aws_request_id, context.memory_limit_in_mb)
    assert 0 < context.get_remaining_time_in_millis() <= 30000
    return app.resolve(event, context)
"#;
    let (status, run) = execute(json!({
        "mode": "handler",
        "code": powertools,
        "event": {
            "rawPath": "/orders/o_1",
            "headers": {"content-type": "application/json"},
            "body": "{\"items\": 2}",
            "requestContext": {"http": {"method": "POST"}}
        }
    }))
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "ok", "{run}");
    let response = &run["result"]["response"];
    assert_eq!(response["statusCode"], 200, "{run}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"id": "o_1", "items": 2, "method": "POST"}));
    assert_eq!(
        run["stdout"],
        format!("request {} 256\n", run["id"].as_str().unwrap()),
        "prints are the function's logs"
    );

    // Node: an ES module, and a CommonJS handler answering by callback.
    let esm = "export const handler = async (event, context) => ({statusCode: 201, headers: {'X-Request': context.awsRequestId}, body: JSON.stringify({path: event.rawPath, version: event.version})});";
    let (_, run) = execute(
        json!({"mode": "handler", "language": "node", "code": esm, "event": {"rawPath": "/made"}}),
    )
    .await;
    assert_eq!(run["status"], "ok", "{run}");
    let response = &run["result"]["response"];
    assert_eq!(
        (
            response["statusCode"].as_u64(),
            &response["headers"]["x-request"]
        ),
        (Some(201), &run["id"]),
        "{run}"
    );
    assert_eq!(response["body"], "{\"path\":\"/made\",\"version\":\"2.0\"}");
    let callback = "exports.handler = (event, context, callback) => callback(null, {hello: event.queryStringParameters.name});";
    let (_, run) = execute(json!({"mode": "handler", "language": "node", "code": callback, "event": {"queryStringParameters": {"name": "ada"}}})).await;
    assert_eq!(
        (
            run["result"]["response"]["statusCode"].as_u64(),
            run["result"]["response"]["body"].as_str()
        ),
        (Some(200), Some("{\"hello\":\"ada\"}")),
        "{run}"
    );

    // What a handler raises is Lambda's error shape, and the run an error.
    let (_, run) = execute(json!({"mode": "handler", "code": "def handler(event, context):\n    raise ValueError('no such order')"})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(
        (
            run["result"]["error"]["errorType"].as_str(),
            run["result"]["error"]["errorMessage"].as_str()
        ),
        (Some("ValueError"), Some("no such order")),
        "{run}"
    );
    assert!(run["stderr"].as_str().unwrap().contains("ValueError"));

    // A link planted where the result goes is never followed by the server.
    let planted = "import os\ndef handler(event, context):\n    os.symlink('/etc/shadow', '/workspace/.sbx-result-' + context.aws_request_id + '.json')\n    os._exit(0)";
    let (_, run) = execute(json!({"mode": "handler", "code": planted})).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["result"], Value::Null, "{run}");
    assert!(!run.to_string().contains("root:"), "{run}");

    // The stream says the result before the end.
    let (status, started) = execute(json!({"mode": "handler", "code": "def handler(event, context):\n    return {'n': 1}", "wait": false})).await;
    assert_eq!(status, 202, "{started}");
    let stream = started["stream_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/api/v1")
        .to_owned();
    let events = read_stream(&app, &stream, None).await;
    let names: Vec<&str> = events.iter().map(|(_, e, _)| e.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["result", "end"], "{events:?}");
    assert_eq!(events[names.len() - 2].2["response"]["body"], "{\"n\":1}");

    for (body, pointer) in [
        (
            json!({"mode": "handler", "language": "shell", "code": "true"}),
            "/language",
        ),
        (json!({"mode": "handler", "command": "true"}), "/command"),
        (json!({"code": "print(1)", "event": {}}), "/event"),
        (
            json!({"mode": "handler", "code": "x", "event": [1]}),
            "/event",
        ),
    ] {
        let (status, problem) = execute(body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
}

#[tokio::test]
async fn files_go_in_and_out_of_the_workspace_and_never_past_it() {
    let app = spawn_app().await;
    let (status, created) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "python", "resources": {"disk_bytes": 64 << 10}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let files = |path: &str| format!("/sessions/{id}/files?path={path}");
    let upload = |path: &str, bytes: Vec<u8>| {
        let request = app.admin(Method::PUT, &files(path)).body(bytes);
        async move { send(request).await }
    };
    let (status, stored) = upload("data/in.csv", b"a,b\n1,2\n".to_vec()).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored, json!({"path": "data/in.csv", "size": 8}));

    // The code sees it, owns it, and leaves files to download.
    let code = "import os\nrows = open('data/in.csv').read().splitlines()\nopen('data/in.csv', 'a').write('3,4\\n')\nopen('out.txt', 'w').write(str(len(rows)))\nos.symlink('/etc/shadow', 'leak')\nos.symlink('/', 'host')";
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({ "code": code })),
    )
    .await;
    assert_eq!(run["status"], "ok", "{run}");
    let download = |path: &str| {
        let request = app.admin(Method::GET, &files(path));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap())
        }
    };
    assert_eq!(download("out.txt").await, (200, "2".into()), "{run}");
    assert_eq!(
        download("data/in.csv").await,
        (200, "a,b\n1,2\n3,4\n".into())
    );
    let (status, listing) = send(app.admin(Method::GET, &files(""))).await;
    assert_eq!(status, 200);
    let kinds: Vec<(String, String)> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("data".into(), "directory".into()),
            ("host".into(), "symlink".into()),
            ("leak".into(), "symlink".into()),
            ("out.txt".into(), "file".into())
        ]
    );

    // Links planted by the code, and `..`, never lead the server outside.
    for path in ["leak", "host/etc/shadow", "host/tmp"] {
        let (status, body) = download(path).await;
        assert_eq!(status, 403, "{path}: {body:?}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"));
    }
    let planted = format!("sbx-escape-{}", std::process::id());
    let (status, _) = upload(&format!("host/tmp/{planted}"), b"x".to_vec()).await;
    assert_eq!(status, 403);
    assert!(!std::path::Path::new("/tmp").join(&planted).exists());
    for path in ["../escape", "data/../../escape"] {
        let (status, problem) = upload(path, b"x".to_vec()).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "path", "{problem}");
    }
    assert_eq!(download("nothing-here").await.0, 404);

    // Past the session's disk_bytes nothing is kept.
    let (status, problem) = upload("big.bin", vec![7; 70 << 10]).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(download("big.bin").await.0, 404);
    // Each under it, together past it: the workspace is full.
    let (status, _) = upload("half-1.bin", vec![7; 40 << 10]).await;
    assert_eq!(status, 201);
    let (status, problem) = upload("half-2.bin", vec![7; 40 << 10]).await;
    assert_eq!(status, 413, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("full"),
        "{problem}"
    );
    assert_eq!(download("half-2.bin").await.0, 404);

    let (status, _) = send(app.admin(Method::DELETE, &files("data"))).await;
    assert_eq!(status, 204);
    assert_eq!(download("data/in.csv").await.0, 404);
    let (status, _) = send(app.admin(Method::DELETE, &files(""))).await;
    assert_eq!(status, 422, "the workspace itself stays");
}

/// Runs `command` (shell) in session `id`, returning the execution.
async fn shell(app: &TestApp, id: &str, command: &str) -> Value {
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"command": command, "timeout_seconds": 20})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    run
}

#[tokio::test]
async fn escape_attempts_fail_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let answers = || async {
        let (status, _) = send(app.admin(Method::GET, "/sessions")).await;
        assert_eq!(status, 200, "the server answers");
    };
    let (_, victim) = send(
        app.admin(Method::POST, "/sessions")
            .json(&json!({"template": "shell"})),
    )
    .await;
    let victim = victim["id"].as_str().unwrap().to_owned();
    let (_, attacker) = send(app.admin(Method::POST, "/sessions").json(
        &json!({"template": "shell", "resources": {"disk_bytes": 8 << 20, "tmp_bytes": 4 << 20}}),
    ))
    .await;
    let attacker = attacker["id"].as_str().unwrap().to_owned();
    let run = shell(&app, &victim, "echo the-victims-secret > secret.txt").await;
    assert_eq!(run["status"], "ok", "{run}");

    // Another session's files: not in the jail's world, by any path.
    let workspaces = app.data_dir.path().join("sessions");
    let run = shell(
        &app,
        &attacker,
        &format!(
            "cat {}/{victim}/secret.txt /workspace/../{victim}/secret.txt /proc/*/root/workspace/secret.txt 2>&1; ls / /proc | tr '\\n' ' '",
            workspaces.display()
        ),
    )
    .await;
    assert!(!run.to_string().contains("the-victims-secret"), "{run}");
    answers().await;

    // Disk: the workspace and /tmp are filesystems of their own, full at
    // their size; the host's disk is untouched.
    let run = shell(
        &app,
        &attacker,
        "for i in $(seq 1 40); do head -c 1000000 /dev/zero > fill$i || exit 9; done",
    )
    .await;
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("error"), Some(9)),
        "{run}"
    );
    assert!(
        run["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{run}"
    );
    let run = shell(
        &app,
        &attacker,
        "head -c 8000000 /dev/zero > /tmp/fill || exit 9",
    )
    .await;
    assert_eq!(run["exit_code"], 9, "{run}");
    let run = shell(
        &app,
        &attacker,
        "rm fill*; echo room again > after.txt && cat after.txt",
    )
    .await;
    assert_eq!(run["stdout"], "room again\n", "{run}");
    answers().await;

    // Signals: the jail's own processes are all it can name.
    let server = std::process::id();
    let run = shell(
        &app,
        &attacker,
        &format!("kill -9 {server} 2>&1; kill -9 1 2>&1; kill -9 -1 2>&1; echo signalled"),
    )
    .await;
    assert!(
        run["stdout"].as_str().unwrap_or("").contains("signalled")
            || run["status"] == "killed"
            || run["status"] == "error",
        "{run}"
    );
    answers().await;

    // /proc and /sys say nothing of the host; setuid binaries give nothing;
    // no new user namespace.
    let run = shell(
        &app,
        &attacker,
        "ls /sys 2>&1 | head -1; grep NoNewPrivs /proc/self/status; ls /proc | grep -c '^[0-9]'; cat /proc/kcore 2>&1 | head -c 60; echo; unshare -U id 2>&1; echo x > /proc/sys/kernel/hostname 2>&1",
    )
    .await;
    let out = run["stdout"].as_str().unwrap();
    assert!(out.contains("No such file or directory"), "no /sys: {out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    let processes: u32 = out
        .lines()
        .nth(2)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(999);
    // bubblewrap's init, the session's agent, the next run's process
    // waiting, and this pipeline's: never the host's hundreds.
    assert!(processes <= 8, "only the jail's processes: {out}");
    assert!(!out.contains("uid=0"), "{out}");
    assert!(
        out.contains("Operation not permitted") || out.contains("Read-only"),
        "{out}"
    );
    answers().await;
    let run = shell(&app, &victim, "cat secret.txt").await;
    assert_eq!(run["stdout"], "the-victims-secret\n", "{run}");
}

#[tokio::test]
async fn an_allowlist_opens_http_and_https_to_its_hosts_and_nothing_else() {
    // A service on the host's loopback, which an operator lets sessions
    // reach (`egress_allow`): sessions never reach loopback otherwise.
    let service = crate::helpers::serve_router(axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { "hi from the host" }),
    ))
    .await;
    let port = service.rsplit(':').next().unwrap().to_owned();
    let app = spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.egress_allow = vec!["127.0.0.1/32".into()];
    })
    .await;
    let (status, created) = send(app.admin(Method::POST, "/sessions").json(
        &json!({"template": "python", "network": {"allow": ["127.0.0.1", "169.254.169.254", "*.example.com"]}}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["network"],
        json!({"allow": ["127.0.0.1", "169.254.169.254", "*.example.com"]})
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // Through the proxy the environment names (plain HTTP, and a CONNECT
    // tunnel), with clients nobody here wrote: Python's urllib and curl.
    let code = format!(
        "import os, urllib.request\nfor name in ('NO_PROXY', 'no_proxy'): os.environ.pop(name)\nprint(urllib.request.urlopen('http://127.0.0.1:{port}/hello', timeout=10).read().decode())"
    );
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({ "code": code })),
    )
    .await;
    assert_eq!(run["stdout"], "hi from the host\n", "{run}");
    let run = shell(
        &app,
        &id,
        &format!("curl -s --noproxy '' --proxytunnel http://127.0.0.1:{port}/hello"),
    )
    .await;
    assert_eq!(run["stdout"], "hi from the host", "{run}");

    // Not on the list, or a listed name at a forbidden address: refused.
    let run = shell(
        &app,
        &id,
        "curl -s --noproxy '' -o /dev/null -w '%{http_code} ' http://pypi.org/; curl -s --noproxy '' -o /dev/null -w '%{http_code} ' http://169.254.169.254/latest/meta-data/; curl -sS --noproxy '' https://pypi.org/ 2>&1 | head -c 120",
    )
    .await;
    let out = run["stdout"].as_str().unwrap();
    assert!(out.starts_with("403 403 "), "{out}");
    assert!(
        out["403 403 ".len()..].contains("response 403"),
        "the CONNECT is refused too: {out}"
    );
    // No direct way out around the proxy.
    let run = shell(
        &app,
        &id,
        &format!("curl -s --noproxy '*' -m 3 http://127.0.0.1:{port}/hello || echo unreachable"),
    )
    .await;
    assert_eq!(run["stdout"], "unreachable\n", "{run}");

    for (network, pointer) in [
        (json!("open"), "/network"),
        (json!({"allow": ["http://x"]}), "/network/allow"),
    ] {
        let (status, problem) = send(
            app.admin(Method::POST, "/sessions")
                .json(&json!({"template": "shell", "network": network})),
        )
        .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
}

/// The session folders under the data dir.
fn workspaces(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.data_dir.path().join("sessions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn creates_claim_sessions_made_ahead_and_a_stop_leaves_none_behind() {
    let mut app = spawn_app().await;
    assert!(
        workspaces(&app).is_empty(),
        "no pool before a session is asked for"
    );
    let first = session(&app, json!({"template": "python"})).await;
    // The pool of ready python sessions fills behind it.
    let ready: Vec<String> = eventually("the pool fills", Duration::from_secs(10), || async {
        let ready: Vec<String> = workspaces(&app)
            .into_iter()
            .filter(|w| *w != first)
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await;
    let claimed = session(&app, json!({"template": "python", "env": {"WHO": "me"}})).await;
    assert!(ready.contains(&claimed), "{claimed} is one of {ready:?}");
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{claimed}/executions"))
            .json(&json!({"code": "import os; print(os.environ['WHO'], os.getuid() >= 2000000)"})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["stdout"], "me True\n", "{run}");
    // Another session's uid: a claimed session is never shared.
    let (_, mine) = send(
        app.admin(Method::POST, &format!("/sessions/{first}/executions"))
            .json(&json!({"code": "import os; print(os.getuid())"})),
    )
    .await;
    let (_, theirs) = send(
        app.admin(Method::POST, &format!("/sessions/{claimed}/executions"))
            .json(&json!({"code": "import os; print(os.getuid())"})),
    )
    .await;
    assert_ne!(mine["stdout"], theirs["stdout"]);
    // Other limits than the pool's: made anew.
    let own = session(
        &app,
        json!({"template": "python", "resources": {"memory_bytes": 128 << 20}}),
    )
    .await;
    assert!(!ready.contains(&own));

    let root = app.data_dir.path().join("sessions");
    app.stop().await;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "no workspace, pooled or live, stays mounted"
    );
}

#[tokio::test]
async fn keep_sessions_on_stop_lets_a_graceful_restart_resume_them() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(data_dir, |config| config.keep_sessions_on_stop = true).await;
    let id = session(&app, json!({"template": "python", "env": {"WHO": "kept"}})).await;
    let (status, _) = send(
        app.admin(Method::PUT, &format!("/sessions/{id}/files?path=note.txt"))
            .body("hello"),
    )
    .await;
    assert_eq!(status, 201);
    app.stop().await;

    // Started again (without the setting: its own stop then cleans up).
    let app = spawn_app_with(app.data_dir, |_| {}).await;
    let (status, resumed) = send(app.admin(Method::GET, &format!("/sessions/{id}"))).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "running", "{resumed}");
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{id}/executions"))
            .json(&json!({"code": "import os; print(open('note.txt').read(), os.environ['WHO'])"})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["stdout"], "hello kept\n", "{run}");

    let root = app.data_dir.path().join("sessions");
    let mut app = app;
    app.stop().await;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "the default stop removes it"
    );
}

/// `id`'s view once it has ended.
pub async fn ended(app: &TestApp, id: &str) -> Value {
    eventually("the session ends", Duration::from_secs(10), || async {
        let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{id}"))).await;
        (view["status"] == "ended").then_some(view)
    })
    .await
}

#[tokio::test]
async fn a_session_that_can_no_longer_run_ends_saying_why() {
    let app = spawn_app().await;
    // Files that fill its memory (a workspace is memory): no run could start.
    let full = session(
        &app,
        json!({"template": "shell", "resources": {"memory_bytes": 64 << 20}}),
    )
    .await;
    let (status, run) = send(
        app.admin(Method::POST, &format!("/sessions/{full}/executions"))
            .json(&json!({"command": "head -c 58M /dev/zero > big"})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let view = ended(&app, &full).await;
    assert_eq!(view["reason"], "oom", "{view}");
    assert!(
        view["detail"].as_str().unwrap().contains("its files hold"),
        "{view}"
    );

    // Its workspace unmounted behind the server's back.
    let gone = session(&app, json!({"template": "shell"})).await;
    let workspace = app.data_dir.path().join("sessions").join(&gone);
    let unmounted = std::process::Command::new("umount")
        .arg("-l")
        .arg(&workspace)
        .status()
        .unwrap();
    assert!(unmounted.success());
    let view = ended(&app, &gone).await;
    assert_eq!(view["reason"], "runtime_error", "{view}");
    assert!(
        view["detail"].as_str().unwrap().contains("unmounted"),
        "{view}"
    );

    // A session with files that leave room runs on.
    let fine = session(&app, json!({"template": "shell"})).await;
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{fine}/executions"))
            .json(&json!({"command": "head -c 10M /dev/zero > some"})),
    )
    .await;
    assert_eq!(run["status"], "ok", "{run}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{fine}"))).await;
    assert_eq!(view["status"], "running", "{view}");
}
