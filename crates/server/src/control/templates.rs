//! Session templates: `/api/v1/templates`, a base with packages installed
//! once into a read-only layer.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::AppState,
    control::created,
    http::error::{ApiError, ApiJson},
    service::{
        caller::Caller,
        templates::{self as service, NewTemplate, TemplateView},
    },
};

#[utoipa::path(post, path = "/api/v1/templates", operation_id = "createTemplate", tag = "sessions",
    request_body = NewTemplate,
    responses((status = 201, body = TemplateView, description = "defined: `building` (poll it) or `ready` (its packages were built before)"),
              (status = 200, body = TemplateView, description = "defined already with these packages: unchanged"),
              (status = 409, description = "another's template has this name"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<impl IntoResponse, ApiError> {
    let (template, new) = service::create(&state, &caller, body).await?;
    Ok(if new {
        created(format!("/api/v1/templates/{}", template.name), template).into_response()
    } else {
        Json(template).into_response()
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TemplateView>,
}

#[utoipa::path(get, path = "/api/v1/templates", operation_id = "listTemplates", tag = "sessions",
    responses((status = 200, body = TemplateList, description = "The built-in templates, yours and the admins'")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<TemplateList> {
    Json(TemplateList {
        items: service::list(&state, &caller),
    })
}

#[utoipa::path(get, path = "/api/v1/templates/{name}", operation_id = "getTemplate", tag = "sessions", params(("name" = String, Path)),
    responses((status = 200, body = TemplateView), (status = 404)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(service::get(&state, &caller, &name)?))
}

#[utoipa::path(delete, path = "/api/v1/templates/{name}", operation_id = "deleteTemplate", tag = "sessions", params(("name" = String, Path)),
    responses((status = 204), (status = 404), (status = 409, description = "it is building")),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, &caller, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/templates/{name}/log", operation_id = "getTemplateLog", tag = "sessions", params(("name" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String, description = "The last build's output (pip's or npm's)"), (status = 404)),
    security(("bearer" = [])))]
pub async fn log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let text = service::log(&state, &caller, &name)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}
