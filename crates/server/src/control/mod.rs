//! The control plane: `/api/v1`, JSON, admin bearer token.

mod accounts;
pub(crate) mod audit;
mod clock;
mod events;
mod explain;
mod filters;
mod har;
mod keys;
mod logs;
mod oauth;
pub mod openapi;
pub mod projects;
mod replay;
mod sandboxes;
mod sessions;
mod templates;
mod timeline;
mod webhooks;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    http::{access, error::ApiError},
    service::caller::Caller,
};

/// The routes a caller must be signed in for, and those anonymous callers
/// may call too (sign-up and sign-in; an admin may sign others up): one
/// table, from which both the router and the OpenAPI document are made,
/// so no route can be missing from the document (or from the tests
/// generated from it).
fn table() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let signed_in = OpenApiRouter::new()
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::list_tokens, accounts::create_token))
        .routes(routes!(accounts::revoke_token))
        .routes(routes!(accounts::sign_out))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::show, accounts::update))
        .routes(routes!(accounts::invite))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::show, projects::delete))
        .routes(routes!(projects::replace_spec))
        .routes(routes!(projects::put_env))
        .routes(routes!(projects::put_settings))
        .routes(routes!(projects::files))
        .routes(routes!(projects::revisions))
        .routes(routes!(projects::drift))
        .routes(routes!(projects::coverage))
        .routes(routes!(projects::put_file, projects::delete_file))
        .routes(routes!(sessions::list, sessions::create))
        .routes(routes!(sessions::show, sessions::extend, sessions::delete))
        .routes(routes!(sessions::executions, sessions::execute))
        .routes(routes!(sessions::execution))
        .routes(routes!(sessions::stream))
        .routes(routes!(
            sessions::get_file,
            sessions::put_file,
            sessions::delete_file
        ))
        .routes(routes!(sessions::save_snapshot))
        .routes(routes!(sessions::snapshots))
        .routes(routes!(sessions::delete_snapshot))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(templates::show, templates::delete))
        .routes(routes!(templates::log))
        .routes(routes!(sandboxes::list, sandboxes::create))
        .routes(routes!(sandboxes::show, sandboxes::delete))
        .routes(routes!(sandboxes::reset))
        .routes(routes!(sandboxes::seed))
        .routes(routes!(sandboxes::put_env))
        .routes(routes!(events::list, events::trigger))
        .routes(routes!(events::stream))
        .routes(routes!(audit::list))
        .routes(routes!(logs::list))
        .routes(routes!(logs::stream))
        .routes(routes!(har::export))
        .routes(routes!(timeline::timeline))
        .routes(routes!(logs::show))
        .routes(routes!(explain::in_sandbox))
        .routes(routes!(explain::anywhere))
        .routes(routes!(replay::snippets))
        .routes(routes!(replay::replay))
        .routes(routes!(events::types))
        .routes(routes!(sandboxes::scenarios))
        .routes(routes!(clock::clock, clock::change_clock))
        .routes(routes!(sandboxes::put_scenario))
        .routes(routes!(sandboxes::put_rate_limits))
        .routes(routes!(sandboxes::put_ttl))
        .routes(routes!(clock::history))
        .routes(routes!(clock::transition))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::show, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(sandboxes::put_chaos, sandboxes::delete_chaos))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::roll))
        .routes(routes!(keys::revoke))
        .routes(routes!(oauth::provider))
        .routes(routes!(oauth::list_clients, oauth::create_client))
        .routes(routes!(oauth::delete_client))
        .routes(routes!(oauth::list_users))
        .routes(routes!(oauth::put_user, oauth::delete_user))
        .routes(routes!(oauth::rotate_keys));
    let open = OpenApiRouter::new()
        .routes(routes!(accounts::sign_up))
        .routes(routes!(accounts::sign_in));
    (signed_in, open)
}

/// The control plane's document, made from the route table.
pub fn document() -> utoipa::openapi::OpenApi {
    let (signed_in, open) = table();
    openapi::finish(signed_in.merge(open).into_openapi())
}

pub fn router(state: AppState) -> Router<AppState> {
    // JSON string escaping can double a spec's size on the wire.
    let body_limit = state
        .config
        .limits
        .max_spec_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let (signed_in, open) = table();
    let signed_in = signed_in
        .split_for_parts()
        .0
        .layer(DefaultBodyLimit::max(body_limit))
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Entry::SignedIn),
            authenticate,
        ));
    let open = open
        .split_for_parts()
        .0
        .route_layer(middleware::from_fn_with_state(
            (state, Entry::Open),
            authenticate,
        ));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/health", get(health))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .merge(open)
        .merge(signed_in)
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

