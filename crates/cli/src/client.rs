//! Subcommands that talk to a running server's control plane.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::env;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = env::URL, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token or a personal access token [default: the one `sbx
    /// login` kept for this URL, else <data-dir>/admin-token].
    #[arg(long, env = env::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Where a local server keeps its admin token.
    #[arg(long, env = env::DATA_DIR, default_value = ".sbx")]
    pub data_dir: PathBuf,
}

impl ServerArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        if let Some(token) = crate::login::stored_token(&self.url) {
            return Ok(token);
        }
        let path = self.data_dir.join("admin-token");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_owned())
            .with_context(|| {
                format!(
                    "no token: run `sbx login`, set SBX_TOKEN or pass --token (no admin token at {})",
                    path.display()
                )
            })
    }
}

/// A control-plane request with the caller's token, and its URL (for
/// errors that say where the server was looked for).
fn request(
    server: &ServerArgs,
    method: Method,
    path: &str,
) -> anyhow::Result<(reqwest::RequestBuilder, String)> {
    let url = format!("{}/api/v1{path}", server.url.trim_end_matches('/'));
    let builder = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(server.token()?);
    Ok((builder, url))
}

pub(crate) async fn call(
    server: &ServerArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let (mut request, url) = request(server, method, path)?;
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
    let status = response.status();
    let text = response.text().await?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// Sends raw bytes (a file) to the control plane.
pub(crate) async fn send_bytes(
    server: &ServerArgs,
    method: Method,
    path: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<(StatusCode, Value)> {
    let (request, url) = request(server, method, path)?;
    let response = request
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Downloads a file's bytes from the control plane.
pub(crate) async fn fetch_bytes(server: &ServerArgs, path: &str) -> anyhow::Result<Vec<u8>> {
    let (request, url) = request(server, Method::GET, path)?;
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
    let status = response.status();
    let is_file = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/octet-stream"));
    if status.is_success() && !is_file {
        anyhow::bail!("that is a folder: list it with `sbx session ls`");
    }
    if !status.is_success() {
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        return Err(problem_error(status, &body));
    }
    Ok(response.bytes().await?.to_vec())
}

/// Turns a problem document into an error message with its field errors.
fn problem_error(status: StatusCode, body: &Value) -> anyhow::Error {
    let mut message = format!(
        "{status}: {}",
        body.get("detail").and_then(Value::as_str).unwrap_or("")
    );
    for error in body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or("");
        let mut at = match field("location") {
            "" | "body" | "spec" => String::new(),
            file => file.to_owned(),
        };
        if let Some(line) = error.get("line").and_then(Value::as_u64) {
            at.push_str(&format!(":{line}"));
            if let Some(column) = error.get("column").and_then(Value::as_u64) {
                at.push_str(&format!(":{column}"));
            }
        }
        if !field("pointer").is_empty() {
            if !at.is_empty() {
                at.push(' ');
            }
            at.push_str(field("pointer"));
        }
        if at.is_empty() {
            at = "(root)".to_owned();
        }
        message.push_str(&format!("\n  {at}: {}", field("message")));
    }
    anyhow::anyhow!(message)
}

pub(crate) fn print(value: &Value) {
    crate::out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn describe_spec_error(path: &Path, error: &sbx_spec::SpecError) -> anyhow::Error {
    let mut message = format!("{}: {error}", path.display());
    for problem in error.problems() {
        let at = if problem.pointer.is_empty() {
            "(root)"
        } else {
            &problem.pointer
        };
        message.push_str(&format!("\n  {at}: {}", problem.message));
    }
    anyhow::anyhow!(message)
}

/// A spec file, or a project folder (spec, behaviours, templates, fixtures,
/// env, modules, settings): the spec bundled into one document, and the
/// files (`None` for a lone spec file).
pub fn load_project(path: &Path) -> anyhow::Result<(String, Option<sbx_engine::ProjectFiles>)> {
    let limits = sbx_spec::Limits::default();
    let (spec_file, files) = if path.is_dir() {
        let spec = sbx_engine::project::spec_path(path).with_context(|| {
            format!(
                "{} is a folder without openapi.yaml, openapi.yml or openapi.json",
                path.display()
            )
        })?;
        let files = sbx_engine::project::read_dir(path).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            anyhow::anyhow!(
                "{}: the project has problems:\n{}",
                path.display(),
                lines.join("\n")
            )
        })?;
        (spec, Some(files))
    } else {
        (path.to_owned(), None)
    };
    let document = sbx_spec::bundle::bundle_file(&spec_file, &limits)
        .map_err(|e| describe_spec_error(&spec_file, &e))?;
    Ok((document.to_string(), files))
}

pub async fn import(server: &ServerArgs, path: &Path, name: &str) -> anyhow::Result<()> {
    let (spec, files) = load_project(path)?;
    let mut body = match &files {
        Some(files) => serde_json::to_value(files)?,
        None => json!({}),
    };
    body["spec"] = Value::String(spec);
    let mut create = body.clone();
    create["name"] = Value::String(name.to_owned());
    let (status, answer) = call(server, Method::POST, "/projects", Some(create)).await?;
    let (status, body) = if status == StatusCode::CONFLICT {
        call(
            server,
            Method::PUT,
            &format!("/projects/{name}/spec"),
            Some(body),
        )
        .await?
    } else {
        (status, answer)
    };
    if !status.is_success() {
        return Err(problem_error(status, &body));
    }
    let operations = body
        .get("operations")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    eprintln!(
        "imported {name} revision {} ({operations} operations)",
        body.get("revision").and_then(Value::as_u64).unwrap_or(0)
    );
    print(&body);
    Ok(())
}

/// `body`: what `POST /api/v1/sandboxes` takes.
pub async fn create_sandbox(server: &ServerArgs, body: Value) -> anyhow::Result<()> {
    print(&expect(
        call(server, Method::POST, "/sandboxes", Some(body)).await?,
        StatusCode::CREATED,
    )?);
    Ok(())
}

pub async fn list_sandboxes(server: &ServerArgs, project: Option<&str>) -> anyhow::Result<()> {
    let path = match project {
        Some(p) => format!("/sandboxes?project={}", percent_encode(p)),
        None => "/sandboxes".to_owned(),
    };
    print(&expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?);
    Ok(())
}

pub async fn show_sandbox(server: &ServerArgs, id: &str) -> anyhow::Result<()> {
    let path = format!("/sandboxes/{}", percent_encode(id));
    print(&expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?);
    Ok(())
}

pub async fn delete_sandbox(server: &ServerArgs, id: &str) -> anyhow::Result<()> {
    let path = format!("/sandboxes/{}", percent_encode(id));
    expect(
        call(server, Method::DELETE, &path, None).await?,
        StatusCode::NO_CONTENT,
    )?;
    eprintln!("deleted {id}");
    Ok(())
}

/// One of a sandbox's collections on the control plane (`keys`,
/// `oauth/clients`): each call prints the answer, or says what was removed.
pub struct SandboxItems<'a> {
    server: &'a ServerArgs,
    sandbox: &'a str,
    items: &'static str,
}

