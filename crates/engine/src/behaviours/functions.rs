//! Function behaviours: an operation answered by a Lambda handler,
//! `functions/<operationId>.py` (or `.js`, `.mjs`, `.cjs`); files whose
//! name starts with `_` are modules the functions share. The engine
//! builds the request as an API Gateway HTTP API event (payload 2.0) and
//! reads the handler's answer as API Gateway would; the server runs the
//! handler in a code session of the sandbox ([`Functions`]). What it
//! answers is checked against the spec like any behaviour's.

use std::{collections::BTreeMap, rc::Rc, sync::Arc};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    Response,
    behaviours::call::Call,
    compile::project::FileProblem,
    pipeline::{problem::ProblemType, respond::Rendered},
};

/// What a handler is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionLanguage {
    Python,
    Node,
}

impl FunctionLanguage {
    /// The language of a file in `functions/`, by its extension.
    fn of(file: &str) -> Option<(&str, Self)> {
        [
            (".py", Self::Python),
            (".js", Self::Node),
            (".mjs", Self::Node),
            (".cjs", Self::Node),
        ]
        .into_iter()
        .find_map(|(extension, language)| Some((file.strip_suffix(extension)?, language)))
    }
}

/// The handler answering one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The operation id, which names the function.
    pub name: String,
    /// `functions/createOrder.py`.
    pub file: String,
    pub language: FunctionLanguage,
}

/// A revision's function files, shared with the sessions that run them.
#[derive(Debug, PartialEq, Eq)]
pub struct FunctionSources {
    /// Source by file name (`createOrder.py`).
    pub files: BTreeMap<String, String>,
    /// Tells revisions' sources apart: a session serving other sources
    /// is replaced.
    pub digest: u64,
    pub settings: FunctionSettings,
}

/// `project.yaml`'s `functions:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionSettings {
    /// How long one invocation may run (Lambda's default: 3 s).
    pub timeout_ms: u64,
    /// Memory of the sandbox's function session, its workers' together.
    pub memory_mib: u64,
    /// The session template functions run in, for its packages (`POST
    /// /api/v1/templates`); the functions' language's built-in when unset.
    pub template: Option<String>,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 3_000,
            memory_mib: 256,
            template: None,
        }
    }
}

/// Longest invocation allowed.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Memory a function session may have, in MiB.
pub const MEMORY_MIB: std::ops::RangeInclusive<u64> = 32..=2048;

/// One invocation, for the server to run.
#[derive(Debug, Clone)]
pub struct FunctionCall {
    pub sandbox: String,
    pub function: Function,
    /// The API Gateway HTTP API event (payload 2.0), but for
    /// `requestContext.requestId`: the runner's, unique per invocation
    /// (it is also `context.aws_request_id`).
    pub event: Value,
    pub sources: Arc<FunctionSources>,
}

/// What the handler answered: API Gateway's response shape
/// (`statusCode`, `headers`, `body`, `isBase64Encoded`, `cookies`), with
/// what it printed.
#[derive(Debug, Clone)]
pub struct FunctionAnswer {
    pub response: Value,
    pub logs: String,
}

/// Why an invocation has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FunctionFailure {
    /// The handler raised: Lambda's `{errorType, errorMessage, stackTrace}`.
    #[error("the handler raised {}: {}", .error["errorType"].as_str().unwrap_or("an error"), .error["errorMessage"].as_str().unwrap_or(""))]
    Raised { error: Value, logs: String },
    /// It ran past `timeout_ms`.
    #[error("{0}")]
    Timeout(String),
    /// Its process died (out of memory, exited).
    #[error("{0}")]
    Crashed(String),
    /// Functions cannot run here (no session runtime; `sbx mock`).
    #[error("{0}")]
    Unavailable(String),
}

/// Runs handlers. Called on a thread that may block (never an async worker).
pub trait Functions: Send + Sync {
    fn invoke(&self, call: FunctionCall) -> Result<FunctionAnswer, FunctionFailure>;
}

