//! Code sessions: create, read, extend and end them, and run code in them,
//! as the caller (a developer sees and uses only their own).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use sbx_sessions::{
    BoxSpec, Ended, GroupLimits, HandlerResult, Language, Limits, Output, SessionBox, handler,
};
use sbx_store::AccountId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{ServiceError, ServiceResult, caller::Caller};
use crate::{
    app::{AppState, now_ms, rfc3339},
    runtime::{
        ids::random_token,
        sessions::{EndReason, Execution, LiveSession, POOL_SIZE, Pooled},
    },
};

/// Bounds on what a session may ask for.
pub const MAX_LIFETIME_SECONDS: u64 = 24 * 3600;
pub const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
pub const DEFAULT_IDLE_SECONDS: u64 = 600;
pub const MAX_EXECUTION_SECONDS: u64 = 600;
pub const DEFAULT_EXECUTION_SECONDS: u64 = 30;
pub const MAX_CPU_SECONDS: u64 = 600;
pub const MAX_PROCESSES: u64 = 256;
pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_TMP_BYTES: u64 = 512 * 1024 * 1024;
pub const MAX_ENV_VARS: usize = 64;
pub const MAX_ENV_VALUE_BYTES: usize = 4096;
pub const MAX_CODE_BYTES: usize = 256 * 1024;
pub const MAX_COMMAND_BYTES: usize = 120 * 1024;
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
pub const MAX_MEMORY_BYTES: u64 = 8 * 1024 * 1024 * 1024;
pub const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;
pub const DEFAULT_CPU: f64 = 1.0;
pub const MAX_CPU: f64 = 64.0;
/// Executions a session remembers (the oldest are forgotten).
pub const EXECUTIONS_KEPT: usize = 100;

/// Limits of a session and its runs; each unset one takes its default.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU the whole session may use, in cores (`0.5`: half a core, as a
    /// kernel quota); default 1, ≤ 64.
    pub cpu: Option<f64>,
    /// Memory of the whole session, swap included, in bytes; past it the
    /// kernel kills a process and the run ends `oom`. Default 512 MiB,
    /// from 16 MiB to 8 GiB.
    pub memory_bytes: Option<u64>,
    /// CPU seconds per run (`SIGXCPU` past them: `cpu_limit`), ≤ 600.
    pub cpu_seconds: Option<u64>,
    /// Processes (and threads) the session may run at once, ≤ 256.
    pub pids: Option<u64>,
    /// The workspace's size, in bytes: a filesystem of its own, which
    /// refuses writes past it (`No space left on device`); also the largest
    /// file a run may write (`file_limit`). Default 256 MiB, ≤ 1 GiB.
    pub disk_bytes: Option<u64>,
    /// Size of the run's private `/tmp`, in bytes, ≤ 512 MiB.
    pub tmp_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// `python` (3.11+), `node` (20+), `shell`, or a template of yours
    /// (`POST /templates`: one of them with packages installed).
    pub template: String,
    /// Seconds until the session ends whatever it does; default 3600, ≤ 86400.
    pub lifetime_seconds: Option<u64>,
    /// Seconds without a request and without a running execution before
    /// it ends; default 600.
    pub idle_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub resources: Resources,
    /// Variables every run sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A snapshot of yours (`POST /sessions/{id}/snapshots`) to start the
    /// workspace from.
    pub snapshot: Option<String>,
    /// `"none"` (the default: no network at all), or `{"allow": [hosts]}`:
    /// HTTP and HTTPS to those hosts (`pypi.org`, `*.pythonhosted.org`)
    /// through a filtering proxy, never to a loopback, private or
    /// link-local address.
    #[schema(value_type = Option<Object>)]
    pub network: Option<Network>,
}

/// A session's network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Network {
    /// `"none"`.
    Named(String),
    /// `{"allow": ["pypi.org", "*.pythonhosted.org"]}`.
    Allow { allow: Vec<String> },
}

/// Whether a session still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Running,
    Ended,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// `python`, `node`, `shell`, or a template's name.
    pub template: String,
    pub status: SessionStatus,
    /// Why it ended, when it has.
    pub reason: Option<EndReason>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub ended_at: Option<String>,
    pub idle_timeout_seconds: u64,
    pub last_active_at: Option<String>,
    pub running_executions: usize,
    pub executions: usize,
    /// The limits in force, defaults filled in.
    pub resources: Resources,
    /// `"none"`, or the hosts it may reach.
    #[schema(value_type = Object)]
    pub network: Network,
    /// What happened, for a session that ended `oom` or `runtime_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The sandbox whose function behaviours it runs, for a session the
    /// server started for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

