//! Who may call the control plane (and `/metrics`): the admin bearer
//! token, and a limit on clients refused too often.

use axum::{
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{app::AppState, http::error::ApiError, runtime::ids::hash_secret};

/// The bearer token of `Authorization`, the scheme matched in any case
/// (RFC 9110 §11.1).
pub fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `request` carries the admin token.
pub fn is_admin(state: &AppState, request: &Request) -> bool {
    bearer_token(request).is_some_and(|token| hash_secret(token) == *state.admin_token_hash)
}

/// Counts a refused call of the request's client: past the limit, the
/// 429 to answer instead (neither audited nor checked further).
pub fn refused_too_often(state: &AppState, request: &Request) -> Option<Response> {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    state
        .refusals
        .count(client, crate::app::now_ms())
        .err()
        .map(|retry_after| {
            ApiError::too_many_refusals(retry_after, state.config.audit.refused_per_minute)
                .into_response()
        })
}
