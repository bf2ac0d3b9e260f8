//! The allocation budget of an answer: `sbx mock` of the load benchmark's
//! specs (`bench/`), started for real on a random port, answers requests
//! over keep-alive HTTP, and the heap allocations its threads make per
//! request are counted. A budget is a ceiling on what each kind of answer
//! may cost; a change that adds allocations to the hot path fails here
//! before it shows in `bench/load.sh`. Counts are deterministic, unlike
//! timings. `cargo test -p sbx-server --test allocations -- --nocapture`
//! prints them.

use std::{
    alloc::System,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts every allocation of the process; the client below allocates
/// nothing while requests are counted, so the count is the server's.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench")
}

/// `sbx mock` of `spec` (with `project`'s files) on a runtime of its own;
/// its address.
fn start(spec: &str, project: Option<&str>) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let spec = std::fs::read_to_string(bench_dir().join(spec)).unwrap();
    let files = project
        .map(|p| sbx_engine::project::read_dir(&bench_dir().join(p)).expect("the project reads"))
        .unwrap_or_default();
    let server = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = sbx_server::MockOptions {
            auth: sbx_server::AuthMode::None,
            limits: sbx_server::Limits::default(),
            scripts: sbx_server::ScriptLimits::default(),
            allow_private_egress: false,
        };
        sbx_server::start_mock(spec, files, listener, options)
            .await
            .expect("the mock starts")
    });
    let address = server.local_addr;
    // Served until the runtime is dropped.
    std::mem::forget(server);
    (address, runtime)
}

/// A keep-alive connection that sends requests and reads whole answers,
/// reusing its buffers: once warm, it allocates nothing.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Client {
    fn connect(address: std::net::SocketAddr) -> Self {
        let writer = TcpStream::connect(address).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Self {
            writer,
            reader,
            line: String::with_capacity(1024),
            body: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends one request (all its bytes); the answer's status.
    fn send(&mut self, request: &[u8]) -> u16 {
        self.writer.write_all(request).unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap();
        let status = self.line.split(' ').nth(1).and_then(|s| s.parse().ok());
        let mut length = 0;
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).unwrap();
            if self.line == "\r\n" {
                break;
            }
            if let Some((name, value)) = self.line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).unwrap();
        status.unwrap()
    }
}

/// A request's bytes.
fn request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    if let Some(body) = body {
        request += &format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
    }
    request += "\r\n";
    request += body.unwrap_or_default();
    request.into_bytes()
}

const WARM_UP: u64 = 20;
const REQUESTS: u64 = 500;

/// Allocations per request of the requests `request(n)` makes, after a
/// warm-up (plans compiled, memoized answers stored). The requests are
/// made before counting starts.
fn per_request(address: std::net::SocketAddr, request: impl Fn(u64) -> Vec<u8>) -> u64 {
    let mut client = Client::connect(address);
    let requests: Vec<Vec<u8>> = (0..WARM_UP + REQUESTS).map(request).collect();
    let (warm_up, counted) = requests.split_at(WARM_UP as usize);
    for request in warm_up {
        let status = client.send(request);
        assert!(
            (200..300).contains(&status),
            "{status} for {}",
            String::from_utf8_lossy(request)
        );
    }
    let region = Region::new(ALLOCATOR);
    for request in counted {
        assert!((200..300).contains(&client.send(request)));
    }
    let change = region.change();
    ((change.allocations + change.reallocations) as u64).div_ceil(REQUESTS)
}

/// Each answer of the load benchmark within its budget. The budgets are
/// today's counts with a little room: lower them when the count drops.
#[test]
fn every_answer_keeps_to_its_allocation_budget() {
    let (address, _runtime) = start("spec.yaml", None);
    let post = r#"{"name": "Widget", "price": 1999, "currency": "usd", "tags": ["a", "b"]}"#;
    let (behaviours, _behaviours_runtime) = start("behaviours/openapi.yaml", Some("behaviours"));
    let counted = [
        (
            "memoized GET",
            per_request(address, |_| request("GET", "/v1/items/1", None)),
            BUDGET_GET,
        ),
        (
            "list GET",
            per_request(address, |_| request("GET", "/v1/items", None)),
            BUDGET_LIST,
        ),
        (
            "varied GET",
            per_request(address, |n| {
                request("GET", &format!("/v1/items/{}", n + 1), None)
            }),
            BUDGET_VARIED,
        ),
        (
            "validated POST",
            per_request(address, |_| request("POST", "/v1/items", Some(post))),
            BUDGET_POST,
        ),
        (
            "stateful create",
            per_request(behaviours, |n| {
                let body = format!(
                    r#"{{"id": "bench_{n}", "name": "Widget", "price": 19.99, "tags": ["a", "b"]}}"#
                );
                request("POST", "/v1/items", Some(&body))
            }),
            BUDGET_CREATE,
        ),
        (
            "scripted",
            per_request(behaviours, |_| {
                request("GET", "/v1/greet/ada?lang=fr", None)
            }),
            BUDGET_SCRIPTED,
        ),
        (
            "templated",
            per_request(behaviours, |_| {
                request("GET", "/v1/welcome/ada?lang=fr", None)
            }),
            BUDGET_TEMPLATED,
        ),
    ];
    let mut over = Vec::new();
    for (answer, allocations, budget) in counted {
        println!("{answer}: {allocations} allocations per request (budget {budget})");
        if allocations > budget {
            over.push(format!("{answer}: {allocations} > {budget}"));
        }
    }
    assert!(over.is_empty(), "over budget: {over:?}");
}

const BUDGET_GET: u64 = 16;
const BUDGET_LIST: u64 = 13;
const BUDGET_VARIED: u64 = 23;
const BUDGET_POST: u64 = 15;
const BUDGET_CREATE: u64 = 63;
const BUDGET_SCRIPTED: u64 = 97;
const BUDGET_TEMPLATED: u64 = 90;
