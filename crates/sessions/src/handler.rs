//! Handler mode: Lambda code runs unchanged. Python's `handler(event,
//! context)` and Node's `export async function handler(event, context)`
//! (or `exports.handler`, callbacks included) get an API Gateway HTTP API
//! event (payload format 2.0) and a Lambda-shaped context; what they
//! return is read back as API Gateway would answer it.
//!
//! A small runner in the jail's interpreter loads the code, calls the
//! handler and writes its return value, or the error it raised, as JSON to
//! a file in the workspace, which the server reads without following links
//! and removes.

use std::{io::Read, os::unix::fs::OpenOptionsExt, path::Path};

use serde_json::{Map, Value, json};

use crate::run::{Language, Program};

const PYTHON_RUNNER: &str = include_str!("handler/runner.py");
const NODE_RUNNER: &str = include_str!("handler/runner.cjs");
/// Lambda's context and error shape, shared with the workers.
pub(crate) const PYTHON_LAMBDA: &str = include_str!("handler/lambda.py");
pub(crate) const NODE_LAMBDA: &str = include_str!("handler/lambda.cjs");

/// Largest result read back: Lambda's response payload limit.
pub const MAX_RESULT_BYTES: u64 = 6 * 1024 * 1024;

/// A handler raised, or its result could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandlerError {
    #[error("handler mode runs python or node code, not shell")]
    Shell,
}

/// Who is invoked, for the context object.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// `context.aws_request_id` / `awsRequestId`.
    pub request_id: &'a str,
    pub memory_mb: u64,
    /// When the run's timeout falls, in Unix milliseconds
    /// (`get_remaining_time_in_millis`).
    pub deadline_ms: i64,
}

/// How a handler ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It returned: the response API Gateway would send.
    Response(Value),
    /// It raised: Lambda's `{errorType, errorMessage, stackTrace}`.
    Error(Value),
}

fn literal(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The program calling `source`'s handler with `event`, its result written
/// to `result_file` in the workspace.
pub fn program(
    language: Language,
    source: &str,
    event: &Value,
    invocation: &Invocation<'_>,
    result_file: &str,
) -> Result<Program, HandlerError> {
    let result_path = format!("/workspace/{result_file}");
    let (argv, runner) = match language {
        // JSON's literals are not Python's: the event is parsed there.
        Language::Python => {
            let prelude = format!(
                "import json as _json\nSOURCE = {}\nEVENT = _json.loads({})\nRESULT = {}\nREQUEST_ID = {}\nMEMORY_MB = {}\nDEADLINE_MS = {}\n",
                literal(&source),
                literal(&literal(event)),
                literal(&result_path),
                literal(&invocation.request_id),
                invocation.memory_mb,
                invocation.deadline_ms,
            );
            (["python3", "-"], prelude + PYTHON_LAMBDA + PYTHON_RUNNER)
        }
        Language::Node => {
            let prelude = format!(
                "const SOURCE = {};\nconst EVENT = {};\nconst RESULT = {};\nconst REQUEST_ID = {};\nconst MEMORY_MB = {};\nconst DEADLINE_MS = {};\n",
                literal(&source),
                literal(event),
                literal(&result_path),
                literal(&invocation.request_id),
                invocation.memory_mb,
                invocation.deadline_ms,
            );
            (["node", "-"], prelude + NODE_LAMBDA + NODE_RUNNER)
        }
        Language::Shell => return Err(HandlerError::Shell),
    };
    Ok(Program {
        argv: argv.map(str::to_owned).to_vec(),
        env: Vec::new(),
        stdin: runner.into_bytes(),
        result_file: Some(result_file.to_owned()),
    })
}

/// `partial` completed into an API Gateway HTTP API event (payload 2.0):
/// what it gives is kept, what it lacks takes API Gateway's shape (a `GET
/// /` with no headers, body or query), so `{"body": "…"}` is enough.
pub fn event(partial: Value, request_id: &str, now_ms: i64) -> Value {
    let mut event = match partial {
        Value::Object(members) => members,
        _ => Map::new(),
    };
    let method = event
        .get("requestContext")
        .and_then(|c| c.pointer("/http/method"))
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_owned();
    let path = event
        .get("rawPath")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = time
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let defaults = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {},
        "isBase64Encoded": false,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "sbx",
            "domainName": "sbx.localhost",
            "domainPrefix": "sbx",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "sbx",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": stamp,
            "timeEpoch": now_ms,
        },
    });
    if let Value::Object(defaults) = defaults {
        for (name, value) in defaults {
            match (event.get_mut(&name), value) {
                (Some(Value::Object(given)), Value::Object(default)) => {
                    for (inner, value) in default {
                        given.entry(inner).or_insert(value);
                    }
                }
                (Some(_), _) => {}
                (None, value) => {
                    event.insert(name, value);
                }
            }
        }
    }
    Value::Object(event)
}

