//! Explain: how the pipeline decided a logged request, step by step —
//! which sandbox, which operation (or the near misses), auth, every
//! validation error, the scenario, chaos, the script error.

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use sbx_store::LogRecord;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    http::error::ApiError,
    service::caller::Caller,
    service::logs::{logged, logged_anywhere},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub request_id: String,
    pub sandbox_id: String,
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub operation: Option<String>,
    /// The W3C trace it belongs to, to find its spans in a tracing tool.
    pub trace_id: Option<String>,
    /// The decisive step in one sentence: the first that failed, else the
    /// answer.
    pub verdict: String,
    /// Each stage in pipeline order: `stage`, `verdict` (passed, failed,
    /// skipped, applied), `summary`, and `detail` where there is more
    /// (violations with schema path and value, near misses, script line).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
}

impl From<LogRecord> for Explanation {
    fn from(record: LogRecord) -> Self {
        let verdict = crate::service::logs::verdict(&record);
        let steps = record.trace.as_array().cloned().unwrap_or_default();
        Self {
            request_id: record.request_id.to_string(),
            sandbox_id: record.sandbox_id.to_string(),
            at: rfc3339(record.at_ms),
            method: record.method,
            path: record.path,
            status: record.status,
            operation: record.operation,
            trace_id: record.trace_id,
            verdict,
            steps,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs/{request_id}/explain", operation_id = "explainSandboxRequest", tag = "logs",
    params(("id" = String, Path), ("request_id" = String, Path, description = "its `X-Request-Id`")),
    responses((status = 200, body = Explanation), (status = 404, description = "no such sandbox, or no request with that id in its log")),
    security(("bearer" = [])))]
pub async fn in_sandbox(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<Explanation>, ApiError> {
    Ok(Json(
        logged(&state, &caller, &id, &request_id).await?.into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/requests/{request_id}/explain", operation_id = "explainRequest", tag = "logs",
    params(("request_id" = String, Path, description = "its `X-Request-Id`; the latest request with it, in any sandbox")),
    responses((status = 200, body = Explanation), (status = 404, description = "no logged request with that id")),
    security(("bearer" = [])))]
pub async fn anywhere(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(request_id): Path<String>,
) -> Result<Json<Explanation>, ApiError> {
    Ok(Json(
        logged_anywhere(&state, &caller, &request_id).await?.into(),
    ))
}
