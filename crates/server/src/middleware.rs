//! Cross-cutting layers: request ids and the header size limit.

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rand::RngExt;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn generate_request_id() -> String {
    let mut rng = rand::rng();
    format!(
        "req_{:016x}{:08x}",
        rng.random::<u64>(),
        rng.random::<u32>()
    )
}

/// Accepts a client's `X-Request-Id` (printable, ≤ 200 bytes) or makes one,
/// and echoes it on the response.
pub async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(generate_request_id, str::to_owned);
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// 431 when the request's headers together exceed the configured size.
pub async fn header_limit(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > limit {
        let body = serde_json::json!({
            "type": "urn:sbx:problem:headers-too-large",
            "title": "Request header fields too large",
            "status": 431,
            "detail": format!("the request's headers take {size} bytes; the limit is {limit}"),
        });
        let mut response = (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(body),
        )
            .into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        return response;
    }
    next.run(request).await
}