fn missing(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("session {id:?} does not exist"))
}

fn bounded(value: Option<u64>, default: u64, max: u64, pointer: &str) -> ServiceResult<u64> {
    match value.unwrap_or(default) {
        0 => Err(ServiceError::invalid(pointer, "must be at least 1")),
        n if n > max => Err(ServiceError::invalid(
            pointer,
            format!("must be at most {max}"),
        )),
        n => Ok(n),
    }
}

fn checked_env(
    env: BTreeMap<String, String>,
    pointer: &str,
) -> ServiceResult<Vec<(String, String)>> {
    if env.len() > MAX_ENV_VARS {
        return Err(ServiceError::invalid(
            pointer,
            format!("at most {MAX_ENV_VARS} variables"),
        ));
    }
    for (name, value) in &env {
        if !sbx_sessions::jail::valid_env_name(name) {
            return Err(ServiceError::invalid(
                &format!("{pointer}/{name}"),
                "a variable name is letters, digits and _, not starting with a digit",
            ));
        }
        if value.len() > MAX_ENV_VALUE_BYTES || value.contains('\0') {
            return Err(ServiceError::invalid(
                &format!("{pointer}/{name}"),
                format!("a value is at most {MAX_ENV_VALUE_BYTES} bytes, without NUL"),
            ));
        }
    }
    Ok(env.into_iter().collect())
}

/// Starts a session: a workspace owned by a host uid of its own.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    new: NewSession,
) -> ServiceResult<SessionView> {
    create_serving(state, caller, new, None).await
}

/// [`create`], for a session that runs `sandbox`'s function behaviours
/// (`None`: a session of its own); its workers are runs of its agent.
pub async fn create_serving(
    state: &AppState,
    caller: &Caller,
    new: NewSession,
    sandbox: Option<String>,
) -> ServiceResult<SessionView> {
    state
        .sessions
        .runtime()
        .and_then(|runtime| runtime.check())
        .map_err(ServiceError::Unavailable)?;
    let lifetime = bounded(
        new.lifetime_seconds,
        DEFAULT_LIFETIME_SECONDS,
        MAX_LIFETIME_SECONDS,
        "/lifetime_seconds",
    )?;
    let idle = bounded(
        new.idle_timeout_seconds,
        DEFAULT_IDLE_SECONDS.min(lifetime),
        lifetime,
        "/idle_timeout_seconds",
    )?;
    let defaults = Limits::default();
    let resources = &new.resources;
    let limits = Limits {
        cpu_seconds: bounded(
            resources.cpu_seconds,
            defaults.cpu_seconds,
            MAX_CPU_SECONDS,
            "/resources/cpu_seconds",
        )?,
        processes: bounded(
            resources.pids,
            defaults.processes,
            MAX_PROCESSES,
            "/resources/pids",
        )?,
        file_bytes: bounded(
            resources.disk_bytes,
            defaults.file_bytes,
            MAX_FILE_BYTES,
            "/resources/disk_bytes",
        )?,
        tmp_bytes: bounded(
            resources.tmp_bytes,
            defaults.tmp_bytes,
            MAX_TMP_BYTES,
            "/resources/tmp_bytes",
        )?,
        open_files: defaults.open_files,
    };
    let cpu = resources.cpu.unwrap_or(DEFAULT_CPU);
    if !(cpu > 0.0 && cpu <= MAX_CPU) {
        return Err(ServiceError::invalid(
            "/resources/cpu",
            format!("must be above 0 and at most {MAX_CPU} cores"),
        ));
    }
    let memory_bytes = bounded(
        resources.memory_bytes,
        DEFAULT_MEMORY_BYTES,
        MAX_MEMORY_BYTES,
        "/resources/memory_bytes",
    )?;
    if memory_bytes < MIN_MEMORY_BYTES {
        return Err(ServiceError::invalid(
            "/resources/memory_bytes",
            format!("must be at least {MIN_MEMORY_BYTES}"),
        ));
    }
    let group_limits = GroupLimits {
        memory_bytes,
        pids: limits.processes,
        cpu_cores: cpu,
    };
    let env = checked_env(new.env, "/env")?;
    let template = super::templates::resolve(state, caller, &new.template)?;
    let allowlist = match &new.network {
        None => None,
        Some(Network::Named(name)) if name == "none" => None,
        Some(Network::Named(_)) => {
            return Err(ServiceError::invalid(
                "/network",
                "\"none\", or {\"allow\": [hosts]}",
            ));
        }
        Some(Network::Allow { allow }) => Some(
            crate::runtime::session_egress::Allowlist::new(allow)
                .map_err(|e| ServiceError::invalid("/network/allow", e))?,
        ),
    };
    if !caller.is_admin() {
        let quota = state.config.quotas.sessions;
        let live = list(state, caller).len();
        if live >= quota {
            return Err(ServiceError::QuotaExceeded(format!(
                "quota sessions: {live} of {quota} live sessions in use; end one first"
            )));
        }
    }
    let sessions = &state.sessions;
    // A ready session serves a create that asks for nothing it lacks.
    let poolable = template.layer.is_none()
        && allowlist.is_none()
        && sandbox.is_none()
        && limits == Limits::default()
        && group_limits == default_group_limits();
    let pool = poolable.then(|| template.name.clone());
    let (id, uid, start) = match pool.as_deref().and_then(|t| sessions.claim(t)) {
        Some(ready) => (ready.id, ready.uid, Start::Pooled(ready.boxed)),
        None => {
            let mut uid = sessions.uids.take();
            if uid.is_none()
                && let Some(ready) = sessions.release_pooled()
            {
                ready.discard().await;
                uid = sessions.uids.take();
            }
            let uid = uid.ok_or_else(|| {
                ServiceError::Conflict(
                    "every session slot of this server is in use; end a session or try later"
                        .into(),
                )
            })?;
            (format!("ses_{}", random_token(16)), uid, Start::New)
        }
    };
    let now = now_ms();
    let session = open(
        state,
        Opening {
            id,
            owner: caller.owner().cloned(),
            template,
            created_at_ms: now,
            expires_at_ms: now + lifetime as i64 * 1000,
            idle_timeout_ms: idle as i64 * 1000,
            limits,
            group_limits,
            env,
            allowlist,
            uid,
            start,
            sandbox,
        },
    )
    .await?;
    if let Some(template) = &pool {
        refill(state, template);
    }
    let restored = match &new.snapshot {
        Some(name) => super::session_files::restore(state, caller, &session, name)
            .await
            .map(|_| ()),
        None => Ok(()),
    };
    if let Err(error) = restored {
        discard(&session).await;
        return Err(error);
    }
    hold(state, session).await
}

