//! The control plane: `/api/v1`, JSON, admin bearer token.

pub(crate) mod audit;
mod clock;
mod events;
mod explain;
mod filters;
mod har;
mod logs;
pub mod openapi;
pub mod projects;
mod replay;
mod sandboxes;
pub mod snippets;
mod timeline;
mod webhooks;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};

use crate::{
    app::AppState,
    http::{
        access::{bearer_token, is_admin, refused_too_often},
        error::ApiError,
    },
};

pub fn router(state: AppState) -> Router<AppState> {
    // JSON string escaping can double a spec's size on the wire.
    let body_limit = state
        .config
        .limits
        .max_spec_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let authenticated = Router::new()
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{name}",
            get(projects::show).delete(projects::delete),
        )
        .route("/projects/{name}/spec", put(projects::replace_spec))
        .route("/projects/{name}/env", put(projects::put_env))
        .route("/projects/{name}/settings", put(projects::put_settings))
        .route("/projects/{name}/files", get(projects::files))
        .route("/projects/{name}/drift", get(projects::drift))
        .route("/projects/{name}/coverage", get(projects::coverage))
        .route(
            "/projects/{name}/{kind}/{item}",
            put(projects::put_file).delete(projects::delete_file),
        )
        .route("/sandboxes", get(sandboxes::list).post(sandboxes::create))
        .route(
            "/sandboxes/{id}",
            get(sandboxes::show).delete(sandboxes::delete),
        )
        .route("/sandboxes/{id}/reset", post(sandboxes::reset))
        .route("/sandboxes/{id}/seed", post(sandboxes::seed))
        .route("/sandboxes/{id}/env", put(sandboxes::put_env))
        .route(
            "/sandboxes/{id}/events",
            get(events::list).post(events::trigger),
        )
        .route("/sandboxes/{id}/events/stream", get(events::stream))
        .route("/audit", get(audit::list))
        .route("/sandboxes/{id}/logs", get(logs::list))
        .route("/sandboxes/{id}/logs/stream", get(logs::stream))
        .route("/sandboxes/{id}/logs.har", get(har::export))
        .route("/sandboxes/{id}/timeline", get(timeline::timeline))
        .route("/sandboxes/{id}/logs/{request_id}", get(logs::show))
        .route(
            "/sandboxes/{id}/logs/{request_id}/explain",
            get(explain::in_sandbox),
        )
        .route("/requests/{request_id}/explain", get(explain::anywhere))
        .route(
            "/sandboxes/{id}/logs/{request_id}/snippets",
            get(replay::snippets),
        )
        .route(
            "/sandboxes/{id}/logs/{request_id}/replay",
            post(replay::replay),
        )
        .route("/sandboxes/{id}/event-types", get(events::types))
        .route("/sandboxes/{id}/scenarios", get(sandboxes::scenarios))
        .route(
            "/sandboxes/{id}/clock",
            get(clock::clock).post(clock::change_clock),
        )
        .route("/sandboxes/{id}/scenario", put(sandboxes::put_scenario))
        .route(
            "/sandboxes/{id}/resources/{collection}/{rid}/history",
            get(clock::history),
        )
        .route(
            "/sandboxes/{id}/resources/{collection}/{rid}/transition",
            post(clock::transition),
        )
        .route(
            "/sandboxes/{id}/webhook-endpoints",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/sandboxes/{id}/webhook-endpoints/{endpoint}",
            get(webhooks::show)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/sandboxes/{id}/webhook-endpoints/{endpoint}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/sandboxes/{id}/webhook-endpoints/{endpoint}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/sandboxes/{id}/webhook-endpoints/{endpoint}/redeliver",
            post(webhooks::redeliver),
        )
        .route(
            "/sandboxes/{id}/chaos",
            put(sandboxes::put_chaos).delete(sandboxes::delete_chaos),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(state, require_admin));
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/health", get(health))
        .merge(authenticated)
        .fallback(no_route)
}

/// A 201 answer carrying the new resource's `Location`, which the audit
/// log records as what the change created.
fn created(location: String, body: impl serde::Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        sbx_engine::ProblemType::NoControlRoute,
        format!(
            "{} {} is not a control-plane route; see /api/v1/openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let token = bearer_token(&request);
    let actor = if is_admin(&state, &request) {
        "admin"
    } else {
        "anonymous"
    };
    if actor != "admin"
        && let Some(response) = refused_too_often(&state, &request)
    {
        return response;
    }
    let changes = !matches!(request.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let call = changes.then(|| audit::Call::of(&request, actor));
    let response = match token {
        None => ApiError::unauthorized("send the admin token as `Authorization: Bearer <token>` (SBX_ADMIN_TOKEN, or the token printed at first start)").into_response(),
        Some(_) if actor != "admin" => {
            ApiError::unauthorized("the admin token is not valid").into_response()
        }
        Some(_) => next.run(request).await,
    };
    // Every change, and every refused attempt at one, is audited.
    if let Some(call) = call {
        crate::service::audit::record(&state, call.answered(&response)).await;
    }
    response
}
