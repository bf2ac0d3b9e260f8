//! Who calls the control plane (and `/metrics`): the admin token, a
//! personal access token or session token as a bearer token, or a browser
//! session's cookie — which, on a change, must come with its CSRF token
//! from a page of this server's origin. Clients refused too often wait.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use sbx_engine::ProblemType;

use crate::{
    app::AppState,
    http::error::ApiError,
    service::{ServiceResult, accounts, caller::Caller},
};

/// The session cookie's name: `__Host-` bound (secure, this host, path
/// `/`) when the server is reached over HTTPS.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.public_url.starts_with("https://") {
        "__Host-sbx_session"
    } else {
        "sbx_session"
    }
}

/// The session cookie: HttpOnly (no script reads it), `SameSite=Lax` (no
/// cross-site change sends it), `Secure` and `__Host-` over HTTPS.
pub fn session_cookie(state: &AppState, token: &str, max_age_seconds: i64) -> HeaderValue {
    let name = session_cookie_name(state);
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The header a page sends its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The bearer token of `Authorization`, the scheme matched in any case
/// (RFC 9110 §11.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session token of the request's cookie, if it carries one.
pub fn session_from_cookie<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let name = session_cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// How a request presented its credentials.
pub enum Presented<'h> {
    None,
    Bearer(&'h str),
    Cookie(&'h str),
}

pub fn presented<'h>(state: &AppState, headers: &'h HeaderMap) -> Presented<'h> {
    if let Some(token) = bearer_token(headers) {
        Presented::Bearer(token)
    } else if let Some(token) = session_from_cookie(state, headers) {
        Presented::Cookie(token)
    } else {
        Presented::None
    }
}

/// Who the request's credentials identify (`None`: no credentials). A
/// wrong token is an error: a caller that sent one meant to be someone.
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    changes: bool,
) -> Result<Option<Caller>, Response> {
    let (token, cookie) = match presented(state, headers) {
        Presented::None => return Ok(None),
        Presented::Bearer(token) => (token, false),
        Presented::Cookie(token) => (token, true),
    };
    let identified: ServiceResult<_> = accounts::identify(state, token).await;
    match identified {
        Ok(Some(identified)) => {
            if cookie && changes {
                check_csrf(state, headers, token).map_err(IntoResponse::into_response)?;
            }
            Ok(Some(identified))
        }
        Ok(None) if cookie => Err(ApiError::unauthorized(
            "the session ended (signed out or expired); sign in again",
        )
        .into_response()),
        Ok(None) => Err(ApiError::unauthorized(
            "the token is not valid: mistyped, revoked or expired (send the admin token or a personal access token as `Authorization: Bearer <token>`)",
        )
        .into_response()),
        Err(error) => Err(ApiError::from(error).into_response()),
    }
}

/// Whether the request would change something (and must be audited, and
/// CSRF-checked when a cookie authenticates it).
pub fn changes(request: &Request) -> bool {
    !matches!(request.method().as_str(), "GET" | "HEAD" | "OPTIONS")
}

/// A change by cookie must name the session's CSRF token, and come from a
/// page of this server (when the browser says where it came from).
fn check_csrf(state: &AppState, headers: &HeaderMap, session: &str) -> Result<(), ApiError> {
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin != state.public_url.as_ref());
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let expected = accounts::csrf_token(session);
    if foreign_origin || sent != Some(expected.as_str()) {
        return Err(ApiError::new(
            ProblemType::CsrfRefused,
            format!(
                "a change made with the session cookie must come from this server's pages with the session's `{CSRF_HEADER}` header"
            ),
        ));
    }
    Ok(())
}

/// Whether `token` is the admin token.
pub fn is_admin_secret(state: &AppState, token: &str) -> bool {
    crate::runtime::ids::hash_secret(token) == *state.admin_token_hash
}

/// Whether `request` carries the admin token (for `/metrics`).
pub fn is_admin_token(state: &AppState, request: &Request) -> bool {
    bearer_token(request.headers()).is_some_and(|token| is_admin_secret(state, token))
}

/// The address the request came from.
pub fn client_of(request: &Request) -> std::net::IpAddr {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip())
}

/// Counts a refused call of the request's client (or, with `count`
/// false, only looks whether it was refused too often already): past the
/// limit, the 429 to answer instead (neither audited nor checked further).
pub fn refused_too_often(state: &AppState, request: &Request, count: bool) -> Option<Response> {
    let client = client_of(request);
    let now = crate::app::now_ms();
    let verdict = if count {
        state.refusals.count(client, now)
    } else {
        state.refusals.check(&client, now)
    };
    verdict.err().map(|retry_after| {
        ApiError::too_many_refusals(retry_after, state.config.audit.refused_per_minute)
            .into_response()
    })
}