impl<'a> SandboxItems<'a> {
    pub fn new(server: &'a ServerArgs, sandbox: &'a str, items: &'static str) -> Self {
        Self {
            server,
            sandbox,
            items,
        }
    }

    pub async fn list(&self) -> anyhow::Result<()> {
        self.call(Method::GET, "", None).await
    }

    pub async fn create(&self, body: Value) -> anyhow::Result<()> {
        self.call(Method::POST, "", Some(body)).await
    }

    /// A POST below one item, e.g. `/{key}/roll`.
    pub async fn post(&self, below: &str, body: Value) -> anyhow::Result<()> {
        self.call(Method::POST, below, Some(body)).await
    }

    pub async fn delete(&self, item: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, &format!("/{item}"), None).await
    }

    async fn call(&self, method: Method, below: &str, body: Option<Value>) -> anyhow::Result<()> {
        let path = format!(
            "/sandboxes/{}/{}{below}",
            percent_encode(self.sandbox),
            self.items
        );
        let expected = match method {
            Method::GET => StatusCode::OK,
            Method::DELETE => StatusCode::NO_CONTENT,
            _ => StatusCode::CREATED,
        };
        let answer = expect(call(self.server, method, &path, body).await?, expected)?;
        if expected == StatusCode::NO_CONTENT {
            let removed = if self.items == "keys" {
                "revoked"
            } else {
                "deleted"
            };
            eprintln!("{removed} {}", below.trim_start_matches('/'));
        } else {
            print(&answer);
        }
        Ok(())
    }
}

