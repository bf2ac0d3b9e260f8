//! Projects: an OpenAPI document and its immutable revisions.

use std::collections::BTreeMap;

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use sbx_engine::{
    CompiledRevision, OperationIndex, OperationSummary, ProjectFiles, project::ProjectSettings,
};
use sbx_store::ProjectRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::created,
    data_plane::drift::DriftFinding,
    http::error::{ApiError, ApiJson, FieldError},
    service::caller::Caller,
    service::{
        ServiceError,
        projects::{self as service, Coverage, FileKind},
    },
};

/// A project's spec and behaviour files (see docs/projects.md); the file
/// fields are each optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    /// 1–64 of `[a-z0-9_.-]`, starting with a letter or digit. Required
    /// on import; on `PUT …/spec`, only checked against the path.
    pub name: Option<String>,
    /// The OpenAPI 3.0/3.1 or Swagger 2.0 document, as YAML or JSON text
    /// (a JSON object is accepted too).
    #[schema(value_type = String)]
    pub spec: Value,
    /// Rhai source by operation id.
    #[schema(value_type = Option<Object>)]
    pub behaviours: Option<BTreeMap<String, String>>,
    /// minijinja source by file name (`*.json.j2` renders JSON).
    #[schema(value_type = Option<Object>)]
    pub templates: Option<BTreeMap<String, String>>,
    /// Records by collection: a list, or a map from id to record.
    #[schema(value_type = Option<Object>)]
    pub fixtures: Option<BTreeMap<String, Value>>,
    /// Environment parameters.
    #[schema(value_type = Option<Object>)]
    pub env: Option<Map<String, Value>>,
    /// Rhai modules by name, imported with `import "name" as m;`.
    #[schema(value_type = Option<Object>)]
    pub modules: Option<BTreeMap<String, String>>,
    /// `strict_responses`, `forward`.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<ProjectSettings>,
    /// Scenario packs by name: operation id → scenario name → outcome.
    #[schema(value_type = Option<Object>)]
    pub scenarios: Option<BTreeMap<String, Value>>,
    /// Job scripts by name (Rhai), run by `schedule()`.
    #[schema(value_type = Option<Object>)]
    pub jobs: Option<BTreeMap<String, String>>,
    /// Lifecycles by collection: states and transitions.
    #[schema(value_type = Option<Object>)]
    pub lifecycles: Option<BTreeMap<String, Value>>,
    /// Event types by name: `{description?, schema?: {$ref}, payload?}`.
    #[schema(value_type = Option<Object>)]
    pub events: Option<BTreeMap<String, Value>>,
    /// Lambda handlers by file name (`createOrder.py`, `.js`, `.mjs`,
    /// `.cjs`), each answering the operation it names.
    #[schema(value_type = Option<Object>)]
    pub functions: Option<BTreeMap<String, String>>,
    /// The data files above as written (`fixtures/pets` → YAML text), kept
    /// so that editors show their comments again.
    #[schema(value_type = Option<Object>)]
    pub written: Option<BTreeMap<String, String>>,
}

