//! The audit log: every control-plane change, and every refused attempt at
//! one — who, from where, what, on what, what it created, how it ended.

use std::{collections::HashMap, net::SocketAddr};

use axum::{
    Extension, Json,
    extract::{ConnectInfo, MatchedPath, Query, Request, State},
    http::header,
    response::Response,
};
use sbx_store::{AccountId, AuditOutcome, AuditQuery, AuditRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::{AppState, now_ms, rfc3339},
    control::filters,
    http::error::{ApiError, ProblemDetail},
    http::middleware::RequestId,
    service::audit::capped,
    service::caller::Caller,
};

const PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// A change being made, before its answer.
pub struct Call(AuditRecord);

impl Call {
    pub fn of(request: &Request, actor: &str) -> Self {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(request.uri().path(), MatchedPath::as_str);
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(capped);
        Self(AuditRecord {
            seq: 0,
            at_ms: now_ms(),
            actor: actor.to_owned(),
            action: capped(&format!("{} {route}", request.method())),
            target: capped(request.uri().path()),
            status: 0,
            request_id: request.extensions().get::<RequestId>().cloned(),
            client: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_string()),
            user_agent,
            resource: None,
            detail: None,
            owner: None,
        })
    }

    /// The entry, completed by the answer: its status, the `Location` of
    /// what it created, the problem's detail when it failed.
    pub fn answered(mut self, response: &Response, owner: Option<AccountId>) -> AuditRecord {
        self.0.owner = owner;
        self.0.status = i64::from(response.status().as_u16());
        self.0.resource = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.0.detail = response
            .extensions()
            .get::<ProblemDetail>()
            .map(|problem| capped(&problem.0));
        self.0
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: String,
    /// `admin`, `anonymous` (a refused attempt) or `system` (the server
    /// itself: the demo set-up, a sandbox's expiry).
    pub actor: String,
    /// The caller's IP address.
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// The method and route, e.g. `POST /api/v1/sandboxes/{id}/clock`.
    pub action: String,
    /// The path as called.
    pub target: String,
    /// What the change created, e.g. `/api/v1/sandboxes/sbx-…`.
    pub resource: Option<String>,
    /// `succeeded`, `refused` (401, 403) or `failed`.
    pub outcome: &'static str,
    pub status: i64,
    /// Why it failed, or why the system acted.
    pub detail: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            at: rfc3339(r.at_ms),
            actor: r.actor,
            client: r.client,
            user_agent: r.user_agent,
            action: r.action,
            target: r.target,
            resource: r.resource,
            outcome: AuditOutcome::of(r.status).as_str(),
            status: r.status,
            detail: r.detail,
            request_id: r.request_id.map(|id| id.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

const FILTERS: &str = "actor, action, target, outcome, since, until, cursor, limit";

fn query(params: &HashMap<String, String>) -> Result<AuditQuery, ApiError> {
    let mut query = AuditQuery {
        limit: PAGE,
        ..AuditQuery::default()
    };
    for (name, value) in params {
        let text = || Some(value.clone()).filter(|v| !v.is_empty());
        match name.as_str() {
            "actor" => query.actor = text(),
            "action" => query.action = text(),
            "target" => query.target = text(),
            "outcome" => {
                query.outcome = Some(
                    [
                        AuditOutcome::Succeeded,
                        AuditOutcome::Refused,
                        AuditOutcome::Failed,
                    ]
                    .into_iter()
                    .find(|o| o.as_str() == value)
                    .ok_or_else(|| {
                        filters::bad(
                            name,
                            format!("outcome must be succeeded, refused or failed, not {value:?}"),
                        )
                    })?,
                );
            }
            "since" => query.since_ms = Some(filters::instant(name, value)?),
            "until" => query.until_ms = Some(filters::instant(name, value)?),
            "cursor" => query.before_seq = Some(filters::cursor(name, value)?),
            "limit" => query.limit = filters::limit(name, value, MAX_PAGE)?,
            _ => return Err(filters::unknown(name, FILTERS)),
        }
    }
    Ok(query)
}

#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAuditEntries", tag = "audit",
    params(("actor" = Option<String>, Query, description = "`admin`, `anonymous` or `system`"),
           ("action" = Option<String>, Query, description = "in the action, e.g. `DELETE` or `/clock`"),
           ("target" = Option<String>, Query, description = "in the target or the resource, e.g. a sandbox id"),
           ("outcome" = Option<String>, Query, description = "`succeeded`, `refused` or `failed`"),
           ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = AuditPage, description = "newest first"),
              (status = 400, description = "a filter with a bad value, named")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = query(&params)?;
    let records = crate::service::audit::list(&state, &caller, query.clone()).await?;
    let next_cursor = (records.len() == query.limit as usize)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}
