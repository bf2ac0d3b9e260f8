//! The front door: every request's way from the connection to the control
//! plane or a sandbox. One plain service rather than a stack of routers and
//! middleware: nested axum routers and `from_fn` layers box and clone a
//! service per layer per request, which cost a sandbox's answer a fifth of
//! its CPU. Here a request is tagged (id, header limit), sent to the
//! control plane by its prefix or to the sandboxes, and its answer tagged
//! back. A sandbox answers any origin: a plain answer gets CORS's two
//! constant headers here, a preflight goes through tower-http's CORS.

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use axum::{
    Router,
    extract::{ConnectInfo, Request},
    http::{
        HeaderValue, Method,
        header::{
            ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_REQUEST_METHOD,
        },
    },
    response::Response,
};
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{Cors, CorsLayer};

use crate::http::middleware::{REQUEST_ID, RequestId, header_limit, request_id};

/// A sandbox answer in the making.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// What answers requests addressed to sandboxes.
pub type SandboxHandler = Arc<dyn Fn(Request) -> Answer + Send + Sync>;

/// Whether a request outside the control plane's prefix is the server's own
/// page (the portal's) rather than a sandbox's.
pub type OwnPage = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// The paths the control plane owns; everything else is a sandbox's.
fn is_control(path: &str) -> bool {
    path == "/metrics"
        || path
            .strip_prefix("/api/v1")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[derive(Clone)]
pub struct Front {
    max_header_bytes: usize,
    /// `/api/v1` and `/metrics`, and the portal (`sbx serve`; `sbx mock`
    /// has none).
    control: Option<Router>,
    /// Which other requests `control` answers (the portal's pages).
    own_pages: Option<OwnPage>,
    sandboxes: Sandboxes,
    /// Any origin may call a sandbox: the data plane is a public API.
    cors: Cors<Sandboxes>,
    /// The connection's peer, for the control plane's audit log.
    peer: Option<SocketAddr>,
}

impl Front {
    pub fn new(
        max_header_bytes: usize,
        control: Option<Router>,
        sandboxes: SandboxHandler,
    ) -> Self {
        let sandboxes = Sandboxes(sandboxes);
        // With `*` for origins, methods and headers no answer depends on the
        // request's CORS headers: no `Vary` (tower-http joins one per request).
        let cors = CorsLayer::permissive().vary([]).layer(sandboxes.clone());
        Self {
            max_header_bytes,
            control,
            own_pages: None,
            sandboxes,
            cors,
            peer: None,
        }
    }

    /// The control router also answers the requests `own_pages` picks.
    pub fn with_own_pages(self, own_pages: OwnPage) -> Self {
        Self {
            own_pages: Some(own_pages),
            ..self
        }
    }

    /// This front as a connection from `peer` sees it.
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        Self {
            peer: Some(peer),
            ..self.clone()
        }
    }

    /// Answers one request; never fails.
    pub fn call(&self, mut request: Request) -> impl Future<Output = Response> + Send + use<> {
        let id = request_id(&request);
        // For the handlers that log it: the control plane's and `sbx
        // serve`'s sandboxes (a front with a control plane).
        if self.control.is_some() {
            let logged = RequestId::from(id.to_str().unwrap_or_default());
            request.extensions_mut().insert(logged);
        }
        let answer = match header_limit(self.max_header_bytes, &request) {
            Some(refused) => Routed::Ready(refused),
            None => self.route(request),
        };
        async move {
            let mut response = match answer {
                Routed::Ready(response) => response,
                Routed::Pending(future) => future.await,
                Routed::Shared(future) => {
                    let mut response = future.await;
                    let headers = response.headers_mut();
                    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY.clone());
                    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, ANY.clone());
                    response
                }
                Routed::Preflight(future) => match future.await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
            };
            response.headers_mut().insert(REQUEST_ID.clone(), id);
            response
        }
    }

    fn route(&self, mut request: Request) -> Routed {
        if let Some(control) = self.control.as_ref().filter(|_| {
            is_control(request.uri().path())
                || self.own_pages.as_ref().is_some_and(|own| own(&request))
        }) {
            if let Some(peer) = self.peer {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            let control = control.clone();
            return Routed::Pending(Box::pin(async move {
                match control.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }));
        }
        // tower-http answers every `OPTIONS` as a preflight, but one without
        // `Access-Control-Request-Method` is none, and a spec may declare it
        // (Box's `OPTIONS /files/content`): it reaches the sandbox.
        let preflight_or_plain = request.method() != Method::OPTIONS
            || request
                .headers()
                .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight_or_plain {
            return Routed::Pending((self.sandboxes.0)(request));
        }
        if request.method() == Method::OPTIONS {
            return Routed::Preflight(self.cors.clone().call(request));
        }
        Routed::Shared((self.sandboxes.0)(request))
    }
}

/// `*`: what CORS allows every origin and exposes of every answer.
static ANY: HeaderValue = HeaderValue::from_static("*");

enum Routed {
    Ready(Response),
    Pending(Answer),
    /// A sandbox's answer to any origin: the two headers tower-http's
    /// permissive CORS adds to an answer that is not a preflight's, set
    /// here without building and merging a header map per request.
    Shared(Answer),
    Preflight(tower_http::cors::ResponseFuture<<Sandboxes as Service<Request>>::Future>),
}

/// The sandbox handler as a tower service, for the CORS layer.
#[derive(Clone)]
struct Sandboxes(SandboxHandler);

impl Service<Request> for Sandboxes {
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Map<Answer, fn(Response) -> Result<Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use futures_util::FutureExt as _;
        (self.0)(request).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::is_control;

    #[test]
    fn the_control_plane_owns_its_prefix_and_nothing_that_merely_starts_like_it() {
        for path in ["/api/v1", "/api/v1/", "/api/v1/sandboxes", "/metrics"] {
            assert!(is_control(path), "{path}");
        }
        for path in [
            "/api/v10",
            "/api/v1x/a",
            "/api",
            "/metrics/x",
            "/sbx/a/api/v1",
            "/",
        ] {
            assert!(!is_control(path), "{path}");
        }
    }
}
