//! Passing a request on to another server and its answer back, streamed
//! both ways: to the server holding the database (standby forwarding) and
//! to a sandbox's own server in its namespace.

use axum::{
    body::Body,
    http::{HeaderMap, request::Parts},
    response::{IntoResponse, Response},
};

use super::error::ApiError;

/// A client for server-to-server calls: no proxy from the environment, no
/// redirects followed (they are the caller's to follow).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
}

/// `parts` with `body`, sent to the server at `base`: same method, path
/// and query, and `headers` (the request's, as the caller adjusted them)
/// without the connection's own.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    parts: &Parts,
    mut headers: HeaderMap,
    body: reqwest::Body,
) -> Result<reqwest::Response, reqwest::Error> {
    let target = format!(
        "{}{}",
        base.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    for name in sbx_engine::CONNECTION_HEADERS {
        headers.remove(name);
    }
    client
        .request(parts.method.clone(), &target)
        .headers(headers)
        .body(body)
        .send()
        .await
}

/// The other server's answer, streamed back as this server's.
pub fn answer(answer: reqwest::Response) -> Response {
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !sbx_engine::CONNECTION_HEADERS.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| ApiError::internal("an answer could not be passed on").into_response())
}
