//! A sandbox's OAuth 2 / OpenID Connect test provider, managed: its
//! issuer and endpoints, clients, test users, and signing-key rotation.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use sbx_store::oauth::{ClientRecord, TestUserRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::created,
    http::error::{ApiError, ApiJson},
    service::{
        caller::Caller,
        oauth::{self as service, NewClient},
        sandboxes::live,
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    /// The sandbox's issuer: discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    /// Scenarios the provider answers (`X-Sandbox-Scenario`, or the sandbox's default).
    pub scenarios: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/oauth", operation_id = "getOAuthProvider", tag = "oauth",
    params(("id" = String, Path)),
    responses((status = 200, body = Provider), (status = 404)),
    security(("bearer" = [])))]
pub async fn provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Provider>, ApiError> {
    let sandbox = live(&state, &caller, &id)?;
    let issuer = service::issuer(&state, &sandbox.id);
    Ok(Json(Provider {
        authorization_endpoint: format!("{issuer}/authorize"),
        token_endpoint: format!("{issuer}/token"),
        jwks_uri: format!("{issuer}/jwks.json"),
        userinfo_endpoint: format!("{issuer}/userinfo"),
        issuer,
        scenarios: service::SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    /// `confidential` (with a secret) or `public` (PKCE only).
    pub kind: String,
    /// Shown once, when it is made; stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Scopes it may be granted (empty: any).
    pub scopes: Vec<String>,
    pub created_at: String,
}

impl ClientView {
    fn of(c: ClientRecord, client_secret: Option<String>) -> Self {
        Self {
            client_id: c.id,
            name: c.name,
            kind: if c.secret_hash.is_some() {
                "confidential"
            } else {
                "public"
            }
            .to_owned(),
            client_secret,
            redirect_uris: c.redirect_uris,
            scopes: c.scopes,
            created_at: rfc3339(c.created_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<ClientView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    pub name: String,
    /// Where the authorization endpoint may send users back (exact match).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Scopes it may be granted; empty or absent: any.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `confidential` (default: has a secret) or `public` (a browser or
    /// native app: no secret, PKCE only).
    pub kind: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/oauth/clients", operation_id = "listOAuthClients", tag = "oauth",
    params(("id" = String, Path)),
    responses((status = 200, body = ClientList, description = "oldest first; never their secrets"), (status = 404)),
    security(("bearer" = [])))]
pub async fn list_clients(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ClientList>, ApiError> {
    let clients = service::list_clients(&state, &caller, &id).await?;
    Ok(Json(ClientList {
        items: clients
            .into_iter()
            .map(|c| ClientView::of(c, None))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/oauth/clients", operation_id = "createOAuthClient", tag = "oauth",
    params(("id" = String, Path)),
    request_body = CreateClient,
    responses((status = 201, body = ClientView, description = "`client_secret` is shown only here", headers(("location" = String))),
              (status = 404), (status = 409, description = "the sandbox has the most clients allowed"),
              (status = 422, description = "a name, redirect URI, scope or kind that is not valid")),
    security(("bearer" = [])))]
pub async fn create_client(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateClient>,
) -> Result<Response, ApiError> {
    let public = match body.kind.as_deref() {
        None | Some("confidential") => false,
        Some("public") => true,
        Some(other) => {
            return Err(crate::service::ServiceError::invalid(
                "/kind",
                format!("kind must be confidential or public, not {other:?}"),
            )
            .into());
        }
    };
    let new = NewClient {
        name: body.name,
        redirect_uris: body.redirect_uris,
        scopes: body.scopes,
        public,
    };
    let (record, secret) = service::create_client(&state, &caller, &id, new).await?;
    Ok(created(
        format!("/api/v1/sandboxes/{id}/oauth/clients/{}", record.id),
        ClientView::of(record, secret),
    ))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/oauth/clients/{client_id}", operation_id = "deleteOAuthClient", tag = "oauth",
    params(("id" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "deleted; its refresh tokens revoked"), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_client(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service::delete_client(&state, &caller, &id, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestUserView {
    pub sub: String,
    /// What its ID tokens and userinfo carry besides the standard claims.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

impl From<TestUserRecord> for TestUserView {
    fn from(u: TestUserRecord) -> Self {
        Self {
            sub: u.sub,
            claims: u.claims,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestUserList {
    pub items: Vec<TestUserView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTestUser {
    /// e.g. `{"email": "ada@example.com", "name": "Ada"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/oauth/users", operation_id = "listOAuthTestUsers", tag = "oauth",
    params(("id" = String, Path)),
    responses((status = 200, body = TestUserList, description = "the project's users, then those added here; a default user when there are none"), (status = 404)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TestUserList>, ApiError> {
    let users = service::list_users(&state, &caller, &id).await?;
    Ok(Json(TestUserList {
        items: users.into_iter().map(TestUserView::from).collect(),
    }))
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/oauth/users/{sub}", operation_id = "putOAuthTestUser", tag = "oauth",
    params(("id" = String, Path), ("sub" = String, Path, description = "the user's subject")),
    request_body = PutTestUser,
    responses((status = 200, body = TestUserView), (status = 404), (status = 409, description = "the sandbox has the most test users allowed"),
              (status = 422, description = "a sub or claim that is not valid")),
    security(("bearer" = [])))]
pub async fn put_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, sub)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutTestUser>,
) -> Result<Json<TestUserView>, ApiError> {
    let user = service::put_user(&state, &caller, &id, &sub, body.claims).await?;
    Ok(Json(user.into()))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/oauth/users/{sub}", operation_id = "deleteOAuthTestUser", tag = "oauth",
    params(("id" = String, Path), ("sub" = String, Path)),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, sub)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service::delete_user(&state, &caller, &id, &sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    /// The new signing key's `kid`; the old keys stay in the JWKS for a day.
    pub kid: String,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/oauth/keys/rotate", operation_id = "rotateOAuthKeys", tag = "oauth",
    params(("id" = String, Path)),
    responses((status = 201, body = Rotated), (status = 404)),
    security(("bearer" = [])))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Rotated>), ApiError> {
    let kid = service::rotate_keys(&state, &caller, &id).await?;
    Ok((StatusCode::CREATED, Json(Rotated { kid })))
}
