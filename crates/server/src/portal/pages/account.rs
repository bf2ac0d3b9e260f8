//! Signing up, in and out, and the account page (quotas, usage, personal
//! access tokens).

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};

use crate::{
    app::{AppState, rfc3339},
    config::SignupMode,
    http::access,
    portal::{
        Base, Failure, audited, changed, forged, notice_of,
        session::{self, Visitor},
        templates::page,
    },
    service::{
        accounts::{self, NewAccount},
        quotas,
    },
};

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Serialize)]
struct SignInPage<'a> {
    #[serde(flatten)]
    base: Base,
    email: &'a str,
    next: &'a str,
    signup_open: bool,
}

fn sign_in_form(
    state: &AppState,
    status: StatusCode,
    base: Base,
    email: &str,
    next: &str,
) -> Response {
    let signup_open = state.config.accounts.signup != SignupMode::Closed;
    page(
        status,
        "signin.html",
        SignInPage {
            base,
            email,
            next,
            signup_open,
        },
    )
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Next>,
) -> Response {
    let next = session::safe_next(query.next.as_deref());
    if session::visitor(&state, &headers).await.is_some() {
        return Redirect::to(next).into_response();
    }
    sign_in_form(&state, StatusCode::OK, Base::anonymous(), "", next)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let next = session::safe_next(form.next.as_deref());
    if !session::same_origin(&state, &headers) {
        return forged();
    }
    if form.email.trim().is_empty() || form.password.is_empty() {
        let failure = Failure::field("/email", "Enter your email address and your password.");
        let base = Base::anonymous().failed(&failure, &[]);
        return sign_in_form(&state, failure.status, base, &form.email, next);
    }
    match accounts::sign_in(&state, &form.email, form.password, peer.ip()).await {
        Ok(signed) => signed_in(&state, &signed.token, next),
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::anonymous().failed(&failure, &[]);
            sign_in_form(&state, failure.status, base, &form.email, next)
        }
    }
}

/// The session's cookie set, and on to `next`.
fn signed_in(state: &AppState, token: &str, next: &str) -> Response {
    let max_age = i64::from(state.config.accounts.session_hours) * 3600;
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        access::session_cookie(state, token, max_age),
    );
    response
}

#[derive(Serialize)]
struct SignUpPage<'a> {
    #[serde(flatten)]
    base: Base,
    email: &'a str,
    invitation: &'a str,
    invitation_needed: bool,
    min_password: usize,
}

fn sign_up_form(state: &AppState, status: StatusCode, base: Base, form: &SignUp) -> Response {
    page(
        status,
        "signup.html",
        SignUpPage {
            base,
            email: &form.email,
            invitation: &form.invitation,
            invitation_needed: state.config.accounts.signup != SignupMode::Open,
            min_password: state.config.accounts.min_password_chars,
        },
    )
}

pub async fn sign_up_page(State(state): State<AppState>) -> Response {
    sign_up_form(
        &state,
        StatusCode::OK,
        Base::anonymous(),
        &SignUp::default(),
    )
}

#[derive(Deserialize, Default)]
pub struct SignUp {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    invitation: String,
}

/// The field each of the service's pointers names.
const SIGN_UP_FIELDS: [(&str, &str); 3] = [
    ("/email", "email"),
    ("/password", "password"),
    ("/invitation", "invitation"),
];

