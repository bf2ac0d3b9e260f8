//! Sandboxes: isolated instances of one project revision.

use std::collections::BTreeMap;

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use sbx_engine::{AuthMode, project::RateLimits};
use sbx_webhooks::ScheduleName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::{
    app::{AppState, rfc3339},
    control::created,
    http::error::{ApiError, ApiJson},
    http::middleware::RequestId,
    runtime::registry::LiveSandbox,
    service::caller::Caller,
    service::{
        ServiceError,
        sandboxes::{self as service, NewSandbox},
    },
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    pub project: String,
    /// Pins the sandbox to this revision. Without it, the sandbox follows
    /// the project: each new revision is swapped in live.
    pub revision: Option<u32>,
    /// The sandbox and its data are removed this long after creation.
    pub ttl_seconds: Option<u64>,
    /// Two sandboxes with the same seed answer identically; defaults to the id.
    #[schema(value_type = Option<String>)]
    pub seed: Option<Value>,
    /// `spec` (default) enforces the spec's security schemes with the sandbox key; `none` does not.
    pub auth: Option<String>,
    pub label: Option<String>,
    /// Overrides of the project's environment parameters.
    #[schema(value_type = Option<Object>)]
    pub env: Option<Map<String, Value>>,
    /// The retry schedule of webhook deliveries: `standard` (default:
    /// 5 s … 10 h) or `compressed` (1 s … 64 s, for tests).
    pub webhook_schedule: Option<String>,
    /// Its own rate limits, replacing the project's: `{"per_key":
    /// {"requests_per_second", "burst"?}, "per_sandbox": {…}}`.
    #[schema(value_type = Option<Object>)]
    pub rate_limits: Option<RateLimits>,
    /// `shared` (default): served by the servers, with every other
    /// sandbox. `namespace` (admin only; the server needs `[namespaces]`):
    /// served by a server of its own in a Kubernetes namespace of its own.
    pub isolation: Option<String>,
}

/// A sandbox served from a namespace of its own, and how that stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct IsolationView {
    /// `namespace`.
    pub mode: &'static str,
    /// Its namespace (its id).
    pub namespace: String,
    /// `provisioning` (its requests answer 503 `sandbox-provisioning`
    /// with `Retry-After`), `ready` or `failed`.
    pub state: &'static str,
    /// Why, as the cluster says.
    pub message: Option<String>,
    pub changed_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxView {
    pub id: String,
    pub project: String,
    /// The revision serving now.
    pub revision: u32,
    /// Stays on `revision`; otherwise follows the project's latest.
    pub pinned: bool,
    /// Append operation paths to this URL.
    pub base_url: String,
    /// The same sandbox addressed by host name.
    pub host_url: String,
    /// Its OAuth 2 / OpenID Connect issuer (discovery at
    /// `{oauth_issuer}/.well-known/openid-configuration`).
    pub oauth_issuer: String,
    /// Shown once, at creation; stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub auth: String,
    pub seed: String,
    pub label: Option<String>,
    /// The sandbox's overrides of the project's environment parameters.
    #[schema(value_type = Object)]
    pub env: Map<String, Value>,
    /// Records per stateful collection.
    pub resources: BTreeMap<String, usize>,
    /// The chaos profile every request without `X-Chaos` gets.
    pub chaos: Option<String>,
    /// Its own rate limits; `null`: its project's.
    #[schema(value_type = Option<Object>)]
    pub rate_limits: Option<RateLimits>,
    /// Data-plane requests it answered today (UTC), on every server.
    pub requests_today: u64,
    /// When it last answered a request (or was made).
    pub last_active_at: String,
    /// `null`: served by the servers (`shared`).
    pub isolation: Option<IsolationView>,
    /// The server answering its requests from memory (its replica id, as
    /// `/readyz` says), when several share a database: the others pass
    /// them on to it. `null` in a namespace of its own.
    pub server: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxList {
    pub items: Vec<SandboxView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only sandboxes of this project.
    pub project: Option<String>,
}

fn view(state: &AppState, sandbox: &LiveSandbox, api_key: Option<String>) -> SandboxView {
    let serving = sandbox.serving();
    let (base_url, host_url) = service::addresses(state, sandbox);
    SandboxView {
        id: sandbox.id.to_string(),
        project: sandbox.project.to_string(),
        revision: serving.revision,
        pinned: sandbox.pinned,
        base_url,
        host_url,
        oauth_issuer: crate::service::oauth::issuer(state, &sandbox.id),
        api_key,
        expires_at: sandbox.expires_at_ms().map(rfc3339),
        created_at: rfc3339(sandbox.created_at_ms),
        auth: sandbox.auth.as_str().to_owned(),
        seed: sandbox.seed_text().to_owned(),
        label: sandbox.label.as_deref().map(str::to_owned),
        env: (*sandbox.env()).clone(),
        resources: sandbox.state.counts(),
        chaos: sandbox.chaos().map(|chaos| chaos.text.clone()),
        rate_limits: sandbox.own_rate_limits(),
        requests_today: sandbox.requests.requests_on(crate::app::now_ms()),
        last_active_at: rfc3339(sandbox.last_active_ms()),
        isolation: sandbox.isolation().map(|isolation| IsolationView {
            mode: "namespace",
            namespace: sandbox.id.to_string(),
            state: isolation.state.as_str(),
            message: isolation.message.clone(),
            changed_at: rfc3339(isolation.changed_at_ms),
        }),
        server: match sandbox.member() {
            Some(member) => Some(member.replica.clone()),
            None if sandbox.served_here() => Some(state.replica.to_string()),
            None => None,
        },
    }
}

#[utoipa::path(post, path = "/api/v1/sandboxes", operation_id = "createSandbox", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = SandboxView, headers(("location" = String, description = "the new sandbox"))), (status = 404, description = "no such project or revision"),
              (status = 422, description = "invalid field")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateSandbox>,
) -> Result<impl IntoResponse, ApiError> {
    let new = body.parse()?;
    let made = service::create(&state, &caller, new).await?;
    let answer = view(&state, &made.sandbox, Some(made.api_key));
    Ok(created(format!("/api/v1/sandboxes/{}", answer.id), answer))
}

