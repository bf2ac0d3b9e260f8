//! A sandbox's API keys: secret, restricted and publishable.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use sbx_store::{KeyKind, KeyPermissions, KeyRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::created,
    http::error::{ApiError, ApiJson},
    service::{
        ServiceError,
        caller::Caller,
        keys::{self as service, NewKey},
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    /// `secret`, `restricted` or `publishable`.
    pub kind: String,
    pub name: Option<String>,
    /// Its prefix and last four characters.
    pub redacted: String,
    /// Shown once, when it is made; stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A restricted key's limits.
    #[schema(value_type = Object)]
    pub permissions: KeyPermissions,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// A rolled key works until then.
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl KeyView {
    fn of(k: KeyRecord, key: Option<String>) -> Self {
        Self {
            id: k.id.to_string(),
            kind: k.kind.as_str().to_owned(),
            name: k.name,
            redacted: k.redacted,
            key,
            permissions: k.permissions,
            created_at: rfc3339(k.created_at_ms),
            last_used_at: k.last_used_at_ms.map(rfc3339),
            expires_at: k.expires_at_ms.map(rfc3339),
            revoked_at: k.revoked_at_ms.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `secret` (default), `restricted` or `publishable`.
    pub kind: Option<String>,
    pub name: Option<String>,
    /// For a restricted key: `{"read_only": true}` and/or `{"operations": [operationId, …]}`.
    #[schema(value_type = Option<Object>)]
    pub permissions: Option<KeyPermissions>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/keys", operation_id = "listSandboxKeys", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyList, description = "oldest first, revoked ones included; never the keys themselves"), (status = 404)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let (_, records) = service::list(&state, &caller, &id).await?;
    Ok(Json(KeyList {
        items: records.into_iter().map(|k| KeyView::of(k, None)).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/keys", operation_id = "createSandboxKey", tag = "keys", params(("id" = String, Path)),
    request_body = CreateKey,
    responses((status = 201, body = KeyView, description = "`key` is shown only here", headers(("location" = String))),
              (status = 404), (status = 409, description = "the sandbox has the most keys allowed"),
              (status = 422, description = "a kind, name or permission that is not valid")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let kind = match body.kind.as_deref() {
        None => KeyKind::Secret,
        Some(text) => KeyKind::parse(text).ok_or_else(|| {
            ServiceError::invalid(
                "/kind",
                format!("kind must be secret, restricted or publishable, not {text:?}"),
            )
        })?,
    };
    let new = NewKey {
        kind,
        name: body.name,
        permissions: body.permissions.unwrap_or_default(),
    };
    let (record, key) = service::create(&state, &caller, &id, new).await?;
    Ok(created(
        format!("/api/v1/sandboxes/{id}/keys/{}", record.id),
        KeyView::of(record, Some(key)),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKey {
    /// How long the old key keeps working: 0 to 604800 seconds, default 86400.
    pub expires_in_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rolled {
    /// The new key (its secret shown only here).
    pub key: KeyView,
    /// When the old key stops working.
    pub old_key_expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/keys/{key}/roll", operation_id = "rollSandboxKey", tag = "keys",
    params(("id" = String, Path), ("key" = String, Path, description = "the key's id (`key_…`)")),
    request_body = RollKey,
    responses((status = 201, body = Rolled), (status = 404, description = "no such key in use")),
    security(("bearer" = [])))]
pub async fn roll(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<RollKey>,
) -> Result<(StatusCode, Json<Rolled>), ApiError> {
    let (record, secret, until) =
        service::roll(&state, &caller, &id, &key, body.expires_in_seconds).await?;
    Ok((
        StatusCode::CREATED,
        Json(Rolled {
            key: KeyView::of(record, Some(secret)),
            old_key_expires_at: rfc3339(until),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/keys/{key}", operation_id = "revokeSandboxKey", tag = "keys",
    params(("id" = String, Path), ("key" = String, Path, description = "the key's id (`key_…`)")),
    responses((status = 204, description = "revoked: it stops working at once"), (status = 404)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service::revoke(&state, &caller, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
