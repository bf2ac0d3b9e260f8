//! `sbx explain`: how a sandbox decided a request, rendered for a
//! terminal.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::client::{ServerArgs, call, expect, percent_encode};

/// Prints how the pipeline decided the request: a headline, the verdict,
/// then each step with its particulars (`json` prints the document as is).
pub async fn explain(
    server: &ServerArgs,
    request_id: &str,
    sandbox: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let path = match sandbox {
        Some(sandbox) => format!(
            "/sandboxes/{}/logs/{}/explain",
            percent_encode(sandbox),
            percent_encode(request_id)
        ),
        None => format!("/requests/{}/explain", percent_encode(request_id)),
    };
    let explanation = expect(
        call(server, Method::GET, &path, None).await?,
        StatusCode::OK,
    )?;
    if json {
        crate::client::print(&explanation);
    } else {
        crate::out!("{}", render(&explanation));
    }
    Ok(())
}

/// The explanation as lines of text.
fn render(explanation: &Value) -> String {
    let text = |name: &str| explanation[name].as_str().unwrap_or("-");
    let mut out = vec![
        format!(
            "{} {} --> {}   {} in {} at {}",
            text("method"),
            text("path"),
            explanation["status"],
            text("request_id"),
            text("sandbox_id"),
            text("at"),
        ),
        format!("operation: {}", text("operation")),
    ];
    if let Some(trace_id) = explanation["trace_id"].as_str() {
        out.push(format!("trace:     {trace_id}"));
    }
    out.extend([format!("verdict:   {}", text("verdict")), String::new()]);
    for step in explanation["steps"].as_array().into_iter().flatten() {
        let mark = match step["verdict"].as_str() {
            Some("passed") => "ok  ",
            Some("failed") => "FAIL",
            Some("applied") => "set ",
            _ => "--  ",
        };
        out.push(format!(
            "{mark} {:<10} {}",
            step["stage"].as_str().unwrap_or(""),
            step["summary"].as_str().unwrap_or("")
        ));
        out.extend(detail_lines(&step["detail"]).map(|line| format!("{:16}{line}", "")));
    }
    out.join("\n")
}

/// A step's particulars: violations, near misses, a script location, or
/// its scalar fields as `name: value`.
fn detail_lines(detail: &Value) -> Box<dyn Iterator<Item = String> + '_> {
    if let Some(violations) = detail.as_array() {
        return Box::new(violations.iter().map(violation_line));
    }
    if let Some(misses) = detail["near_misses"].as_array() {
        return Box::new(misses.iter().map(|miss| {
            let field = |name: &str| miss[name].as_str().unwrap_or("");
            let differences: Vec<&str> = miss["differences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "did you mean {} {} ({})? {}",
                field("method"),
                field("path"),
                field("operation"),
                differences.join("; ")
            )
        }));
    }
    Box::new(
        detail
            .as_object()
            .into_iter()
            .flatten()
            // The operation heads the explanation already.
            .filter(|(name, value)| {
                *name != "operation" && !value.is_null() && !value.is_object() && !value.is_array()
            })
            .map(|(name, value)| match value.as_str() {
                Some(text) => format!("{name}: {text}"),
                None => format!("{name}: {value}"),
            }),
    )
}

fn violation_line(violation: &Value) -> String {
    let field = |name: &str| violation[name].as_str().unwrap_or("");
    let pointer = field("pointer");
    // Messages often start with the pointer already.
    let message = field("message");
    let message = message
        .strip_prefix(pointer)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message);
    let pointer = if pointer.is_empty() {
        "(root)"
    } else {
        pointer
    };
    let mut line = format!("{} {pointer}: {message}", field("location"));
    if let Some(schema_path) = violation["schema_path"].as_str() {
        line.push_str(&format!(
            "\n{:16}  expected by {schema_path}, got {}",
            "", violation["got"]
        ));
    }
    line
}