impl CreateSandbox {
    /// The body's choices, named values turned into their types.
    fn parse(self) -> Result<NewSandbox, ServiceError> {
        let auth = match self.auth.as_deref() {
            None => AuthMode::Spec,
            Some(name) => AuthMode::parse(name).ok_or_else(|| {
                ServiceError::invalid(
                    "/auth",
                    format!("auth must be \"spec\" or \"none\", not {name:?}"),
                )
            })?,
        };
        let webhook_schedule = match self.webhook_schedule.as_deref() {
            None => ScheduleName::Standard,
            Some(name) => ScheduleName::parse(name).ok_or_else(|| {
                ServiceError::invalid(
                    "/webhook_schedule",
                    format!(
                        "webhook_schedule must be \"standard\" or \"compressed\", not {name:?}"
                    ),
                )
            })?,
        };
        let seed = match self.seed {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(service::bad_seed()),
        };
        let own_namespace = match self.isolation.as_deref() {
            None | Some("shared") => false,
            Some("namespace") => true,
            Some(other) => {
                return Err(ServiceError::invalid(
                    "/isolation",
                    format!("isolation must be \"shared\" or \"namespace\", not {other:?}"),
                ));
            }
        };
        Ok(NewSandbox {
            project: self.project,
            revision: self.revision,
            ttl_seconds: self.ttl_seconds,
            seed,
            auth,
            label: self.label,
            env: self.env.unwrap_or_default(),
            webhook_schedule,
            rate_limits: self.rate_limits,
            own_namespace,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/sandboxes", operation_id = "listSandboxes", tag = "sandboxes", params(ListFilter),
    responses((status = 200, body = SandboxList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<ListFilter>,
) -> Json<SandboxList> {
    let items = service::list(&state, &caller, filter.project.as_deref())
        .iter()
        .map(|s| view(&state, s, None))
        .collect();
    Json(SandboxList { items })
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}", operation_id = "getSandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::live(&state, &caller, &id)?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}", operation_id = "deleteSandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 204, description = "deleted with its data"), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/reset", operation_id = "resetSandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView, description = "back to the fixtures; every change made by requests is gone"), (status = 404)),
    security(("bearer" = [])))]
pub async fn reset(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::reset(&state, &caller, &id).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seeded {
    /// Ids of the records loaded, by collection.
    pub created: BTreeMap<String, Vec<String>>,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/seed", operation_id = "seedSandbox", tag = "sandboxes", params(("id" = String, Path)),
    request_body(content = Object, description = "Records by collection, e.g. `{\"pets\": [{\"name\": \"Rex\"}]}`; missing members are synthesized, ids generated when absent"),
    responses((status = 201, body = Seeded), (status = 404), (status = 422, description = "a record does not match the spec; nothing was loaded")),
    security(("bearer" = [])))]
