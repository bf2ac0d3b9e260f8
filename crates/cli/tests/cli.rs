//! The `sbx` binary end to end: serve, import, sandbox commands, mock,
//! and graceful shutdown on SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

const SBX: &str = env!("CARGO_BIN_EXE_sbx");
const TOKEN: &str = "cli-test-admin-token-0123";

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../server/tests/fixtures"
    ))
}

/// A child `sbx` that is killed if the test panics before ending it, so a
/// failed test leaves no server or `listen` running.
struct Running(Child);

impl Running {
    fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("sbx starts"))
    }
}

impl std::ops::Deref for Running {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `sbx` with `args`; returns it and the lines it printed until `until` matched.
fn start(args: &[&str], until: &str) -> (Running, Vec<String>) {
    start_with(args, until, &[("SBX_LOG", "warn")], Stdio::null())
}

/// [`start`] with more environment and its log (stderr) sent to `log`.
fn start_with(
    args: &[&str],
    until: &str,
    envs: &[(&str, &str)],
    log: Stdio,
) -> (Running, Vec<String>) {
    let mut child = Running::spawn(
        Command::new(SBX)
            .args(args)
            .env("SBX_ADMIN_TOKEN", TOKEN)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log),
    );
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more, so the child
        // never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("sbx printed its startup lines");
        let done = line.contains(until);
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
}

/// `sbx serve` on a random port: the server, its URL, and its data dir
/// (removed when dropped).
fn serve() -> (Running, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let (server, lines) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        "listening on",
    );
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    (server, url, data)
}

/// [`serve`] with the payments example imported.
fn serve_payments() -> (Running, String, tempfile::TempDir) {
    let (server, url, data) = serve();
    let example = example_project();
    assert!(
        run(
            &["import", example.to_str().unwrap(), "--name", "payments"],
            &url
        )
        .0
    );
    (server, url, data)
}

/// `sbx sandbox create` of a payments sandbox that checks no credentials.
const CREATE_OPEN_PAYMENTS: &[&str] = &[
    "sandbox",
    "create",
    "--project",
    "payments",
    "--auth",
    "none",
];

/// A sandbox of the payments project that checks no credentials, as created.
fn open_payments_sandbox(url: &str) -> Value {
    let (ok, stdout, stderr) = run(CREATE_OPEN_PAYMENTS, url);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn field<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .expect("label printed")
}

/// A minimal HTTP/1.1 GET over a TCP socket; returns (status, body).
fn http_get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = TcpStream::connect(authority).expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response[9..12].parse().expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A minimal HTTP/1.1 POST of a JSON body; (status, headers, body), or
/// `None` when the server is gone.
fn http_post(url: &str, body: &str) -> Option<(u16, String, String)> {
    http_post_with(url, &[], body)
}

/// [`http_post`] with more headers.
fn http_post_with(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_once('/').expect("a path");
    let mut stream = TcpStream::connect(authority).ok()?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((status, head.to_owned(), body.to_owned()))
}

/// Checks `check` until it gives a value, for at most ten seconds: for
/// what a separate server process does off its hot path. Panics naming `what`.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(args: &[&str], url: &str) -> (bool, String, String) {
    let output = Command::new(SBX)
        .args(args)
        .env("SBX_URL", url)
        .env("SBX_TOKEN", TOKEN)
        .output()
        .expect("runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn terminate(mut child: Running) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("exits");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn serve_import_create_call_and_stop() {
    let (server, url, _data) = serve();

    let spec = fixtures().join("multifile/openapi.yaml");
    let (ok, stdout, stderr) = run(
        &["import", spec.to_str().unwrap(), "--name", "orders"],
        &url,
    );
    assert!(ok, "{stderr}");
    let project: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(project["operations"][0]["id"], "getOrder");

    let (ok, stdout, stderr) = run(
        &["sandbox", "create", "--project", "orders", "--seed", "cli"],
        &url,
    );
    assert!(ok, "{stderr}");
    let sandbox: Value = serde_json::from_str(&stdout).unwrap();
    let base_url = sandbox["base_url"].as_str().unwrap();
    let (status, body) = http_get(&format!("{base_url}/orders/ord_0001"), &[]);
    assert_eq!(status, 200, "{body}");
    let order: Value = serde_json::from_str(&body).unwrap();
    assert!(order["total"]["amount"].is_i64(), "{order}");

    let id = sandbox["id"].as_str().unwrap();
    // A namespace of its own needs `[namespaces]`: refused, saying so.
    let (ok, _, stderr) = run(
        &[
            "sandbox",
            "create",
            "--project",
            "orders",
            "--isolation",
            "namespace",
        ],
        &url,
    );
    assert!(!ok && stderr.contains("[namespaces]"), "{stderr}");
    let (ok, stdout, _) = run(&["sandbox", "list", "--project", "orders"], &url);
    assert!(ok && stdout.contains(id));
    let (ok, stdout, _) = run(&["sandbox", "show", "--sandbox", id], &url);
    assert!(
        ok && !stdout.contains("api_key"),
        "the key is shown once only"
    );
    // Importing again adds a revision.
    let (ok, stdout, _) = run(
        &["import", spec.to_str().unwrap(), "--name", "orders"],
        &url,
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["revision"],
        2
    );
    let (ok, _, _) = run(&["sandbox", "delete", id], &url);
    assert!(ok);
    let (ok, _, stderr) = run(&["sandbox", "show", id], &url);
    assert!(!ok && stderr.contains("404"), "{stderr}");
    terminate(server);
}

