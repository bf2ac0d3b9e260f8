//! CORS for the data plane: any origin may call a sandbox.

use axum::{
    Router,
    extract::Request,
    http::{Method, header::ACCESS_CONTROL_REQUEST_METHOD},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::ServiceExt;
use tower_http::cors::CorsLayer;

/// `sandboxes` open to every origin. tower-http's layer answers every
/// `OPTIONS` as a preflight, but one without `Access-Control-Request-Method`
/// is none, and a spec may declare it (Box's `OPTIONS /files/content`): it
/// reaches the sandbox.
pub fn any_origin(sandboxes: Router) -> Router {
    let plain = sandboxes.clone();
    sandboxes
        .layer(CorsLayer::permissive())
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let plain = plain.clone();
            async move { not_preflight(plain, request, next).await }
        }))
}

async fn not_preflight(plain: Router, request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS
        && !request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        return match plain.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
        .into_response();
    }
    next.run(request).await
}