/// What a session starts (or resumes) with, checked.
struct Opening {
    id: String,
    owner: Option<AccountId>,
    template: super::templates::Resolved,
    created_at_ms: i64,
    expires_at_ms: i64,
    idle_timeout_ms: i64,
    limits: Limits,
    group_limits: GroupLimits,
    env: Vec<(String, String)>,
    allowlist: Option<crate::runtime::session_egress::Allowlist>,
    uid: sbx_sessions::uids::UidSlot,
    start: Start,
    /// The sandbox whose functions it runs.
    sandbox: Option<String>,
}

/// Where a session's box and workspace come from.
enum Start {
    /// Made now.
    New,
    /// A previous process's: the workspace is there, files and all.
    Resumed,
    /// Made ahead by the pool.
    Pooled(Arc<dyn SessionBox>),
}

/// The limits a session gets when it asks for none (the pool's).
fn default_group_limits() -> GroupLimits {
    GroupLimits {
        memory_bytes: DEFAULT_MEMORY_BYTES,
        pids: Limits::default().processes,
        cpu_cores: DEFAULT_CPU,
    }
}

/// Readies the sessions' folder (see [`crate::runtime::sessions::prepare`])
/// and, unless resuming, makes a session's workspace: `(path, uid, bytes)`.
async fn make_workspace(state: &AppState, made: Option<(PathBuf, u32, u64)>) -> ServiceResult<()> {
    let root = state.sessions.root.clone();
    // Held to the end even if the caller is cut short (a stop): the
    // sessions' clean-up on drop then runs after, and finds what it made.
    let held = state.clone();
    tokio::task::spawn_blocking(move || {
        let _held = held;
        crate::runtime::sessions::prepare(&root)?;
        match made {
            Some((path, uid, bytes)) => sbx_sessions::workspace::make(&path, uid, bytes),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
    .map_err(|e| {
        ServiceError::Internal(anyhow::Error::new(e).context("making the session's workspace"))
    })
}

/// Opens a session's box in the configured runtime.
async fn open_box(state: &AppState, spec: BoxSpec) -> ServiceResult<Arc<dyn SessionBox>> {
    let runtime = state
        .sessions
        .runtime()
        .map_err(ServiceError::Unavailable)?
        .clone();
    runtime.open(spec).await.map_err(|error| {
        ServiceError::Internal(anyhow::anyhow!(error).context("opening the session's box"))
    })
}

/// Readies a session's workspace, egress proxy and box; not yet held
/// (see [`hold`]).
async fn open(state: &AppState, opening: Opening) -> ServiceResult<Arc<LiveSession>> {
    let sessions = &state.sessions;
    let id = opening.id;
    let workspace = sessions.root.join(&id);
    let owner_uid = opening.uid.uid();
    let made_workspace = matches!(opening.start, Start::New);
    let made = made_workspace.then(|| (workspace.clone(), owner_uid, opening.limits.file_bytes));
    make_workspace(state, made).await?;
    let undo_workspace = || {
        if made_workspace {
            let _ = sbx_sessions::workspace::remove(&workspace);
        }
    };
    let group_limits = opening.group_limits;
    let stop = CancellationToken::new();
    let egress = match &opening.allowlist {
        Some(allowlist) => {
            let socket = crate::runtime::sessions::egress_path(&sessions.root, &id);
            let opened = open_egress(state, &socket, allowlist.clone(), owner_uid, &stop);
            if let Err(error) = opened {
                stop.cancel();
                undo_workspace();
                return Err(error);
            }
            Some(socket)
        }
        None => None,
    };
    let boxed = match opening.start {
        Start::Pooled(boxed) => boxed,
        Start::New | Start::Resumed => {
            let spec = BoxSpec {
                id: id.clone(),
                workspace: workspace.clone(),
                uid: owner_uid,
                limits: opening.limits,
                group: group_limits,
                egress,
                layer: opening.template.layer.clone(),
            };
            match open_box(state, spec).await {
                Ok(boxed) => boxed,
                Err(error) => {
                    stop.cancel();
                    undo_workspace();
                    return Err(error);
                }
            }
        }
    };
    Ok(Arc::new(LiveSession {
        id,
        owner: opening.owner,
        template: opening.template.language,
        template_name: opening.template.name,
        layer: opening.template.layer,
        created_at_ms: opening.created_at_ms,
        expires_at_ms: AtomicI64::new(opening.expires_at_ms),
        idle_timeout_ms: opening.idle_timeout_ms,
        last_active_ms: AtomicI64::new(now_ms()),
        running: AtomicUsize::new(0),
        workspace,
        limits: opening.limits,
        cpu: group_limits.cpu_cores,
        memory_bytes: group_limits.memory_bytes,
        env: opening.env,
        executions: Mutex::default(),
        stop,
        uid: opening.uid,
        boxed,
        allowlist: opening.allowlist,
        sandbox: opening.sandbox,
    }))
}

/// Holds an opened session (its record written first); what [`open`]
/// readied is undone when the record cannot be written.
async fn hold(state: &AppState, session: Arc<LiveSession>) -> ServiceResult<SessionView> {
    let shown = view(&session);
    if let Err(error) = state.sessions.insert(session.clone(), shown.clone()) {
        discard(&session).await;
        return Err(ServiceError::Internal(
            anyhow::Error::new(error).context("writing the session's record"),
        ));
    }
    tracing::info!(session = %session.id, template = %session.template_name, "session started");
    Ok(shown)
}

/// Undoes [`open`] for a session never held.
async fn discard(session: &LiveSession) {
    session.stop.cancel();
    session.boxed.close().await;
    let _ = sbx_sessions::workspace::remove(&session.workspace);
}

/// Takes up again the sessions a crashed server left (see
/// [`crate::runtime::sessions::Sessions::new`]): each keeps its id, files,
/// uid, limits, network, variables and lifetime. Its executions died with
/// that server and are not listed; one that cannot be resumed is `lost`.
pub async fn resume(state: &AppState) {
    for record in state.sessions.take_resumable() {
        let id = record.view.id.clone();
        if let Some(sandbox) = &record.view.sandbox {
            // Functions keep nothing in their session: the next call
            // starts a new one.
            tracing::info!(session = %id, %sandbox, "a function session is not resumed");
            state.sessions.lose(record, now_ms());
            continue;
        }
        match resume_one(state, &record).await {
            Ok(()) => tracing::info!(session = %id, "session resumed after a restart"),
            Err(error) => {
                tracing::warn!(%error, session = %id, "a session could not be resumed");
                state.sessions.lose(record, now_ms());
            }
        }
    }
}

async fn resume_one(
    state: &AppState,
    record: &crate::runtime::sessions::EndedSession,
) -> ServiceResult<()> {
    let unresumable = |why: String| ServiceError::Internal(anyhow::anyhow!(why));
    let unrecorded = |what: &str| unresumable(format!("its record has no {what}"));
    let (view, Some(resume)) = (&record.view, &record.resume) else {
        return Err(unrecorded("resume part"));
    };
    let resources = &view.resources;
    let defaults = Limits::default();
    let limits = Limits {
        cpu_seconds: resources
            .cpu_seconds
            .ok_or_else(|| unrecorded("cpu_seconds"))?,
        processes: resources.pids.ok_or_else(|| unrecorded("pids"))?,
        file_bytes: resources
            .disk_bytes
            .ok_or_else(|| unrecorded("disk_bytes"))?,
        tmp_bytes: resources.tmp_bytes.ok_or_else(|| unrecorded("tmp_bytes"))?,
        open_files: defaults.open_files,
    };
    let group_limits = GroupLimits {
        memory_bytes: resources
            .memory_bytes
            .ok_or_else(|| unrecorded("memory_bytes"))?,
        pids: limits.processes,
        cpu_cores: resources.cpu.ok_or_else(|| unrecorded("cpu"))?,
    };
    let allowlist = match &view.network {
        Network::Allow { allow } => Some(
            crate::runtime::session_egress::Allowlist::new(allow)
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?,
        ),
        Network::Named(_) => None,
    };
    let uid = state.sessions.uids.take_uid(resume.uid).ok_or_else(|| {
        unresumable(format!(
            "its uid {} is outside this server's range or held",
            resume.uid
        ))
    })?;
    let session = open(
        state,
        Opening {
            id: view.id.clone(),
            owner: record.owner.clone(),
            template: super::templates::resolve(state, &Caller::System, &view.template)?,
            created_at_ms: resume.created_at_ms,
            expires_at_ms: resume.expires_at_ms,
            idle_timeout_ms: view.idle_timeout_seconds as i64 * 1000,
            limits,
            group_limits,
            env: resume.env.clone(),
            allowlist,
            uid,
            start: Start::Resumed,
            sandbox: view.sandbox.clone(),
        },
    )
    .await?;
    hold(state, session).await.map(|_| ())
}

/// Fills `template`'s pool of ready sessions (in the background, once at
/// a time), leaving uids for creates the pool cannot serve.
fn refill(state: &AppState, template: &str) {
    let sessions = &state.sessions;
    if sessions.pooled(template) >= POOL_SIZE || !sessions.begin_refill(template) {
        return;
    }
    let (held, template) = (state.clone(), template.to_owned());
    state.workers.spawn(async move {
        let sessions = &held.sessions;
        while sessions.pooled(&template) < POOL_SIZE && sessions.uids.free() > 2 * POOL_SIZE {
            match make_ready(&held).await {
                Ok(ready) => sessions.keep_pooled(&template, ready),
                Err(error) => {
                    tracing::warn!(%error, %template, "a ready session could not be made");
                    break;
                }
            }
        }
        sessions.refilled(&template);
    });
}

/// A session's workspace and box with the default limits.
async fn make_ready(state: &AppState) -> ServiceResult<Pooled> {
    let sessions = &state.sessions;
    let uid = sessions
        .uids
        .take()
        .ok_or_else(|| ServiceError::Conflict("no free uid".into()))?;
    let id = format!("ses_{}", random_token(16));
    let workspace = sessions.root.join(&id);
    let limits = Limits::default();
    make_workspace(
        state,
        Some((workspace.clone(), uid.uid(), limits.file_bytes)),
    )
    .await?;
    let spec = BoxSpec {
        id: id.clone(),
        workspace: workspace.clone(),
        uid: uid.uid(),
        limits,
        group: default_group_limits(),
        egress: None,
        layer: None,
    };
    match open_box(state, spec).await {
        Ok(boxed) => Ok(Pooled {
            id,
            uid,
            workspace,
            boxed,
        }),
        Err(error) => {
            let _ = sbx_sessions::workspace::remove(&workspace);
            Err(error)
        }
    }
}

/// Serves the session's egress proxy on `socket`, reachable by its uid only.
fn open_egress(
    state: &AppState,
    socket: &std::path::Path,
    allowlist: crate::runtime::session_egress::Allowlist,
    uid: u32,
    stop: &CancellationToken,
) -> ServiceResult<()> {
    let mut policy = state
        .config
        .egress_policy()
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e.rule)))?;
    // Sessions never reach loopback or private ranges by default, whatever
    // --allow-private-egress says for forwarding; `egress_allow` still
    // names what an operator lets them reach.
    policy.allow_private = false;
    let served =
        crate::runtime::session_egress::serve(socket, allowlist, Arc::new(policy), stop.clone())
            .and_then(|()| std::os::unix::fs::chown(socket, Some(uid), Some(uid)))
            .and_then(|()| {
                std::fs::set_permissions(
                    socket,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
            });
    served.map_err(|e| {
        ServiceError::Internal(anyhow::Error::new(e).context("opening the session's egress proxy"))
    })
}

fn view(session: &LiveSession) -> SessionView {
    SessionView {
        id: session.id.clone(),
        template: session.template_name.clone(),
        status: SessionStatus::Running,
        reason: None,
        created_at: rfc3339(session.created_at_ms),
        expires_at: Some(rfc3339(session.expires_at_ms.load(Ordering::Relaxed))),
        ended_at: None,
        idle_timeout_seconds: (session.idle_timeout_ms / 1000) as u64,
        last_active_at: Some(rfc3339(session.last_active_ms.load(Ordering::Relaxed))),
        running_executions: session.running.load(Ordering::Relaxed),
        executions: session.executions().len(),
        resources: Resources {
            cpu: Some(session.cpu),
            memory_bytes: Some(session.memory_bytes),
            cpu_seconds: Some(session.limits.cpu_seconds),
            pids: Some(session.limits.processes),
            disk_bytes: Some(session.limits.file_bytes),
            tmp_bytes: Some(session.limits.tmp_bytes),
        },
        network: session.allowlist.as_ref().map_or_else(
            || Network::Named("none".into()),
            |list| Network::Allow {
                allow: list.hosts().to_vec(),
            },
        ),
        sandbox: session.sandbox.clone(),
        detail: None,
    }
}

/// The caller's live session `id`, noted as active.
pub(super) fn live(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<Arc<LiveSession>> {
    let session = state
        .sessions
        .get(id)
        .filter(|s| caller.sees(s.owner.as_ref()))
        .ok_or_else(|| missing(id))?;
    session.touch(now_ms());
    Ok(session)
}

/// A session, live or recently ended (with why).
pub fn get(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<SessionView> {
    if let Ok(session) = live(state, caller, id) {
        return Ok(view(&session));
    }
    let ended = state
        .sessions
        .ended(id)
        .filter(|e| caller.sees(e.owner.as_ref()))
        .ok_or_else(|| missing(id))?;
    Ok(ended.view)
}

/// The caller's live sessions (an admin's: everyone's), newest first.
pub fn list(state: &AppState, caller: &Caller) -> Vec<SessionView> {
    let mut sessions: Vec<_> = state
        .sessions
        .all()
        .into_iter()
        .filter(|s| caller.sees(s.owner.as_ref()))
        .collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at_ms));
    sessions.iter().map(|s| view(s)).collect()
}

/// Moves the end of a session's life to `lifetime_seconds` from now.
pub fn extend(
    state: &AppState,
    caller: &Caller,
    id: &str,
    lifetime_seconds: u64,
) -> ServiceResult<SessionView> {
    let seconds = bounded(
        Some(lifetime_seconds),
        0,
        MAX_LIFETIME_SECONDS,
        "/lifetime_seconds",
    )?;
    let session = live(state, caller, id)?;
    session
        .expires_at_ms
        .store(now_ms() + seconds as i64 * 1000, Ordering::Relaxed);
    let shown = view(&session);
    // A server that crashes from now on resumes it with its new lifetime.
    state
        .sessions
        .write_record(&session, shown.clone())
        .map_err(|e| {
            ServiceError::Internal(anyhow::Error::new(e).context("writing the session's record"))
        })?;
    Ok(shown)
}

/// Ends a session: its runs are killed and its workspace removed.
pub fn delete(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<()> {
    let session = live(state, caller, id)?;
    end(state, &session, EndReason::Deleted);
    Ok(())
}

pub(super) fn end(state: &AppState, session: &LiveSession, reason: EndReason) {
    end_saying(state, session, reason, None);
}

fn end_saying(state: &AppState, session: &LiveSession, reason: EndReason, detail: Option<String>) {
    let now = now_ms();
    let mut last = view(session);
    last.detail = detail;
    last.status = SessionStatus::Ended;
    last.reason = Some(reason);
    last.ended_at = Some(rfc3339(now));
    last.expires_at = None;
    state.sessions.end(&session.id, reason, last, now);
}

/// Ends every session whose lifetime ran out or that sat idle, and reaps
/// what jails that ended left to this process.
pub async fn reap(state: &AppState, now_ms: i64) {
    for session in state.sessions.all() {
        if let Some(reason) = session.due(now_ms) {
            end(state, &session, reason);
        } else if let Some((reason, detail)) = session.broken(&state.sessions.root).await {
            tracing::warn!(session = %session.id, ?reason, "{detail}");
            end_saying(state, &session, reason, Some(detail));
        }
    }
    state.sessions.reap_orphans();
}

/// How code is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// As a program: its output and exit code.
    #[default]
    Script,
    /// As a Lambda function: `handler(event, context)` called with an API
    /// Gateway HTTP API event; its return value is the `result`.
    Handler,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExecution {
    /// `script` (the default) or `handler`.
    pub mode: Option<Mode>,
    /// Handler mode: the API Gateway HTTP API event (payload 2.0); what it
    /// leaves out takes API Gateway's shape (a `GET /`).
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// Code in `language` (one of `code` and `command`).
    pub code: Option<String>,
    /// A shell command line (one of `code` and `command`).
    pub command: Option<String>,
    /// `python`, `node` or `shell`; the session's template by default.
    #[schema(value_type = Option<String>)]
    pub language: Option<Language>,
    /// Wall-clock seconds before it is killed (`timeout`); default 30, ≤ 600.
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Answer when it ends (the default), or at once with its id, to read
    /// its stream.
    pub wait: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutionView {
    pub id: String,
    pub session: String,
    pub mode: Mode,
    #[schema(value_type = String)]
    pub language: Language,
    pub created_at: String,
    /// `running`, or how it ended: `ok`, `error`, `timeout`, `oom`,
    /// `cpu_limit`, `file_limit`, `killed`, `failed`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: Option<u64>,
    /// Most memory its processes held at once, in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time its processes used, user and system.
    pub cpu_ms: Option<u64>,
    pub stdout: String,
    pub stderr: String,
    pub dropped_output_bytes: u64,
    /// Handler mode: the `response` (`statusCode`, `headers`, `body`,
    /// `isBase64Encoded`, `cookies`) or the `error` the handler raised.
    #[schema(value_type = Option<Object>)]
    pub result: Option<HandlerResult>,
    /// Why it could not start, when it could not.
    pub error: Option<String>,
    /// Its events as server-sent events, resumable with `Last-Event-ID`.
    pub stream_url: String,
}

fn execution_view(session: &str, execution: &Execution) -> ExecutionView {
    let ended: Option<Ended> = execution.output.ended();
    let (stdout, stderr) = execution.output.texts();
    let status = ended.as_ref().map_or_else(
        || "running".to_owned(),
        |e| {
            serde_json::to_value(e.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        },
    );
    ExecutionView {
        id: execution.id.clone(),
        session: session.to_owned(),
        mode: execution.mode,
        language: execution.language,
        created_at: rfc3339(execution.created_at_ms),
        status,
        exit_code: ended.as_ref().and_then(|e| e.exit_code),
        signal: ended.as_ref().and_then(|e| e.signal),
        duration_ms: ended.as_ref().map(|e| e.duration_ms),
        peak_memory_bytes: ended.as_ref().and_then(|e| e.peak_memory_bytes),
        cpu_ms: ended.as_ref().and_then(|e| e.cpu_ms),
        stdout,
        stderr,
        dropped_output_bytes: ended.as_ref().map_or(0, |e| e.dropped_output_bytes),
        result: execution.output.result(),
        error: ended.and_then(|e| e.error),
        stream_url: format!(
            "/api/v1/sessions/{session}/executions/{}/stream",
            execution.id
        ),
    }
}

/// Starts a run in the session; answers when it ends, or at once when
/// `wait` is false.
pub async fn execute(
    state: &AppState,
    caller: &Caller,
    id: &str,
    new: NewExecution,
) -> ServiceResult<ExecutionView> {
    let session = live(state, caller, id)?;
    let language = new.language.unwrap_or(session.template);
    let mode = new.mode.unwrap_or_default();
    let (language, source) = match (new.code, new.command) {
        (Some(code), None) => (language, code),
        (None, Some(command)) if mode == Mode::Script => (Language::Shell, command),
        (None, Some(_)) => {
            return Err(ServiceError::invalid(
                "/command",
                "handler mode runs code (a module defining handler), not a command",
            ));
        }
        _ => {
            return Err(ServiceError::invalid(
                "/code",
                "give either code or command",
            ));
        }
    };
    let pointer = if language == Language::Shell && mode == Mode::Script {
        "/command"
    } else {
        "/code"
    };
    // A shell command is an argument: the kernel bounds one at 128 KiB.
    let max = if language == Language::Shell {
        MAX_COMMAND_BYTES
    } else {
        MAX_CODE_BYTES
    };
    if source.len() > max {
        return Err(ServiceError::invalid(
            pointer,
            format!("at most {max} bytes"),
        ));
    }
    if source.contains('\0') {
        return Err(ServiceError::invalid(pointer, "must not contain NUL"));
    }
    if mode == Mode::Script && new.event.is_some() {
        return Err(ServiceError::invalid(
            "/event",
            "an event is for handler mode (\"mode\": \"handler\")",
        ));
    }
    let timeout = bounded(
        new.timeout_seconds,
        DEFAULT_EXECUTION_SECONDS,
        MAX_EXECUTION_SECONDS,
        "/timeout_seconds",
    )?;
    let mut env = session.env.clone();
    env.extend(checked_env(new.env, "/env")?);
    let execution_id = format!("exe_{}", random_token(16));
    let now = now_ms();
    let mut program = match mode {
        Mode::Script => language.program(&source),
        Mode::Handler => {
            if !session.boxed.shares_workspace() {
                return Err(ServiceError::Unavailable(
                    super::session_files::NO_SHARED_WORKSPACE.into(),
                ));
            }
            let event = new.event.unwrap_or(Value::Null);
            if !(event.is_object() || event.is_null()) {
                return Err(ServiceError::invalid(
                    "/event",
                    "an API Gateway event is an object",
                ));
            }
            let invocation = handler::Invocation {
                request_id: &execution_id,
                memory_mb: session.memory_bytes / (1024 * 1024),
                deadline_ms: now + timeout as i64 * 1000,
            };
            let event = handler::event(event, &execution_id, now);
            handler::program(
                language,
                &source,
                &event,
                &invocation,
                &format!(".sbx-result-{execution_id}.json"),
            )
            .map_err(|e| ServiceError::invalid("/language", e.to_string()))?
        }
    };
    program.env = env;
    let execution = Arc::new(Execution {
        id: execution_id,
        mode,
        language,
        created_at_ms: now,
        output: Output::default(),
    });
    {
        let mut executions = session.executions.lock().unwrap_or_else(|e| e.into_inner());
        if executions.len() >= EXECUTIONS_KEPT {
            executions.remove(0);
        }
        executions.push(execution.clone());
    }
    session.running.fetch_add(1, Ordering::Relaxed);
    let running = execution.clone();
    let held = session.clone();
    tokio::spawn(async move {
        let stop = held.stop.clone().cancelled_owned();
        let timeout = Duration::from_secs(timeout);
        let boxed = held.boxed.as_ref();
        sbx_sessions::run_in(
            boxed,
            &held.workspace,
            program,
            timeout,
            &running.output,
            stop,
        )
        .await;
        held.touch(now_ms());
        held.running.fetch_sub(1, Ordering::Relaxed);
    });
    if new.wait.unwrap_or(true) {
        execution.output.wait_end().await;
    }
    Ok(execution_view(&session.id, &execution))
}

/// The execution `eid` of session `id`.
pub fn execution(
    state: &AppState,
    caller: &Caller,
    id: &str,
    eid: &str,
) -> ServiceResult<(Arc<LiveSession>, Arc<Execution>)> {
    let session = live(state, caller, id)?;
    let execution = session
        .executions()
        .into_iter()
        .find(|e| e.id == eid)
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "execution {eid:?} does not exist in session {id:?}"
            ))
        })?;
    Ok((session, execution))
}

pub fn execution_result(
    state: &AppState,
    caller: &Caller,
    id: &str,
    eid: &str,
) -> ServiceResult<ExecutionView> {
    let (session, execution) = self::execution(state, caller, id, eid)?;
    Ok(execution_view(&session.id, &execution))
}

/// The session's executions, oldest first.
pub fn executions(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ServiceResult<Vec<ExecutionView>> {
    let session = live(state, caller, id)?;
    Ok(session
        .executions()
        .iter()
        .map(|e| execution_view(&session.id, e))
        .collect())
}