pub async fn seed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(records): ApiJson<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let created = service::seed(&state, &caller, &id, records, &request_id).await?;
    Ok((StatusCode::CREATED, Json(Seeded { created })))
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/env", operation_id = "putSandboxEnv", tag = "sandboxes", params(("id" = String, Path)),
    request_body(content = Object, description = "The sandbox's overrides of the project's environment parameters; replaces the previous ones"),
    responses((status = 200, body = SandboxView), (status = 404)), security(("bearer" = [])))]
pub async fn put_env(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(env): ApiJson<Map<String, Value>>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::set_env(&state, &caller, &id, env).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosProfile {
    /// As the `X-Chaos` header says it: `latency=300ms,jitter=50ms,error=5%,status=503,drop=1%,slow=2s,seed=42`.
    pub profile: String,
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/chaos", operation_id = "putSandboxChaos", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ChaosProfile,
    responses((status = 200, body = SandboxView), (status = 404), (status = 422, description = "the profile does not parse")),
    security(("bearer" = [])))]
pub async fn put_chaos(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChaosProfile>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::set_chaos(&state, &caller, &id, Some(body.profile)).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/chaos", operation_id = "deleteSandboxChaos", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView, description = "no chaos any more"), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_chaos(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::set_chaos(&state, &caller, &id, None).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultScenario {
    /// The scenario every operation that declares it answers with; `null` clears it.
    pub scenario: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationScenarios {
    pub operation: String,
    pub method: String,
    pub path: String,
    #[schema(value_type = Vec<Object>)]
    pub scenarios: Vec<sbx_engine::ScenarioSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScenarioList {
    /// The sandbox's default scenario.
    pub default: Option<String>,
    pub items: Vec<OperationScenarios>,
}

fn scenario_list(sandbox: &LiveSandbox) -> ScenarioList {
    let items = service::scenarios(sandbox)
        .into_iter()
        .map(|op| OperationScenarios {
            operation: op.operation,
            method: op.method,
            path: op.path,
            scenarios: op.scenarios,
        })
        .collect();
    ScenarioList {
        default: sandbox.scenario().map(|s| s.to_string()),
        items,
    }
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/scenarios", operation_id = "listSandboxScenarios", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioList, description = "Scenarios per operation, and the default"), (status = 404)),
    security(("bearer" = [])))]
pub async fn scenarios(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScenarioList>, ApiError> {
    let sandbox = service::live(&state, &caller, &id)?;
    Ok(Json(scenario_list(&sandbox)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxRateLimits {
    /// The sandbox's own limits; `null` or absent: its project's again.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub rate_limits: Option<RateLimits>,
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/rate-limits", operation_id = "putSandboxRateLimits", tag = "sandboxes", params(("id" = String, Path)),
    request_body = SandboxRateLimits,
    responses((status = 200, body = SandboxView), (status = 404), (status = 422, description = "a rate of 0 or above 1,000,000")),
    security(("bearer" = [])))]
pub async fn put_rate_limits(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SandboxRateLimits>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::set_rate_limits(&state, &caller, &id, body.rate_limits).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

/// A sandbox's new time to live.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxTtl {
    /// Counted from now; `null` (admins only): it never expires.
    pub ttl_seconds: Option<u64>,
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/ttl", operation_id = "putSandboxTtl", tag = "sandboxes", params(("id" = String, Path)),
    request_body = SandboxTtl,
    responses((status = 200, body = SandboxView, description = "it now expires `ttl_seconds` from now"), (status = 404), (status = 422, description = "0, above the quota's longest, or `null` from a developer")),
    security(("bearer" = [])))]
pub async fn put_ttl(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SandboxTtl>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = service::extend(&state, &caller, &id, body.ttl_seconds).await?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/scenario", operation_id = "putSandboxScenario", tag = "sandboxes", params(("id" = String, Path)),
    request_body = DefaultScenario,
    responses((status = 200, body = ScenarioList), (status = 404), (status = 422, description = "no operation declares that scenario")),
    security(("bearer" = [])))]
pub async fn put_scenario(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DefaultScenario>,
) -> Result<Json<ScenarioList>, ApiError> {
    let sandbox = service::set_scenario(&state, &caller, &id, body.scenario.as_deref()).await?;
    Ok(Json(scenario_list(&sandbox)))
}
