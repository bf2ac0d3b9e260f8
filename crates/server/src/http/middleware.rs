//! What every request goes through first: header size limit and request ids.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use sbx_store::RequestId;

/// `req_` and 24 random hex digits.
///
/// Unique, not secret (every answer shows its own): drawn from a fast
/// generator per thread, seeded from the operating system's.
pub fn generate_request_id() -> HeaderValue {
    thread_local! {
        static IDS: std::cell::RefCell<Xoshiro256PlusPlus> =
            std::cell::RefCell::new(Xoshiro256PlusPlus::from_rng(&mut rand::rng()));
    }
    let bytes: [u8; 12] = IDS.with_borrow_mut(|ids| ids.random());
    let mut id = *b"req_000000000000000000000000";
    // 12 bytes fill the 24 digits exactly: encoding cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut id[4..]);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("req_"))
}

/// The request's correlation id: the client's `X-Request-Id` (printable,
/// ≤ 200 bytes) or a generated one, echoed on the response.
pub fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| v.to_str().is_ok_and(|v| !v.is_empty() && v.len() <= 200))
        .map_or_else(generate_request_id, HeaderValue::clone)
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