/// An OAuth client's credentials.
pub struct OAuthClient<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Fetches a client-credentials token from the sandbox's provider and
/// prints it (or the whole answer).
pub async fn token(
    server: &ServerArgs,
    sandbox: &str,
    client: OAuthClient<'_>,
    scope: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/sbx/{}/__sbx/oauth/token",
        server.url.trim_end_matches('/'),
        percent_encode(sandbox)
    );
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let encode =
        |text: &str| -> String { form_urlencoded::byte_serialize(text.as_bytes()).collect() };
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(encode(client.id), Some(encode(client.secret)))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let field = |name: &str| answer.get(name).and_then(Value::as_str).unwrap_or("");
        anyhow::bail!(
            "{status}: {} ({})",
            field("error_description"),
            field("error")
        );
    }
    if json {
        print(&answer);
    } else {
        crate::out!(
            "{}",
            answer
                .get("access_token")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
    }
    Ok(())
}

/// Shows a sandbox's clock, or changes it (`change`: the clock API's body).
pub async fn clock(server: &ServerArgs, id: &str, change: Option<Value>) -> anyhow::Result<()> {
    let path = format!("/sandboxes/{}/clock", percent_encode(id));
    let method = if change.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    print(&expect(
        call(server, method, &path, change).await?,
        StatusCode::OK,
    )?);
    Ok(())
}

/// Fires an event in a sandbox (its golden payload unless `data` is given).
pub async fn trigger(
    server: &ServerArgs,
    sandbox: &str,
    event_type: &str,
    data: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = json!({"type": event_type});
    if let Some(data) = data {
        body["data"] = serde_json::from_str(data).context("--data must be JSON")?;
    }
    let path = format!("/sandboxes/{}/events", percent_encode(sandbox));
    print(&expect(
        call(server, Method::POST, &path, Some(body)).await?,
        StatusCode::CREATED,
    )?);
    Ok(())
}

/// Streams a sandbox's events and posts each one, signed, to `forward_to`,
/// printing a line per delivery — until interrupted.
pub async fn listen(server: &ServerArgs, sandbox: &str, forward_to: &str) -> anyhow::Result<()> {
    let path = format!("/sandboxes/{}/events/stream", percent_encode(sandbox));
    let mut stream = EventStream::open(server, &path).await?;
    let forwarder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    while let Some((kind, data)) = stream.next().await? {
        match kind.as_str() {
            "ready" => eprintln!(
                "Ready! Forwarding events of {sandbox} to {forward_to}\nYour webhook signing secret is {} (^C to quit)",
                data["secret"].as_str().unwrap_or("")
            ),
            "delivery" => forward(&forwarder, forward_to, &data).await,
            _ => {}
        }
    }
    anyhow::bail!("the server closed the event stream")
}

/// One line per logged request.
fn log_line(entry: &Value) -> String {
    let text = |name: &str| entry[name].as_str().unwrap_or("").to_owned();
    let mut line = format!(
        "{} {} {} --> {} ({:.1} ms) {}",
        text("at"),
        text("method"),
        text("path"),
        entry["status"],
        entry["latency_ms"].as_f64().unwrap_or(0.0),
        text("request_id"),
    );
    for (label, name) in [
        ("operation", "operation"),
        ("scenario", "scenario"),
        ("chaos", "chaos"),
    ] {
        if let Some(value) = entry[name].as_str() {
            line.push_str(&format!(" {label}={value}"));
        }
    }
    line
}

/// Prints a sandbox's latest logged requests (oldest first), then, with
/// `follow`, each new one as it is logged.
/// Which logged requests `sbx logs` shows (or exports, or follows).
#[derive(Debug, Args)]
pub struct LogFilters {
    /// Only this status (404) or class of them (4xx).
    #[arg(long)]
    status: Option<String>,
    /// Only this method.
    #[arg(long)]
    method: Option<String>,
    /// Only this operation id.
    #[arg(long)]
    operation: Option<String>,
    /// Only requests with this text in the path, query or bodies.
    #[arg(long)]
    text: Option<String>,
}

