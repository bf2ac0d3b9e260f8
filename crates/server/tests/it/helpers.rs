//! `spawn_app()`: a server on port 0 with its own temp data dir.

use std::{
    future::Future,
    path::Path,
    time::{Duration, Instant},
};

use reqwest::{Client, Method, RequestBuilder, Response};
use sbx_server::{Config, Server};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const PETSTORE: &str = include_str!("../fixtures/petstore.yaml");

pub struct TestApp {
    pub url: String,
    pub client: Client,
    pub data_dir: TempDir,
    pub server: Option<Server>,
}

pub fn test_config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("socket address"),
        data_dir: data_dir.to_owned(),
        database_url: database_url(data_dir),
        admin_token: Some(ADMIN_TOKEN.to_owned().into()),
        reaper_interval: Duration::from_millis(50),
        // Test processes run side by side: each takes its own uids.
        session_uids: (2_100_000 + (std::process::id() % 10_000) * 16, 16),
        ..Config::default()
    }
}

/// Whether the suite runs on PostgreSQL (`SBX_TEST_BACKEND=postgres`,
/// on the server `SBX_TEST_POSTGRES_URL` names), not on SQLite.
pub fn on_postgres() -> bool {
    std::env::var("SBX_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// The database of the server whose data dir is `data_dir`: on SQLite,
/// the file inside it (`None`); on PostgreSQL, a database of its own,
/// named after the dir, made on first use, so that a server started again
/// on the same dir finds its data.
pub fn database_url(data_dir: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let server = std::env::var("SBX_TEST_POSTGRES_URL").expect(
        "SBX_TEST_BACKEND=postgres needs SBX_TEST_POSTGRES_URL (scripts/test.sh sets both)",
    );
    let name = format!(
        "sbx_it_{}",
        data_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
    if !data_dir.join(".postgres").exists() {
        // Called from async tests: the database is made on a thread of its own.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                sbx_store::PgStore::create_database(&server, &name)
                    .await
                    .expect("a test database is created");
            })
        })
        .join()
        .unwrap();
        std::fs::write(data_dir.join(".postgres"), &url).unwrap();
    }
    Some(url)
}

/// The store of the server whose data dir is `data_dir`, opened as another
/// process would (the server stopped).
pub async fn open_store(data_dir: &Path) -> std::sync::Arc<dyn sbx_store::Store> {
    match database_url(data_dir) {
        Some(url) => std::sync::Arc::new(sbx_store::PgStore::open_url(&url).await.unwrap()),
        None => std::sync::Arc::new(sbx_store::SqliteStore::open_dir(data_dir).await.unwrap()),
    }
}