impl ProjectBody {
    /// The files given, or `None` when the body names none.
    fn files(&mut self) -> Option<ProjectFiles> {
        let given = self.behaviours.is_some()
            || self.templates.is_some()
            || self.fixtures.is_some()
            || self.env.is_some()
            || self.modules.is_some()
            || self.settings.is_some()
            || self.scenarios.is_some()
            || self.jobs.is_some()
            || self.lifecycles.is_some()
            || self.events.is_some()
            || self.functions.is_some();
        given.then(|| {
            let mut files = ProjectFiles {
                behaviours: self.behaviours.take().unwrap_or_default(),
                templates: self.templates.take().unwrap_or_default(),
                fixtures: self.fixtures.take().unwrap_or_default(),
                env: self.env.take().unwrap_or_default(),
                modules: self.modules.take().unwrap_or_default(),
                settings: self.settings.take().unwrap_or_default(),
                scenarios: self.scenarios.take().unwrap_or_default(),
                jobs: self.jobs.take().unwrap_or_default(),
                lifecycles: self.lifecycles.take().unwrap_or_default(),
                events: self.events.take().unwrap_or_default(),
                functions: self.functions.take().unwrap_or_default(),
                written: self.written.take().unwrap_or_default(),
            };
            files.forget_stale_writing();
            files
        })
    }
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
    /// Stateful collections and the operations bound to them.
    pub collections: Vec<CollectionView>,
    /// Operations answered by a script.
    pub behaviours: Vec<String>,
    pub templates: Vec<String>,
    /// Operations forwarded upstream.
    pub forwards: Vec<String>,
    /// Operations answered by a function (`functions/`).
    pub functions: Vec<String>,
    pub strict_responses: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionView {
    pub name: String,
    /// The record member holding the id.
    pub id_field: String,
    /// `operationId: action` of each bound operation.
    pub operations: Vec<String>,
    /// Records every sandbox starts with.
    pub fixtures: usize,
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

fn spec_text(spec: Value) -> Result<String, ServiceError> {
    match spec {
        Value::String(text) => Ok(text),
        Value::Object(_) => Ok(spec.to_string()),
        _ => Err(ServiceError::invalid(
            "/spec",
            "`spec` must be the document's YAML or JSON text (or a JSON object)",
        )),
    }
}

fn view(record: &ProjectRecord, compiled: &CompiledRevision) -> ProjectView {
    let behaviours = &compiled.behaviours;
    let operation_ids = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        compiled
            .model
            .operations
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, o)| o.id.clone())
            .collect()
    };
    let collections = behaviours
        .resources
        .collections
        .iter()
        .enumerate()
        .map(|(index, c)| CollectionView {
            name: c.name.clone(),
            id_field: c.id_field.clone(),
            operations: behaviours
                .resources
                .bindings
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    let b = b.as_ref().filter(|b| b.collection == index)?;
                    let action = format!("{:?}", b.action).to_lowercase();
                    Some(format!("{}: {action}", compiled.model.operations[i].id))
                })
                .collect(),
            fixtures: behaviours
                .fixtures
                .iter()
                .filter(|f| f.collection == c.name)
                .count(),
        })
        .collect();
    ProjectView {
        collections,
        behaviours: operation_ids(&|i| behaviours.operation(OperationIndex(i)).script.is_some()),
        templates: behaviours.templates.names().to_vec(),
        forwards: operation_ids(&|i| behaviours.operation(OperationIndex(i)).forward.is_some()),
        functions: operation_ids(&|i| behaviours.operation(OperationIndex(i)).function.is_some()),
        strict_responses: behaviours.settings.strict_responses,
        name: record.name.to_string(),
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
                line: None,
                column: None,
            })
            .collect(),
        created_at: rfc3339(record.created_at_ms),
        updated_at: rfc3339(record.updated_at_ms),
    }
}

#[utoipa::path(post, path = "/api/v1/projects", operation_id = "createProject", tag = "projects", request_body = ProjectBody,
    responses((status = 201, body = ProjectView, headers(("location" = String, description = "the new project"))), (status = 409, description = "name taken"),
              (status = 413, description = "spec too large"), (status = 422, description = "the spec has problems")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(mut body): ApiJson<ProjectBody>,
) -> Result<impl IntoResponse, ApiError> {
    let name = body.name.clone().unwrap_or_default();
    let files = body.files().unwrap_or_default();
    let text = spec_text(body.spec)?;
    let (record, compiled) = service::import(&state, &caller, &name, text, files).await?;
    Ok(created(
        format!("/api/v1/projects/{}", record.name),
        view(&record, &compiled),
    ))
}

#[utoipa::path(put, path = "/api/v1/projects/{name}/spec", operation_id = "replaceProjectSpec", tag = "projects", request_body = ProjectBody,
    params(("name" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404), (status = 422, description = "the spec has problems")),
    security(("bearer" = [])))]
pub async fn replace_spec(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(mut body): ApiJson<ProjectBody>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(other) = body.name.as_deref().filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "body names project {other:?} but the path names {name:?}"
        )));
    }
    let files = body.files();
    let text = spec_text(body.spec)?;
    let (record, compiled) = service::replace_spec(&state, &caller, &name, text, files).await?;
    Ok(Json(view(&record, &compiled)))
}

/// A file's text: the raw body, or `{"source": "…"}` sent as JSON.
fn source_text(headers: &HeaderMap, body: String) -> String {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&body)
        && let Some(Value::String(source)) = map.get("source")
    {
        return source.clone();
    }
    body
}

/// A project at its new revision.
fn revised(
    (record, compiled): (ProjectRecord, std::sync::Arc<CompiledRevision>),
) -> Json<ProjectView> {
    Json(view(&record, &compiled))
}

