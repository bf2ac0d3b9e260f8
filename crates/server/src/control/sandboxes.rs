//! Sandboxes: isolated instances of one project revision.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use std::collections::BTreeMap;

use sbx_engine::AuthMode;
use sbx_store::SandboxRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::{
    app::{AppState, compiled_revision, now_ms, rfc3339},
    control::created,
    error::{ApiError, ApiJson, FieldError},
    ids::{SandboxId, generate_api_key, hash_secret},
    middleware::RequestId,
    registry::LiveSandbox,
};

/// Longest accepted seed and label.
const MAX_SEED_CHARS: usize = 128;
const MAX_LABEL_CHARS: usize = 200;

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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxList {
    pub items: Vec<SandboxView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListFilter {
    /// Only sandboxes of this project.
    pub project: Option<String>,
}

pub(crate) fn invalid(pointer: &str, message: String) -> ApiError {
    ApiError::validation(vec![FieldError {
        location: "body".into(),
        pointer: pointer.into(),
        message,
        line: None,
        column: None,
    }])
}

fn view(state: &AppState, sandbox: &LiveSandbox, api_key: Option<String>) -> SandboxView {
    let serving = sandbox.serving();
    let base_path = &serving.compiled.model.base_path;
    let (scheme, authority) = state
        .public_url
        .split_once("://")
        .unwrap_or(("http", &state.public_url));
    let port = authority
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    SandboxView {
        id: sandbox.id.clone(),
        project: sandbox.project.clone(),
        revision: serving.revision,
        pinned: sandbox.pinned,
        base_url: format!("{}/sbx/{}{base_path}", state.public_url, sandbox.id),
        host_url: format!(
            "{scheme}://{}.{}{port}{base_path}",
            sandbox.id, state.config.base_domain
        ),
        api_key,
        expires_at: sandbox.expires_at_ms.map(rfc3339),
        created_at: rfc3339(sandbox.created_at_ms),
        auth: match sandbox.auth {
            AuthMode::Spec => "spec",
            AuthMode::None => "none",
        }
        .to_owned(),
        seed: sandbox.seed_text.clone(),
        label: sandbox.label.clone(),
        env: (*sandbox.env()).clone(),
        resources: sandbox.state.counts(),
        chaos: sandbox.chaos().map(|(text, _)| text),
    }
}

#[utoipa::path(post, path = "/api/v1/sandboxes", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = SandboxView, headers(("location" = String, description = "the new sandbox"))), (status = 404, description = "no such project or revision"),
              (status = 422, description = "invalid field")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateSandbox>,
) -> Result<impl IntoResponse, ApiError> {
    let project = state
        .store
        .get_project(&body.project)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "not-found",
                format!("project \"{}\" does not exist", body.project),
            )
        })?;
    let revision = body.revision.unwrap_or(project.latest_revision);
    if revision == 0 || revision > project.latest_revision {
        return Err(ApiError::not_found(
            "not-found",
            format!(
                "project \"{}\" has revisions 1 to {}; there is no revision {revision}",
                project.name, project.latest_revision
            ),
        ));
    }
    let max_ttl = state.config.limits.max_ttl_seconds;
    if let Some(ttl) = body.ttl_seconds
        && (ttl == 0 || ttl > max_ttl)
    {
        return Err(invalid(
            "/ttl_seconds",
            format!("ttl_seconds must be between 1 and {max_ttl}"),
        ));
    }
    let auth = match body.auth.as_deref() {
        None | Some("spec") => "spec",
        Some("none") => "none",
        Some(other) => {
            return Err(invalid(
                "/auth",
                format!("auth must be \"spec\" or \"none\", not {other:?}"),
            ));
        }
    };
    let webhook_schedule = match body.webhook_schedule.as_deref() {
        None => sbx_webhooks::ScheduleName::Standard,
        Some(name) => sbx_webhooks::ScheduleName::parse(name).ok_or_else(|| {
            invalid(
                "/webhook_schedule",
                format!("webhook_schedule must be \"standard\" or \"compressed\", not {name:?}"),
            )
        })?,
    };
    let id = SandboxId::generate();
    let seed = match body.seed {
        None | Some(Value::Null) => id.to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_SEED_CHARS => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(invalid(
                "/seed",
                format!(
                    "seed must be a non-empty string of at most {MAX_SEED_CHARS} characters, or a number"
                ),
            ));
        }
    };
    if let Some(label) = &body.label
        && label.chars().count() > MAX_LABEL_CHARS
    {
        return Err(invalid(
            "/label",
            format!("label is longer than {MAX_LABEL_CHARS} characters"),
        ));
    }
    let compiled = compiled_revision(&state, &project.name, revision).await?;
    let api_key = generate_api_key();
    let now = now_ms();
    let record = SandboxRecord {
        id: id.to_string(),
        project: project.name.clone(),
        revision,
        key_hash: hash_secret(&api_key),
        seed,
        auth: auth.to_owned(),
        label: body.label,
        created_at_ms: now,
        expires_at_ms: body
            .ttl_seconds
            .map(|ttl| now.saturating_add((ttl as i64).saturating_mul(1000))),
        pinned: body.revision.is_some(),
        env: Value::Object(body.env.unwrap_or_default()).to_string(),
        chaos: None,
        scenario: None,
        clock_offset_ms: 0,
        clock_frozen_ms: None,
        seeded_at_ms: now,
        webhook_schedule: webhook_schedule.as_str().to_owned(),
    };
    state.store.create_sandbox(&record).await?;
    let live = LiveSandbox::from_record(record, Arc::clone(&compiled), Vec::new());
    let answer = view(&state, &live, Some(api_key));
    state.registry.insert(live);
    Ok(created(format!("/api/v1/sandboxes/{}", answer.id), answer))
}

