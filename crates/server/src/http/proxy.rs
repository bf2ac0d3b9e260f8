//! Passing a request on to another server and its answer back, streamed
//! both ways: to the server holding the database (standby forwarding) and
//! to a sandbox's own server in its namespace. Hyper's pooled client on
//! the request's own body and headers: nothing is converted or copied on
//! the way.

use axum::{
    body::Body,
    http::{HeaderMap, Uri, request::Parts},
    response::Response,
};
use hyper_util::{
    client::legacy::{Client as HyperClient, Error, connect::HttpConnector},
    rt::TokioExecutor,
};

/// A pooled HTTP/1.1 client for server-to-server calls (plain HTTP:
/// servers and sandboxes' own servers are reached inside the cluster).
/// It follows no redirects: they are the caller's to follow.
pub type Client = HyperClient<HttpConnector, Body>;

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(connector)
}

/// Why a request could not be passed on.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0:?} is not an address to pass requests to")]
    Address(String),
    #[error("{0}")]
    Sent(#[from] Error),
}

impl ProxyError {
    /// Refused before anything was sent: the other server is not there.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Sent(error) if error.is_connect())
    }
}

/// `parts` with `body`, sent to the server at `base` (`http://host:port`):
/// same method, path and query, and `headers` (the request's, as the
/// caller adjusted them; `Host` kept) without the connection's own.
pub async fn send(
    client: &Client,
    base: &str,
    parts: &Parts,
    mut headers: HeaderMap,
    body: Body,
) -> Result<Response<hyper::body::Incoming>, ProxyError> {
    let target = format!(
        "{}{}",
        base.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let uri: Uri = target
        .parse()
        .map_err(|_| ProxyError::Address(base.to_owned()))?;
    for name in sbx_engine::CONNECTION_HEADERS {
        headers.remove(name);
    }
    let mut request = axum::http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(client.request(request).await?)
}

/// The other server's answer, streamed back as this server's.
pub fn answer(answer: Response<hyper::body::Incoming>) -> Response {
    let (mut parts, body) = answer.into_parts();
    for name in sbx_engine::CONNECTION_HEADERS {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::new(body))
}
