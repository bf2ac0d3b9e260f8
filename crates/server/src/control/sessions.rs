//! Code sessions: `/api/v1/sessions`, their executions, their streams and
//! their files.

use std::convert::Infallible;

use axum::{
    Extension, Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    control::created,
    http::error::{ApiError, ApiJson},
    service::{
        caller::Caller,
        session_files as files,
        sessions::{self as service, ExecutionView, NewExecution, NewSession, SessionView},
    },
};

#[utoipa::path(post, path = "/api/v1/sessions", operation_id = "createSession", tag = "sessions",
    request_body = NewSession,
    responses((status = 201, body = SessionView), (status = 409, description = "every session slot is in use"),
              (status = 422), (status = 503, description = "bubblewrap is not installed")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<impl IntoResponse, ApiError> {
    let session = service::create(&state, &caller, body).await?;
    Ok(created(format!("/api/v1/sessions/{}", session.id), session))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionView>,
}

#[utoipa::path(get, path = "/api/v1/sessions", operation_id = "listSessions", tag = "sessions",
    responses((status = 200, body = SessionList, description = "Live sessions, newest first")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<SessionList> {
    Json(SessionList {
        items: service::list(&state, &caller),
    })
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", operation_id = "getSession", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView, description = "Live, or ended with its reason"), (status = 404)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(service::get(&state, &caller, &id)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendSession {
    /// Seconds from now until the session ends, ≤ 86400.
    pub lifetime_seconds: u64,
}

#[utoipa::path(patch, path = "/api/v1/sessions/{id}", operation_id = "extendSession", tag = "sessions", params(("id" = String, Path)),
    request_body = ExtendSession,
    responses((status = 200, body = SessionView), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn extend(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExtendSession>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(service::extend(
        &state,
        &caller,
        &id,
        body.lifetime_seconds,
    )?))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", operation_id = "deleteSession", tag = "sessions", params(("id" = String, Path)),
    responses((status = 204, description = "Ended: its runs killed, its workspace removed"), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, &caller, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/executions", operation_id = "createExecution", tag = "sessions", params(("id" = String, Path)),
    request_body = NewExecution,
    responses((status = 200, body = ExecutionView, description = "It ended (`wait` true, the default): its output and how it ended"),
              (status = 202, body = ExecutionView, description = "It is running (`wait: false`): read `stream_url`"),
              (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewExecution>,
) -> Result<impl IntoResponse, ApiError> {
    let wait = body.wait.unwrap_or(true);
    let view = service::execute(&state, &caller, &id, body).await?;
    let status = if wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub items: Vec<ExecutionView>,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/executions", operation_id = "listExecutions", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionList, description = "The latest 100, oldest first"), (status = 404)),
    security(("bearer" = [])))]
pub async fn executions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ExecutionList>, ApiError> {
    Ok(Json(ExecutionList {
        items: service::executions(&state, &caller, &id)?,
    }))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/executions/{eid}", operation_id = "getExecution", tag = "sessions",
    params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = ExecutionView), (status = 404)),
    security(("bearer" = [])))]
pub async fn execution(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, eid)): Path<(String, String)>,
) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(service::execution_result(&state, &caller, &id, &eid)?))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/executions/{eid}/stream", operation_id = "streamExecution", tag = "sessions",
    params(("id" = String, Path), ("eid" = String, Path),
           ("Last-Event-ID" = Option<u64>, Header, description = "the last event received: the stream goes on after it")),
    responses((status = 200, description = "Server-sent events `start` {pid}, `stdout` {data}, `stderr` {data}, `result` {response | error} (handler mode), `end` {status, exit_code, signal, duration_ms, peak_memory_bytes, cpu_ms, dropped_output_bytes}, each with its number as `id`; the stream closes after `end`"),
              (status = 404)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (_, execution) = service::execution(&state, &caller, &id, &eid)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from = after.map_or(0, |seq| seq + 1);
    let events = futures_util::stream::unfold(
        (execution, from, false),
        |(execution, from, done)| async move {
            if done {
                return None;
            }
            execution.output.wait_for(from).await;
            let (events, _) = execution.output.since(from);
            let next = from + events.len() as u64;
            let ended = events
                .iter()
                .any(|e| matches!(e.kind, sbx_sessions::EventKind::End(_)));
            let sent: Vec<Result<Event, Infallible>> = events
                .iter()
                .map(|event| {
                    let json = serde_json::to_value(event).unwrap_or_default();
                    let name = json["event"].as_str().unwrap_or("message").to_owned();
                    Ok(Event::default()
                        .id(event.seq.to_string())
                        .event(name)
                        .data(json.to_string()))
                })
                .collect();
            Some((futures_util::stream::iter(sent), (execution, next, ended)))
        },
    );
    Ok(Sse::new(futures_util::StreamExt::flatten(events)).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilePath {
    /// A path in the workspace (`data/in.csv`); the workspace itself when
    /// empty. `..` and links leading outside are refused.
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<sbx_sessions::files::Entry>,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/files", operation_id = "getSessionFile", tag = "sessions",
    params(("id" = String, Path), FilePath),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "A file's bytes; a directory's entries (`{items: [{name, path, type, size, modified}]}`) as JSON"),
              (status = 403, description = "the path leads outside the workspace"), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn get_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<FilePath>,
) -> Result<Response, ApiError> {
    Ok(
        match files::fetch(&state, &caller, &id, query.path).await? {
            files::Fetched::File { file, size } => (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_LENGTH, size.to_string()),
                ],
                Body::from_stream(tokio_util::io::ReaderStream::new(file)),
            )
                .into_response(),
            files::Fetched::Listing(items) => Json(FileList { items }).into_response(),
        },
    )
}

