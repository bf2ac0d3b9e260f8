//! What every request goes through first: header size limit and request ids.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use rand::RngExt;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use sbx_store::RequestId;

/// `req_` and 24 random hex digits.
pub fn generate_request_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    let mut id = String::with_capacity(28);
    id.push_str("req_");
    id.push_str(&hex::encode(bytes));
    id
}

/// The request's correlation id: the client's `X-Request-Id` (printable,
/// ≤ 200 bytes) or a generated one, echoed on the response.
pub fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(generate_request_id, str::to_owned)
}

/// 431 when the request's headers together exceed the configured size.
pub fn header_limit(limit: usize, request: &Request) -> Option<Response> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size <= limit {
        return None;
    }
    let kind = sbx_engine::ProblemType::HeadersTooLarge;
    let body = kind.document(
        kind.status(),
        &format!("the request's headers take {size} bytes; the limit is {limit}"),
    );
    let mut response = (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        axum::Json(body),
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Some(response)
}