/// The operations' functions by operation index, and their shared sources;
/// problems for files that answer no operation, or one a script answers.
pub fn compile(
    files: &BTreeMap<String, String>,
    settings: &FunctionSettings,
    operation_index: &dyn Fn(&str) -> Option<usize>,
    scripted: &dyn Fn(usize) -> bool,
    problems: &mut Vec<FileProblem>,
) -> (Vec<(usize, Function)>, Option<Arc<FunctionSources>>) {
    let mut functions: Vec<(usize, Function)> = Vec::new();
    // `_prices.py`: a module the functions share, answering nothing.
    for file in files.keys().filter(|file| !file.starts_with('_')) {
        let path = format!("functions/{file}");
        let Some((name, language)) = FunctionLanguage::of(file) else {
            problems.push(FileProblem::new(
                path,
                "functions must be .py (Python) or .js, .mjs, .cjs (Node.js) files",
            ));
            continue;
        };
        let Some(index) = operation_index(name) else {
            problems.push(FileProblem::new(
                path,
                format!("the spec has no operation {name:?}"),
            ));
            continue;
        };
        if let Some((_, other)) = functions.iter().find(|(i, _)| *i == index) {
            problems.push(FileProblem::new(
                path,
                format!("{} also answers {name}; keep one", other.file),
            ));
        } else if scripted(index) {
            problems.push(FileProblem::new(
                path,
                format!(
                    "behaviours/{name}.rhai also answers {name}; keep the script or the function"
                ),
            ));
        } else {
            functions.push((
                index,
                Function {
                    name: name.to_owned(),
                    file: path,
                    language,
                },
            ));
        }
    }
    if settings.timeout_ms == 0 || settings.timeout_ms > MAX_TIMEOUT_MS {
        problems.push(
            FileProblem::new(
                "project.yaml",
                format!("functions.timeout_ms must be 1 to {MAX_TIMEOUT_MS}"),
            )
            .pointer("/functions/timeout_ms"),
        );
    }
    if !MEMORY_MIB.contains(&settings.memory_mib) {
        problems.push(
            FileProblem::new(
                "project.yaml",
                format!(
                    "functions.memory_mib must be {} to {}",
                    MEMORY_MIB.start(),
                    MEMORY_MIB.end()
                ),
            )
            .pointer("/functions/memory_mib"),
        );
    }
    if functions.is_empty() {
        return (functions, None);
    }
    let template = settings.template.as_deref().unwrap_or("");
    let digest = sbx_spec::synth::seed_from(
        files
            .iter()
            .flat_map(|(name, source)| [name.as_bytes(), b"\0", source.as_bytes(), b"\0"])
            .chain([template.as_bytes()]),
    );
    let sources = FunctionSources {
        files: files.clone(),
        digest,
        settings: settings.clone(),
    };
    (functions, Some(Arc::new(sources)))
}

/// Calls `function` with the request and reads back its answer; a failure
/// is a problem answer naming the function.
pub fn answer(call: &Rc<Call>, function: &Function) -> Result<Rendered, Response> {
    let behaviours = &call.revision.behaviours;
    let (Some(sources), Some(runner)) = (&behaviours.functions, &call.sandbox.functions) else {
        return Err(ProblemType::FunctionUnavailable.response_with(
            503,
            &format!(
                "{} cannot run: this server runs no code sessions (functions run under `sbx serve`, with bubblewrap installed)",
                function.file
            ),
            Some(json!({"function": function.file})),
        ));
    };
    let invoked = runner.invoke(FunctionCall {
        sandbox: call.sandbox.id.clone(),
        function: function.clone(),
        event: event(call),
        sources: sources.clone(),
    });
    let answered = invoked.map_err(|failure| failed(function, failure, call))?;
    call.function_logs.replace(Some(answered.logs));
    let response = to_response(&answered.response).map_err(|detail| {
        ProblemType::FunctionError.response_with(
            500,
            &format!(
                "{} answered what API Gateway cannot send: {detail}",
                function.file
            ),
            Some(json!({"function": function.file})),
        )
    })?;
    Ok(Rendered {
        response,
        value: None,
    })
}

fn failed(function: &Function, failure: FunctionFailure, call: &Call) -> Response {
    let file = &function.file;
    let detail = format!("{file}: {failure}");
    tracing::info!(target: "sbx::function", sandbox = %call.sandbox.id, "{detail}");
    match failure {
        FunctionFailure::Raised { error, logs } => {
            // Lambda's members only: the error comes from the jail, and
            // must not overwrite the problem's own (`type`, `status`).
            let mut extra = json!({"function": file, "logs": logs});
            if let Value::Object(members) = &mut extra {
                for name in ["errorType", "errorMessage", "stackTrace"] {
                    if let Some(value) = error.get(name) {
                        members.insert(name.to_owned(), value.clone());
                    }
                }
            }
            call.function_logs
                .replace(extra.get("logs").and_then(Value::as_str).map(str::to_owned));
            ProblemType::FunctionError.response_with(500, &detail, Some(extra))
        }
        FunctionFailure::Timeout(_) => ProblemType::FunctionTimeout.response_with(
            504,
            &detail,
            Some(json!({"function": file})),
        ),
        FunctionFailure::Crashed(_) => ProblemType::FunctionCrashed.response_with(
            502,
            &detail,
            Some(json!({"function": file})),
        ),
        FunctionFailure::Unavailable(_) => ProblemType::FunctionUnavailable.response_with(
            503,
            &detail,
            Some(json!({"function": file})),
        ),
    }
}