#[utoipa::path(get, path = "/api/v1/sandboxes", tag = "sandboxes", params(ListFilter),
    responses((status = 200, body = SandboxList)), security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(filter): Query<ListFilter>,
) -> Json<SandboxList> {
    let now = now_ms();
    let items = state
        .registry
        .all()
        .iter()
        .filter(|s| filter.project.as_ref().is_none_or(|p| *p == s.project))
        .filter(|s| s.expired_at(now).is_none())
        .map(|s| view(&state, s, None))
        .collect();
    Json(SandboxList { items })
}

pub(crate) fn live(state: &AppState, id: &str) -> Result<Arc<LiveSandbox>, ApiError> {
    state
        .registry
        .get(id)
        .filter(|s| s.expired_at(now_ms()).is_none())
        .ok_or_else(|| ApiError::not_found("not-found", format!("sandbox \"{id}\" does not exist")))
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView), (status = 404)), security(("admin" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = live(&state, &id)?;
    Ok(Json(view(&state, &sandbox, None)))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 204, description = "deleted with its data"), (status = 404)), security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_sandbox(&id).await? {
        return Err(ApiError::not_found(
            "not-found",
            format!("sandbox \"{id}\" does not exist"),
        ));
    }
    state.registry.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/reset", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView, description = "back to the fixtures; every change made by requests is gone"), (status = 404)),
    security(("admin" = [])))]
pub async fn reset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = live(&state, &id)?;
    let _jobs = sandbox.jobs.lock().await;
    let seeded_at_ms = sandbox.now_ms();
    state.store.clear_resources(&id, seeded_at_ms).await?;
    sandbox.reseed(seeded_at_ms);
    Ok(Json(view(&state, &sandbox, None)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seeded {
    /// Ids of the records loaded, by collection.
    pub created: BTreeMap<String, Vec<String>>,
}

#[utoipa::path(post, path = "/api/v1/sandboxes/{id}/seed", tag = "sandboxes", params(("id" = String, Path)),
    request_body(content = Object, description = "Records by collection, e.g. `{\"pets\": [{\"name\": \"Rex\"}]}`; missing members are synthesized, ids generated when absent"),
    responses((status = 201, body = Seeded), (status = 404), (status = 422, description = "a record does not match the spec; nothing was loaded")),
    security(("admin" = [])))]
