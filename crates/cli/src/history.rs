//! `sbx timeline` and `sbx audit`: what happened in a sandbox, and who
//! changed what on the server, one line per entry.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::client::{ServerArgs, call, expect, parameters, percent_encode};

/// Prints a sandbox's timeline, one line per entry with its cause.
pub async fn timeline(
    server: &ServerArgs,
    sandbox: &str,
    kinds: Option<&str>,
    since: Option<&str>,
) -> anyhow::Result<()> {
    let path = format!(
        "/sandboxes/{}/timeline?limit=1000{}",
        percent_encode(sandbox),
        parameters(&[("kinds", kinds), ("since", since)])
    );
    let timeline = expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?;
    for entry in timeline["items"].as_array().into_iter().flatten() {
        let text = |name: &str| entry[name].as_str().unwrap_or("");
        let mut line = format!("{} {:<10} {}", text("at"), text("kind"), text("summary"));
        if matches!(text("kind"), "request" | "job" | "event" | "delivery") {
            line.push_str(&format!("  [{}]", text("id")));
        }
        if let Some(cause) = entry["caused_by"].as_object() {
            let field = |name: &str| cause.get(name).and_then(Value::as_str).unwrap_or("");
            line.push_str(&format!("  <- {} {}", field("kind"), field("id")));
        }
        crate::out!("{line}");
    }
    if timeline["truncated"] == true {
        crate::out!("… more entries: ask again with --since at the last entry's time");
    }
    Ok(())
}

/// Which audit entries `sbx audit` asks for.
pub struct AuditFilters<'a> {
    pub target: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub since: Option<&'a str>,
    pub limit: u32,
}

/// Prints the latest control-plane changes, newest first: when, who from
/// where, the outcome, the call, what it created and why it failed.
pub async fn audit(server: &ServerArgs, filters: &AuditFilters<'_>) -> anyhow::Result<()> {
    let path = format!(
        "/audit?limit={}{}",
        filters.limit,
        parameters(&[
            ("target", filters.target),
            ("actor", filters.actor),
            ("outcome", filters.outcome),
            ("since", filters.since),
        ])
    );
    let page = expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?;
    for entry in page["items"].as_array().into_iter().flatten() {
        let text = |name: &str| entry[name].as_str().unwrap_or("");
        let who = match entry["client"].as_str() {
            Some(client) => format!("{}@{client}", text("actor")),
            None => text("actor").to_owned(),
        };
        let method = text("action").split(' ').next().unwrap_or("");
        let mut line = format!(
            "{} {who:<20} {:<9} {} {method} {}",
            text("at"),
            text("outcome"),
            entry["status"],
            text("target"),
        );
        if let Some(resource) = entry["resource"].as_str() {
            line.push_str(&format!(" -> {resource}"));
        }
        if let Some(detail) = entry["detail"].as_str() {
            line.push_str(&format!("  ({detail})"));
        }
        crate::out!("{line}");
    }
    if page["next_cursor"].is_string() {
        crate::out!("… older entries: narrow the filters or raise --limit (at most 1000)");
    }
    Ok(())
}