/// The request as API Gateway's HTTP API hands it to a Lambda (payload
/// format 2.0). The sandbox's environment parameters are its stage
/// variables; its clock is the request's time.
pub fn event(call: &Call) -> Value {
    let request = &call.request;
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_owned())),
            );
            continue;
        }
        joined(&mut headers, name, value);
    }
    let mut query = Map::new();
    for (name, value) in &request.query {
        joined(&mut query, name, value);
    }
    let path_parameters: Map<String, Value> = call
        .decoded_path_params()
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    let stage_variables: Map<String, Value> = call
        .env_map()
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name, Value::String(text))
        })
        .collect();
    let operation = call.operation();
    // Routes as API Gateway would have them: the spec's server path first.
    let route_key = format!(
        "{} {}{}",
        request.method, call.revision.model.base_path, operation.operation.path
    );
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or_else(|| json!(""));
    let domain = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("sbx.localhost")
        .to_owned();
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(call.sandbox.now_ms) * 1_000_000,
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = time
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.raw_query.as_deref().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": call.sandbox.id,
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or(""),
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "routeKey": route_key,
            "stage": "$default",
            "time": stamp,
            "timeEpoch": call.sandbox.now_ms,
        },
        "isBase64Encoded": false,
    });
    let Value::Object(members) = &mut event else {
        return event;
    };
    for (name, value) in [
        ("cookies", Value::Array(cookies)),
        ("queryStringParameters", Value::Object(query)),
        ("pathParameters", Value::Object(path_parameters)),
        ("stageVariables", Value::Object(stage_variables)),
    ] {
        let empty = match &value {
            Value::Array(items) => items.is_empty(),
            Value::Object(items) => items.is_empty(),
            _ => false,
        };
        if !empty {
            members.insert(name.to_owned(), value);
        }
    }
    if !request.raw_body.is_empty() {
        let (body, encoded) = match std::str::from_utf8(&request.raw_body) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&request.raw_body),
                true,
            ),
        };
        members.insert("body".to_owned(), Value::String(body));
        members.insert("isBase64Encoded".to_owned(), Value::Bool(encoded));
    }
    event
}

/// API Gateway joins repeated headers and query parameters with commas.
fn joined(into: &mut Map<String, Value>, name: &str, value: &str) {
    match into.get_mut(name) {
        Some(Value::String(before)) => {
            before.push(',');
            before.push_str(value);
        }
        _ => {
            into.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Headers a handler cannot set: the server frames the answer itself.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// API Gateway's response shape as the answer sent.
fn to_response(shaped: &Value) -> Result<Response, String> {
    let status = shaped["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", shaped["statusCode"]))?;
    let mut headers: Vec<(String, String)> = shaped["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !FRAMING.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    if let Some((name, _)) = headers.iter().find(|(name, value)| {
        http_name(name).is_none() || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
    }) {
        return Err(format!("the header {name:?} is not a valid HTTP header"));
    }
    for cookie in shaped["cookies"].as_array().into_iter().flatten() {
        if let Some(cookie) = cookie.as_str() {
            headers.push(("set-cookie".to_owned(), cookie.to_owned()));
        }
    }
    let text = shaped["body"].as_str().unwrap_or_default();
    let body = if shaped["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("isBase64Encoded, but its body is not base64: {e}"))?
    } else {
        text.as_bytes().to_vec()
    };
    if !body.is_empty() && !headers.iter().any(|(name, _)| name == "content-type") {
        let media = if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.push(("content-type".to_owned(), media.to_owned()));
    }
    Ok(Response {
        status,
        headers,
        body: body.into(),
    })
}

/// `name` if it is an HTTP header name (RFC 9110 token characters).
fn http_name(name: &str) -> Option<&str> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    (!name.is_empty() && name.bytes().all(token)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_shapes_become_answers() {
        let sent = to_response(&json!({
            "statusCode": 201, "headers": {"x-id": "7", "content-length": "999"},
            "body": "{\"id\":7}", "isBase64Encoded": false, "cookies": ["a=1", "b=2"],
        }))
        .unwrap();
        assert_eq!(sent.status, 201);
        assert_eq!(&sent.body[..], b"{\"id\":7}");
        let names: Vec<&str> = sent.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-id", "set-cookie", "set-cookie", "content-type"]);
        let binary = to_response(&json!({"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "iVBORw==", "isBase64Encoded": true})).unwrap();
        assert_eq!(&binary.body[..], [0x89, b'P', b'N', b'G']);
        for (bad, why) in [
            (json!({"statusCode": 42, "body": ""}), "not an HTTP status"),
            (
                json!({"statusCode": 200, "headers": {"bad name": "x"}, "body": ""}),
                "not a valid HTTP header",
            ),
            (
                json!({"statusCode": 200, "headers": {"x": "a\nb"}, "body": ""}),
                "not a valid HTTP header",
            ),
            (
                json!({"statusCode": 200, "body": "%%", "isBase64Encoded": true}),
                "not base64",
            ),
        ] {
            let error = to_response(&bad).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn a_file_names_its_operation_and_language() {
        assert_eq!(
            FunctionLanguage::of("createOrder.py"),
            Some(("createOrder", FunctionLanguage::Python))
        );
        assert_eq!(
            FunctionLanguage::of("a.mjs"),
            Some(("a", FunctionLanguage::Node))
        );
        assert_eq!(FunctionLanguage::of("a.rb"), None);
    }
}
