//! Subcommands that talk to a running server's control plane.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = "SBX_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token [default: read from <data-dir>/admin-token].
    #[arg(long, env = "SBX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where a local server keeps its admin token.
    #[arg(long, env = "SBX_DATA_DIR", default_value = ".sbx")]
    pub data_dir: PathBuf,
}

impl ServerArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let path = self.data_dir.join("admin-token");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_owned())
            .with_context(|| {
                format!(
                    "no admin token: set SBX_TOKEN or pass --token (none found at {})",
                    path.display()
                )
            })
    }
}

async fn call(
    server: &ServerArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let url = format!("{}/api/v1{path}", server.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(server.token()?);
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
        let at = error
            .get("pointer")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .unwrap_or("(root)");
        let text = error.get("message").and_then(Value::as_str).unwrap_or("");
        message.push_str(&format!("\n  {at}: {text}"));
    }
    anyhow::anyhow!(message)
}

fn print(value: &Value) {
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

pub async fn import(server: &ServerArgs, file: &Path, name: &str) -> anyhow::Result<()> {
    let limits = sbx_spec::Limits::default();
    let document =
        sbx_spec::bundle::bundle_file(file, &limits).map_err(|e| describe_spec_error(file, &e))?;
    let spec = document.to_string();
    let (status, body) = call(
        server,
        Method::POST,
        "/projects",
        Some(json!({"name": name, "spec": spec})),
    )
    .await?;
    let (status, body) = if status == StatusCode::CONFLICT {
        call(
            server,
            Method::PUT,
            &format!("/projects/{name}/spec"),
            Some(json!({"spec": spec})),
        )
        .await?
    } else {
        (status, body)
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

pub async fn create_sandbox(
    server: &ServerArgs,
    project: &str,
    revision: Option<u32>,
    ttl: Option<u64>,
    seed: Option<String>,
    auth: Option<String>,
    label: Option<String>,
) -> anyhow::Result<()> {
    let body = json!({"project": project, "revision": revision, "ttl_seconds": ttl, "seed": seed, "auth": auth, "label": label});
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

/// The answer's body when its status is `expected`, else the problem as an error.
fn expect((status, body): (StatusCode, Value), expected: StatusCode) -> anyhow::Result<Value> {
    if status == expected {
        Ok(body)
    } else {
        Err(problem_error(status, &body))
    }
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
