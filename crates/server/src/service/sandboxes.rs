//! Sandboxes: isolated instances of one project revision, with their
//! records, environment, chaos profile and default scenario.

use std::{collections::BTreeMap, sync::Arc};

use sbx_engine::{
    AuthMode, ChaosSpec, Journal, OperationIndex, ScenarioSummary, project::RateLimits,
};
use sbx_store::SandboxRecord;
use sbx_webhooks::ScheduleName;
use serde_json::{Map, Value};

use super::{FieldError, ServiceError, ServiceResult, caller::Caller, projects};
use crate::{
    app::{AppState, now_ms},
    runtime::ids::new_sandbox_id,
    runtime::keys::LiveKey,
    runtime::registry::{LiveChaos, LiveSandbox},
};

/// How long an expired sandbox's id keeps answering "expired".
const TOMBSTONE_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// Longest accepted seed and label.
const MAX_SEED_CHARS: usize = 128;
const MAX_LABEL_CHARS: usize = 200;

/// What a new sandbox is made of; everything optional has its default.
#[derive(Debug, Clone)]
pub struct NewSandbox {
    pub project: String,
    /// Pins the sandbox to this revision; `None` follows the project.
    pub revision: Option<u32>,
    pub ttl_seconds: Option<u64>,
    /// Two sandboxes with the same seed answer identically; `None`: its id.
    pub seed: Option<String>,
    pub auth: AuthMode,
    pub label: Option<String>,
    /// Overrides of the project's environment parameters.
    pub env: Map<String, Value>,
    pub webhook_schedule: ScheduleName,
    /// Its own rate limits; `None`: its project's.
    pub rate_limits: Option<RateLimits>,
    /// Served from a Kubernetes namespace of its own (`isolation: namespace`).
    pub own_namespace: bool,
}

impl NewSandbox {
    /// A sandbox of `project`'s latest revision, every option at its default.
    pub fn of(project: &str) -> Self {
        Self {
            project: project.to_owned(),
            revision: None,
            ttl_seconds: None,
            seed: None,
            auth: AuthMode::Spec,
            label: None,
            env: Map::new(),
            webhook_schedule: ScheduleName::Standard,
            rate_limits: None,
            own_namespace: false,
        }
    }
}

/// Where a sandbox answers: `(base URL, host URL)`, both with the API's
/// base path (`…/sbx/{id}/v1`, `http://{id}.{base_domain}:port/v1`).
pub fn addresses(state: &AppState, sandbox: &LiveSandbox) -> (String, String) {
    let base_path = &sandbox.serving().compiled.model.base_path;
    let (scheme, authority) = state
        .public_url
        .split_once("://")
        .unwrap_or(("http", &state.public_url));
    let port = authority
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    (
        format!("{}/sbx/{}{base_path}", state.public_url, sandbox.id),
        format!(
            "{scheme}://{}.{}{port}{base_path}",
            sandbox.id, state.config.base_domain
        ),
    )
}

/// A sandbox just made, with its key (shown once; stored hashed).
pub struct Created {
    pub sandbox: Arc<LiveSandbox>,
    pub api_key: String,
}

