//! CORS for the data plane: any origin may call a sandbox.

use std::task::{Context, Poll};

use axum::{
    Router,
    extract::Request,
    http::{Method, header::ACCESS_CONTROL_REQUEST_METHOD},
};
use futures_util::future::Either;
use tower::{Layer, Service};
use tower_http::cors::{Cors, CorsLayer};

/// `sandboxes` open to every origin. tower-http's layer answers every
/// `OPTIONS` as a preflight, but one without `Access-Control-Request-Method`
/// is none, and a spec may declare it (Box's `OPTIONS /files/content`): it
/// reaches the sandbox. A plain service, not a middleware: nothing is
/// boxed or cloned per request.
pub fn any_origin(sandboxes: Router) -> AnyOrigin {
    AnyOrigin {
        cors: CorsLayer::permissive().layer(sandboxes.clone()),
        plain: sandboxes,
    }
}

#[derive(Clone)]
pub struct AnyOrigin {
    cors: Cors<Router>,
    plain: Router,
}

impl Service<Request> for AnyOrigin {
    type Response = <Cors<Router> as Service<Request>>::Response;
    type Error = std::convert::Infallible;
    type Future =
        Either<<Cors<Router> as Service<Request>>::Future, <Router as Service<Request>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both are routers, always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let through_cors = request.method() != Method::OPTIONS
            || request
                .headers()
                .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if through_cors {
            Either::Left(self.cors.call(request))
        } else {
            Either::Right(self.plain.call(request))
        }
    }
}