/// What API Gateway answers for a handler's return value (payload 2.0):
/// an object with `statusCode` is the response; anything else is a 200
/// with it as its JSON body.
pub fn response(returned: Value) -> Value {
    let Value::Object(mut shaped) = returned else {
        return json_answer(&returned);
    };
    let Some(status) = shaped.get("statusCode").cloned() else {
        return json_answer(&Value::Object(shaped));
    };
    let headers: Map<String, Value> = match shaped.remove("headers") {
        Some(Value::Object(headers)) => headers
            .into_iter()
            .map(|(name, value)| {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (name.to_ascii_lowercase(), Value::String(text))
            })
            .collect(),
        _ => Map::new(),
    };
    let body = match shaped.remove("body") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(Value::String(text)) => Value::String(text),
        Some(other) => Value::String(other.to_string()),
    };
    json!({
        "statusCode": status.as_u64().or_else(|| status.as_str()?.parse().ok()).unwrap_or(200),
        "headers": headers,
        "body": body,
        "isBase64Encoded": shaped.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false),
        "cookies": shaped.get("cookies").cloned().unwrap_or_else(|| json!([])),
    })
}

fn json_answer(body: &Value) -> Value {
    json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
        "cookies": [],
    })
}

/// Reads and removes the result `name` in `workspace`. The file is the
/// jailed code's to write: a link is never followed, anything but a
/// regular file of at most [`MAX_RESULT_BYTES`] is refused.
pub fn take_result(workspace: &Path, name: &str) -> Option<Outcome> {
    let path = workspace.join(name);
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .and_then(|file| {
            let kind = file.metadata()?;
            if !kind.is_file() || kind.len() > MAX_RESULT_BYTES {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            let mut text = Vec::new();
            file.take(MAX_RESULT_BYTES).read_to_end(&mut text)?;
            Ok(text)
        });
    let _ = std::fs::remove_file(&path);
    let written: Value = serde_json::from_slice(&read.ok()?).ok()?;
    match written {
        Value::Object(mut members) => match (members.remove("ok"), members.remove("error")) {
            (Some(returned), None) => Some(Outcome::Response(response(returned))),
            (None, Some(error)) => Some(Outcome::Error(error)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_event_takes_api_gateways_shape_and_keeps_what_it_gave() {
        let event = event(
            json!({"rawPath": "/orders", "body": "{}", "requestContext": {"http": {"method": "POST"}}}),
            "exe_1",
            1_583_348_638_390,
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/orders");
        assert_eq!(event["body"], "{}");
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["requestId"], "exe_1");
        assert_eq!(
            event["requestContext"]["time"],
            "04/Mar/2020:19:03:58 +0000"
        );
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn return_values_answer_as_api_gateway_would() {
        let shaped = response(json!({"statusCode": 201, "headers": {"X-Id": 7}, "body": {"a": 1}}));
        assert_eq!(shaped["statusCode"], 201);
        assert_eq!(shaped["headers"]["x-id"], "7");
        assert_eq!(shaped["body"], "{\"a\":1}");
        let plain = response(json!({"message": "hi"}));
        assert_eq!(plain["statusCode"], 200);
        assert_eq!(plain["headers"]["content-type"], "application/json");
        assert_eq!(plain["body"], "{\"message\":\"hi\"}");
        assert_eq!(response(json!("hi"))["body"], "\"hi\"");
    }
}
