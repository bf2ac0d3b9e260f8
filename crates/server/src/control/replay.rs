//! Replaying a logged request: as code to run (snippets), or re-executed
//! against the sandbox with a diff of the new answer against the original
//! ([`crate::service::replay`]).

use axum::{
    Extension, Json,
    extract::{Path, State},
};

use crate::{
    app::AppState,
    http::error::ApiError,
    service::caller::Caller,
    service::{
        logs::logged,
        replay::{self as service, Replay},
        snippets::Snippets,
    },
};

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/logs/{request_id}/snippets", operation_id = "getRequestSnippets", tag = "logs",
    params(("id" = String, Path), ("request_id" = String, Path)),
    responses((status = 200, body = Snippets, description = "curl, HTTPie, Python requests and JavaScript fetch; the key is read from $SBX_API_KEY"), (status = 404)),
    security(("bearer" = [])))]
pub async fn snippets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<Snippets>, ApiError> {
    let record = logged(&state, &caller, &id, &request_id).await?;
    Ok(Json(service::snippets(&state, &record)))
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/logs/{request_id}/replay", operation_id = "replayRequest", tag = "logs",
    params(("id" = String, Path), ("request_id" = String, Path)),
    responses((status = 200, body = Replay, description = "The request ran again against the sandbox's current state"), (status = 404), (status = 409, description = "the logged body was cut short")),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<Replay>, ApiError> {
    Ok(Json(
        service::replay(&state, &caller, &id, &request_id).await?,
    ))
}