#[utoipa::path(put, path = "/api/v1/projects/{name}/{kind}/{item}", operation_id = "putProjectFile", tag = "projects",
    params(("name" = String, Path), ("kind" = FileKind, Path, description = "behaviours (item: operation id), templates (file name), modules (module name), fixtures (collection), scenarios (pack), jobs (job name), lifecycles (collection), events (event type) or functions (file name: `createOrder.py`)"),
           ("item" = String, Path)),
    request_body(content = String, description = "The file's text (Rhai, minijinja, YAML/JSON records, or a Python or Node.js handler), raw or as `{\"source\": …}`"),
    responses((status = 200, body = ProjectView, description = "a new revision, live in every sandbox that follows the project"),
              (status = 404), (status = 422, description = "the file does not compile; the previous revision keeps serving")),
    security(("bearer" = [])))]
pub async fn put_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, kind, item)): Path<(String, FileKind, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<ProjectView>, ApiError> {
    let text = source_text(&headers, body);
    Ok(revised(
        service::edit_file(&state, &caller, &name, kind, &item, Some(text)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/projects/{name}/{kind}/{item}", operation_id = "deleteProjectFile", tag = "projects",
    params(("name" = String, Path), ("kind" = FileKind, Path), ("item" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404, description = "no such project or file")),
    security(("bearer" = [])))]
pub async fn delete_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, kind, item)): Path<(String, FileKind, String)>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(revised(
        service::edit_file(&state, &caller, &name, kind, &item, None).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/projects/{name}/env", operation_id = "putProjectEnv", tag = "projects", params(("name" = String, Path)),
    request_body(content = Object, description = "Environment parameters; replaces the project's"),
    responses((status = 200, body = ProjectView), (status = 404)), security(("bearer" = [])))]
pub async fn put_env(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(env): ApiJson<Map<String, Value>>,
) -> Result<Json<ProjectView>, ApiError> {
    let edited = service::edit_files(&state, &caller, &name, |files| {
        files.env = env;
        Ok(())
    });
    Ok(revised(edited.await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{name}/settings", operation_id = "putProjectSettings", tag = "projects", params(("name" = String, Path)),
    request_body(content = Object, description = "`strict_responses`, `forward`; replaces the project's"),
    responses((status = 200, body = ProjectView), (status = 404)), security(("bearer" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(settings): ApiJson<ProjectSettings>,
) -> Result<Json<ProjectView>, ApiError> {
    let edited = service::edit_files(&state, &caller, &name, |files| {
        files.settings = settings;
        Ok(())
    });
    Ok(revised(edited.await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{name}/files", operation_id = "getProjectFiles", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, description = "The latest revision's behaviour files", body = Object), (status = 404)),
    security(("bearer" = [])))]
pub async fn files(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ProjectFiles>, ApiError> {
    Ok(Json(service::latest(&state, &caller, &name).await?.1))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionList {
    pub items: Vec<service::RevisionEntry>,
}

#[utoipa::path(get, path = "/api/v1/projects/{name}/revisions", operation_id = "listProjectRevisions", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = RevisionList, description = "The project's revisions, newest first, with when and by whom each was published"), (status = 404)),
    security(("bearer" = [])))]
pub async fn revisions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<RevisionList>, ApiError> {
    Ok(Json(RevisionList {
        items: service::history(&state, &caller, &name).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftList {
    pub items: Vec<DriftFinding>,
}

#[utoipa::path(get, path = "/api/v1/projects/{name}/drift", operation_id = "getProjectDrift", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = DriftList, description = "How answers departed from the spec, most recent first"), (status = 404)),
    security(("bearer" = [])))]
pub async fn drift(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<DriftList>, ApiError> {
    Ok(Json(DriftList {
        items: service::drift(&state, &caller, &name).await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/projects", operation_id = "listProjects", tag = "projects",
    responses((status = 200, body = ProjectList)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    let items = service::published(&state)
        .await?
        .into_iter()
        .map(|p| ProjectSummary {
            name: p.name.to_string(),
            revision: p.latest_revision,
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
        })
        .collect();
    Ok(Json(ProjectList { items }))
}

#[utoipa::path(get, path = "/api/v1/projects/{name}", operation_id = "getProject", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = ProjectView), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(revised(service::latest_compiled(&state, &name).await?))
}

#[utoipa::path(delete, path = "/api/v1/projects/{name}", operation_id = "deleteProject", tag = "projects", params(("name" = String, Path)),
    responses((status = 204, description = "deleted with its revisions and sandboxes"), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{name}/coverage", operation_id = "getProjectCoverage", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = Coverage, description = "Which declared error responses a scenario can produce"), (status = 404)),
    security(("bearer" = [])))]
pub async fn coverage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Coverage>, ApiError> {
    Ok(Json(service::coverage(&state, &caller, &name).await?))
}