pub async fn seed(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(records): ApiJson<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let sandbox = live(&state, &id)?;
    let compiled = sandbox.serving().compiled;
    let (seed, records_state, now_ms) = (sandbox.seed, sandbox.state.clone(), sandbox.now_ms());
    // Seeding waits for the sandbox's write turn and synthesizes records:
    // not on an async worker.
    let changes = state
        .user_work
        .run(&id, move || {
            sbx_engine::seed(&compiled, seed, &records_state, &records, now_ms)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|problems| {
            ApiError::validation(
                problems
                    .into_iter()
                    .map(|p| FieldError {
                        location: "body".into(),
                        pointer: format!("{}{}", p.file, p.pointer),
                        message: p.message,
                        line: None,
                        column: None,
                    })
                    .collect(),
            )
        })?;
    let mut created: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in &changes {
        created
            .entry(change.collection.clone())
            .or_default()
            .push(change.id.clone());
    }
    let journal = sbx_engine::Journal {
        changes,
        ..Default::default()
    };
    let origin = sbx_store::Origin::control(&request_id);
    crate::data_plane::persist(&state, &id, journal, None, origin)
        .await
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(Seeded { created })))
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/env", tag = "sandboxes", params(("id" = String, Path)),
    request_body(content = Object, description = "The sandbox's overrides of the project's environment parameters; replaces the previous ones"),
    responses((status = 200, body = SandboxView), (status = 404)), security(("admin" = [])))]
pub async fn put_env(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(env): ApiJson<Map<String, Value>>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = live(&state, &id)?;
    state
        .store
        .set_sandbox_env(&id, &Value::Object(env.clone()).to_string())
        .await?;
    sandbox.set_env(env);
    Ok(Json(view(&state, &sandbox, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosProfile {
    /// As the `X-Chaos` header says it: `latency=300ms,jitter=50ms,error=5%,status=503,drop=1%,slow=2s,seed=42`.
    pub profile: String,
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/chaos", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ChaosProfile,
    responses((status = 200, body = SandboxView), (status = 404), (status = 422, description = "the profile does not parse")),
    security(("admin" = [])))]
pub async fn put_chaos(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChaosProfile>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = live(&state, &id)?;
    let spec = sbx_engine::ChaosSpec::parse(&body.profile)
        .map_err(|message| invalid("/profile", message))?;
    state
        .store
        .set_sandbox_chaos(&id, Some(&body.profile))
        .await?;
    sandbox.set_chaos(Some((body.profile, Arc::new(spec))));
    Ok(Json(view(&state, &sandbox, None)))
}

#[utoipa::path(delete, path = "/api/v1/sandboxes/{id}/chaos", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = SandboxView, description = "no chaos any more"), (status = 404)),
    security(("admin" = [])))]
pub async fn delete_chaos(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = live(&state, &id)?;
    state.store.set_sandbox_chaos(&id, None).await?;
    sandbox.set_chaos(None);
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
    let compiled = sandbox.serving().compiled;
    let scenarios = &compiled.behaviours.scenarios;
    let items = compiled
        .model
        .operations
        .iter()
        .enumerate()
        .filter(|(i, _)| !scenarios.by_operation[*i].is_empty())
        .map(|(i, op)| OperationScenarios {
            operation: op.id.clone(),
            method: op.method.clone(),
            path: op.path.clone(),
            scenarios: scenarios.summaries(i),
        })
        .collect();
    ScenarioList {
        default: sandbox.scenario().map(|s| s.to_string()),
        items,
    }
}

#[utoipa::path(get, path = "/api/v1/sandboxes/{id}/scenarios", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioList, description = "Scenarios per operation, and the default"), (status = 404)),
    security(("admin" = [])))]
pub async fn scenarios(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScenarioList>, ApiError> {
    let sandbox = live(&state, &id)?;
    Ok(Json(scenario_list(&sandbox)))
}

#[utoipa::path(put, path = "/api/v1/sandboxes/{id}/scenario", tag = "sandboxes", params(("id" = String, Path)),
    request_body = DefaultScenario,
    responses((status = 200, body = ScenarioList), (status = 404), (status = 422, description = "no operation declares that scenario")),
    security(("admin" = [])))]
pub async fn put_scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DefaultScenario>,
) -> Result<Json<ScenarioList>, ApiError> {
    let sandbox = live(&state, &id)?;
    if let Some(name) = &body.scenario {
        let list = scenario_list(&sandbox);
        let known = list
            .items
            .iter()
            .any(|op| op.scenarios.iter().any(|s| s.name == *name));
        if !known {
            return Err(invalid(
                "/scenario",
                format!("no operation of this sandbox declares a scenario {name:?}"),
            ));
        }
    }
    state
        .store
        .set_sandbox_scenario(&id, body.scenario.as_deref())
        .await?;
    sandbox.set_scenario(body.scenario.as_deref());
    Ok(Json(scenario_list(&sandbox)))
}
