//! A sandbox's request log: the latest requests with filters and a live
//! tail, and each request's page — why it answered so (the pipeline's
//! steps), its headers and bodies (redacted), snippets and replay.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use sbx_store::{LogQuery, LogRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Confirmed, SandboxSummary, header_lines, missing, shown};
use crate::{
    app::{AppState, rfc3339},
    portal::{
        Base, Failure, audited, forged,
        session::{self, Visitor},
        templates::page,
    },
    service::{logs, replay, sandboxes},
};

/// Requests listed on the log page.
const LISTED: u32 = 50;

#[derive(Serialize)]
struct Row {
    request_id: String,
    at: String,
    method: String,
    path: String,
    status: i64,
    latency_ms: f64,
    contract: String,
    scenario: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    text: String,
}

#[derive(Serialize)]
struct LogsPage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    rows: Vec<Row>,
    filters: Filters,
    filtered: bool,
    /// The filters, for the live tail's stream.
    stream_query: String,
}

fn latency_ms(record: &LogRecord) -> f64 {
    (record.latency_us as f64 / 100.0).round() / 10.0
}

fn contract(record: &LogRecord) -> String {
    match logs::violations(record).len() {
        0 => "valid".to_owned(),
        1 => "1 violation".to_owned(),
        n => format!("{n} violations"),
    }
}

pub async fn list(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(filters): Query<Filters>,
) -> Response {
    let sandbox = match shown(&state, &visitor, &id) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let mut base = Base::of(&visitor, "sandboxes");
    let status = filters.status.trim();
    let status_range = match status {
        "" => None,
        text => match logs::status_range(text) {
            Some(range) => Some(range),
            None => {
                let failure = Failure::field(
                    "/status",
                    format!("{text:?} is not a status (404) or a class (4xx)"),
                );
                base = base.failed(&failure, &[("/status", "status")]);
                None
            }
        },
    };
    let query = LogQuery {
        status: status_range,
        method: Some(filters.method.trim().to_ascii_uppercase()).filter(|m| !m.is_empty()),
        text: Some(filters.text.trim().to_owned()).filter(|t| !t.is_empty()),
        limit: LISTED,
        ..LogQuery::default()
    };
    let records = match logs::list(&state, &visitor.caller, &id, &query).await {
        Ok(records) => records,
        Err(error) => return missing(&visitor, Failure::from(error)),
    };
    let rows = records
        .iter()
        .map(|r| Row {
            request_id: r.request_id.to_string(),
            at: rfc3339(r.at_ms),
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            latency_ms: latency_ms(r),
            contract: contract(r),
            scenario: r.scenario.clone(),
        })
        .collect();
    let stream_query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            [
                ("status", status),
                ("method", filters.method.trim()),
                ("text", filters.text.trim()),
            ]
            .into_iter()
            .filter(|(name, value)| {
                !value.is_empty() && (*name != "status" || status_range.is_some())
            }),
        )
        .finish();
    let filtered = query.status.is_some() || query.method.is_some() || query.text.is_some();
    page(
        StatusCode::OK,
        "logs.html",
        LogsPage {
            base,
            sandbox: SandboxSummary::of(&state, &sandbox),
            rows,
            filters,
            filtered,
            stream_query: if stream_query.is_empty() {
                stream_query
            } else {
                format!("?{stream_query}")
            },
        },
    )
}

#[derive(Serialize)]
struct Entry {
    request_id: String,
    at: String,
    method: String,
    path: String,
    query: Option<String>,
    operation: Option<String>,
    status: i64,
    latency_ms: f64,
    trace_id: Option<String>,
    request_headers: String,
    request_body: String,
    response_headers: String,
    response_body: String,
}

#[derive(Serialize)]
struct Step {
    stage: String,
    verdict: String,
    summary: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
struct Replayed {
    status: i64,
    summary: String,
    diff: Option<String>,
}

#[derive(Serialize)]
struct RequestPage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    entry: Entry,
    verdict: String,
    steps: Vec<Step>,
    snippets: Vec<(&'static str, String)>,
    caveats: Vec<String>,
    replay: Option<Replayed>,
}

/// A logged header map, one per line.
fn logged_headers(headers: &Value) -> String {
    header_lines(
        headers
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (name.clone(), value)
            }),
    )
}

fn pretty_json(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_owned())
}

async fn request_page(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    request_id: &str,
    status: StatusCode,
    base: Base,
    replay: Option<Replayed>,
) -> Response {
    let sandbox = match sandboxes::live(state, &visitor.caller, id) {
        Ok(sandbox) => sandbox,
        Err(error) => return missing(visitor, Failure::from(error)),
    };
    let record = match logs::logged(state, &visitor.caller, id, request_id).await {
        Ok(record) => record,
        Err(error) => return missing(visitor, Failure::from(error)),
    };
    let snippets = replay::snippets(state, &record);
    let steps = record
        .trace
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| Step {
            stage: step["stage"].as_str().unwrap_or_default().to_owned(),
            verdict: step["verdict"].as_str().unwrap_or_default().to_owned(),
            summary: step["summary"].as_str().map(str::to_owned),
            detail: step
                .get("detail")
                .filter(|d| !d.is_null())
                .and_then(|d| serde_json::to_string_pretty(d).ok()),
        })
        .collect();
    let entry = Entry {
        request_id: record.request_id.to_string(),
        at: rfc3339(record.at_ms),
        method: record.method.clone(),
        path: record.path.clone(),
        query: record.query.clone(),
        operation: record.operation.clone(),
        status: record.status,
        latency_ms: latency_ms(&record),
        trace_id: record.trace_id.clone(),
        request_headers: logged_headers(&record.request_headers),
        request_body: pretty_json(&record.request_body),
        response_headers: logged_headers(&record.response_headers),
        response_body: pretty_json(&record.response_body),
    };
    page(
        status,
        "request.html",
        RequestPage {
            base,
            sandbox: SandboxSummary::of(state, &sandbox),
            verdict: logs::verdict(&record),
            caveats: replay::caveats(&record),
            entry,
            steps,
            snippets: vec![
                ("curl", snippets.curl),
                ("HTTPie", snippets.httpie),
                ("Python", snippets.python),
                ("Node", snippets.javascript),
            ],
            replay,
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, request_id)): Path<(String, String)>,
) -> Response {
    let base = Base::of(&visitor, "sandboxes");
    request_page(
        &state,
        &visitor,
        &id,
        &request_id,
        StatusCode::OK,
        base,
        None,
    )
    .await
}

pub async fn replay_request(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, request_id)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    match replay::replay(&state, &visitor.caller, &id, &request_id).await {
        Ok(replayed) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/logs/{request_id}/replay",
                format!("/api/v1/sandboxes/{id}/logs/{request_id}/replay"),
                200,
            )
            .await;
            let summary = if replayed.same {
                "The same answer as the original.".to_owned()
            } else {
                format!(
                    "A different answer: the original was {}, the replay {} (logged as {}).",
                    replayed.original.status, replayed.replay.status, replayed.request_id
                )
            };
            let result = Replayed {
                status: replayed.replay.status,
                summary,
                diff: (!replayed.same)
                    .then(|| serde_json::to_string_pretty(&replayed.diff).unwrap_or_default()),
            };
            let base = Base::of(&visitor, "sandboxes");
            request_page(
                &state,
                &visitor,
                &id,
                &request_id,
                StatusCode::OK,
                base,
                Some(result),
            )
            .await
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "sandboxes").failed(&failure, &[]);
            request_page(
                &state,
                &visitor,
                &id,
                &request_id,
                failure.status,
                base,
                None,
            )
            .await
        }
    }
}
