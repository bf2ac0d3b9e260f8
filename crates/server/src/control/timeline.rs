//! One timeline per sandbox: requests, clock moves, jobs, state
//! transitions, events and delivery attempts in sandbox-time order, each
//! linked to what caused it.

use std::collections::HashMap;

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
};
use sbx_store::{TimelineKind, TimelineQuery};

use crate::{
    app::AppState,
    control::filters,
    http::error::ApiError,
    service::caller::Caller,
    service::timeline::{self as service, Timeline},
};

/// Entries per answer: the default and the most.
const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 1000;

fn query(params: &HashMap<String, String>) -> Result<TimelineQuery, ApiError> {
    let mut query = TimelineQuery {
        kinds: TimelineKind::ALL.to_vec(),
        since_ms: i64::MIN,
        until_ms: i64::MAX,
        limit: DEFAULT_LIMIT,
    };
    for (name, value) in params {
        match name.as_str() {
            "kinds" => {
                query.kinds = value
                    .split(',')
                    .map(|kind| {
                        TimelineKind::ALL
                            .into_iter()
                            .find(|k| k.name() == kind.trim())
                            .ok_or_else(|| {
                                filters::bad(
                                    name,
                                    format!(
                                        "{kind:?} is not a kind; kinds: clock, request, job, transition, event, delivery"
                                    ),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "since" => query.since_ms = filters::instant(name, value)?,
            "until" => query.until_ms = filters::instant(name, value)?,
            "limit" => query.limit = filters::limit(name, value, MAX_LIMIT)?,
            _ => return Err(filters::unknown(name, "kinds, since, until, limit")),
        }
    }
    Ok(query)
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/timeline", operation_id = "getSandboxTimeline", tag = "logs",
    params(("id" = String, Path),
           ("kinds" = Option<String>, Query, description = "comma-separated: clock, request, job, transition, event, delivery (default all)"),
           ("since" = Option<String>, Query, description = "sandbox time, RFC 3339, inclusive"),
           ("until" = Option<String>, Query, description = "sandbox time, RFC 3339, exclusive"),
           ("limit" = Option<u32>, Query, description = "1 to 1000, default 200")),
    responses((status = 200, body = Timeline, description = "oldest first, by the sandbox clock; pending jobs come last, at the time they fall due"),
              (status = 400, description = "a filter with a bad value, named"), (status = 404)),
    security(("bearer" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Timeline>, ApiError> {
    let query = query(&params)?;
    Ok(Json(service::timeline(&state, &caller, &id, query).await?))
}