/// Whether this server should be sent requests: it has loaded its
/// sandboxes (it answers nothing before), it is not stopping, and its
/// database answers within 2 s, and its lease on the database holds. 503
/// otherwise, saying which check failed.
async fn ready(State(state): State<AppState>) -> Response {
    if !state.active.load(std::sync::atomic::Ordering::Acquire) {
        // Standing by, it forwards to the holder: ready while there is one.
        // A member also serves sandboxes of its own: while its lease holds.
        let holder = state.store.holder().await.ok().flatten();
        let member = state.config.spread_sandboxes && state.membership.lock().await.is_some();
        let ready = holder.is_some()
            && !state.workers.stopping().is_cancelled()
            && (!member || state.member_lease.holds());
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = if member {
            let serving = state.registry.served_here_count();
            serde_json::json!({"status": "member", "replica": &*state.replica, "holder": holder, "sandboxes": serving})
        } else {
            serde_json::json!({"status": "forwarding", "replica": &*state.replica, "holder": holder})
        };
        return (status, Json(body)).into_response();
    }
    if state.workers.stopping().is_cancelled() {
        let body = serde_json::json!({"status": "stopping", "checks": {"database": "skipped"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if !crate::runtime::standby::serves(&state) {
        let body = serde_json::json!({"status": "unready", "replica": &*state.replica, "checks": {"lease": "lapsed: renewing the hold on the database"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let started = std::time::Instant::now();
    let database =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match database {
        Ok(Ok(())) => Json(serde_json::json!({
            "status": "ready",
            "replica": &*state.replica,
            "checks": {"database": {"status": "ok", "latency_ms": latency_ms}}
        }))
        .into_response(),
        failed => {
            let error = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer within 2 s".to_owned(),
            };
            tracing::warn!(%error, "readiness: the database does not answer");
            let body = serde_json::json!({
                "status": "unready",
                "checks": {"database": {"status": "unreachable", "latency_ms": latency_ms}}
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// A call of a sandbox's sub-resource (`/api/v1/sandboxes/{id}/…`) whose
/// sandbox, the caller's to see, is served from a namespace of its own: its
/// own server answers it. The sandbox itself (show, delete, time to live)
/// stays the servers'.
fn isolated_subresource(
    state: &AppState,
    caller: &Caller,
    request: &Request,
) -> Option<(
    std::sync::Arc<crate::runtime::registry::LiveSandbox>,
    std::sync::Arc<sbx_store::Isolation>,
)> {
    let rest = request.uri().path().strip_prefix("/api/v1/sandboxes/")?;
    let (id, below) = rest.split_once('/')?;
    if below.is_empty() || below == "ttl" {
        return None;
    }
    let sandbox = crate::service::sandboxes::live(state, caller, id).ok()?;
    let isolation = sandbox.isolation()?;
    Some((sandbox, isolation))
}

/// The sandbox id of a call of `/api/v1/sandboxes/{id}` and below.
fn sandbox_in_path(request: &Request) -> Option<&str> {
    let rest = request.uri().path().strip_prefix("/api/v1/sandboxes/")?;
    rest.split('/').next().filter(|id| !id.is_empty())
}

/// A call of a sandbox (`/api/v1/sandboxes/{id}` and below) that a member
/// serves, the caller's to see: the member answers it, with the caller's
/// own credentials.
fn served_by_member(
    state: &AppState,
    caller: &Caller,
    request: &Request,
) -> Option<std::sync::Arc<crate::runtime::registry::LiveSandbox>> {
    let sandbox = crate::service::sandboxes::live(state, caller, sandbox_in_path(request)?).ok()?;
    sandbox.member().is_some().then_some(sandbox)
}

pub(crate) async fn no_route(request: Request) -> ApiError {
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
    // An anonymous call of an open route (a sign-up, a sign-in) counts
    // only if it is refused.
    let anonymous_open = caller.is_none() && identified.is_ok() && entry == Entry::Open;
    let client = access::client_of(&request);
    if caller.is_none()
        && let Some(response) = access::refused_too_often(&state, &request, !anonymous_open)
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
        (Ok(_), caller) => 'answered: {
            if let Some(id) = sandbox_in_path(&request) {
                // Moving to another server: answered once the move ended.
                state.moves.wait(id).await;
            }
            // Twice at most: a member that moved the sandbox may send the
            // request back before the copy here heard of it.
            for _ in 0..2 {
                let member_sandbox = caller
                    .as_ref()
                    .and_then(|c| served_by_member(&state, c, &request));
                match caller.as_ref().and_then(|c| isolated_subresource(&state, c, &request)) {
                    Some((sandbox, isolation)) => {
                        break 'answered crate::runtime::namespaces::pass_on(
                            &state, &sandbox, &isolation, request, true,
                        )
                        .await;
                    }
                    None if let Some(sandbox) = member_sandbox => {
                        match crate::runtime::members::pass_on(&state, &sandbox, request).await {
                            Ok(answer) => break 'answered answer,
                            Err(back) => request = back,
                        }
                    }
                    None => break,
                }
            }
            if caller.as_ref().and_then(|c| served_by_member(&state, c, &request)).is_some() {
                // Sent back and forth: never answered from a copy here.
                break 'answered ApiError::standby(
                    "the sandbox is moving between servers; send the request again",
                )
                .into_response();
            }
            if let Some(caller) = &caller {
                request.extensions_mut().insert(caller.clone());
            }
            next.run(request).await
        }
    };
    if anonymous_open && matches!(response.status().as_u16(), 401 | 403) {
        // Its verdict is for the next call, checked above.
        let _ = state.refusals.count(client, crate::app::now_ms());
    }
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