impl LogFilters {
    /// The filters as query parameters, each starting `&`.
    fn query(&self) -> String {
        parameters(&[
            ("status", self.status.as_deref()),
            ("method", self.method.as_deref()),
            ("operation", self.operation.as_deref()),
            ("text", self.text.as_deref()),
        ])
    }
}

/// The parameters given a value, percent-encoded, each starting `&`.
pub(crate) fn parameters(named: &[(&str, Option<&str>)]) -> String {
    named
        .iter()
        .filter_map(|(name, value)| Some(format!("&{name}={}", percent_encode((*value)?))))
        .collect()
}

/// `path` with `parameters` (each starting `&`) as its query, if any.
fn with_query(path: String, parameters: &str) -> String {
    match parameters.strip_prefix('&') {
        Some(query) => format!("{path}?{query}"),
        None => path,
    }
}

pub async fn logs(
    server: &ServerArgs,
    sandbox: &str,
    limit: u32,
    follow: bool,
    filters: &LogFilters,
) -> anyhow::Result<()> {
    let filters = filters.query();
    // Following, the stream opens first: a request logged while the recent
    // ones are fetched comes on the stream (once, even if the page has it).
    let mut stream = match follow {
        true => {
            let path = with_query(
                format!("/sandboxes/{}/logs/stream", percent_encode(sandbox)),
                &filters,
            );
            Some(EventStream::open(server, &path).await?)
        }
        false => None,
    };
    let path = format!(
        "/sandboxes/{}/logs?limit={limit}{filters}",
        percent_encode(sandbox)
    );
    let page = expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?;
    let recent: Vec<&Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .collect();
    for entry in &recent {
        crate::out!("{}", log_line(entry));
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(());
    };
    let shown = |entry: &Value| {
        recent
            .iter()
            .any(|e| e["request_id"] == entry["request_id"] && e["at"] == entry["at"])
    };
    while let Some((kind, entry)) = stream.next().await? {
        if kind == "request" && !shown(&entry) {
            crate::out!("{}", log_line(&entry));
        }
    }
    anyhow::bail!("the server closed the log stream")
}

/// Prints a sandbox's log as HAR 1.2: the newest `limit` requests, or all.
pub async fn har(
    server: &ServerArgs,
    sandbox: &str,
    limit: Option<u32>,
    filters: &LogFilters,
) -> anyhow::Result<()> {
    let limit = limit.map(|l| format!("&limit={l}")).unwrap_or_default();
    let path = with_query(
        format!("/sandboxes/{}/logs.har", percent_encode(sandbox)),
        &format!("{}{limit}", filters.query()),
    );
    print(&expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?);
    Ok(())
}

/// A server-sent event stream of the control plane, read event by event.
pub(crate) struct EventStream {
    response: reqwest::Response,
    decoder: EventDecoder,
}

impl EventStream {
    pub(crate) async fn open(server: &ServerArgs, path: &str) -> anyhow::Result<Self> {
        let (request, url) = request(server, Method::GET, path)?;
        let response = request
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            return Err(problem_error(status, &body));
        }
        Ok(Self {
            response,
            decoder: EventDecoder::default(),
        })
    }

    /// The next event with JSON data, as (event name, data); `None` when
    /// the server closes the stream. Keep-alive comments are skipped.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<(String, Value)>> {
        loop {
            while let Some((kind, data)) = self.decoder.next_event() {
                if let Ok(data) = serde_json::from_str::<Value>(&data) {
                    return Ok(Some((kind, data)));
                }
            }
            match self.response.chunk().await? {
                Some(chunk) => self.decoder.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// Server-sent events (the WHATWG event-stream format) out of the bytes
/// of a stream, however they were split: an event is decoded only once
/// its blank line arrived, so a character split between chunks stays
/// whole. Lines end in `\n`, `\r\n` or `\r`.
#[derive(Default)]
struct EventDecoder {
    buffer: Vec<u8>,
}

impl EventDecoder {
    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete event with data, as (event name, data lines
    /// joined by `\n`); events without data are skipped.
    fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            let (end, next) = blank_line(&self.buffer)?;
            let block: Vec<u8> = self.buffer.drain(..next).take(end).collect();
            let text = String::from_utf8_lossy(&block);
            let mut kind = String::from("message");
            let mut data: Option<String> = None;
            for line in text.split(['\n', '\r']) {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => kind = value.to_owned(),
                    "data" => match &mut data {
                        Some(joined) => {
                            joined.push('\n');
                            joined.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    },
                    _ => {}
                }
            }
            if let Some(data) = data {
                return Some((kind, data));
            }
        }
    }
}

/// Where the first event of `bytes` ends and what follows it begins: at
/// its first empty line. `None` until one has arrived.
fn blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    loop {
        let offset = bytes[line_start..]
            .iter()
            .position(|b| matches!(b, b'\n' | b'\r'))?;
        let after = line_end(bytes, line_start + offset)?;
        if offset == 0 {
            return Some((line_start, after));
        }
        line_start = after;
    }
}

