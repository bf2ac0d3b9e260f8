//! The control plane: `/api/v1`, JSON, admin bearer token.

mod accounts;
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
    routing::{delete, get, post, put},
};

use crate::{
    app::AppState,
    http::{access, error::ApiError},
    service::caller::Caller,
};

pub fn router(state: AppState) -> Router<AppState> {
    // JSON string escaping can double a spec's size on the wire.
    let body_limit = state
        .config
        .limits
        .max_spec_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let signed_in = Router::new()
        .route("/me", get(accounts::me))
        .route(
            "/me/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/me/tokens/{token}", delete(accounts::revoke_token))
        .route("/auth/logout", post(accounts::sign_out))
        .route("/accounts", get(accounts::list))
        .route(
            "/accounts/{account}",
            get(accounts::show).patch(accounts::update),
        )
        .route("/invitations", post(accounts::invite))
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
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Entry::SignedIn),
            authenticate,
        ));
    // Sign-up and sign-in serve anonymous callers (an admin may sign up
    // others while signed in).
    let open = Router::new()
        .route("/accounts", post(accounts::sign_up))
        .route("/auth/login", post(accounts::sign_in))
        .route_layer(middleware::from_fn_with_state(
            (state, Entry::Open),
            authenticate,
        ));
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/health", get(health))
        .merge(open)
        .merge(signed_in)
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

/// Whether a route needs a caller, or also serves anonymous ones (sign-up
/// and sign-in, which an admin may call signed in).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    SignedIn,
    Open,
}

/// Identifies the caller (a [`Caller`] in the request's extensions), refuses
/// the unidentified where a caller is needed, and audits every change and
/// every refused attempt at one.
async fn authenticate(
    State((state, entry)): State<(AppState, Entry)>,
    mut request: Request,
    next: Next,
) -> Response {
    let changes = access::changes(&request);
    let identified = access::identify(&state, request.headers(), changes).await;
    let caller = identified.as_ref().ok().cloned().flatten();
    if caller.is_none()
        && let Some(response) = access::refused_too_often(&state, &request)
    {
        return response;
    }
    let actor = caller
        .as_ref()
        .map_or("anonymous".to_owned(), Caller::actor);
    let caller_owner = caller.as_ref().and_then(Caller::owner).cloned();
    let call = changes.then(|| audit::Call::of(&request, &actor));
    let response = match (identified, caller) {
        (Err(refused), _) => refused,
        (Ok(_), None) if entry == Entry::SignedIn => ApiError::unauthorized(
            "sign in: send the admin token or a personal access token as `Authorization: Bearer <token>`, or the session cookie",
        )
        .into_response(),
        (Ok(_), caller) => {
            if let Some(caller) = &caller {
                request.extensions_mut().insert(caller.clone());
            }
            next.run(request).await
        }
    };
    if let Some(call) = call {
        // A sign-up or sign-in names the account it concerns on its answer.
        let owner = response
            .extensions()
            .get::<Caller>()
            .and_then(Caller::owner)
            .cloned()
            .or(caller_owner);
        crate::service::audit::record(&state, call.answered(&response, owner)).await;
    }
    response
}