#[utoipa::path(put, path = "/api/v1/sessions/{id}/files", operation_id = "putSessionFile", tag = "sessions",
    params(("id" = String, Path), FilePath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes; it replaces what was there, its folders are made"),
    responses((status = 201, body = files::Stored), (status = 403), (status = 404), (status = 409, description = "the path is a directory"),
              (status = 413, description = "past the session's disk_bytes"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<FilePath>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let stored = files::store(&state, &caller, &id, query.path, body.into_data_stream()).await?;
    let location = format!("/api/v1/sessions/{id}/files?path={}", stored.path);
    Ok(created(location, stored))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}/files", operation_id = "deleteSessionFile", tag = "sessions",
    params(("id" = String, Path), FilePath),
    responses((status = 204, description = "Removed (a directory with what it held)"), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn delete_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<FilePath>,
) -> Result<StatusCode, ApiError> {
    files::remove(&state, &caller, &id, query.path).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSnapshot {
    /// Its name (1–64 letters, digits, `-`, `_`, `.`); the session's id by
    /// default. A snapshot of that name is replaced.
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/snapshots", operation_id = "saveSessionSnapshot", tag = "sessions",
    params(("id" = String, Path)), request_body = NewSnapshot,
    responses((status = 201, body = files::SnapshotView, description = "The workspace's folders and files (not links), saved; `POST /sessions` with `snapshot` starts from it"),
              (status = 404), (status = 413, description = "over 100,000 files or 1 GiB"), (status = 422)),
    security(("bearer" = [])))]
pub async fn save_snapshot(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewSnapshot>,
) -> Result<impl IntoResponse, ApiError> {
    let saved = files::save_snapshot(&state, &caller, &id, body.name).await?;
    Ok(created(format!("/api/v1/snapshots/{}", saved.name), saved))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotList {
    pub items: Vec<crate::runtime::snapshots::Saved>,
}

#[utoipa::path(get, path = "/api/v1/snapshots", operation_id = "listSnapshots", tag = "sessions",
    responses((status = 200, body = SnapshotList, description = "Your snapshots, by name")),
    security(("bearer" = [])))]
pub async fn snapshots(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SnapshotList>, ApiError> {
    Ok(Json(SnapshotList {
        items: files::snapshots(&state, &caller).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/snapshots/{name}", operation_id = "deleteSnapshot", tag = "sessions",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    files::delete_snapshot(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