#[test]
fn serve_demo_prints_a_ready_sandbox() {
    let data = tempfile::tempdir().unwrap();
    let (server, lines) = start(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        "try:",
    );
    let lines_before_audit = lines.clone();
    let base_url = field(&lines, "base URL:");
    let key = field(&lines, "API key:");
    let (status, body) = http_get(
        &format!("{base_url}/accounts/acct_demo_gold"),
        &[("Authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("acct_demo_gold"));
    let (status, _) = http_get(&format!("{base_url}/accounts/acct_demo_gold"), &[]);
    assert_eq!(status, 401);

    // The demo's set-up is in the audit log, as the server's own doing.
    let url = field(&lines, "SmartSandbox listening on");
    let sandbox = base_url
        .split('/')
        .nth(4)
        .expect("sandbox id in the base URL");
    let (ok, audit, stderr) = run(&["audit"], url);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].contains(&format!(
            "system               succeeded 201 POST /api/v1/sandboxes -> /api/v1/sandboxes/{sandbox}"
        )),
        "{audit}"
    );
    assert!(
        lines[1].contains("POST /api/v1/projects -> /api/v1/projects/demo-payments"),
        "{audit}"
    );
    let (ok, _, _) = run(&["sandbox", "delete", "sbx-nope"], url);
    assert!(!ok);
    let (ok, failed, _) = run(&["audit", "--outcome", "failed"], url);
    assert!(ok);
    assert!(
        failed.contains("admin@127.0.0.1")
            && failed.contains("failed    404 DELETE /api/v1/sandboxes/sbx-nope")
            && failed.contains("sbx-nope"),
        "{failed}"
    );
    let (ok, _, stderr) = run(&["audit", "--outcome", "maybe"], url);
    assert!(!ok && stderr.contains("outcome"), "{stderr}");

    // The portal's demo sign-in works, and owns the demo sandbox.
    let portal = field(&lines_before_audit, "Developer portal:");
    assert_eq!(portal, format!("{url}/"));
    let sign_in = field(&lines_before_audit, "sign in as");
    let (email, password) = sign_in
        .split_once(" with the password ")
        .expect("an email and a password");
    let password = password.split(' ').next().unwrap();
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let (status, _, answer) =
        http_post(&format!("{url}/api/v1/auth/login"), &body).expect("the server answers");
    assert_eq!(status, 200, "{answer}");
    terminate(server);
}

#[test]
fn mock_serves_a_spec_and_rejects_a_broken_one() {
    let spec = fixtures().join("petstore.yaml");
    let (server, lines) = start(
        &["mock", spec.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        "Mocking",
    );
    let root = lines.last().unwrap().rsplit(' ').next().unwrap().to_owned();
    let (status, body) = http_get(&format!("{root}/v1/pets/1"), &[]);
    assert_eq!(status, 200, "{body}");
    terminate(server);

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: '#/nowhere'}\n").unwrap();
    let output = Command::new(SBX)
        .args(["mock", broken.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/paths/~1a/get/responses/200/$ref"),
        "{stderr}"
    );
}

fn example_project() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments")
}

#[test]
fn import_and_mock_a_project_folder() {
    let (server, url, _data) = serve();
    let example = example_project();
    let (ok, stdout, stderr) = run(
        &["import", example.to_str().unwrap(), "--name", "payments"],
        &url,
    );
    assert!(ok, "{stderr}");
    let project: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        project["behaviours"],
        serde_json::json!(["createPayment", "refundPayment"])
    );
    let created = open_payments_sandbox(&url);
    let base_url = created["base_url"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    let (status, body) = http_get(&format!("{base_url}/customers/cus_demo_alice"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Alice Martin"));

    // The test clock: freeze, advance (running due jobs), show.
    let (ok, stdout, stderr) = run(
        &["clock", "freeze", id, "--at", "2030-01-01T00:00:00Z"],
        &url,
    );
    assert!(
        ok && stdout.contains("\"frozen\": true"),
        "{stdout}{stderr}"
    );
    let (ok, stdout, _) = run(&["clock", "advance", "--sandbox", id, "P2D"], &url);
    assert!(
        ok && stdout.contains("2030-01-03T00:00:00Z") && stdout.contains("ran_jobs"),
        "{stdout}"
    );
    let (ok, _, stderr) = run(&["clock", "advance", id, "two days"], &url);
    assert!(!ok && stderr.contains("ISO 8601"), "{stderr}");

    // A broken copy is rejected with the file, line and column; nothing changes.
    let broken = tempfile::tempdir().unwrap();
    for entry in ["openapi.yaml", "env.yaml"] {
        std::fs::copy(example.join(entry), broken.path().join(entry)).unwrap();
    }
    std::fs::create_dir(broken.path().join("behaviours")).unwrap();
    std::fs::write(
        broken.path().join("behaviours/createPayment.rhai"),
        "let x = 1;\nlet = 2;\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(
        &[
            "import",
            broken.path().to_str().unwrap(),
            "--name",
            "payments",
        ],
        &url,
    );
    assert!(!ok);
    assert!(
        stderr.contains("behaviours/createPayment.rhai:2:"),
        "{stderr}"
    );
    let (status, _) = http_get(&format!("{base_url}/customers/cus_demo_alice"), &[]);
    assert_eq!(status, 200, "the previous revision keeps serving");
    terminate(server);

    let (server, lines) = start(
        &["mock", example.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        "refund",
    );
    let root = lines[0].rsplit(' ').next().unwrap().to_owned();
    let (status, body) = http_get(&format!("{root}/v1/accounts/acct_demo_gold"), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&format!("{root}/v1/balance"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"object\":\"balance\""), "{body}");
    terminate(server);
}

/// A request as a receiver got it: lower-case headers, body.
type Arrived = (Vec<(String, String)>, String);

/// Accepts one HTTP request on a local port, answering 204: its URL, and
/// what arrived.
fn one_request_receiver() -> (String, mpsc::Receiver<Arrived>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut headers = Vec::new();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap(); // request line
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (&stream)
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let _ = sender.send((headers, String::from_utf8(body).unwrap()));
    });
    (url, receiver)
}

#[test]
fn listen_forwards_signed_events_to_a_local_url_and_trigger_fires_them() {
    let (server, url, _data) = serve_payments();
    let (ok, stdout, _) = run(&["sandbox", "create", "--project", "payments"], &url);
    assert!(ok);
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (hooks, arrived) = one_request_receiver();
    let mut listen = Running::spawn(
        Command::new(SBX)
            .args(["listen", "--sandbox", &id, "--forward-to", &hooks])
            .env("SBX_URL", &url)
            .env("SBX_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stderr = BufReader::new(listen.stderr.take().unwrap()).lines();
    let secret = loop {
        let line = stderr.next().expect("listen says it is ready").unwrap();
        if let Some(secret) = line.strip_prefix("Your webhook signing secret is ") {
            break secret.split(' ').next().unwrap().to_owned();
        }
    };
    let (ok, stdout, stderr_text) = run(&["trigger", "payment.succeeded", "--sandbox", &id], &url);
    assert!(ok, "{stderr_text}");
    let event = serde_json::from_str::<Value>(&stdout).unwrap();
    assert_eq!(event["data"]["status"], "succeeded", "the golden payload");

    let (headers, body) = arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("forwarded");
    let verified = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom standardwebhooks.webhooks import Webhook\nWebhook(sys.argv[1]).verify(sys.argv[3], json.loads(sys.argv[2]))",
            &secret,
            &serde_json::to_string(&headers.into_iter().collect::<std::collections::BTreeMap<_, _>>()).unwrap(),
            &body,
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let mut stdout = BufReader::new(listen.stdout.take().unwrap()).lines();
    let line = stdout.next().unwrap().unwrap();
    assert!(
        line.starts_with("payment.succeeded [evt_") && line.contains("--> 204"),
        "{line}"
    );

    // An unknown type needs data.
    let (ok, _, stderr_text) = run(&["trigger", "nothing.happened", "--sandbox", &id], &url);
    assert!(
        !ok && stderr_text.contains("not in the event catalog"),
        "{stderr_text}"
    );
    listen.kill().unwrap();
    listen.wait().unwrap();
    terminate(server);
}

/// Counts the distinct `webhook-id`s it receives (any number of requests
/// and connections), answering 204 after `pause`.
/// Webhook ids a receiver got, and a signal for each new one.
type Seen = std::sync::Arc<(
    std::sync::Mutex<std::collections::HashSet<String>>,
    std::sync::Condvar,
)>;

/// Waits (on the receiver's signal, at most `within`) until `seen` holds
/// `count` ids; how many it holds.
fn wait_for_count(seen: &Seen, count: usize, within: Duration) -> usize {
    let (ids, arrived) = &**seen;
    let ids = ids.lock().unwrap();
    let (ids, _) = arrived
        .wait_timeout_while(ids, within, |ids| ids.len() < count)
        .unwrap();
    ids.len()
}

/// Waits (on the receiver's signal, at most a minute) until `seen` holds
/// every one of `events`, and fails naming those it never got.
fn all_delivered<'a>(seen: &Seen, events: impl IntoIterator<Item = &'a String>) {
    let wanted: std::collections::HashSet<&String> = events.into_iter().collect();
    let (ids, arrived) = &**seen;
    let ids = ids.lock().unwrap();
    let (ids, _) = arrived
        .wait_timeout_while(ids, Duration::from_secs(60), |ids| {
            !wanted.iter().all(|event| ids.contains(*event))
        })
        .unwrap();
    let missing: Vec<_> = wanted.iter().filter(|e| !ids.contains(**e)).collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
}

fn counting_receiver(pause: Duration) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen: Seen = std::sync::Arc::default();
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let seen = shared.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut length, mut id) = (0, String::new());
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        let Some((name, value)) = line.trim_end().split_once(':') else {
                            break;
                        };
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "webhook-id" => id = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    std::thread::sleep(pause);
                    seen.0.lock().unwrap().insert(id);
                    seen.1.notify_all();
                    if (&stream)
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[test]
fn every_event_is_delivered_after_a_kill_9_mid_delivery() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let serve = |listen: &str| {
        start(
            &[
                "serve",
                "--listen",
                listen,
                "--data-dir",
                &dir,
                "--allow-private-egress",
            ],
            "listening on",
        )
    };
    let (mut server, lines) = serve("127.0.0.1:0");
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let example = example_project();
    assert!(
        run(
            &["import", example.to_str().unwrap(), "--name", "payments"],
            &url
        )
        .0
    );
    let (_, stdout, _) = run(&["sandbox", "create", "--project", "payments"], &url);
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A slow receiver, so the kill lands while deliveries are in flight.
    let (hooks, seen) = counting_receiver(Duration::from_millis(500));
    let body = format!(r#"{{"url": "{hooks}"}}"#);
    let created = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-d",
            &body,
        ])
        .arg(format!("{url}/api/v1/sandboxes/{id}/webhook-endpoints"))
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    const EVENTS: usize = 60;
    for n in 0..EVENTS {
        let data = format!(r#"{{"n": {n}}}"#);
        assert!(
            run(
                &[
                    "trigger",
                    "payment.refunded",
                    "--sandbox",
                    &id,
                    "--data",
                    &data
                ],
                &url
            )
            .0
        );
    }
    assert!(
        seen.0.lock().unwrap().len() < EVENTS,
        "the kill must come mid-delivery"
    );
    Command::new("kill")
        .args(["-KILL", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    let delivered_before = seen.0.lock().unwrap().len();

    let port = url.rsplit(':').next().unwrap();
    let (server, _) = serve(&format!("127.0.0.1:{port}"));
    let delivered = wait_for_count(&seen, EVENTS, Duration::from_secs(30));
    assert_eq!(
        delivered, EVENTS,
        "events delivered ({delivered_before} before the kill)"
    );
    terminate(server);
}

#[test]
fn logs_prints_recent_requests_and_follows_new_ones() {
    let (server, url, _data) = serve_payments();
    let created = open_payments_sandbox(&url);
    let (id, base_url) = (
        created["id"].as_str().unwrap().to_owned(),
        created["base_url"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        http_get(
            &format!("{base_url}/customers/cus_demo_alice"),
            &[("X-Request-Id", "req-first")]
        )
        .0,
        200
    );
    // Logged off the hot path: it shows soon after.
    let stdout = eventually("req-first logged", || {
        let (ok, stdout, _) = run(&["logs", "--sandbox", &id], &url);
        (ok && stdout.contains("req-first")).then_some(stdout)
    });
    assert!(
        stdout.contains("GET /v1/customers/cus_demo_alice --> 200"),
        "{stdout}"
    );
    assert!(stdout.contains("operation=getCustomer"), "{stdout}");
    let (ok, har, stderr) = run(&["logs", "--sandbox", &id, "--har"], &url);
    assert!(ok, "{stderr}");
    let har: Value = serde_json::from_str(&har).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(
        har["log"]["entries"][0]["request"]["url"],
        format!("{base_url}/customers/cus_demo_alice")
    );
    let mut follow = Running::spawn(
        Command::new(SBX)
            .args(["logs", "--sandbox", &id, "--follow", "--limit", "1"])
            .env("SBX_URL", &url)
            .env("SBX_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The recent request printed, the follower is following.
    assert!(lines.next().unwrap().unwrap().contains("req-first"));
    assert_eq!(
        http_get(
            &format!("{base_url}/accounts/acct_demo_frozen"),
            &[("X-Request-Id", "req-second")]
        )
        .0,
        403
    );
    let followed = lines.next().unwrap().unwrap();
    assert!(
        followed.contains("req-second") && followed.contains("scenario=account_frozen"),
        "{followed}"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();

    // Filters select, for the listing and the export alike.
    let (ok, refused, stderr) = run(&["logs", "--sandbox", &id, "--status", "4xx"], &url);
    assert!(ok, "{stderr}");
    assert_eq!(refused.lines().count(), 1, "{refused}");
    assert!(refused.contains("req-second"), "{refused}");
    let (ok, har, _) = run(
        &[
            "logs",
            "--sandbox",
            &id,
            "--har",
            "--operation",
            "getCustomer",
        ],
        &url,
    );
    assert!(ok);
    let har: Value = serde_json::from_str(&har).unwrap();
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), 1);
    let (ok, _, stderr) = run(&["logs", "--sandbox", &id, "--status", "9xx"], &url);
    assert!(!ok && stderr.contains("status"), "{stderr}");
    terminate(server);
}

#[test]
fn explain_prints_why_a_request_failed() {
    let (server, url, _data) = serve_payments();
    let (_, stdout, _) = run(&["sandbox", "create", "--project", "payments"], &url);
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let (id, base_url) = (
        created["id"].as_str().unwrap().to_owned(),
        created["base_url"].as_str().unwrap().to_owned(),
    );
    let unauthenticated = http_get(
        &format!("{base_url}/customers/cus_demo_alice"),
        &[("X-Request-Id", "req-no-key")],
    );
    assert_eq!(unauthenticated.0, 401);
    let typo = http_get(
        &format!("{base_url}/custmers/cus_demo_alice"),
        &[
            ("X-Request-Id", "req-typo"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    );
    assert_eq!(typo.0, 404);

    // Logged off the hot path: wait until the second shows.
    let typo_explained = eventually("req-typo logged", || {
        let (ok, stdout, stderr) = run(&["explain", "req-typo"], &url);
        assert!(ok || stderr.contains("404"), "{stderr}");
        ok.then_some(stdout)
    });
    assert!(
        typo_explained.contains("GET /v1/custmers/cus_demo_alice --> 404"),
        "{typo_explained}"
    );
    assert!(
        typo_explained.contains("trace:     4bf92f3577b34da6a3ce929d0e0e4736"),
        "{typo_explained}"
    );
    assert!(
        typo_explained.contains("did you mean GET /v1/customers/{customer_id} (getCustomer)"),
        "{typo_explained}"
    );

    let (ok, auth_explained, _) = run(&["explain", "req-no-key", "--sandbox", &id], &url);
    assert!(ok);
    assert!(auth_explained.contains("FAIL auth"), "{auth_explained}");
    let (ok, json_explained, _) = run(&["explain", "req-no-key", "--json"], &url);
    assert!(ok);
    let document: Value = serde_json::from_str(&json_explained).unwrap();
    assert_eq!(document["status"], 401);
    assert_eq!(document["operation"], "getCustomer");

    let (ok, timeline, stderr) = run(&["timeline", "--sandbox", &id], &url);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = timeline.lines().collect();
    assert_eq!(lines.len(), 2, "{timeline}");
    assert!(
        lines[0].contains(
            "request    GET /v1/customers/cus_demo_alice --> 401 (getCustomer)  [req-no-key]"
        ),
        "{timeline}"
    );
    assert!(
        lines[1].contains("GET /v1/custmers/cus_demo_alice --> 404"),
        "{timeline}"
    );
    let (ok, _, stderr) = run(&["timeline", "--sandbox", &id, "--kinds", "requests"], &url);
    assert!(!ok && stderr.contains("kinds"), "{stderr}");

    let (ok, _, stderr) = run(&["explain", "req-never-sent"], &url);
    assert!(!ok);
    assert!(
        stderr.contains("404") && stderr.contains("req-never-sent"),
        "{stderr}"
    );
    terminate(server);
}

/// A minimal project folder in `dir`, its spec carrying `extra` at the top.
fn project_folder(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("openapi.yaml"),
        format!(
            "openapi: 3.0.3\ninfo: {{ title: T, version: '1' }}\n{extra}\npaths:\n  /x:\n    get:\n      operationId: getX\n      responses:\n        '200': {{ description: ok }}\n"
        ),
    )
    .unwrap();
}

/// `sbx import DIR` never reads outside the folder: a template linked to
/// a file elsewhere, or a `$ref` by absolute path or `../`, stops the
/// import with a message naming the file, before anything is uploaded
/// (the server address is unreachable: the refusal comes first).
#[test]
fn import_refuses_files_outside_the_project_folder() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "SBX_TOKEN=SECRET-VALUE").unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "leak: SECRET-VALUE\n").unwrap();
    let unreachable = "http://127.0.0.1:9";

    let linked = tempfile::tempdir().unwrap();
    project_folder(linked.path(), "");
    std::fs::create_dir(linked.path().join("templates")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        linked.path().join("templates/getX.j2"),
    )
    .unwrap();
    let (ok, _, stderr) = run(
        &["import", linked.path().to_str().unwrap(), "--name", "x"],
        unreachable,
    );
    assert!(!ok);
    assert!(
        stderr.contains("templates/getX.j2") && stderr.contains("outside the project folder"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET-VALUE"), "{stderr}");

    for (reference, says) in [
        ("/etc/passwd", "absolute path"),
        ("../escape/secret.yaml", "outside the spec's folder"),
    ] {
        let parent = tempfile::tempdir().unwrap();
        let project = parent.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::create_dir(parent.path().join("escape")).unwrap();
        std::fs::copy(
            outside.path().join("secret.yaml"),
            parent.path().join("escape/secret.yaml"),
        )
        .unwrap();
        project_folder(&project, &format!("x-leak: {{ $ref: \"{reference}\" }}"));
        let (ok, _, stderr) = run(
            &["import", project.to_str().unwrap(), "--name", "x"],
            unreachable,
        );
        assert!(!ok, "{reference}");
        assert!(
            stderr.contains(reference) && stderr.contains(says),
            "{reference}: {stderr}"
        );
        assert!(
            !stderr.contains("SECRET-VALUE") && !stderr.contains("root:"),
            "{stderr}"
        );
    }
}

/// SIGTERM while clients are writing: every change and every request-log
/// entry the server acknowledged is there when it starts again.
#[test]
fn sigterm_under_load_loses_no_acknowledged_change_or_log_entry() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let serve = || {
        let (server, lines) = start(
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
            "listening on",
        );
        let url = field(&lines, "SmartSandbox listening on").to_owned();
        (server, url)
    };
    let (server, url) = serve();
    let example = example_project();
    assert!(
        run(
            &["import", example.to_str().unwrap(), "--name", "payments"],
            &url
        )
        .0
    );
    let id = open_payments_sandbox(&url)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let customers = format!("{url}/sbx/{id}/v1/customers");
    // Four clients create customers until the server stops answering; each
    // keeps what the server acknowledged: (customer id, request id).
    let (acknowledged, answered) = (mpsc::channel(), mpsc::channel::<()>());
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (customers, acknowledged, answered) = (
                customers.clone(),
                acknowledged.0.clone(),
                answered.0.clone(),
            );
            std::thread::spawn(move || {
                for n in 0.. {
                    let body = format!(
                        r#"{{"name": "c{client}-{n}", "email": "c{client}-{n}@example.com"}}"#
                    );
                    let Some((status, head, body)) = http_post(&customers, &body) else {
                        return;
                    };
                    if status != 201 {
                        return;
                    }
                    let request_id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-request-id: "))
                        .expect("x-request-id")
                        .to_owned();
                    let customer: Value = serde_json::from_str(&body).unwrap();
                    let customer = customer["id"].as_str().unwrap().to_owned();
                    let _ = acknowledged.send((customer, request_id));
                    let _ = answered.send(());
                }
            })
        })
        .collect();
    drop(answered.0);
    // SIGTERM once the clients are well under way.
    for _ in 0..200 {
        answered
            .1
            .recv_timeout(Duration::from_secs(30))
            .expect("the clients are served");
    }
    terminate(server);
    for client in clients {
        client.join().unwrap();
    }
    drop(acknowledged.0);
    let acknowledged: Vec<(String, String)> = acknowledged.1.iter().collect();
    assert!(acknowledged.len() >= 200, "{}", acknowledged.len());

    let (server, url) = serve();
    for (customer, request_id) in &acknowledged {
        let (status, body) = http_get(&format!("{url}/sbx/{id}/v1/customers/{customer}"), &[]);
        assert_eq!(status, 200, "customer {customer} was acknowledged: {body}");
        let (status, body) = http_get(
            &format!("{url}/api/v1/sandboxes/{id}/logs/{request_id}"),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(status, 200, "request {request_id} was acknowledged: {body}");
    }
    terminate(server);
}

/// The corpus conformance script (scripts/conformance.py) on a fixed sample
/// that fits CI's time: `sbx mock` of each spec, security stripped, must
/// answer ≥ 99% of schemathesis's valid requests as documented and reject
/// ≥ 99% of its invalid ones. The full run (40 specs, the largest among
/// them) is in bench/README.md.
#[test]
fn corpus_sample_conforms() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("python3")
        .arg(root.join("scripts/conformance.py"))
        .args([
            "--sbx",
            SBX,
            "--max-examples",
            "1",
            "--spec-timeout",
            "120",
            "--min",
            "0.99",
        ])
        .arg("--specs")
        .args(CONFORMANCE_SAMPLE)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot run ({e}); .ci/run installs it"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Small and diverse: form bodies and format-suffixed paths without a
/// documented 404 (Twilio), query APIs, JSON CRUD.
const CONFORMANCE_SAMPLE: &[&str] = &[
    "nytimes.com/article_search.json",
    "twilio.com/api.json",
    "openai.com.json",
    "circleci.com.json",
    "medcorder.com.json",
];

/// `sbx` as a developer: no SBX_TOKEN, a config home of its own.
fn run_as_developer(args: &[&str], url: &str, home: &Path, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(SBX)
        .args(args)
        .env("SBX_URL", url)
        .env_remove("SBX_TOKEN")
        .env("XDG_CONFIG_HOME", home)
        .env("SBX_DATA_DIR", home.join("no-data-dir"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn login_keeps_a_token_the_other_commands_use_and_logout_revokes_it() {
    let (server, url, _data) = serve_payments();
    let home = tempfile::tempdir().unwrap();
    let (status, _, body) = http_post(
        &format!("{url}/api/v1/accounts"),
        r#"{"email": "dev@example.com", "password": "a long enough password"}"#,
    )
    .expect("sign-up answered");
    assert_eq!(status, 201, "{body}");

    let (ok, _, stderr) = run_as_developer(&["sandbox", "list"], &url, home.path(), "");
    assert!(!ok && stderr.contains("sbx login"), "{stderr}");
    let (ok, _, stderr) = run_as_developer(
        &["login", "--email", "dev@example.com", "--password-stdin"],
        &url,
        home.path(),
        "wrong password\n",
    );
    assert!(!ok && stderr.contains("401"), "{stderr}");
    let (ok, stdout, stderr) = run_as_developer(
        &["login", "--email", "dev@example.com", "--password-stdin"],
        &url,
        home.path(),
        "a long enough password\n",
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("as dev@example.com (developer)"),
        "{stdout}"
    );
    let kept = home.path().join("sbx/credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&kept).unwrap().contains("sbx_pat_"));

    let (ok, stdout, stderr) = run_as_developer(
        &["sandbox", "create", "--project", "payments"],
        &url,
        home.path(),
        "",
    );
    assert!(ok, "{stderr}");
    let made: Value = serde_json::from_str(&stdout).unwrap();
    let (ok, stdout, _) = run_as_developer(&["sandbox", "list"], &url, home.path(), "");
    assert!(
        ok && stdout.contains(made["id"].as_str().unwrap()),
        "{stdout}"
    );
    // The admin sees it too; the developer may not publish.
    let (ok, stdout, _) = run(&["sandbox", "list"], &url);
    assert!(ok && stdout.contains(made["id"].as_str().unwrap()));
    let example = example_project();
    let (ok, _, stderr) = run_as_developer(
        &["import", example.to_str().unwrap(), "--name", "mine"],
        &url,
        home.path(),
        "",
    );
    assert!(!ok && stderr.contains("only admins"), "{stderr}");

    let token = std::fs::read_to_string(&kept).unwrap();
    let (ok, stdout, stderr) = run_as_developer(&["logout"], &url, home.path(), "");
    assert!(ok && stdout.contains("revoked"), "{stdout}{stderr}");
    assert!(!std::fs::read_to_string(&kept).unwrap().contains("sbx_pat_"));
    let token: std::collections::BTreeMap<String, String> = serde_json::from_str(&token).unwrap();
    let (ok, _, stderr) = Command::new(SBX)
        .args(["sandbox", "list"])
        .env("SBX_URL", &url)
        .env("SBX_TOKEN", token.values().next().unwrap())
        .output()
        .map(|o| {
            (
                o.status.success(),
                (),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(
        !ok && stderr.contains("401"),
        "the revoked token stops: {stderr}"
    );
    terminate(server);
}

#[test]
fn keys_are_made_listed_rolled_and_revoked() {
    let (server, url, _data) = serve_payments();
    let sandbox = open_payments_sandbox(&url);
    let id = sandbox["id"].as_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "keys",
            "create",
            "--sandbox",
            id,
            "--kind",
            "restricted",
            "--read-only",
            "--name",
            "dashboard",
        ],
        &url,
    );
    assert!(ok, "{stderr}");
    let made: Value = serde_json::from_str(&stdout).unwrap();
    assert!(made["key"].as_str().unwrap().starts_with("rk_test_"));
    assert_eq!(made["permissions"]["read_only"], true);
    let key_id = made["id"].as_str().unwrap();
    let (ok, stdout, _) = run(&["keys", "list", "--sandbox", id], &url);
    assert!(ok && stdout.contains("dashboard") && !stdout.contains(made["key"].as_str().unwrap()));
    let (ok, stdout, stderr) = run(
        &["keys", "roll", key_id, "--sandbox", id, "--expires-in", "0"],
        &url,
    );
    assert!(ok, "{stderr}");
    let rolled: Value = serde_json::from_str(&stdout).unwrap();
    let new_id = rolled["key"]["id"].as_str().unwrap();
    let (ok, _, stderr) = run(&["keys", "revoke", new_id, "--sandbox", id], &url);
    assert!(ok && stderr.contains("revoked"), "{stderr}");
    let (ok, _, stderr) = run(&["keys", "revoke", new_id, "--sandbox", id], &url);
    assert!(!ok && stderr.contains("404"), "{stderr}");
    terminate(server);
}

/// Every file below `dir`, read.
fn files_below(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn no_secret_is_stored_or_logged_in_clear_and_a_new_secrets_key_reseals_them() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("server.log");
    let serve_args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let log = std::fs::File::create(&log_path).unwrap();
    let (server, lines) = start_with(
        &serve_args,
        "listening on",
        &[("SBX_LOG", "debug,sqlx=warn,hyper=warn")],
        log.into(),
    );
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let example = example_project();
    assert!(
        run(
            &["import", example.to_str().unwrap(), "--name", "payments"],
            &url
        )
        .0
    );

    // A developer's password and personal access token.
    let password = "correct horse battery staple";
    let (status, _, body) = http_post(
        &format!("{url}/api/v1/accounts"),
        &format!(r#"{{"email": "dev@example.com", "password": "{password}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let home = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run_as_developer(
        &["login", "--email", "dev@example.com", "--password-stdin"],
        &url,
        home.path(),
        &format!("{password}\n"),
    );
    assert!(ok, "{stderr}");
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("sbx/credentials.json")).unwrap(),
    )
    .unwrap();
    let personal_token = kept.to_string();
    let personal_token = personal_token
        .split('"')
        .find(|part| part.len() > 30 && !part.contains("://"))
        .expect("a token in the credentials file")
        .to_owned();

    // A sandbox key, a webhook secret, an OAuth client secret and a token.
    let (ok, stdout, stderr) = run(&["sandbox", "create", "--project", "payments"], &url);
    assert!(ok, "{stderr}");
    let sandbox: Value = serde_json::from_str(&stdout).unwrap();
    let id = sandbox["id"].as_str().unwrap().to_owned();
    let api_key = sandbox["api_key"].as_str().unwrap().to_owned();
    let (status, _, body) = http_post_with(
        &format!("{url}/api/v1/sandboxes/{id}/webhook-endpoints"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        r#"{"url": "https://hooks.example.com/in"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let endpoint: Value = serde_json::from_str(&body).unwrap();
    let webhook_secret = endpoint["secret"].as_str().unwrap().to_owned();
    let (ok, stdout, stderr) = run(
        &[
            "oauth",
            "clients",
            "create",
            "--sandbox",
            &id,
            "--name",
            "ci",
        ],
        &url,
    );
    assert!(ok, "{stderr}");
    let client: Value = serde_json::from_str(&stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let client_secret = client["client_secret"].as_str().unwrap().to_owned();
    let token = |url: &str| {
        let output = Command::new(SBX)
            .args(["token", "--sandbox", &id, "--client-id", &client_id])
            .env("SBX_URL", url)
            .env("SBX_CLIENT_SECRET", &client_secret)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let access_token = token(&url);
    assert_eq!(access_token.split('.').count(), 3, "a JWT: {access_token}");
    let (status, _) = http_get(
        &format!("{url}/sbx/{id}/v1/payments"),
        &[("Authorization", &format!("Bearer {api_key}"))],
    );
    assert_eq!(status, 200);
    terminate(server);

    let mut places = files_below(data.path());
    places.push((log_path.clone(), std::fs::read(&log_path).unwrap()));
    assert!(places.iter().any(|(path, _)| path.ends_with("sbx.db")));
    let log_text = String::from_utf8_lossy(&places.last().unwrap().1).into_owned();
    assert!(
        log_text.contains(" INFO sbx_server::app: serving"),
        "the log was captured: {log_text}"
    );
    for (what, secret) in [
        ("password", password),
        ("personal access token", &personal_token),
        ("admin token", TOKEN),
        ("sandbox key", &api_key),
        ("webhook secret", &webhook_secret),
        ("OAuth client secret", &client_secret),
        ("access token", &access_token),
        // The PKCS#8 header of every P-256 private key, base64.
        (
            "OAuth signing key",
            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
        ),
    ] {
        for (path, bytes) in &places {
            assert!(
                !contains(bytes, secret),
                "the {what} is in clear in {}",
                path.display()
            );
        }
    }

    // A new secrets key, the old one listed as previous: everything is
    // re-sealed at start and keeps working; then the old key can go.
    let old_key = std::fs::read_to_string(data.path().join("secrets-key")).unwrap();
    let new_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let (server, lines) = start_with(
        &serve_args,
        "listening on",
        &[
            ("SBX_LOG", "warn"),
            ("SBX_SECRETS_KEY", new_key),
            ("SBX_SECRETS_PREVIOUS_KEYS", old_key.trim()),
        ],
        Stdio::null(),
    );
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    assert_eq!(token(&url).split('.').count(), 3);
    terminate(server);
    let (server, lines) = start_with(
        &serve_args,
        "listening on",
        &[("SBX_LOG", "warn"), ("SBX_SECRETS_KEY", new_key)],
        Stdio::null(),
    );
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let (ok, stdout, stderr) = run(&["sandbox", "show", &id], &url);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&id));
    assert_eq!(
        token(&url).split('.').count(),
        3,
        "signed with the re-sealed key"
    );
    terminate(server);

    // A key the secrets were not sealed under stops the start, saying why.
    let output = Command::new(SBX)
        .args(serve_args)
        .env("SBX_ADMIN_TOKEN", TOKEN)
        .env("SBX_SECRETS_KEY", old_key.trim())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("previous_keys"),
        "{stderr}"
    );
}

/// `curl` with the admin token: (status, body).
fn admin_curl(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(body) = body {
        command.args(["-d", body]);
    }
    let output = command.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Memory control group directories of processes whose group names `needle`.
fn memory_groups_naming(needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let groups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        for line in groups.lines().filter(|l| l.contains(needle)) {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
            match (controllers, path) {
                (Some("memory"), Some(path)) => found
                    .push(Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'))),
                (Some(""), Some(path)) => {
                    found.push(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
                }
                _ => {}
            }
        }
    }
    found
}

/// Whether a process runs `sleep {seconds}`.
fn sleeping(seconds: &str) -> bool {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes())
    })
}

#[test]
fn sessions_survive_their_server_crashing_and_are_lost_only_when_their_files_are() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let serve = || {
        start(
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
            "listening on",
        )
    };
    let (mut server, lines) = serve();
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let create = |url: &str, body: &str| {
        let (status, session) = admin_curl("POST", &format!("{url}/api/v1/sessions"), Some(body));
        assert_eq!(status, 201, "{session}");
        session["id"].as_str().unwrap().to_owned()
    };
    let run = |url: &str, id: &str, body: &str| {
        admin_curl(
            "POST",
            &format!("{url}/api/v1/sessions/{id}/executions"),
            Some(body),
        )
    };
    let kept = create(
        &url,
        r#"{"template": "shell", "env": {"GREETING": "hej"}, "resources": {"memory_bytes": 67108864}}"#,
    );
    let short = create(&url, r#"{"template": "shell", "lifetime_seconds": 3}"#);
    let created = std::time::Instant::now();
    let (status, wrote) = run(&url, &kept, r#"{"command": "echo kept > note.txt"}"#);
    assert_eq!(
        (status, wrote["status"].as_str()),
        (200, Some("ok")),
        "{wrote}"
    );
    let (status, started) = run(&url, &kept, r#"{"command": "sleep 313", "wait": false}"#);
    assert_eq!(status, 202, "{started}");
    eventually("the run to start", || sleeping("313").then_some(()));

    Command::new("kill")
        .args(["-KILL", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    // The short session's lifetime runs out while no server runs.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(created.elapsed()));

    let (server, lines) = serve();
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let (status, resumed) = admin_curl("GET", &format!("{url}/api/v1/sessions/{kept}"), None);
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "running", "{resumed}");
    assert_eq!(resumed["resources"]["memory_bytes"], 67108864, "{resumed}");
    assert!(!sleeping("313"), "its run died with the server");
    let (status, read) = run(
        &url,
        &kept,
        r#"{"command": "cat note.txt; echo $GREETING"}"#,
    );
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["stdout"], "kept\nhej\n",
        "files and variables kept: {read}"
    );
    let (status, expired) = admin_curl("GET", &format!("{url}/api/v1/sessions/{short}"), None);
    assert_eq!(status, 200, "{expired}");
    assert_eq!(
        (expired["status"].as_str(), expired["reason"].as_str()),
        (Some("ended"), Some("ttl_expired")),
        "{expired}"
    );
    let sessions = data.path().join("sessions");
    assert!(!sessions.join(&short).exists(), "its workspace is removed");

    // A graceful stop takes its sessions' files with it: the next start
    // reports the session lost, and nothing of it is left.
    let session_group = eventually("the resumed session's group", || {
        memory_groups_naming(&kept).first().and_then(|g| {
            g.ancestors()
                .find(|a| a.ends_with(&kept))
                .map(Path::to_path_buf)
        })
    });
    terminate(server);
    let (server, lines) = serve();
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let (_, lost) = admin_curl("GET", &format!("{url}/api/v1/sessions/{kept}"), None);
    assert_eq!(
        (lost["status"].as_str(), lost["reason"].as_str()),
        (Some("ended"), Some("lost")),
        "{lost}"
    );
    assert_eq!(
        memory_groups_naming(&kept),
        Vec::<std::path::PathBuf>::new(),
        "no process of the session is left"
    );
    assert!(!session_group.exists(), "its control group is removed");
    assert!(!sessions.join(&kept).exists(), "its workspace is removed");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&kept) && !mounts.contains(&short),
        "nor left mounted"
    );
    let (_, listed) = admin_curl("GET", &format!("{url}/api/v1/sessions"), None);
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    terminate(server);
}

#[test]
fn sessions_from_the_terminal_exec_copy_list_and_end() {
    let (server, url, data) = serve();
    let sbx = |args: &[&str]| {
        Command::new(SBX)
            .args(args)
            .env("SBX_URL", &url)
            .env("SBX_TOKEN", TOKEN)
            .output()
            .expect("runs")
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // One-off: the run's output streams through, its exit code is ours.
    let once = sbx(&[
        "exec",
        "--template",
        "python",
        "--",
        "python3",
        "-c",
        "import sys; print('it\\'s out'); print('err', file=sys.stderr); sys.exit(3)",
    ]);
    assert_eq!(once.status.code(), Some(3), "{}", text(&once.stderr));
    assert_eq!(text(&once.stdout), "it's out\n");
    assert!(
        text(&once.stderr).starts_with("err\nsbx: the run ended error"),
        "{}",
        text(&once.stderr)
    );
    let (_, listed) = admin_curl("GET", &format!("{url}/api/v1/sessions"), None);
    assert_eq!(
        listed["items"],
        serde_json::json!([]),
        "sbx exec ends its session"
    );

    let created = sbx(&[
        "session",
        "create",
        "--template",
        "python",
        "--memory-mib",
        "128",
        "--env",
        "GREETING=hej",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let session: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(session["resources"]["memory_bytes"], 128 * 1024 * 1024);
    let id = session["id"].as_str().unwrap().to_owned();

    let local = data.path().join("note.txt");
    std::fs::write(&local, "hello from the host\n").unwrap();
    let copied = sbx(&[
        "session",
        "cp",
        local.to_str().unwrap(),
        &format!("{id}:in/note.txt"),
    ]);
    assert!(copied.status.success(), "{}", text(&copied.stderr));
    let ran = sbx(&[
        "session",
        "exec",
        &id,
        "--env",
        "SHOUT=1",
        "-c",
        "import os\nline = open('in/note.txt').read().upper()\nopen('out.txt', 'w').write(os.environ['GREETING'] + ' ' + line)\nprint(os.environ['SHOUT'])",
    ]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert_eq!(text(&ran.stdout), "1\n");
    let out = sbx(&["session", "cp", &format!("{id}:out.txt"), "-"]);
    assert_eq!(text(&out.stdout), "hej HELLO FROM THE HOST\n");
    let listed = sbx(&["session", "ls", &id]);
    let lines = text(&listed.stdout);
    assert!(
        lines.contains("d") && lines.contains(" in\n") && lines.contains(" out.txt\n"),
        "{lines}"
    );
    let outside = sbx(&["session", "cp", &format!("{id}:../../etc/passwd"), "-"]);
    assert!(!outside.status.success());
    assert!(
        text(&outside.stderr).contains("422"),
        "{}",
        text(&outside.stderr)
    );

    let ended = sbx(&["session", "rm", &id]);
    assert!(ended.status.success(), "{}", text(&ended.stderr));
    let shown = sbx(&["session", "show", &id]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["reason"], "deleted", "{shown}");
    // Stopped right after an end, the server still finishes its clean-up.
    terminate(server);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(data.path().to_str().unwrap()),
        "no workspace stays mounted: {mounts}"
    );
}

/// The Docker engine's socket (`DOCKER_HOST`'s, or the default), when one
/// is there: `.ci/run` starts an engine.
fn docker_socket() -> Option<String> {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    Path::new(&socket).exists().then_some(socket)
}

/// The containers the engine holds for session `id`.
fn containers_of(socket: &str, id: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.smartsandbox/session={id}"),
        ])
        .env("DOCKER_HOST", format!("unix://{socket}"))
        .output()
        .expect("the docker CLI (docker.io) runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn docker_sessions_survive_a_crash_in_a_new_container_and_leave_none_at_a_stop() {
    let Some(socket) = docker_socket() else {
        eprintln!("skipped: no Docker engine here; .ci/run starts one");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("sbx.toml");
    std::fs::write(
        &config,
        format!("[session_runtime]\nkind = \"docker\"\nsocket = \"{socket}\"\n"),
    )
    .unwrap();
    let (dir, config) = (
        data.path().join("data").to_str().unwrap().to_owned(),
        config.to_str().unwrap().to_owned(),
    );
    let serve = || {
        start(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &dir,
                "--config",
                &config,
            ],
            "listening on",
        )
    };
    let (mut server, lines) = serve();
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let (status, session) = admin_curl(
        "POST",
        &format!("{url}/api/v1/sessions"),
        Some(r#"{"template": "shell", "env": {"GREETING": "hej"}}"#),
    );
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let run = |url: &str, command: &str| {
        admin_curl(
            "POST",
            &format!("{url}/api/v1/sessions/{id}/executions"),
            Some(&serde_json::json!({ "command": command }).to_string()),
        )
    };
    let (status, wrote) = run(&url, "echo kept > note.txt");
    assert_eq!(
        (status, wrote["status"].as_str()),
        (200, Some("ok")),
        "{wrote}"
    );
    let before = containers_of(&socket, &id);
    assert_eq!(before.len(), 1, "{before:?}");

    Command::new("kill")
        .args(["-KILL", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();
    let (server, lines) = serve();
    let url = field(&lines, "SmartSandbox listening on").to_owned();
    let (status, read) = run(&url, "cat note.txt; echo $GREETING");
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["stdout"], "kept\nhej\n",
        "files and variables kept: {read}"
    );
    let after = containers_of(&socket, &id);
    assert_eq!(
        after.len(),
        1,
        "the killed server's container is gone: {after:?}"
    );
    assert_ne!(after, before, "the session runs in a new container");

    terminate(server);
    assert_eq!(
        containers_of(&socket, &id),
        Vec::<String>::new(),
        "a graceful stop leaves no container"
    );
}

/// A new empty database on the PostgreSQL server `SBX_TEST_POSTGRES_URL`
/// names (`scripts/test.sh` starts one); without it the test is skipped,
/// except in CI.
fn postgres_database() -> Option<String> {
    let Ok(server) = std::env::var("SBX_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "SBX_TEST_POSTGRES_URL is unset: scripts/test.sh starts PostgreSQL"
        );
        eprintln!("skipped: SBX_TEST_POSTGRES_URL is unset (scripts/test.sh starts PostgreSQL)");
        return None;
    };
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("sbx_cli_{}_{made}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Some(
        runtime
            .block_on(sbx_store::PgStore::create_database(&server, &name))
            .unwrap(),
    )
}

/// `count` servers (`sbx serve … extra`) on PostgreSQL `database`,
/// started one after another — the first holds the database — each with
/// its data dir; their URLs.
fn servers_on_postgres(
    database: &str,
    count: usize,
    extra: &[&str],
) -> (Vec<Running>, Vec<String>, Vec<tempfile::TempDir>) {
    let envs = [
        ("SBX_LOG", "warn"),
        (
            "SBX_SECRETS_KEY",
            "c2J4LXRlc3Qtc2VjcmV0cy1rZXktMzItYnl0ZXMhISE=",
        ),
    ];
    let (mut servers, mut urls, mut dirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        let data = tempfile::tempdir().unwrap();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--database-url",
            database,
        ];
        args.extend_from_slice(extra);
        let (server, lines) = start_with(&args, "listening on", &envs, Stdio::null());
        urls.push(field(&lines, "SmartSandbox listening on").to_owned());
        servers.push(server);
        dirs.push(data);
    }
    (servers, urls, dirs)
}

/// Imports the payments example through `url` and opens a sandbox of it;
/// its id.
fn payments_sandbox_through(url: &str) -> String {
    let example = example_project();
    let (ok, _, stderr) = run(
        &["import", example.to_str().unwrap(), "--name", "payments"],
        url,
    );
    assert!(ok, "{stderr}");
    open_payments_sandbox(url)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a customer named `name` in sandbox `id` through `url`: its id
/// once acknowledged (201), else the status and body.
fn create_customer(url: &str, id: &str, name: &str) -> Result<String, String> {
    match http_post(
        &format!("{url}/sbx/{id}/v1/customers"),
        &format!(r#"{{"name": "{name}", "email": "someone@example.com"}}"#),
    ) {
        Some((201, _, body)) => {
            let customer: Value = serde_json::from_str(&body).unwrap();
            Ok(customer["id"].as_str().unwrap().to_owned())
        }
        other => Err(format!("{other:?}")),
    }
}

/// Sends `signal` (`STOP`, `CONT`) to `server`.
fn signal(server: &Running, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &server.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal}");
}

/// A create answered during a failover: the customer's id if it was
/// acknowledged (201), nothing if it was refused with 503 and
/// `Retry-After` (the client is to send it again); anything else fails.
fn acknowledged_or_retry(
    what: &str,
    (status, head, body): (u16, String, String),
) -> Option<String> {
    eprintln!("{what}: {status}");
    match status {
        201 => {
            let customer: Value = serde_json::from_str(&body).unwrap();
            Some(customer["id"].as_str().unwrap().to_owned())
        }
        503 => {
            assert!(
                head.to_ascii_lowercase().contains("retry-after: 1"),
                "{head}"
            );
            None
        }
        other => panic!("{what} answered {other}: {body}"),
    }
}

/// Which of `urls` serves the database itself (its readiness says
/// `ready`), once one does.
fn holder_among(urls: &[&str]) -> usize {
    eventually("a server holds the database", || {
        urls.iter().position(|url| {
            let (status, ready) = http_get(&format!("{url}/readyz"), &[]);
            status == 200 && ready.contains(r#""status":"ready""#)
        })
    })
}

/// A graceful stop (SIGTERM) of the holder hands the database to the
/// server standing by, and not one request sent through that server fails
/// meanwhile: those that find no holder wait for the new one — a rolling
/// update.
#[test]
fn a_graceful_stop_hands_the_database_over_without_failing_a_request() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (mut servers, urls, _data) = servers_on_postgres(&database, 2, &[]);
    let (holder_url, url) = (urls[0].clone(), urls[1].clone());
    let id = payments_sandbox_through(&url);
    let first = create_customer(&url, &id, "Ada Lovelace").unwrap();
    let read = format!("{url}/sbx/{id}/v1/customers/{first}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url, id) = (stop.clone(), url.clone(), id.clone());
        std::thread::spawn(move || {
            let (mut created, mut failed) = (Vec::new(), Vec::new());
            let mut reads = 0;
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if n % 2 == 0 {
                    let (status, body) = http_get(&read, &[]);
                    reads += 1;
                    if status != 200 {
                        failed.push(format!("GET: {status} {body}"));
                    }
                    continue;
                }
                match create_customer(&url, &id, &format!("Customer {n}")) {
                    Ok(customer) => created.push(customer),
                    Err(why) => failed.push(format!("POST: {why}")),
                }
            }
            (reads, created, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let holder = &mut servers[0];
    signal(holder, "TERM");
    let stopping = std::time::Instant::now();
    let stopped = eventually("the holder stops", || holder.try_wait().unwrap());
    assert!(stopped.success(), "a graceful stop: {stopped}");
    holder_among(&[&url]);
    let handed_over = stopping.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, created, failed) = load.join().unwrap();
    eprintln!(
        "handed over in {handed_over:?}: {reads} reads and {} writes through the standby, {} failed",
        created.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(std::net::TcpStream::connect(holder_url.trim_start_matches("http://")).is_err());
    for customer in &created {
        let (status, body) = http_get(&format!("{url}/sbx/{id}/v1/customers/{customer}"), &[]);
        assert_eq!(status, 200, "{customer}: {body}");
    }
}

/// Three servers on PostgreSQL `database` (the first holds it), a
/// payments sandbox, and an endpoint of it at a counting receiver that
/// answers after `pause`: the servers, their URLs and data dirs, the
/// sandbox's id, and what the receiver saw.
fn three_servers_delivering_to_a_receiver(
    database: &str,
    pause: Duration,
) -> (
    Vec<Running>,
    Vec<String>,
    Vec<tempfile::TempDir>,
    String,
    Seen,
) {
    let (servers, urls, data) = servers_on_postgres(database, 3, &["--allow-private-egress"]);
    let id = payments_sandbox_through(&urls[1]);
    let (hooks, seen) = counting_receiver(pause);
    let (status, _, endpoint) = http_post_with(
        &format!("{}/api/v1/sandboxes/{id}/webhook-endpoints", urls[2]),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        &format!(r#"{{"url": "{hooks}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{endpoint}");
    (servers, urls, data, id, seen)
}

/// Three servers on one PostgreSQL database; events emitted through a
/// server standing by while the holder delivers them to a slow external
/// receiver; the holder killed (SIGKILL) mid-delivery: the server that
/// takes over delivers every event at least once (the receiver counts
/// distinct `webhook-id`s).
#[test]
fn every_event_is_delivered_when_the_holder_is_killed_mid_delivery() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (mut servers, urls, _data, id, seen) =
        three_servers_delivering_to_a_receiver(&database, Duration::from_millis(200));
    const EVENTS: usize = 40;
    for n in 0..EVENTS {
        let data = format!(r#"{{"n": {n}}}"#);
        let through = &urls[1 + n % 2];
        let (ok, _, stderr) = run(
            &[
                "trigger",
                "payment.refunded",
                "--sandbox",
                &id,
                "--data",
                &data,
            ],
            through,
        );
        assert!(ok, "{stderr}");
    }
    let delivered_before = seen.0.lock().unwrap().len();
    assert!(delivered_before < EVENTS, "the kill must come mid-delivery");
    let holder = &mut servers[0];
    holder.kill().unwrap();
    holder.wait().unwrap();
    let delivered = wait_for_count(&seen, EVENTS, Duration::from_secs(30));
    eprintln!("{delivered_before} of {EVENTS} events delivered before the kill");
    assert_eq!(
        delivered, EVENTS,
        "events delivered ({delivered_before} before the kill)"
    );
}

/// What a mixed load through the servers standing by had acknowledged.
#[derive(Default)]
struct Acknowledged {
    customers: Vec<String>,
    events: Vec<String>,
    advances: usize,
    advances_sent: usize,
    /// Refused with 503 and `Retry-After` (in flight on the killed server,
    /// or sent while no server held the database).
    refused: usize,
    /// When the first write after the kill was acknowledged.
    first_after_kill: Option<std::time::Instant>,
}

/// Three servers on one PostgreSQL database under a mixed load sent
/// through the two standing by — stateful creates, events emitted to an
/// external receiver, clock advances — and the holder killed (SIGKILL)
/// mid-load: every acknowledged create is served afterwards, every
/// acknowledged event is delivered at least once (the receiver sees its
/// `webhook-id`), the clock moved by every acknowledged advance (and by no
/// more than were sent), nothing answers other than acknowledged or 503
/// with `Retry-After`, and the sandbox answers again within 5 s; then a
/// revision published through one server is served through the other
/// within a second.
#[test]
fn a_mixed_load_loses_nothing_acknowledged_when_the_holder_is_killed() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (mut servers, urls, _data, id, seen) =
        three_servers_delivering_to_a_receiver(&database, Duration::from_millis(20));
    let auth = format!("Bearer {TOKEN}");
    let killed_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>> =
        std::sync::Arc::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = |through: String| {
        let (stop, killed_at, id, auth) =
            (stop.clone(), killed_at.clone(), id.clone(), auth.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Acknowledged::default();
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (path, body) = match n % 3 {
                    0 => (
                        format!("/sbx/{id}/v1/customers"),
                        format!(r#"{{"name": "Customer {n}", "email": "c{n}@example.com"}}"#),
                    ),
                    1 => (
                        format!("/api/v1/sandboxes/{id}/events"),
                        format!(r#"{{"type": "payment.refunded", "data": {{"n": {n}}}}}"#),
                    ),
                    _ => (
                        format!("/api/v1/sandboxes/{id}/clock"),
                        r#"{"advance": "PT1M"}"#.to_owned(),
                    ),
                };
                if n % 3 == 2 {
                    acknowledged.advances_sent += 1;
                }
                let answer = http_post_with(
                    &format!("{through}{path}"),
                    &[("Authorization", &auth)],
                    &body,
                );
                let Some((status, head, body)) = answer else {
                    panic!("{through} stands by and never goes away");
                };
                match (status, n % 3) {
                    (201, 0) | (201, 1) => {
                        let made: Value = serde_json::from_str(&body).unwrap();
                        let made = made["id"].as_str().unwrap().to_owned();
                        if n % 3 == 0 {
                            acknowledged.customers.push(made);
                        } else {
                            acknowledged.events.push(made);
                        }
                    }
                    (200, 2) => acknowledged.advances += 1,
                    (503, _) if head.to_ascii_lowercase().contains("retry-after:") => {
                        acknowledged.refused += 1;
                        continue;
                    }
                    (status, _) => panic!("POST {path} answered {status}: {body}"),
                }
                if acknowledged.first_after_kill.is_none() && killed_at.lock().unwrap().is_some() {
                    acknowledged.first_after_kill = Some(std::time::Instant::now());
                }
            }
            acknowledged
        })
    };
    let loads = [load(urls[1].clone()), load(urls[2].clone())];
    std::thread::sleep(Duration::from_millis(1500));
    let holder = &mut servers[0];
    holder.kill().unwrap();
    *killed_at.lock().unwrap() = Some(std::time::Instant::now());
    holder.wait().unwrap();
    holder_among(&[&urls[1], &urls[2]]);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<Acknowledged> = loads.into_iter().map(|l| l.join().unwrap()).collect();
    let killed_at = killed_at.lock().unwrap().unwrap();
    let back_after = results
        .iter()
        .filter_map(|r| r.first_after_kill)
        .min()
        .expect("writes acknowledged after the kill")
        - killed_at;
    let count = |f: fn(&Acknowledged) -> usize| results.iter().map(f).sum::<usize>();
    let (customers, events) = (count(|r| r.customers.len()), count(|r| r.events.len()));
    let (advances, advances_sent) = (count(|r| r.advances), count(|r| r.advances_sent));
    eprintln!(
        "acknowledged {customers} creates, {events} events, {advances} of {advances_sent} clock advances; {} refused with Retry-After; answering again {back_after:?} after the kill",
        count(|r| r.refused)
    );
    assert!(
        back_after < Duration::from_secs(5),
        "answered again {back_after:?} after the kill"
    );
    let served = &urls[1];
    for customer in results.iter().flat_map(|r| &r.customers) {
        let (status, body) = http_get(
            &format!("{served}/sbx/{id}/v1/customers/{customer}"),
            &[("Authorization", &auth)],
        );
        assert_eq!(status, 200, "{customer}: {body}");
    }
    let (status, clock) = http_get(
        &format!("{served}/api/v1/sandboxes/{id}/clock"),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{clock}");
    let offset_ms = serde_json::from_str::<Value>(&clock).unwrap()["offset_ms"]
        .as_i64()
        .unwrap();
    let minute = 60_000;
    assert!(
        offset_ms >= advances as i64 * minute && offset_ms <= advances_sent as i64 * minute,
        "the clock moved {offset_ms} ms for {advances} acknowledged of {advances_sent} sent advances"
    );
    all_delivered(&seen, results.iter().flat_map(|r| &r.events));

    // A revision published through one server is served through the other
    // within a second.
    let example = example_project();
    let (ok, _, stderr) = run(
        &["import", example.to_str().unwrap(), "--name", "payments"],
        &urls[2],
    );
    assert!(ok, "{stderr}");
    let published = std::time::Instant::now();
    loop {
        let (_, sandbox) = http_get(
            &format!("{served}/api/v1/sandboxes/{id}"),
            &[("Authorization", &auth)],
        );
        if serde_json::from_str::<Value>(&sandbox).unwrap()["revision"] == 2 {
            break;
        }
        assert!(
            published.elapsed() < Duration::from_secs(1),
            "revision 2 not served through {served} within 1 s: {sandbox}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "revision 2 served through the other server {:?} after its publication",
        published.elapsed()
    );
}

/// A PostgreSQL cluster of a test's own (`scripts/postgres.sh` under a
/// directory of its own), so that restarting it disturbs no other test;
/// stopped when dropped.
struct OwnPostgres {
    dir: String,
    url: String,
}

impl OwnPostgres {
    fn start() -> Self {
        let dir = format!("/tmp/sbx-test-postgres-{}", std::process::id());
        let url = Self::script(&dir, &[]);
        Self { dir, url }
    }

    fn restart(&self) {
        Self::script(&self.dir, &["restart"]);
    }

    fn script(dir: &str, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh");
        let output = Command::new(script)
            .args(args)
            .env("SBX_PG_DIR", dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "scripts/postgres.sh {args:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        Self::script(&self.dir, &["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PostgreSQL restarts (a fast shutdown) while two servers on it take
/// writes: they reconnect, the holder keeps the database (its lease
/// outlasts the restart), writes succeed again within seconds, and every
/// write acknowledged before, during or after is served.
#[test]
fn a_postgresql_restart_under_load_loses_no_acknowledged_write() {
    if postgres_database().is_none() {
        return;
    }
    let postgres = OwnPostgres::start();
    let database = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(sbx_store::PgStore::create_database(
                &postgres.url,
                "sbx_restart",
            ))
            .unwrap()
    };
    let (mut servers, urls, _data) = servers_on_postgres(&database, 2, &[]);
    let id = payments_sandbox_through(&urls[1]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writes through both servers, one after another, for as long as the
    // test runs: which were acknowledged, and when.
    let load = {
        let (stop, urls, id) = (stop.clone(), urls.clone(), id.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match create_customer(&urls[n % 2], &id, &format!("Customer {n}")) {
                    Ok(customer) => acknowledged.push((std::time::Instant::now(), customer)),
                    Err(_) => refused += 1,
                }
            }
            (acknowledged, refused)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let restarted = std::time::Instant::now();
    postgres.restart();
    let restart_took = restarted.elapsed();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, refused) = load.join().unwrap();
    let after = acknowledged
        .iter()
        .filter(|(at, _)| *at > restarted + restart_took)
        .count();
    eprintln!(
        "restart took {restart_took:?}; {} writes acknowledged ({after} after it), {refused} refused",
        acknowledged.len()
    );
    assert!(after > 0, "writes succeed again after the restart");
    for server in &mut servers {
        assert!(
            server.try_wait().unwrap().is_none(),
            "both servers still run"
        );
    }
    let (status, ready) = http_get(&format!("{}/readyz", urls[0]), &[]);
    assert!(
        status == 200 && ready.contains(r#""status":"ready""#),
        "the first still holds the database: {ready}"
    );
    for (_, customer) in &acknowledged {
        let (status, body) = http_get(
            &format!("{}/sbx/{id}/v1/customers/{customer}", urls[1]),
            &[],
        );
        assert_eq!(status, 200, "{customer} is served: {body}");
    }
    drop(servers);
}

/// Three `sbx serve` on one PostgreSQL database without
/// `spread_sandboxes`: one holds it, the others stand by and forward every
/// call to it (their readiness probes name it). Paused (SIGSTOP) past its
/// lease, the holder is replaced within
/// seconds, and once resumed it serves nothing from its stale memory and
/// stops (the database refuses its renewal); killed (SIGKILL), the next is
/// replaced too; a holder whose connections the database drops reconnects
/// and goes on. Every acknowledged write is served throughout.
#[test]
fn servers_sharing_a_database_take_over_from_a_paused_or_killed_holder() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (_config, file) = config_file("spread_sandboxes = false\n");
    let (servers, urls, _data) = servers_on_postgres(&database, 3, &["--config", &file]);
    let mut servers: Vec<Option<Running>> = servers.into_iter().map(Some).collect();
    // Through servers standing by: forwarded to the holder.
    let id = payments_sandbox_through(&urls[1]);
    let mut acknowledged = Vec::new();
    let create = |url: &str, name: &str| create_customer(url, &id, name).ok();
    acknowledged.push(create(&urls[2], "Ada Lovelace").expect("created through a standby"));
    let (status, ready) = http_get(&format!("{}/readyz", urls[1]), &[]);
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "forwarding", "{ready}");
    assert_eq!(ready["holder"]["address"], urls[0].as_str(), "{ready}");
    assert_eq!(ready["holder"]["epoch"], 1, "{ready}");
    let serves_all = |url: &str, acknowledged: &[String]| {
        for customer in acknowledged {
            let (status, body) = http_get(&format!("{url}/sbx/{id}/v1/customers/{customer}"), &[]);
            assert_eq!(status, 200, "{customer} is served at {url}: {body}");
        }
    };

    // Paused past its lease: another server takes over.
    signal(servers[0].as_ref().unwrap(), "STOP");
    let paused = std::time::Instant::now();
    let write_in_background = |url: &str| {
        let target = format!("{url}/sbx/{id}/v1/customers");
        std::thread::spawn(move || {
            http_post(
                &target,
                r#"{"name": "Sent while paused", "email": "late@example.com"}"#,
            )
        })
    };
    // A write sent to the paused holder waits in its listener's queue;
    // one sent through a server standing by is forwarded to the paused
    // holder, and answered once another takes over.
    let late_write = write_in_background(&urls[0]);
    let forwarded_write = write_in_background(&urls[1]);
    let next = 1 + holder_among(&[&urls[1], &urls[2]]);
    let took = paused.elapsed();
    eprintln!("took over {took:?} after the pause");
    assert!(took < Duration::from_secs(5), "took over in {took:?}");
    serves_all(&urls[next], &acknowledged);
    acknowledged.push(create(&urls[next], "Grace Hopper").expect("created by the new holder"));
    eventually(
        "the forwarded write is answered while the holder is paused",
        || forwarded_write.is_finished().then_some(()),
    );
    let answered = forwarded_write.join().unwrap().expect("an answer");
    acknowledged.extend(acknowledged_or_retry(
        "the write forwarded while paused",
        answered,
    ));

    // Resumed: it answers nothing from its memory. What it was sent is
    // passed to the new holder or refused, and it stops.
    signal(servers[0].as_ref().unwrap(), "CONT");
    let answered = late_write.join().unwrap().expect("an answer");
    acknowledged.extend(acknowledged_or_retry(
        "the write sent while paused",
        answered,
    ));
    let mut resumed = servers[0].take().unwrap();
    let stopped = eventually("the resumed holder stops", || resumed.try_wait().unwrap());
    assert!(!stopped.success(), "it says it lost its hold: {stopped}");
    serves_all(&urls[next], &acknowledged);
    let (_, ready) = http_get(&format!("{}/readyz", urls[next]), &[]);
    let (_, forwarding) = http_get(&format!("{}/readyz", urls[3 - next]), &[]);
    assert!(
        forwarding.contains(r#""epoch":2"#),
        "{forwarding} / {ready}"
    );
    let metrics = |url: &str| {
        let bearer = format!("Bearer {TOKEN}");
        http_get(&format!("{url}/metrics"), &[("authorization", &bearer)]).1
    };
    let held = metrics(&urls[next]);
    assert!(held.contains("sbx_database_hold_epoch 2"), "{held}");
    let standing_by = metrics(&urls[3 - next]);
    assert!(
        standing_by.contains("sbx_database_hold_epoch 0"),
        "{standing_by}"
    );
    assert!(
        standing_by.contains(r#"sbx_forwarded_requests_total{outcome="forwarded"}"#),
        "{standing_by}"
    );

    // Killed: the last server takes over.
    let mut killed = servers[next].take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let last = 3 - next;
    holder_among(&[&urls[last]]);
    let took = killed_at.elapsed();
    eprintln!("took over {took:?} after the kill");
    assert!(took < Duration::from_secs(5), "took over in {took:?}");
    serves_all(&urls[last], &acknowledged);

    // The database drops every connection (a restart, a network blip): the
    // holder reconnects and goes on holding.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dropped: i64 = runtime.block_on(async {
        let admin = sqlx::PgPool::connect(&database).await.unwrap();
        sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&admin)
        .await
        .unwrap()
    });
    assert!(
        dropped >= 2,
        "the holder's connections were dropped: {dropped}"
    );
    let created = eventually("a write succeeds again", || {
        create(&urls[last], "Katherine Johnson")
    });
    acknowledged.push(created);
    std::thread::sleep(Duration::from_secs(2));
    let holder = servers[last].as_mut().unwrap();
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder still runs"
    );
    holder_among(&[&urls[last]]);
    serves_all(&urls[last], &acknowledged);
}

/// The replica id of the server at `url`, as its readiness says; `None`
/// once it is gone.
fn replica_of(url: &str) -> Option<String> {
    TcpStream::connect(url.trim_start_matches("http://")).ok()?;
    let (_, ready) = http_get(&format!("{url}/readyz"), &[]);
    let ready: Value = serde_json::from_str(&ready).ok()?;
    Some(ready["replica"].as_str()?.to_owned())
}

/// Which server of `urls` serves sandbox `id`, as the sandbox says.
fn server_of(urls: &[String], id: &str) -> usize {
    let (status, sandbox) = admin_curl("GET", &format!("{}/api/v1/sandboxes/{id}", urls[0]), None);
    assert_eq!(status, 200, "{sandbox}");
    let server = sandbox["server"].as_str().unwrap().to_owned();
    urls.iter()
        .position(|url| replica_of(url).as_deref() == Some(&server))
        .unwrap_or_else(|| panic!("{server} is none of the servers"))
}

/// What a load thread of [`SpreadLoad`] had acknowledged.
#[derive(Default)]
struct Acknowledgements {
    /// Customers made, with their sandbox.
    customers: Vec<(String, String)>,
    events: Vec<String>,
    /// Refused with 503 and `Retry-After` (only the affected sandbox's).
    refused: usize,
    /// When the affected sandbox first acknowledged a write sent after
    /// the kill.
    back: Option<std::time::Instant>,
    /// The longest any request took.
    slowest: Duration,
}

/// Creates and events spread over sandboxes, sent through some servers
/// while another is killed: only the affected sandbox (the killed server's)
/// may refuse, and only with 503 and `Retry-After`.
struct SpreadLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    killed_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    threads: Vec<std::thread::JoinHandle<Acknowledgements>>,
}

impl SpreadLoad {
    /// A load thread through each of `urls[through]` over `ids`.
    fn start(urls: &[String], through: &[usize], ids: &[String], affected: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killed_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>> =
            std::sync::Arc::default();
        let threads = through
            .iter()
            .map(|&server| {
                let (stop, killed_at, url, ids, affected) = (
                    stop.clone(),
                    killed_at.clone(),
                    urls[server].clone(),
                    ids.to_vec(),
                    affected.to_owned(),
                );
                std::thread::spawn(move || {
                    let mut acknowledged = Acknowledgements::default();
                    for n in 0.. {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let id = &ids[(n / 2) % ids.len()];
                        let event = n % 2 == 1;
                        let sent_after_kill = killed_at.lock().unwrap().is_some();
                        let sent = std::time::Instant::now();
                        let answer = if event {
                            http_post_with(
                                &format!("{url}/api/v1/sandboxes/{id}/events"),
                                &[("Authorization", &format!("Bearer {TOKEN}"))],
                                &format!(r#"{{"type": "payment.refunded", "data": {{"n": {n}}}}}"#),
                            )
                        } else {
                            http_post(
                                &format!("{url}/sbx/{id}/v1/customers"),
                                &format!(
                                    r#"{{"name": "Customer {n}", "email": "c{n}@example.com"}}"#
                                ),
                            )
                        };
                        let (status, head, body) = answer.expect("the server stays up");
                        acknowledged.slowest = acknowledged.slowest.max(sent.elapsed());
                        match status {
                            201 => {
                                let made: Value = serde_json::from_str(&body).unwrap();
                                let made = made["id"].as_str().unwrap().to_owned();
                                if event {
                                    acknowledged.events.push(made);
                                } else {
                                    acknowledged.customers.push((id.clone(), made));
                                }
                                if *id == affected && acknowledged.back.is_none() && sent_after_kill
                                {
                                    acknowledged.back = Some(std::time::Instant::now());
                                }
                            }
                            503 if *id == affected
                                && head.to_ascii_lowercase().contains("retry-after:") =>
                            {
                                acknowledged.refused += 1;
                            }
                            other => panic!("POST to {id} through {url} answered {other}: {body}"),
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        Self {
            stop,
            killed_at,
            threads,
        }
    }

    /// Stops the load: what each thread had acknowledged.
    fn stop(self) -> Vec<Acknowledgements> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect()
    }

    /// Stops the load and checks it: the affected sandbox answered again
    /// within 5 s of `killed_at`, and [`served_and_delivered`].
    fn check(self, killed_at: std::time::Instant, alive: &[&String], seen: &Seen) {
        let results = self.stop();
        let back_after = results
            .iter()
            .filter_map(|r| r.back)
            .min()
            .expect("the affected sandbox answered again")
            - killed_at;
        let events: std::collections::HashSet<&String> =
            results.iter().flat_map(|r| &r.events).collect();
        eprintln!(
            "{} creates and {} events acknowledged, {} refused with Retry-After; the affected sandbox answered again {back_after:?} after the kill",
            results.iter().map(|r| r.customers.len()).sum::<usize>(),
            events.len(),
            results.iter().map(|r| r.refused).sum::<usize>(),
        );
        assert!(
            back_after < Duration::from_secs(5),
            "answered again {back_after:?} after the kill"
        );
        served_and_delivered(&results, alive, seen);
    }
}

/// Every create acknowledged in `results` is served through each of
/// `alive`, and every acknowledged event was delivered (`seen`).
fn served_and_delivered(results: &[Acknowledgements], alive: &[&String], seen: &Seen) {
    for (id, customer) in results.iter().flat_map(|r| &r.customers) {
        for url in alive {
            let (status, body) = http_get(&format!("{url}/sbx/{id}/v1/customers/{customer}"), &[]);
            assert_eq!(status, 200, "{customer} of {id} through {url}: {body}");
        }
    }
    all_delivered(seen, results.iter().flat_map(|r| &r.events));
}

/// Three servers on PostgreSQL `database` with `spread_sandboxes` (the
/// first holds it), each serving one payments sandbox, whose webhook
/// endpoint is a counting receiver.
struct Spread {
    servers: Vec<Running>,
    urls: Vec<String>,
    ids: Vec<String>,
    /// The server of each of `ids`.
    by_server: Vec<usize>,
    seen: Seen,
    _dirs: (tempfile::TempDir, Vec<tempfile::TempDir>),
}

impl Spread {
    fn start(database: &str) -> Self {
        let (config, args) = spread_config();
        let (servers, urls, data) = servers_on_postgres(database, 3, &args.each());
        let holder = holder_among(&[&urls[0], &urls[1], &urls[2]]);
        assert_eq!(holder, 0, "the first server started holds the database");
        let (ids, seen) = sandboxes_delivering(&urls, &urls[1], &urls[2], 3);
        let by_server: Vec<usize> = ids.iter().map(|id| server_of(&urls, id)).collect();
        eprintln!("sandboxes served by servers {by_server:?}");
        let mut served = by_server.clone();
        served.sort_unstable();
        assert_eq!(served, [0, 1, 2], "one sandbox each");
        Self {
            servers,
            urls,
            ids,
            by_server,
            seen,
            _dirs: (config, data),
        }
    }
}

/// The arguments of servers with `spread_sandboxes` and private egress
/// (their receiver is on loopback), with the folder of their config file.
struct SpreadArgs(Vec<String>);

impl SpreadArgs {
    fn each(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

/// A config file holding `settings`: its folder (kept while in use) and
/// its path.
fn config_file(settings: &str) -> (tempfile::TempDir, String) {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("sbx.toml");
    std::fs::write(&file, settings).unwrap();
    (folder, file.to_str().unwrap().to_owned())
}

fn spread_config() -> (tempfile::TempDir, SpreadArgs) {
    let (config, file) = config_file("spread_sandboxes = true\n");
    let args = ["--config", file.as_str(), "--allow-private-egress"];
    (config, SpreadArgs(args.map(str::to_owned).to_vec()))
}

/// `count` payments sandboxes, the project imported through `import`
/// and the sandboxes made through `create`, each with a webhook endpoint
/// at one counting receiver: their ids and what the receiver saw.
fn sandboxes_delivering(
    urls: &[String],
    import: &str,
    create: &str,
    count: usize,
) -> (Vec<String>, Seen) {
    let ids: Vec<String> = std::iter::once(payments_sandbox_through(import))
        .chain((1..count).map(|_| {
            open_payments_sandbox(create)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }))
        .collect();
    let (hooks, seen) = counting_receiver(Duration::from_millis(5));
    for id in &ids {
        let (status, endpoint) = admin_curl(
            "POST",
            &format!("{}/api/v1/sandboxes/{id}/webhook-endpoints", urls[0]),
            Some(&format!(r#"{{"url": "{hooks}"}}"#)),
        );
        assert_eq!(status, 201, "{endpoint}");
    }
    (ids, seen)
}

/// A new payments sandbox (as created) served by server `server` of
/// `urls`: a new sandbox goes to the server serving fewest, which may
/// change as sandboxes spread.
fn payments_sandbox_on(urls: &[String], server: usize) -> Value {
    for _ in 0..4 {
        let made = open_payments_sandbox(&urls[0]);
        if server_of(urls, made["id"].as_str().unwrap()) == server {
            return made;
        }
    }
    panic!("no new sandbox went to server {server}");
}

/// Of sandboxes `ids` served by servers `by_server`, the one `server` serves.
fn sandbox_of(ids: &[String], by_server: &[usize], server: usize) -> String {
    ids[by_server.iter().position(|s| *s == server).unwrap()].clone()
}

/// With `spread_sandboxes`, three servers on one PostgreSQL database each
/// serve sandboxes of their own: a new sandbox goes to whichever serves
/// fewest, and every server passes a request on to the sandbox's. A
/// member's sandboxes answer reads and writes while the holder is paused.
/// A member killed (SIGKILL) under a load of stateful writes spread over
/// every sandbox and sent through the two others loses nothing
/// acknowledged: every acknowledged create is served and every
/// acknowledged event delivered at least once, its sandbox answers again
/// within 5 s (served by the holder, rebuilt from the database), the other
/// sandboxes never fail, and the only refusals are 503 with `Retry-After`.
/// Then a revision published through a member reaches every sandbox
/// within a second, a member's sandbox deleted through the holder is gone
/// everywhere, and a member paused past its lease is swept: the holder
/// serves its sandbox with everything acknowledged, and it stops.
#[test]
fn spread_sandboxes_are_served_by_their_own_servers_and_taken_over_from_a_killed_one() {
    let Some(database) = postgres_database() else {
        return;
    };
    let Spread {
        mut servers,
        urls,
        ids,
        by_server,
        seen,
        _dirs: _kept,
    } = Spread::start(&database);

    // Through every server, to every sandbox; the members answer their
    // own while the holder is paused.
    for url in &urls {
        for id in &ids {
            create_customer(url, id, "Ada Lovelace").unwrap();
        }
    }
    signal(&servers[0], "STOP");
    for member in [1, 2] {
        let id = &sandbox_of(&ids, &by_server, member);
        let url = &urls[member];
        let made = create_customer(url, id, "While paused").unwrap();
        let (status, body) = http_get(&format!("{url}/sbx/{id}/v1/customers/{made}"), &[]);
        assert_eq!(status, 200, "{body}");
    }
    signal(&servers[0], "CONT");

    // A load through the holder and one member while the other member is
    // killed.
    let (killed, through) = (1, [0, 2]);
    let killed_sandbox = sandbox_of(&ids, &by_server, killed);
    let load = SpreadLoad::start(&urls, &through, &ids, &killed_sandbox);
    std::thread::sleep(Duration::from_millis(1500));
    servers[killed].kill().unwrap();
    let killed_at = std::time::Instant::now();
    *load.killed_at.lock().unwrap() = Some(killed_at);
    servers[killed].wait().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    load.check(killed_at, &[&urls[0], &urls[2]], &seen);
    assert_eq!(
        server_of(&urls, &killed_sandbox),
        0,
        "the holder took it over"
    );
    // A revision published through the member is served by every
    // sandbox, the member's too, within a second.
    let example = example_project();
    let (ok, _, stderr) = run(
        &["import", example.to_str().unwrap(), "--name", "payments"],
        &urls[2],
    );
    assert!(ok, "{stderr}");
    let published = std::time::Instant::now();
    for id in &ids {
        loop {
            let (_, sandbox) =
                admin_curl("GET", &format!("{}/api/v1/sandboxes/{id}", urls[0]), None);
            if sandbox["revision"] == 2 {
                break;
            }
            assert!(
                published.elapsed() < Duration::from_secs(1),
                "revision 2 not served by {id} within 1 s: {sandbox}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "revision 2 served by every sandbox {:?} after its publication",
        published.elapsed()
    );

    // The member's sandbox deleted through the holder is gone everywhere.
    let member_sandbox = &sandbox_of(&ids, &by_server, 2);
    let (status, body) = admin_curl(
        "DELETE",
        &format!("{}/api/v1/sandboxes/{member_sandbox}", urls[0]),
        None,
    );
    assert_eq!(status, 204, "{body}");
    for url in [&urls[0], &urls[2]] {
        let (status, body) = http_get(&format!("{url}/sbx/{member_sandbox}/v1/customers"), &[]);
        assert!(matches!(status, 404 | 410), "{url}: {status} {body}");
    }
    // Deleted through its member, the holder's listing drops it too.
    let direct = payments_sandbox_on(&urls, 2)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin_curl(
        "DELETE",
        &format!("{}/api/v1/sandboxes/{direct}", urls[2]),
        None,
    );
    assert_eq!(status, 204, "{body}");
    eventually(
        "the holder's listing drops a sandbox its member deleted",
        || {
            let (status, listed) =
                admin_curl("GET", &format!("{}/api/v1/sandboxes", urls[0]), None);
            assert_eq!(status, 200, "{listed}");
            let items = listed["items"].as_array().unwrap();
            (!items.iter().any(|item| item["id"] == direct.as_str())).then_some(())
        },
    );
    let (status, _) = admin_curl(
        "GET",
        &format!("{}/api/v1/sandboxes/{direct}", urls[0]),
        None,
    );
    assert_eq!(status, 404);

    // A member paused past its lease is swept: the holder serves its
    // sandbox, with everything acknowledged before, and the member, once
    // resumed, stops.
    let made = payments_sandbox_on(&urls, 2);
    let paused_sandbox = made["id"].as_str().unwrap().to_owned();
    // Its first request names it by its key only, through the holder.
    let key = format!("Bearer {}", made["api_key"].as_str().unwrap());
    let (status, _, body) = http_post_with(
        &format!("{}/v1/customers", urls[0]),
        &[("Authorization", &key)],
        r#"{"name": "By key", "email": "key@example.com"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let before = create_customer(&urls[2], &paused_sandbox, "Before the pause").unwrap();
    signal(&servers[2], "STOP");
    let paused = std::time::Instant::now();
    let holder_replica = replica_of(&urls[0]).unwrap();
    eventually("the holder takes the paused member's sandbox", || {
        let (status, sandbox) = admin_curl(
            "GET",
            &format!("{}/api/v1/sandboxes/{paused_sandbox}", urls[0]),
            None,
        );
        (status == 200 && sandbox["server"] == holder_replica.as_str()).then_some(())
    });
    eprintln!(
        "the paused member's sandbox served by the holder {:?} after the pause",
        paused.elapsed()
    );
    let during = create_customer(&urls[0], &paused_sandbox, "During the pause").unwrap();
    signal(&servers[2], "CONT");
    let stopped = eventually("the swept member stops", || servers[2].try_wait().unwrap());
    eprintln!("the swept member stopped: {stopped}");
    for customer in [before, during] {
        let (status, body) = http_get(
            &format!("{}/sbx/{paused_sandbox}/v1/customers/{customer}", urls[0]),
            &[],
        );
        assert_eq!(status, 200, "{customer}: {body}");
    }
}

/// With `spread_sandboxes`, the holder killed (SIGKILL) under creates and
/// events sent through the two members: a member takes the database and
/// serves the holder's sandbox again within 5 s, rebuilt from the
/// database, the members' own sandboxes never stop answering, every
/// acknowledged create is served and every acknowledged event delivered;
/// the new holder keeps passing the other member's sandbox on to it.
#[test]
fn spread_sandboxes_outlive_their_holder_killed() {
    let Some(database) = postgres_database() else {
        return;
    };
    let Spread {
        mut servers,
        urls,
        ids,
        by_server,
        seen,
        _dirs: _kept,
    } = Spread::start(&database);
    let holders_sandbox = sandbox_of(&ids, &by_server, 0);
    let load = SpreadLoad::start(&urls, &[1, 2], &ids, &holders_sandbox);
    std::thread::sleep(Duration::from_millis(1500));
    servers[0].kill().unwrap();
    let killed_at = std::time::Instant::now();
    *load.killed_at.lock().unwrap() = Some(killed_at);
    servers[0].wait().unwrap();
    let holder = 1 + holder_among(&[&urls[1], &urls[2]]);
    eprintln!(
        "server {holder} holds the database {:?} after the kill",
        killed_at.elapsed()
    );
    std::thread::sleep(Duration::from_secs(6));
    load.check(killed_at, &[&urls[1], &urls[2]], &seen);
    let survivors = [urls[1].clone(), urls[2].clone()];
    let member = 3 - holder;
    let (status, sandbox) = admin_curl(
        "GET",
        &format!("{}/api/v1/sandboxes/{holders_sandbox}", urls[holder]),
        None,
    );
    assert_eq!(status, 200, "{sandbox}");
    assert_eq!(
        sandbox["server"].as_str(),
        replica_of(&urls[holder]).as_deref(),
        "the new holder serves the former holder's sandbox"
    );
    let members_sandbox = sandbox_of(&ids, &by_server, member);
    assert_eq!(
        server_of(&survivors, &members_sandbox),
        member - 1,
        "the other member keeps its sandbox"
    );
}

/// Says what a load's threads had acknowledged `when`, and its slowest
/// answer.
fn report(when: &str, results: &[Acknowledgements]) {
    eprintln!(
        "{when}: {} creates and {} events acknowledged, slowest answer {:?}",
        results.iter().map(|r| r.customers.len()).sum::<usize>(),
        results.iter().map(|r| r.events.len()).sum::<usize>(),
        results.iter().map(|r| r.slowest).max().unwrap_or_default(),
    );
}

/// How many of sandboxes `ids` each of `urls` serves, as the sandboxes say.
fn spread_of(urls: &[String], ids: &[String]) -> Vec<usize> {
    let mut counts = vec![0; urls.len()];
    for id in ids {
        counts[server_of(urls, id)] += 1;
    }
    counts
}

/// With `spread_sandboxes`, live sandboxes move between servers without
/// failing a request: six sandboxes on a holder and a member (three
/// each) spread over a third server that joins (two each), under creates
/// and events sent through the holder; then the first member stopped
/// gracefully (SIGTERM) under creates and events sent through the holder
/// and the new member hands its sandboxes to them. Every request is
/// answered (no 503), every acknowledged create is served by every
/// server left, every acknowledged event delivered at least once.
#[test]
fn spread_sandboxes_move_to_a_server_that_joins_and_off_one_that_stops() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (_config, args) = spread_config();
    let args = args.each();
    let (mut servers, mut urls, mut data) = servers_on_postgres(&database, 2, &args);
    holder_among(&[&urls[0]]);
    let (ids, seen) = sandboxes_delivering(&urls, &urls[0], &urls[0], 6);
    assert_eq!(spread_of(&urls, &ids), [3, 3]);

    // A third server joins: each of the others hands it one sandbox.
    let load = SpreadLoad::start(&urls, &[0], &ids, "");
    std::thread::sleep(Duration::from_millis(500));
    let (joined, url, dir) = servers_on_postgres(&database, 1, &args);
    servers.extend(joined);
    urls.extend(url);
    data.extend(dir);
    let joined_at = std::time::Instant::now();
    let spread = eventually("the sandboxes spread over the new server", || {
        let counts = spread_of(&urls, &ids);
        (counts == [2, 2, 2]).then_some(counts)
    });
    eprintln!(
        "spread {spread:?} {:?} after the third server started",
        joined_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let results = load.stop();
    report("while they moved", &results);
    served_and_delivered(&results, &[&urls[0], &urls[1], &urls[2]], &seen);

    // The first member stops gracefully: its sandboxes move to the two
    // others while they are sent requests through both.
    let load = SpreadLoad::start(&urls, &[0, 2], &ids, "");
    std::thread::sleep(Duration::from_millis(500));
    signal(&servers[1], "TERM");
    let stopping = std::time::Instant::now();
    let stopped = eventually("the member stops", || servers[1].try_wait().unwrap());
    assert!(stopped.success(), "a graceful stop: {stopped}");
    eprintln!("the member stopped {:?} after SIGTERM", stopping.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let results = load.stop();
    report("while it stopped", &results);
    let survivors = [urls[0].clone(), urls[2].clone()];
    served_and_delivered(&results, &[&survivors[0], &survivors[1]], &seen);
    assert_eq!(spread_of(&survivors, &ids), [3, 3]);
    let bearer = format!("Bearer {TOKEN}");
    let (_, metrics) = http_get(
        &format!("{}/metrics", urls[0]),
        &[("authorization", &bearer)],
    );
    assert!(metrics.contains("sbx_sandboxes_moved_total 1"), "{metrics}");
    assert!(metrics.contains("sbx_sandboxes_live 3"), "{metrics}");
    let (status, ready) = http_get(&format!("{}/readyz", urls[2]), &[]);
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        (&ready["status"], &ready["sandboxes"]),
        (&Value::from("member"), &Value::from(3)),
        "{ready}"
    );
    let (_, metrics) = http_get(
        &format!("{}/metrics", urls[2]),
        &[("authorization", &bearer)],
    );
    assert!(metrics.contains("sbx_sandboxes_live 3"), "{metrics}");
    assert!(
        metrics.contains(r#"sbx_member_lease_renewals_total{outcome="renewed"}"#),
        "{metrics}"
    );
}

/// A developer's `requests_per_day` holds over all its sandboxes, wherever
/// they are served: with its sandboxes spread over two servers on one
/// PostgreSQL database, the requests one server answered count against
/// the quota on the other, and past it both answer 429.
#[test]
fn a_developers_daily_quota_counts_its_requests_on_every_server() {
    let Some(database) = postgres_database() else {
        return;
    };
    let (_config, file) = config_file("spread_sandboxes = true\n[quotas]\nrequests_per_day = 10\n");
    let (mut servers, urls, _dirs) = servers_on_postgres(&database, 2, &["--config", &file]);
    let example = example_project();
    let (ok, _, stderr) = run(
        &["import", example.to_str().unwrap(), "--name", "payments"],
        &urls[0],
    );
    assert!(ok, "{stderr}");
    let (status, _, body) = http_post(
        &format!("{}/api/v1/accounts", urls[0]),
        r#"{"email": "spread@example.com", "password": "a long enough password"}"#,
    )
    .expect("sign-up answered");
    assert_eq!(status, 201, "{body}");
    let home = tempfile::tempdir().unwrap();
    let as_developer = |args: &[&str], stdin: &str| {
        let (ok, stdout, stderr) = run_as_developer(args, &urls[0], home.path(), stdin);
        assert!(ok, "{stderr}");
        stdout
    };
    as_developer(
        &["login", "--email", "spread@example.com", "--password-stdin"],
        "a long enough password\n",
    );
    // A new sandbox goes to whichever server serves fewest.
    let mut on_server: [Option<String>; 2] = [None, None];
    for _ in 0..6 {
        let made = as_developer(CREATE_OPEN_PAYMENTS, "");
        let made: Value = serde_json::from_str(&made).unwrap();
        let id = made["id"].as_str().unwrap().to_owned();
        let server = server_of(&urls, &id);
        on_server[server] = Some(id);
        if on_server.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(first), Some(second)] = on_server else {
        panic!("no sandbox of the developer on each server: {on_server:?}");
    };
    let call =
        |server: usize, id: &str| http_get(&format!("{}/sbx/{id}/v1/balance", urls[server]), &[]).0;
    for _ in 0..6 {
        assert_eq!(call(0, &first), 200);
    }
    for _ in 0..4 {
        assert_eq!(call(1, &second), 200);
    }
    // Each server hears of the other's requests within a second or so.
    let bearer = format!("Bearer {TOKEN}");
    for url in &urls {
        eventually("every server counts the developer's ten requests", || {
            let (_, metrics) = http_get(&format!("{url}/metrics"), &[("authorization", &bearer)]);
            metrics
                .lines()
                .any(|line| {
                    line.starts_with("sbx_developer_requests_today{") && line.ends_with(" 10")
                })
                .then_some(())
        });
    }
    assert_eq!(
        call(0, &first),
        429,
        "the quota is spent on the first server"
    );
    assert_eq!(call(1, &second), 429, "and on the second");

    // The second server stops gracefully: its sandbox moves to the first
    // with today's count (the refused request too), and stays refused.
    let requests_today = |url: &str| {
        let (status, sandbox) =
            admin_curl("GET", &format!("{url}/api/v1/sandboxes/{second}"), None);
        assert_eq!(status, 200, "{sandbox}");
        sandbox["requests_today"].clone()
    };
    assert_eq!(requests_today(&urls[1]), 5);
    signal(&servers[1], "TERM");
    let stopped = eventually("the second server stops", || servers[1].try_wait().unwrap());
    assert!(stopped.success(), "a graceful stop: {stopped}");
    assert_eq!(server_of(&urls[..1], &second), 0);
    assert_eq!(requests_today(&urls[0]), 5, "the count moved with it");
    assert_eq!(call(0, &second), 429);
}