/// Checks `new` against the limits, stores the sandbox (the caller's) and
/// makes it live.
pub async fn create(state: &AppState, caller: &Caller, new: NewSandbox) -> ServiceResult<Created> {
    if state.config.sandbox_bundle.is_some() {
        return Err(ServiceError::Conflict(
            "this server serves the one sandbox of its bundle (single-sandbox mode) and makes no other"
                .to_owned(),
        ));
    }
    if new.own_namespace {
        caller.must_be_admin("give a sandbox a namespace of its own")?;
        if state.namespaces.is_none() {
            return Err(ServiceError::invalid(
                "/isolation",
                "isolation \"namespace\" is not available: this server has no [namespaces] settings (docs/operations.md#namespace-per-sandbox-isolation)",
            ));
        }
    }
    let project = projects::get(state, &new.project).await?;
    let revision = new.revision.unwrap_or(project.latest_revision);
    if revision == 0 || revision > project.latest_revision {
        return Err(ServiceError::NotFound(format!(
            "project \"{}\" has revisions 1 to {}; there is no revision {revision}",
            project.name, project.latest_revision
        )));
    }
    let quotas = &state.config.quotas;
    let max_ttl = if caller.is_admin() {
        state.config.limits.max_ttl_seconds
    } else {
        quotas.max_ttl_seconds
    };
    if let Some(ttl) = new.ttl_seconds
        && (ttl == 0 || ttl > max_ttl)
    {
        return Err(ServiceError::invalid(
            "/ttl_seconds",
            format!("ttl_seconds must be between 1 and {max_ttl}"),
        ));
    }
    let mut new = new;
    if !caller.is_admin() {
        // No developer's sandbox lives forever.
        new.ttl_seconds = new.ttl_seconds.or(Some(quotas.default_ttl_seconds));
        let live = list(state, caller, None).len();
        if live >= quotas.sandboxes {
            return Err(ServiceError::QuotaExceeded(format!(
                "quota sandboxes: {live} of {} live sandboxes in use; delete one first",
                quotas.sandboxes
            )));
        }
    }
    if new
        .seed
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.chars().count() > MAX_SEED_CHARS)
    {
        return Err(bad_seed());
    }
    if let Some(label) = &new.label
        && label.chars().count() > MAX_LABEL_CHARS
    {
        return Err(ServiceError::invalid(
            "/label",
            format!("label is longer than {MAX_LABEL_CHARS} characters"),
        ));
    }
    if let Some(limits) = &new.rate_limits {
        check_rate_limits(limits)?;
    }
    let compiled = projects::compiled_revision(state, &project.name, revision).await?;
    let id = new_sandbox_id();
    let (key, api_key) = super::keys::mint(
        &id,
        sbx_store::KeyKind::Secret,
        Some("default".to_owned()),
        sbx_store::KeyPermissions::default(),
    );
    let now = now_ms();
    let record = SandboxRecord {
        seed: new.seed.unwrap_or_else(|| id.to_string()),
        id,
        project: project.name,
        revision,
        key_hash: key.key_hash.clone(),
        auth: new.auth,
        label: new.label,
        created_at_ms: now,
        expires_at_ms: new
            .ttl_seconds
            .map(|ttl| now.saturating_add((ttl as i64).saturating_mul(1000))),
        // Its own server serves the revision it was given.
        pinned: new.revision.is_some() || new.own_namespace,
        env: new.env,
        chaos: None,
        scenario: None,
        clock_offset_ms: 0,
        clock_frozen_ms: None,
        seeded_at_ms: now,
        webhook_schedule: new.webhook_schedule,
        owner: caller.owner().cloned(),
        last_active_at_ms: None,
        rate_limits: new.rate_limits,
        isolation: new.own_namespace.then(|| sbx_store::Isolation {
            state: sbx_store::IsolationState::Provisioning,
            message: Some("waiting for the provisioner".to_owned()),
            changed_at_ms: now,
            instance_token: crate::runtime::ids::random_token(40),
        }),
    };
    state
        .store
        .create_sandbox(&record, std::slice::from_ref(&key))
        .await?;
    let keys = LiveKey::of(&key).into_iter().collect();
    let served_by = match record.isolation {
        Some(_) => None,
        None => serve_on_member(state, &record.id).await,
    };
    let sandbox = state
        .registry
        .insert(record, compiled, Vec::new(), keys, served_by);
    if let (Some(namespaces), Some(_)) = (&state.namespaces, sandbox.isolation()) {
        namespaces.kick.notify_one();
    }
    Ok(Created { sandbox, api_key })
}

/// Gives a new sandbox to the member serving the fewest, when sandboxes
/// are spread and one serves fewer than the holder; `None`: served here.
async fn serve_on_member(state: &AppState, id: &str) -> Option<sbx_store::Member> {
    let member = crate::runtime::members::choose(state).await?;
    match state.store.hand_over(id, None, Some(&member.replica)).await {
        Ok(Some(_)) => Some(member),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, sandbox = %id, "giving the sandbox to a member failed: served here");
            None
        }
    }
}

fn check_rate_limits(limits: &RateLimits) -> ServiceResult<()> {
    for (name, rate) in [
        ("per_key", limits.per_key),
        ("per_sandbox", limits.per_sandbox),
    ] {
        if let Some(problem) = rate.and_then(sbx_engine::project::Rate::problem) {
            return Err(ServiceError::invalid(
                &format!("/rate_limits/{name}"),
                format!("rate_limits.{name}: {problem}"),
            ));
        }
    }
    Ok(())
}

/// Gives the sandbox its own rate limits, or with `None` its project's again.
pub async fn set_rate_limits(
    state: &AppState,
    caller: &Caller,
    id: &str,
    limits: Option<RateLimits>,
) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    if let Some(limits) = &limits {
        check_rate_limits(limits)?;
    }
    state
        .store
        .set_sandbox_rate_limits(id, limits.as_ref())
        .await?;
    sandbox.set_own_rate_limits(limits);
    Ok(sandbox)
}

/// What a seed must be.
pub fn bad_seed() -> ServiceError {
    ServiceError::invalid(
        "/seed",
        format!(
            "seed must be a non-empty string of at most {MAX_SEED_CHARS} characters, or a number"
        ),
    )
}