pub async fn sign_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignUp>,
) -> Response {
    if !session::same_origin(&state, &headers) {
        return forged();
    }
    let new = NewAccount {
        email: form.email.clone(),
        password: form.password.clone(),
        invitation: Some(form.invitation.trim().to_owned()).filter(|code| !code.is_empty()),
        role: None,
    };
    let made = match accounts::sign_up(&state, None, new).await {
        Ok(account) => account,
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::anonymous().failed(&failure, &SIGN_UP_FIELDS);
            return sign_up_form(&state, failure.status, base, &form);
        }
    };
    let caller = crate::service::caller::Caller::Account {
        id: made.id.clone(),
        role: made.role,
    };
    audited(
        &state,
        &caller,
        &headers,
        "POST /api/v1/accounts",
        format!("/api/v1/accounts/{}", made.id),
        201,
    )
    .await;
    match accounts::sign_in(&state, &made.email, form.password, peer.ip()).await {
        Ok(signed) => signed_in(&state, &signed.token, "/"),
        Err(error) => {
            let failure = Failure::from(error);
            sign_in_form(
                &state,
                failure.status,
                Base::anonymous().failed(&failure, &[]),
                &made.email,
                "/",
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let Some(visitor) = session::visitor(&state, &headers).await else {
        return Redirect::to("/portal/signin").into_response();
    };
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    if let Some(token) = access::session_from_cookie(&state, &headers)
        && let Err(error) = accounts::sign_out(&state, token).await
    {
        return Failure::from(error).status.into_response();
    }
    let mut response = Redirect::to("/portal/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, access::session_cookie(&state, "", 0));
    response
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    name: String,
    shown: String,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
}

#[derive(Serialize)]
struct QuotaRow {
    name: &'static str,
    used: String,
    limit: String,
}

#[derive(Serialize, Default)]
struct TokenForm {
    name: String,
    days: String,
}

#[derive(Serialize)]
struct AccountPage {
    #[serde(flatten)]
    base: Base,
    tokens: Vec<TokenRow>,
    quotas: Vec<QuotaRow>,
    revealed: Option<String>,
    token_form: TokenForm,
}

#[derive(Deserialize)]
pub struct Done {
    /// The notice of the change that led here (see `portal::done`).
    pub done: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<Done>,
) -> Response {
    let mut base = Base::of(&visitor, "account");
    if let Some(notice) = notice_of(query.done.as_deref()) {
        base = base.notice(notice);
    }
    account_page(
        &state,
        &visitor,
        StatusCode::OK,
        base,
        None,
        TokenForm::default(),
    )
    .await
}

async fn account_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    base: Base,
    revealed: Option<String>,
    token_form: TokenForm,
) -> Response {
    let now = crate::app::now_ms();
    let tokens = match accounts::list_tokens(state, &visitor.caller).await {
        Ok(tokens) => tokens,
        Err(error) => return Failure::from(error).status.into_response(),
    };
    let tokens = tokens
        .into_iter()
        .filter(|t| t.usable_at(now))
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            shown: t.prefix,
            created_at: rfc3339(t.created_at_ms),
            last_used_at: t.last_used_at_ms.map(rfc3339),
            expires_at: t.expires_at_ms.map(rfc3339),
        })
        .collect();
    let quotas = match quotas::usage(state, &visitor.caller).await {
        Ok(Some(usage)) => vec![
            QuotaRow {
                name: "Live sandboxes",
                used: usage.sandboxes.used.to_string(),
                limit: usage.sandboxes.limit.to_string(),
            },
            QuotaRow {
                name: "Requests today (UTC)",
                used: usage.requests_today.used.to_string(),
                limit: usage.requests_today.limit.to_string(),
            },
            QuotaRow {
                name: "Webhook endpoints",
                used: usage.webhook_endpoints.used.to_string(),
                limit: usage.webhook_endpoints.limit.to_string(),
            },
            QuotaRow {
                name: "Longest sandbox lifetime",
                used: "—".into(),
                limit: super::duration_words(usage.max_ttl_seconds),
            },
        ],
        Ok(None) => vec![QuotaRow {
            name: "Admins have no quotas",
            used: "—".into(),
            limit: "—".into(),
        }],
        Err(error) => return Failure::from(error).status.into_response(),
    };
    page(
        status,
        "account.html",
        AccountPage {
            base,
            tokens,
            quotas,
            revealed,
            token_form,
        },
    )
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    days: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<NewToken>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    let fields = [("/name", "name"), ("/expires_in_days", "days")];
    let kept = TokenForm {
        name: form.name.clone(),
        days: form.days.clone(),
    };
    let days = match form.days.trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                let failure = Failure::field(
                    "/expires_in_days",
                    format!("{text:?} is not a whole number of days"),
                );
                let base = Base::of(&visitor, "account").failed(&failure, &fields);
                return account_page(&state, &visitor, failure.status, base, None, kept).await;
            }
        },
    };
    match accounts::create_token(&state, &visitor.caller, &form.name, days).await {
        Ok((record, secret)) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/me/tokens",
                format!("/api/v1/me/tokens/{}", record.id),
                201,
            )
            .await;
            let base = Base::of(&visitor, "account");
            account_page(
                &state,
                &visitor,
                StatusCode::CREATED,
                base,
                Some(secret),
                TokenForm::default(),
            )
            .await
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "account").failed(&failure, &fields);
            account_page(&state, &visitor, failure.status, base, None, kept).await
        }
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    match accounts::revoke_token(&state, &visitor.caller, &token).await {
        Ok(()) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "DELETE /api/v1/me/tokens/{token}",
                    format!("/api/v1/me/tokens/{token}"),
                    204,
                ),
                "/portal/account",
                "token-revoked",
            )
            .await
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "account").failed(&failure, &[]);
            account_page(
                &state,
                &visitor,
                failure.status,
                base,
                None,
                TokenForm::default(),
            )
            .await
        }
    }
}
