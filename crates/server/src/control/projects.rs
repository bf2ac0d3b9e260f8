//! Projects: an OpenAPI document and its immutable revisions.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use sbx_engine::OperationSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::{AppState, compiled_revision, now_ms, rfc3339},
    error::{ApiError, ApiJson, FieldError},
    ids::valid_project_name,
    registry::compile_spec,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportProject {
    /// 1–64 of `[a-z0-9_.-]`, starting with a letter or digit.
    pub name: String,
    /// The OpenAPI 3.0/3.1 or Swagger 2.0 document, as YAML or JSON text
    /// (a JSON object is accepted too).
    #[schema(value_type = String)]
    pub spec: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSpec {
    /// Ignored beyond a consistency check: the name is the one in the path.
    pub name: Option<String>,
    #[schema(value_type = String)]
    pub spec: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationView {
    pub id: String,
    pub method: String,
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub name: String,
    /// The latest revision.
    pub revision: u32,
    pub title: String,
    /// The spec's server base path, part of every route (e.g. `/v1`).
    pub base_path: String,
    pub operations: Vec<OperationView>,
    /// Parts of the spec that were ignored to make it usable, with where they are.
    pub warnings: Vec<FieldError>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectSummary {
    pub name: String,
    pub revision: u32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub items: Vec<ProjectSummary>,
}

fn spec_text(spec: Value) -> Result<String, ApiError> {
    match spec {
        Value::String(text) => Ok(text),
        Value::Object(_) => Ok(spec.to_string()),
        _ => Err(ApiError::validation(vec![FieldError {
            location: "body".into(),
            pointer: "/spec".into(),
            message: "`spec` must be the document's YAML or JSON text (or a JSON object)".into(),
        }])),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_project_name(name) {
        return Ok(());
    }
    Err(ApiError::validation(vec![FieldError {
        location: "body".into(),
        pointer: "/name".into(),
        message: format!(
            "project name {name:?} must be 1-64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        ),
    }]))
}

fn view(record: &sbx_store::ProjectRecord, compiled: &sbx_engine::CompiledRevision) -> ProjectView {
    ProjectView {
        name: record.name.clone(),
        revision: record.latest_revision,
        title: compiled.model.title.clone(),
        base_path: compiled.model.base_path.clone(),
        operations: compiled
            .summaries()
            .into_iter()
            .map(|OperationSummary { id, method, path }| OperationView { id, method, path })
            .collect(),
        warnings: compiled
            .model
            .warnings
            .iter()
            .map(|w| FieldError {
                location: "spec".into(),
                pointer: w.pointer.clone(),
                message: w.message.clone(),
            })
            .collect(),
        created_at: rfc3339(record.created_at_ms),
        updated_at: rfc3339(record.updated_at_ms),
    }
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ImportProject,
    responses((status = 201, body = ProjectView), (status = 409, description = "name taken"),
              (status = 413, description = "spec too large"), (status = 422, description = "the spec has problems")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ImportProject>,
) -> Result<impl IntoResponse, ApiError> {
    check_name(&body.name)?;
    let text = spec_text(body.spec)?;
    let compiled = compile_spec(text.clone(), &state.config.limits).await?;
    let record = state
        .store
        .create_project(&body.name, &text, now_ms())
        .await?;
    state
        .registry
        .put_compiled(&record.name, record.latest_revision, compiled.clone());
    tracing::info!(project = %record.name, operations = compiled.operations.len(), "project imported");
    Ok((StatusCode::CREATED, Json(view(&record, &compiled))))
}

#[utoipa::path(put, path = "/api/v1/projects/{name}/spec", tag = "projects", request_body = ReplaceSpec,
    params(("name" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404), (status = 422, description = "the spec has problems")),
    security(("admin" = [])))]
pub async fn replace_spec(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ReplaceSpec>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(other) = body.name.as_deref().filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "body names project {other:?} but the path names {name:?}"
        )));
    }
    if state.store.get_project(&name).await?.is_none() {
        return Err(ApiError::not_found(
            "not-found",
            format!("project \"{name}\" does not exist"),
        ));
    }
    let text = spec_text(body.spec)?;
    let compiled = compile_spec(text.clone(), &state.config.limits).await?;
    let revision = state.store.add_revision(&name, &text, now_ms()).await?;
    state
        .registry
        .put_compiled(&name, revision, compiled.clone());
    let record = state.store.get_project(&name).await?.ok_or_else(|| {
        ApiError::not_found("not-found", format!("project \"{name}\" does not exist"))
    })?;
    tracing::info!(project = %name, revision, "new revision");
    Ok(Json(view(&record, &compiled)))
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = ProjectList)), security(("admin" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    let items = state
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| ProjectSummary {
            name: p.name,
            revision: p.latest_revision,
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
        })
        .collect();
    Ok(Json(ProjectList { items }))
}

#[utoipa::path(get, path = "/api/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404)), security(("admin" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let record = state.store.get_project(&name).await?.ok_or_else(|| {
        ApiError::not_found("not-found", format!("project \"{name}\" does not exist"))
    })?;
    let compiled = compiled_revision(&state, &name, record.latest_revision).await?;
    Ok(Json(view(&record, &compiled)))
}

#[utoipa::path(delete, path = "/api/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 204, description = "deleted with its revisions and sandboxes"), (status = 404)),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = state.store.delete_project(&name).await?;
    for id in &removed {
        state.registry.remove(id);
    }
    state.registry.forget_project(&name);
    tracing::info!(project = %name, sandboxes = removed.len(), "project deleted");
    Ok(StatusCode::NO_CONTENT)
}