/// The index after the line end at `at` (`\r\n` counts once); `None`
/// for a `\r` that a `\n` may yet follow.
fn line_end(bytes: &[u8], at: usize) -> Option<usize> {
    match (bytes[at], bytes.get(at + 1)) {
        (b'\r', Some(b'\n')) => Some(at + 2),
        (b'\r', None) => None,
        _ => Some(at + 1),
    }
}

/// Posts one streamed delivery to the local URL and prints how it went.
async fn forward(client: &reqwest::Client, url: &str, delivery: &Value) {
    let mut request = client.post(url);
    for (name, value) in delivery["headers"].as_object().into_iter().flatten() {
        request = request.header(name.as_str(), value.as_str().unwrap_or(""));
    }
    let body = delivery["body"].as_str().unwrap_or("").to_owned();
    let started = std::time::Instant::now();
    let outcome = match request.body(body).send().await {
        Ok(response) => response.status().as_u16().to_string(),
        Err(error) => format!("failed: {error}"),
    };
    crate::out!(
        "{} [{}] --> {} ({} ms)",
        delivery["type"].as_str().unwrap_or(""),
        delivery["id"].as_str().unwrap_or(""),
        outcome,
        started.elapsed().as_millis()
    );
}

/// The answer's body when its status is `expected`, else the problem as an error.
pub(crate) fn expect(
    (status, body): (StatusCode, Value),
    expected: StatusCode,
) -> anyhow::Result<Value> {
    if status == expected {
        Ok(body)
    } else {
        Err(problem_error(status, &body))
    }
}

/// Everything but RFC 3986's unreserved characters, so ids and names
/// (`sbx-…`, `req_…`) travel, and show in logs, as they are. Dots stay
/// encoded: a `..` id must not become a dot-segment.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::EventDecoder;

    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut decoder = EventDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                out.push(event);
            }
        }
        out
    }

    #[test]
    fn a_character_split_between_chunks_stays_whole() {
        let stream = "event: stdout\ndata: {\"text\": \"héllo ✓\"}\n\n".as_bytes();
        let split = stream.iter().position(|&b| b == 0xE2).unwrap() + 1;
        let got = events(&[&stream[..split], &stream[split..]]);
        assert_eq!(
            got,
            [("stdout".to_owned(), "{\"text\": \"héllo ✓\"}".to_owned())]
        );
    }

    #[test]
    fn every_line_end_comments_and_multi_line_data() {
        let got = events(&[
            b": keep-alive\n\n",
            b"id: 3\r\nevent: end\r\ndata: {\"a\":\r\ndata: 1}\r\n\r",
            b"\ndata:no-space\r\rdata: last\n",
            b"\n",
        ]);
        assert_eq!(
            got,
            [
                ("end".to_owned(), "{\"a\":\n1}".to_owned()),
                ("message".to_owned(), "no-space".to_owned()),
                ("message".to_owned(), "last".to_owned()),
            ]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut decoder = EventDecoder::default();
        decoder.push(b"data: 1\n");
        assert_eq!(decoder.next_event(), None);
        decoder.push(b"\n");
        assert_eq!(
            decoder.next_event(),
            Some(("message".to_owned(), "1".to_owned()))
        );
    }
}
