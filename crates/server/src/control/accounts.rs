//! Accounts, sign-in and personal access tokens: who calls the control
//! plane. Passwords and tokens are never echoed back after the answer that
//! made them.

use std::net::SocketAddr;

use axum::{
    Extension, Json,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sbx_store::{AccountRecord, Role, TokenRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    app::{AppState, rfc3339},
    control::created,
    http::{
        access::{self, Presented},
        error::{ApiError, ApiJson},
    },
    service::{
        ServiceError,
        accounts::{self as service, AccountChange, NewAccount},
        caller::Caller,
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub email: String,
    /// `admin` or `developer`.
    pub role: String,
    pub created_at: String,
    /// Set when an admin disabled it: it cannot sign in, its tokens stop working.
    pub disabled_at: Option<String>,
}

impl From<AccountRecord> for AccountView {
    fn from(a: AccountRecord) -> Self {
        Self {
            id: a.id.to_string(),
            email: a.email,
            role: a.role.as_str().to_owned(),
            created_at: rfc3339(a.created_at_ms),
            disabled_at: a.disabled_at_ms.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<AccountView>,
}

fn role_of(text: Option<&str>) -> Result<Option<Role>, ApiError> {
    text.map(|text| {
        Role::parse(text).ok_or_else(|| {
            ApiError::from(ServiceError::invalid(
                "/role",
                format!("role must be admin or developer, not {text:?}"),
            ))
        })
    })
    .transpose()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    /// An admin's invitation code (`sbx_inv_…`), where sign-up needs one.
    pub invitation: Option<String>,
    /// `admin` or `developer` (default); only an admin may set it.
    pub role: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/accounts", operation_id = "createAccount", tag = "accounts", request_body = SignUp,
    responses((status = 201, body = AccountView, headers(("location" = String, description = "the new account"))),
              (status = 403, description = "sign-up is by invitation or closed, or the invitation is not valid"),
              (status = 409, description = "an account with this email exists"),
              (status = 422, description = "the email or password breaks the rules")),
    security((), ("bearer" = [])))]
pub async fn sign_up(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiJson(body): ApiJson<SignUp>,
) -> Result<Response, ApiError> {
    let new = NewAccount {
        email: body.email,
        password: body.password,
        invitation: body.invitation,
        role: role_of(body.role.as_deref())?,
    };
    let account = service::sign_up(&state, caller.as_ref().map(|c| &c.0), new).await?;
    let owner = Caller::Account {
        id: account.id.clone(),
        role: account.role,
    };
    let mut response = created(
        format!("/api/v1/accounts/{}", account.id),
        AccountView::from(account),
    );
    response.extensions_mut().insert(owner);
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/accounts", operation_id = "listAccounts", tag = "accounts",
    responses((status = 200, body = AccountList), (status = 403, description = "admins only")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<AccountList>, ApiError> {
    let items = service::list(&state, &caller)
        .await?
        .into_iter()
        .map(AccountView::from)
        .collect();
    Ok(Json(AccountList { items }))
}

#[utoipa::path(get, path = "/api/v1/accounts/{account}", operation_id = "getAccount", tag = "accounts", params(("account" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, description = "no such account, or not the caller's")),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(service::get(&state, &caller, &account).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAccount {
    /// `admin` or `developer`.
    pub role: Option<String>,
    /// A disabled account cannot sign in; its sessions and tokens stop working.
    pub disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/accounts/{account}", operation_id = "updateAccount", tag = "accounts", params(("account" = String, Path)),
    request_body = ChangeAccount,
    responses((status = 200, body = AccountView), (status = 403, description = "admins only"), (status = 404)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
    ApiJson(body): ApiJson<ChangeAccount>,
) -> Result<Json<AccountView>, ApiError> {
    let change = AccountChange {
        role: role_of(body.role.as_deref())?,
        disabled: body.disabled,
    };
    Ok(Json(
        service::update(&state, &caller, &account, change)
            .await?
            .into(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    pub account: AccountView,
    /// Send it as `X-CSRF-Token` with every change made with the cookie.
    pub csrf_token: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "signIn", tag = "accounts", request_body = SignIn,
    responses((status = 200, body = SignedIn, description = "signed in: the session is in the HttpOnly cookie `sbx_session` (`__Host-sbx_session` over HTTPS)",
               headers(("set-cookie" = String))),
              (status = 401, description = "the email address or the password is wrong, or the account is disabled"),
              (status = 429, description = "too many failed sign-ins to this account; `Retry-After` says when to try again")),
    security(()))]
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let session = service::sign_in(&state, &body.email, body.password, peer.ip()).await?;
    let max_age = i64::from(state.config.accounts.session_hours) * 3600;
    let cookie = access::session_cookie(&state, &session.token, max_age);
    let owner = Caller::Account {
        id: session.account.id.clone(),
        role: session.account.role,
    };
    let mut response = Json(SignedIn {
        account: session.account.into(),
        csrf_token: session.csrf_token,
        expires_at: rfc3339(session.expires_at_ms),
    })
    .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(owner);
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "signOut", tag = "accounts",
    responses((status = 204, description = "the session or personal access token presented has stopped working (the admin token cannot be signed out); the cookie is cleared")),
    security(("bearer" = [])))]
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = match access::presented(&state, &headers) {
        Presented::Bearer(token) | Presented::Cookie(token) => Some(token),
        Presented::None => None,
    };
    if let Some(token) = token {
        service::sign_out(&state, token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, access::session_cookie(&state, "", 0));
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Absent for the admin token, which belongs to no account.
    pub account: Option<AccountView>,
    /// `admin` or `developer`.
    pub role: String,
    /// A developer's use of its quotas (admins have none).
    pub quotas: Option<crate::service::quotas::Usage>,
}

#[utoipa::path(get, path = "/api/v1/me", operation_id = "getMe", tag = "accounts",
    responses((status = 200, body = Me)), security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Me>, ApiError> {
    let account = match caller.owner() {
        Some(id) => Some(service::get(&state, &caller, id).await?.into()),
        None => None,
    };
    let role = if caller.is_admin() {
        "admin"
    } else {
        "developer"
    };
    Ok(Json(Me {
        account,
        role: role.to_owned(),
        quotas: crate::service::quotas::usage(&state, &caller).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The token's first characters, to tell it apart.
    pub prefix: String,
    /// Shown once, when it is made; stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl TokenView {
    fn of(t: TokenRecord, token: Option<String>) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            prefix: t.prefix,
            token,
            created_at: rfc3339(t.created_at_ms),
            last_used_at: t.last_used_at_ms.map(rfc3339),
            expires_at: t.expires_at_ms.map(rfc3339),
            revoked_at: t.revoked_at_ms.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for, e.g. `CI` or `sbx login on laptop`.
    pub name: String,
    /// Days until it stops working (1 to 3650); without it, until revoked.
    pub expires_in_days: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/me/tokens", operation_id = "createToken", tag = "accounts", request_body = CreateToken,
    responses((status = 201, body = TokenView, description = "`token` is shown only here", headers(("location" = String))),
              (status = 403, description = "the admin token belongs to no account"),
              (status = 409, description = "the account has the most active tokens allowed")),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let (record, token) =
        service::create_token(&state, &caller, &body.name, body.expires_in_days).await?;
    Ok(created(
        format!("/api/v1/me/tokens/{}", record.id),
        TokenView::of(record, Some(token)),
    ))
}

#[utoipa::path(get, path = "/api/v1/me/tokens", operation_id = "listTokens", tag = "accounts",
    responses((status = 200, body = TokenList, description = "newest first, revoked ones included")),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<TokenList>, ApiError> {
    let items = service::list_tokens(&state, &caller)
        .await?
        .into_iter()
        .map(|t| TokenView::of(t, None))
        .collect();
    Ok(Json(TokenList { items }))
}

#[utoipa::path(delete, path = "/api/v1/me/tokens/{token}", operation_id = "revokeToken", tag = "accounts", params(("token" = String, Path, description = "the token's id (`tok_…`)")),
    responses((status = 204, description = "revoked: it stops working at once"), (status = 404)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::revoke_token(&state, &caller, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    /// `developer` (default) or `admin`.
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// Pass as `invitation` when signing up; shown only here.
    pub code: String,
    pub email: String,
    pub role: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/invitations", operation_id = "createInvitation", tag = "accounts", request_body = Invite,
    responses((status = 201, body = Invitation), (status = 403, description = "admins only")),
    security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Invite>,
) -> Result<impl IntoResponse, ApiError> {
    let role = role_of(body.role.as_deref())?.unwrap_or(Role::Developer);
    let (invitation, code) = service::invite(&state, &caller, &body.email, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            code,
            email: invitation.email,
            role: invitation.role.as_str().to_owned(),
            expires_at: rfc3339(invitation.expires_at_ms),
        }),
    ))
}
