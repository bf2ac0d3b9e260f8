//! The audit log: every control-plane change, who made it and how it ended.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    error::{ApiError, FieldError},
};

const PAGE: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: String,
    /// `admin`, or `anonymous` for a refused attempt.
    pub actor: String,
    /// The method and route, e.g. `POST /api/v1/sandboxes/{id}/clock`.
    pub action: String,
    /// The path as called.
    pub target: String,
    /// The answer's status: the outcome.
    pub status: i64,
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `cursor` for older entries.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = AuditPage, description = "the latest 100 changes, newest first"), (status = 400)),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut before = None;
    for (name, value) in &params {
        let bad = |message: String| {
            ApiError::bad_query(vec![FieldError {
                location: "query".into(),
                pointer: name.clone(),
                message,
                line: None,
                column: None,
            }])
        };
        match name.as_str() {
            "cursor" => {
                before =
                    Some(value.parse::<i64>().map_err(|_| {
                        bad(format!("{value:?} is not a cursor from a previous page"))
                    })?);
            }
            _ => {
                return Err(bad(format!(
                    "unknown parameter {name:?}; parameters: cursor"
                )));
            }
        }
    }
    let records = state.store.list_audit(before, PAGE).await?;
    let next_cursor = (records.len() == PAGE as usize)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        items: records
            .into_iter()
            .map(|r| AuditView {
                at: rfc3339(r.at_ms),
                actor: r.actor,
                action: r.action,
                target: r.target,
                status: r.status,
                request_id: r.request_id,
            })
            .collect(),
        next_cursor,
    }))
}
