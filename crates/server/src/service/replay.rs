//! Replaying a logged request: re-executed against the sandbox's present
//! state, with a diff of the new answer against the original.

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request},
};
use sbx_store::LogRecord;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    ServiceError, ServiceResult,
    caller::Caller,
    logs::logged,
    sandboxes::live,
    snippets::{Logged, Snippets},
};
use crate::{
    app::AppState,
    data_plane::{self, KeyCheck},
    http::middleware::{RequestId, generate_request_id},
};
use sbx_engine::redaction::REDACTED;

/// Stands for the key a request sent (the log keeps none); any `sk_test_`
/// key is accepted when a replay's original passed auth.
const REPLAY_KEY: &str = "sk_test_replay";
/// Response headers that differ on every answer.
const VOLATILE: [&str; 4] = ["date", "x-request-id", "content-length", "x-sandbox-id"];

/// Why the logged request may not be the one sent.
pub fn caveats(record: &LogRecord) -> Vec<String> {
    let mut caveats = Vec::new();
    if crate::workers::request_log::is_cut(&record.request_body) {
        caveats.push("the body was cut at 16 KiB in the log".to_owned());
    }
    if record.request_body.contains(REDACTED) {
        caveats.push("values the project redacts are masked in the body".to_owned());
    }
    caveats
}

/// The logged request's headers.
pub fn headers_of(record: &LogRecord) -> &Value {
    &record.request_headers
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Answer {
    pub status: i64,
    #[schema(value_type = Object)]
    pub headers: Value,
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replay {
    /// The replay's own id in the log.
    pub request_id: String,
    pub original: Answer,
    pub replay: Answer,
    /// Whether status, headers (but those that change every time) and
    /// body are the same.
    pub same: bool,
    /// What changed: `status` `{from, to}`, `headers` by name `{from, to}`,
    /// `body` as an RFC 6902 JSON Patch from the original (JSON bodies) or
    /// `{from, to}`.
    #[schema(value_type = Object)]
    pub diff: Value,
    pub caveats: Vec<String>,
}

/// The logged request as curl, HTTPie, Python and Node code.
pub fn snippets(state: &AppState, record: &LogRecord) -> Snippets {
    let root = format!("{}/sbx/{}", state.public_url, record.sandbox_id);
    let request = Logged::new(
        &root,
        &record.method,
        &record.path,
        record.query.as_deref(),
        headers_of(record),
        &record.request_body,
    );
    request.snippets(caveats(record))
}

/// Runs a logged request again against the sandbox's present state, under
/// a new request id, and compares the answers. A request whose body the
/// log cut cannot be replayed (`Conflict`).
pub async fn replay(
    state: &AppState,
    caller: &Caller,
    id: &str,
    request_id: &str,
) -> ServiceResult<Replay> {
    let record = logged(state, caller, id, request_id).await?;
    let caveats = caveats(&record);
    if crate::workers::request_log::is_cut(&record.request_body) {
        return Err(ServiceError::Conflict(format!(
            "{request_id} cannot be replayed: its body was cut at 16 KiB in the log"
        )));
    }
    let sandbox = live(state, caller, id)?;
    let new_id = generate_request_id()
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let request = rebuild(&record, &new_id)?;
    // A request that failed auth must fail it again: it keeps a key that
    // is not the sandbox's.
    let keys = if failed_auth(&record) {
        KeyCheck::Keys(sandbox.keys(), None)
    } else {
        KeyCheck::AnyTestKey
    };
    let response = data_plane::answer(
        state,
        sandbox,
        record.path.clone(),
        "a replay from the control plane",
        data_plane::Checks {
            keys,
            unlimited: false,
        },
        request,
        std::time::Instant::now(),
    )
    .await;
    let status = i64::from(response.status().as_u16());
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), json!(v.to_str().ok()?))))
        .collect();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| anyhow::anyhow!("reading the replay's answer: {e}"))?;
    let replay = Answer {
        status,
        headers: Value::Object(headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let original = Answer {
        status: record.status,
        headers: record.response_headers.clone(),
        body: record.response_body,
    };
    let diff = diff(&original, &replay);
    Ok(Replay {
        request_id: new_id,
        same: diff.as_object().is_some_and(serde_json::Map::is_empty),
        original,
        replay,
        diff,
        caveats,
    })
}

fn failed_auth(record: &LogRecord) -> bool {
    record
        .trace
        .as_array()
        .into_iter()
        .flatten()
        .any(|step| step["stage"] == "auth" && step["verdict"] == "failed")
}

/// The logged request as the data plane takes it, the key stood in for.
fn rebuild(record: &LogRecord, request_id: &str) -> ServiceResult<Request<Body>> {
    let query = record
        .query
        .as_deref()
        .map(|q| format!("?{}", q.replace(REDACTED, REPLAY_KEY)))
        .unwrap_or_default();
    let method = Method::from_bytes(record.method.as_bytes())
        .map_err(|e| anyhow::anyhow!("the logged method of {request_id} does not parse: {e}"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/sbx/{}{}{query}", record.sandbox_id, record.path))
        .body(Body::from(record.request_body.clone()))
        .map_err(|e| anyhow::anyhow!("rebuilding {request_id}: {e}"))?;
    if let Value::Object(headers) = headers_of(record) {
        for (name, value) in headers {
            let (Ok(name), Some(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(|v| v.replace(REDACTED, REPLAY_KEY)),
            ) else {
                continue;
            };
            if name == "content-length" || name == "x-request-id" {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
    }
    request.extensions_mut().insert(RequestId::from(request_id));
    Ok(request)
}

fn diff(original: &Answer, replay: &Answer) -> Value {
    let mut diff = serde_json::Map::new();
    if original.status != replay.status {
        diff.insert(
            "status".into(),
            json!({"from": original.status, "to": replay.status}),
        );
    }
    let mut headers = serde_json::Map::new();
    let names = [&original.headers, &replay.headers]
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|map| map.keys())
        .filter(|name| !VOLATILE.contains(&name.as_str()))
        .collect::<std::collections::BTreeSet<_>>();
    for name in names {
        let (from, to) = (&original.headers[name], &replay.headers[name]);
        if from != to {
            headers.insert(name.clone(), json!({"from": from, "to": to}));
        }
    }
    if !headers.is_empty() {
        diff.insert("headers".into(), Value::Object(headers));
    }
    if original.body != replay.body {
        let parsed = serde_json::from_str::<Value>(&original.body)
            .ok()
            .zip(serde_json::from_str::<Value>(&replay.body).ok());
        let body = match parsed {
            Some((from, to)) => json!(json_patch::diff(&from, &to)),
            None => json!({"from": original.body, "to": replay.body}),
        };
        diff.insert("body".into(), body);
    }
    Value::Object(diff)
}
