//! The audit log as a page: an admin's whole log, a developer's own
//! entries (the service scopes it), filtered by who, what, on what and
//! outcome.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sbx_store::{AuditOutcome, AuditQuery};
use serde::{Deserialize, Serialize};

use super::Visitor;
use crate::{
    app::{AppState, rfc3339},
    portal::{Base, Failure, templates::page},
    service::audit,
};

/// Entries listed.
const LISTED: u32 = 100;

#[derive(Serialize, Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
}

#[derive(Serialize)]
struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    resource: Option<String>,
    status: i64,
    detail: Option<String>,
}

#[derive(Serialize)]
struct ActivityPage {
    #[serde(flatten)]
    base: Base,
    entries: Vec<Row>,
    filters: Filters,
    filtered: bool,
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(filters): Query<Filters>,
) -> Response {
    let outcome = match filters.outcome.as_str() {
        "succeeded" => Some(AuditOutcome::Succeeded),
        "refused" => Some(AuditOutcome::Refused),
        "failed" => Some(AuditOutcome::Failed),
        _ => None,
    };
    let query = AuditQuery {
        actor: text(&filters.actor),
        action: text(&filters.action),
        target: text(&filters.target),
        outcome,
        limit: LISTED,
        ..AuditQuery::default()
    };
    let filtered = query.actor.is_some()
        || query.action.is_some()
        || query.target.is_some()
        || query.outcome.is_some();
    let (status, base, entries) = match audit::list(&state, &visitor.caller, query).await {
        Ok(records) => (
            StatusCode::OK,
            Base::of(&visitor, "activity"),
            records
                .into_iter()
                .map(|r| Row {
                    at: rfc3339(r.at_ms),
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    resource: r.resource,
                    status: r.status,
                    detail: r.detail,
                })
                .collect(),
        ),
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "activity").failed(&failure, &[]);
            (failure.status, base, Vec::new())
        }
    };
    page(
        status,
        "activity.html",
        ActivityPage {
            base,
            entries,
            filters,
            filtered,
        },
    )
}
