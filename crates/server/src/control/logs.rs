//! A sandbox's request log: listed with filters and a cursor, or one
//! request by its id.

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
};
use sbx_store::{LogQuery, LogRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::filters,
    http::error::ApiError,
    service::caller::Caller,
    service::logs::{self, logged},
};

/// Entries per page: the default and the most.
const PAGE: u32 = 50;
pub(crate) const MAX_PAGE: u32 = 200;

#[derive(Debug, Serialize, ToSchema)]
pub struct LogView {
    pub request_id: String,
    pub at: String,
    pub method: String,
    /// Below the sandbox root.
    pub path: String,
    pub query: Option<String>,
    /// The operation routed to, if any.
    pub operation: Option<String>,
    pub status: i64,
    pub latency_ms: f64,
    pub scenario: Option<String>,
    /// What chaos did, as `X-Sandbox-Chaos` says it.
    pub chaos: Option<String>,
    /// Answered from a stored idempotent answer.
    pub idempotent_replay: bool,
    /// Redacted: credentials and `sk_test_` keys never reach the log.
    #[schema(value_type = Object)]
    pub request_headers: Value,
    pub request_body: String,
    #[schema(value_type = Object)]
    pub response_headers: Value,
    pub response_body: String,
    /// Each violation of the contract (`location`, `pointer`, `message`,
    /// `schema_path`, `got`); empty when the request was valid.
    #[schema(value_type = Vec<Object>)]
    pub validation_errors: Vec<Value>,
    /// How the behaviour's script failed (`message`, `script`, `line`,
    /// `column`, `limit`), if it did.
    #[schema(value_type = Option<Object>)]
    pub script_error: Option<Value>,
    /// The sandbox clock's time when it arrived.
    pub sandbox_at: Option<String>,
    /// The W3C trace it belongs to (32 hex digits): the caller's
    /// `traceparent`, or the span exported with `--otlp-endpoint`.
    pub trace_id: Option<String>,
}

/// The failed step of `stage` in a logged trace, if any.
impl From<LogRecord> for LogView {
    fn from(r: LogRecord) -> Self {
        let validation_errors = logs::violations(&r);
        let script_error =
            logs::failed_step(&r, "behaviour").filter(|detail| detail.get("script").is_some());
        Self {
            validation_errors,
            script_error,
            sandbox_at: r.sandbox_at_ms.map(rfc3339),
            trace_id: r.trace_id,
            request_id: r.request_id.to_string(),
            at: rfc3339(r.at_ms),
            method: r.method,
            path: r.path,
            query: r.query,
            operation: r.operation,
            status: r.status,
            latency_ms: r.latency_us as f64 / 1000.0,
            scenario: r.scenario,
            chaos: r.chaos,
            idempotent_replay: r.replayed,
            request_headers: r.request_headers,
            request_body: r.request_body,
            response_headers: r.response_headers,
            response_body: r.response_body,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    pub items: Vec<LogView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
    /// Entries the server dropped instead of making requests wait (since start).
    pub dropped: u64,
}

/// A status (`404`) or a class of them (`4xx`), as the lowest and highest.
fn statuses(name: &str, value: &str) -> Result<(i64, i64), ApiError> {
    logs::status_range(value).ok_or_else(|| {
        filters::bad(
            name,
            format!("status must be an HTTP status (404) or a class (4xx), not {value:?}"),
        )
    })
}

pub(crate) fn query(params: &HashMap<String, String>) -> Result<LogQuery, ApiError> {
    let mut query = LogQuery {
        limit: PAGE,
        ..LogQuery::default()
    };
    for (name, value) in params {
        match name.as_str() {
            "status" => query.status = Some(statuses(name, value)?),
            "method" => query.method = Some(value.to_ascii_uppercase()),
            "operation" => query.operation = Some(value.clone()),
            "since" => query.since_ms = Some(filters::instant(name, value)?),
            "text" => query.text = Some(value.clone()).filter(|t| !t.is_empty()),
            "cursor" => query.before_seq = Some(filters::cursor(name, value)?),
            "limit" => query.limit = filters::limit(name, value, MAX_PAGE)?,
            _ => {
                return Err(filters::unknown(
                    name,
                    "status, method, operation, since, text, cursor, limit",
                ));
            }
        }
    }
    Ok(query)
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs", operation_id = "listLogs", tag = "logs",
    params(("id" = String, Path),
           ("status" = Option<String>, Query, description = "a status (404) or a class (4xx)"), ("method" = Option<String>, Query), ("operation" = Option<String>, Query),
           ("since" = Option<String>, Query, description = "RFC 3339"),
           ("text" = Option<String>, Query, description = "in the path, query or bodies"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, body = LogPage, description = "newest first"), (status = 400, description = "a filter with a bad value, named"), (status = 404)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LogPage>, ApiError> {
    let query = query(&params)?;
    let records = logs::list(&state, &caller, &id, &query).await?;
    let next_cursor = (records.len() == query.limit as usize)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(LogPage {
        items: records.into_iter().map(LogView::from).collect(),
        next_cursor,
        dropped: state.request_log.dropped(),
    }))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs/{request_id}", operation_id = "getLogEntry", tag = "logs",
    params(("id" = String, Path), ("request_id" = String, Path, description = "its `X-Request-Id`")),
    responses((status = 200, body = LogView), (status = 404, description = "no such sandbox, or no request with that id in its log")),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<LogView>, ApiError> {
    Ok(Json(
        logged(&state, &caller, &id, &request_id).await?.into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs/stream", operation_id = "streamLogs", tag = "logs",
    params(("id" = String, Path),
           ("status" = Option<String>, Query, description = "a status (404) or a class (4xx)"), ("method" = Option<String>, Query), ("operation" = Option<String>, Query),
           ("text" = Option<String>, Query, description = "in the path, query or bodies")),
    responses((status = 200, description = "Server-sent events: one `request` per new log entry that matches (the `LogView` JSON), oldest first"),
              (status = 400, description = "a filter with a bad value, named"), (status = 404)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let entries = logs::follow(&state, &caller, &id, query(&params)?).await?;
    let events = futures_util::StreamExt::map(entries, |record| {
        let view = LogView::from(record);
        Ok(Event::default()
            .event("request")
            .id(view.request_id.clone())
            .data(serde_json::to_string(&view).unwrap_or_default()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