/// Runs `sql` straight on the database of the server whose data dir is
/// `data_dir`, as an operator would: for what only time or another
/// process does.
pub async fn execute_on_database(data_dir: &Path, sql: &str) {
    match database_url(data_dir) {
        Some(url) => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        None => {
            let database = data_dir.join("sbx.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Serves `router` on a random local port; its base URL.
pub async fn serve_router(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

pub async fn spawn_app() -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(data_dir, |_| {}).await
}

pub async fn spawn_app_with(data_dir: TempDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(data_dir.path());
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = sbx_server::start(config, listener)
        .await
        .expect("server starts");
    TestApp {
        url: server.public_url.clone(),
        client: Client::new(),
        data_dir,
        server: Some(server),
    }
}

/// Checks `check` until it gives a value, for at most `within`, running
/// the server's background work before each look: for what only real time
/// brings (a time to live, a retry's backoff). Panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A created sandbox as the API answers it.
pub struct Sandbox {
    pub id: String,
    pub base_url: String,
    pub api_key: String,
    pub body: Value,
}

impl TestApp {
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn import(&self, name: &str, spec: &str) -> Response {
        self.admin(Method::POST, "/projects")
            .json(&json!({"name": name, "spec": spec}))
            .send()
            .await
            .expect("import")
    }

    pub async fn import_ok(&self, name: &str, spec: &str) -> Value {
        let response = self.import(name, spec).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "import failed: {body}");
        body
    }

    pub async fn create_sandbox(&self, body: Value) -> Sandbox {
        let response = self
            .admin(Method::POST, "/sandboxes")
            .json(&body)
            .send()
            .await
            .expect("create");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "sandbox creation failed: {body}");
        Sandbox {
            id: body["id"].as_str().expect("id").to_owned(),
            base_url: body["base_url"].as_str().expect("base_url").to_owned(),
            api_key: body["api_key"].as_str().expect("api_key").to_owned(),
            body,
        }
    }

    /// Imports `spec` as project `name` and creates a sandbox of it
    /// without auth.
    pub async fn open_sandbox(&self, name: &str, spec: &str) -> Sandbox {
        let (status, body) = send(
            self.admin(Method::POST, "/projects")
                .json(&json!({"name": name, "spec": spec})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        self.create_sandbox(json!({"project": name, "auth": "none"}))
            .await
    }

    /// Imports the petstore and creates a sandbox of it.
    /// Imports `project` (a `POST /projects` body) and creates a sandbox of
    /// it without auth, its clock frozen at 2030-01-01T00:00:00Z.
    pub async fn frozen_sandbox(&self, project: &Value) -> Sandbox {
        let (status, body) = send(self.admin(Method::POST, "/projects").json(project)).await;
        assert_eq!(status, 201, "{body}");
        let sandbox = self
            .create_sandbox(json!({"project": project["name"], "auth": "none"}))
            .await;
        let (status, _) = send(
            self.admin(Method::POST, &format!("/sandboxes/{}/clock", sandbox.id))
                .json(&json!({"freeze_at": "2030-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(status, 200);
        sandbox
    }

    /// Imports the payments example as `payments` and creates a sandbox
    /// of it with `auth` (`spec` or `none`).
    pub async fn payments_sandbox(&self, auth: &str) -> Sandbox {
        let project = crate::scenarios::payments_project("payments");
        let (status, body) = send(self.admin(Method::POST, "/projects").json(&project)).await;
        assert_eq!(status, 201, "{body}");
        self.create_sandbox(json!({"project": "payments", "auth": auth}))
            .await
    }

    pub async fn petstore(&self, auth: &str) -> Sandbox {
        self.import_ok("pets", PETSTORE).await;
        self.create_sandbox(json!({"project": "pets", "auth": auth}))
            .await
    }

    /// What the server's background workers would do next, done now: the
    /// request log written, due jobs run, due deliveries attempted.
    pub async fn drain(&self) {
        self.server
            .as_ref()
            .expect("the server is running")
            .drain()
            .await;
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("clean shutdown");
        }
    }
}

impl Sandbox {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `url` on another server (the same data dir after a restart).
    pub fn url_on(&self, server_url: &str, path: &str) -> String {
        let below = &self.base_url[self.base_url.find("/sbx/").expect("path address")..];
        format!("{server_url}{below}{path}")
    }
}

pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends a request and reads the answer as (status, JSON or text).
pub async fn send(request: RequestBuilder) -> (u16, Value) {
    json_of(request.send().await.expect("request sent")).await
}

/// The seconds an answer's `Retry-After` says to wait.
pub fn retry_after(response: &Response) -> u64 {
    response.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Sends a request and returns only its status.
pub async fn status_of(request: RequestBuilder) -> u16 {
    request
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// RFC 3339 text as Unix milliseconds.
pub fn millis(rfc3339: &str) -> i64 {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| panic!("{rfc3339} is RFC 3339"));
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Runs `command` (a tool nobody here wrote: schemathesis, a validator, an
/// SDK's flow) off the async workers; fails the test with its output
/// unless it succeeds.
pub async fn assert_succeeds(mut command: std::process::Command) {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the tool cannot run ({e}); .ci/run installs it"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `sbx mock` of `spec` on a random port, state in memory.
pub async fn mock(spec: String, auth: sbx_server::AuthMode) -> sbx_server::MockServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = sbx_server::MockOptions {
        auth,
        limits: sbx_server::Limits::default(),
        scripts: sbx_server::ScriptLimits::default(),
        allow_private_egress: false,
    };
    sbx_server::start_mock(spec, Default::default(), listener, options)
        .await
        .expect("the mock starts")
}