/// A sandbox that exists, has not expired and is the caller's to see:
/// another developer's answers as if it did not exist.
pub fn live(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = state
        .registry
        .get(id)
        .filter(|s| s.expired_at(now_ms()).is_none())
        .filter(|s| caller.sees(s.owner_id()))
        .ok_or_else(|| ServiceError::NotFound(format!("sandbox \"{id}\" does not exist")))?;
    // Asked once held: a move waits for every holder of the sandbox.
    if state.moves.is_moving(id) {
        return Err(ServiceError::Moving(format!(
            "sandbox \"{id}\" is moving to another server; send the request again"
        )));
    }
    Ok(sandbox)
}

/// The caller's live sandboxes (an admin's: all), of one project or of all.
pub fn list(state: &AppState, caller: &Caller, project: Option<&str>) -> Vec<Arc<LiveSandbox>> {
    let now = now_ms();
    state
        .registry
        .all()
        .into_iter()
        .filter(|s| caller.sees(s.owner_id()))
        .filter(|s| project.is_none_or(|p| s.project == p))
        .filter(|s| s.expired_at(now).is_none())
        .collect()
}

/// Deletes a sandbox with its data.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<()> {
    live(state, caller, id)?;
    if !state.store.delete_sandbox(id).await? {
        return Err(ServiceError::NotFound(format!(
            "sandbox \"{id}\" does not exist"
        )));
    }
    if let (Some(removed), Some(namespaces)) = (state.registry.remove(id), &state.namespaces)
        && removed.isolation().is_some()
    {
        // Its namespace goes too.
        namespaces.kick.notify_one();
    }
    state.oauth.forget(id);
    state.receiver.forget(id);
    Ok(())
}

/// Back to the fixtures: every change made by requests is gone.
pub async fn reset(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    let _jobs = sandbox.jobs.lock().await;
    let seeded_at_ms = sandbox.now_ms();
    state.store.clear_resources(id, seeded_at_ms).await?;
    sandbox.reseed(seeded_at_ms);
    drop(_jobs);
    Ok(sandbox)
}

/// Loads records into the sandbox's collections, synthesizing missing
/// members; all or nothing. Returns the ids made, by collection.
pub async fn seed(
    state: &AppState,
    caller: &Caller,
    id: &str,
    records: Map<String, Value>,
    request_id: &str,
) -> ServiceResult<BTreeMap<String, Vec<String>>> {
    let sandbox = live(state, caller, id)?;
    let compiled = sandbox.serving().compiled;
    let (seed, records_state, now_ms) = (sandbox.seed, sandbox.state.clone(), sandbox.now_ms());
    // Seeding waits for the sandbox's write turn and synthesizes records:
    // not on an async worker.
    let changes = state
        .user_work
        .run(id, move || {
            sbx_engine::seed(&compiled, seed, &records_state, &records, now_ms)
        })
        .await?
        .map_err(|problems| {
            ServiceError::Invalid(
                problems
                    .into_iter()
                    .map(|p| FieldError::body(&format!("{}{}", p.file, p.pointer), p.message))
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
    let journal = Journal {
        changes,
        ..Default::default()
    };
    super::persist_call(state, id, journal, request_id).await?;
    Ok(created)
}

/// Replaces the sandbox's overrides of the project's environment.
pub async fn set_env(
    state: &AppState,
    caller: &Caller,
    id: &str,
    env: Map<String, Value>,
) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    state.store.set_sandbox_env(id, &env).await?;
    sandbox.set_env(env);
    Ok(sandbox)
}

/// Sets (or with `None` clears) the chaos profile every request without
/// `X-Chaos` gets.
pub async fn set_chaos(
    state: &AppState,
    caller: &Caller,
    id: &str,
    profile: Option<String>,
) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    let chaos = match profile {
        Some(text) => {
            let spec = ChaosSpec::parse(&text)
                .map_err(|message| ServiceError::invalid("/profile", message))?;
            Some(Arc::new(LiveChaos {
                text,
                spec: Arc::new(spec),
            }))
        }
        None => None,
    };
    state
        .store
        .set_sandbox_chaos(id, chaos.as_ref().map(|chaos| chaos.text.as_str()))
        .await?;
    sandbox.set_chaos(chaos);
    Ok(sandbox)
}

/// The scenarios one operation declares.
pub struct OperationScenarios {
    pub operation: String,
    pub method: String,
    pub path: String,
    pub scenarios: Vec<ScenarioSummary>,
}

/// Scenarios per operation of the revision the sandbox serves.
pub fn scenarios(sandbox: &LiveSandbox) -> Vec<OperationScenarios> {
    let compiled = sandbox.serving().compiled;
    let behaviours = &compiled.behaviours;
    compiled
        .model
        .operations
        .iter()
        .enumerate()
        .map(|(i, op)| (OperationIndex(i), op))
        .filter(|(i, _)| !behaviours.scenarios_of(*i).is_empty())
        .map(|(i, op)| OperationScenarios {
            operation: op.id.clone(),
            method: op.method.clone(),
            path: op.path.clone(),
            scenarios: behaviours.scenario_summaries(i),
        })
        .collect()
}

/// A new time to live, counted from now (real time): a developer's at most
/// its quota's longest; an admin may also end it never (`None`).
pub async fn extend(
    state: &AppState,
    caller: &Caller,
    id: &str,
    ttl_seconds: Option<u64>,
) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    let max_ttl = if caller.is_admin() {
        state.config.limits.max_ttl_seconds
    } else {
        state.config.quotas.max_ttl_seconds
    };
    let expires_at_ms = match ttl_seconds {
        None if caller.is_admin() => None,
        None => {
            return Err(ServiceError::invalid(
                "/ttl_seconds",
                "a developer's sandbox needs a time to live",
            ));
        }
        Some(ttl) if ttl == 0 || ttl > max_ttl => {
            return Err(ServiceError::invalid(
                "/ttl_seconds",
                format!("ttl_seconds must be between 1 and {max_ttl}"),
            ));
        }
        Some(ttl) => Some(
            now_ms().saturating_add(i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX)),
        ),
    };
    if !state.store.set_sandbox_expiry(id, expires_at_ms).await? {
        return Err(ServiceError::NotFound(format!(
            "sandbox \"{id}\" does not exist"
        )));
    }
    sandbox.set_expires_at_ms(expires_at_ms);
    if let (Some(namespaces), Some(_)) = (&state.namespaces, sandbox.isolation()) {
        // Its namespace notes when it expires.
        namespaces.reapply(&sandbox.id);
    }
    Ok(sandbox)
}

/// Sets (or with `None` clears) the scenario every operation that
/// declares it answers with.
pub async fn set_scenario(
    state: &AppState,
    caller: &Caller,
    id: &str,
    scenario: Option<&str>,
) -> ServiceResult<Arc<LiveSandbox>> {
    let sandbox = live(state, caller, id)?;
    if let Some(name) = scenario {
        let known = super::oauth::SCENARIOS.contains(&name)
            || scenarios(&sandbox)
                .iter()
                .any(|op| op.scenarios.iter().any(|s| s.name == name));
        if !known {
            return Err(ServiceError::invalid(
                "/scenario",
                format!("no operation of this sandbox declares a scenario {name:?}"),
            ));
        }
    }
    state.store.set_sandbox_scenario(id, scenario).await?;
    sandbox.set_scenario(scenario);
    Ok(sandbox)
}

/// Removes developers' sandboxes that answered no request for
/// `quotas.inactive_days` (admins' stay), each audited; how many.
pub async fn remove_inactive(state: &AppState, now: i64) -> ServiceResult<usize> {
    let days = state.config.quotas.inactive_days;
    if days == 0 {
        return Ok(0);
    }
    let horizon = now - i64::from(days) * 24 * 3600 * 1000;
    let idle: Vec<_> = state
        .registry
        .all()
        .into_iter()
        .filter(|s| s.owner.is_some() && s.served_here() && s.last_active_ms() < horizon)
        .collect();
    for sandbox in &idle {
        let entry = super::audit::by_system(
            "DELETE /api/v1/sandboxes/{id}",
            format!("/api/v1/sandboxes/{}", sandbox.id),
            204,
            &format!("inactive: no request for {days} days"),
            sandbox.owner_id().cloned(),
        );
        super::audit::record(state, entry).await;
        delete(state, &Caller::System, &sandbox.id).await?;
    }
    if !idle.is_empty() {
        tracing::info!(count = idle.len(), "inactive sandboxes removed");
    }
    Ok(idle.len())
}

/// Removes the sandboxes whose time to live ended by `now` (rows and
/// memory, each audited first, so none is gone unaccounted), leaving
/// tombstones that answer "expired" for a while; forgets old tombstones.
pub async fn expire(state: &AppState, now: i64) -> ServiceResult<usize> {
    let ids = state.store.expire_sandboxes(now).await?;
    for id in &ids {
        let owner = state.registry.get(id).and_then(|s| s.owner_id().cloned());
        let entry = super::audit::by_system(
            "DELETE /api/v1/sandboxes/{id}",
            format!("/api/v1/sandboxes/{id}"),
            204,
            "expired: its time to live ended",
            owner,
        );
        super::audit::record(state, entry).await;
        state.registry.remove(id);
        state.oauth.forget(id);
    }
    if !ids.is_empty() {
        tracing::info!(count = ids.len(), "expired sandboxes removed");
    }
    state
        .store
        .prune_tombstones(now - TOMBSTONE_RETENTION_MS)
        .await?;
    Ok(ids.len())
}
