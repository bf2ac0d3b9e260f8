//! Live code sessions: each a workspace folder owned by a host uid of its
//! own, a control group, its runs (executions) and their events. Sessions
//! live in memory, each with a record file beside its workspace
//! (`{data dir}/sessions/{id}.json`): a server that restarts, or was
//! killed, finds the records of the sessions it had, reports them `lost`,
//! and removes what they left — processes, control groups, workspaces.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
};

use sbx_sessions::{Language, Limits, Output, Runtime, SessionBox, UidPool, UidSlot};
use sbx_store::AccountId;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// Why a session ended, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its lifetime ran out (perhaps while no server ran).
    TtlExpired,
    /// No request and no running execution for its idle timeout.
    Idle,
    /// Deleted through the API.
    Deleted,
    /// Its memory is full with nothing running (the files it wrote hold
    /// it: a workspace is memory), so no run could start.
    Oom,
    /// What it runs on went away from outside the server (its workspace
    /// was unmounted, its control group removed): it cannot run anything.
    RuntimeError,
    /// The server stopped while it ran and its files did not survive (a
    /// graceful stop removes them, a reboot loses them) or it could not be
    /// resumed: what it left was removed when the server started again. A
    /// session whose files survive a crash is resumed instead.
    Lost,
}

/// One run in a session.
#[derive(Debug)]
pub struct Execution {
    pub id: String,
    pub mode: crate::service::sessions::Mode,
    pub language: Language,
    pub created_at_ms: i64,
    pub output: Output,
}

/// A session while it lives.
#[derive(Debug)]
pub struct LiveSession {
    pub id: String,
    pub owner: Option<AccountId>,
    /// The language runs default to (the template's base).
    pub template: Language,
    /// `python`, `node`, `shell`, or a user template's name.
    pub template_name: String,
    /// The template's package layer, bound read-only in every jail.
    pub layer: Option<PathBuf>,
    pub created_at_ms: i64,
    pub expires_at_ms: AtomicI64,
    pub idle_timeout_ms: i64,
    /// When a request last named it.
    pub last_active_ms: AtomicI64,
    /// Executions still running: a session running one is never idle.
    pub running: AtomicUsize,
    pub workspace: PathBuf,
    pub limits: Limits,
    /// Cores of CPU time, and memory with swap, for the whole session.
    pub cpu: f64,
    pub memory_bytes: u64,
    pub env: Vec<(String, String)>,
    pub executions: Mutex<Vec<Arc<Execution>>>,
    /// Cancelled when the session ends: its runs are killed.
    pub stop: CancellationToken,
    pub uid: UidSlot,
    /// Where its runs happen: its jails' control group, its container.
    pub boxed: Arc<dyn SessionBox>,
    /// The hosts it may reach (through its egress proxy); no network when
    /// `None`.
    pub allowlist: Option<crate::runtime::session_egress::Allowlist>,
    /// The sandbox whose function behaviours it runs, if the server
    /// started it for them.
    pub sandbox: Option<String>,
}

impl LiveSession {
    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn executions(&self) -> Vec<Arc<Execution>> {
        self.executions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why it cannot go on, with what happened, if it cannot: checked
    /// while nothing runs in it.
    pub async fn broken(&self, root: &std::path::Path) -> Option<(EndReason, String)> {
        if self.running.load(Ordering::Relaxed) > 0 {
            return None;
        }
        if !is_mount_point(&self.workspace, root) {
            return Some((
                EndReason::RuntimeError,
                "its workspace was unmounted from outside the server".into(),
            ));
        }
        if let Some(fault) = self.boxed.fault().await {
            return Some((EndReason::RuntimeError, fault));
        }
        // A function session's idle workers hold memory by design.
        if self.sandbox.is_some() {
            return None;
        }
        let held = self.boxed.memory_held()?;
        let free = self.memory_bytes.saturating_sub(held);
        let needed = (self.memory_bytes / 16).max(MIN_FREE_MEMORY);
        (free < needed).then(|| {
            (
                EndReason::Oom,
                format!(
                    "its files hold {held} of its {} bytes of memory: less than {needed} are free for a run",
                    self.memory_bytes
                ),
            )
        })
    }

    /// Why it should end at `now_ms`, if it should.
    pub fn due(&self, now_ms: i64) -> Option<EndReason> {
        if now_ms >= self.expires_at_ms.load(Ordering::Relaxed) {
            Some(EndReason::TtlExpired)
        } else if self.running.load(Ordering::Relaxed) == 0
            && now_ms - self.last_active_ms.load(Ordering::Relaxed) >= self.idle_timeout_ms
        {
            Some(EndReason::Idle)
        } else {
            None
        }
    }
}

/// A session that ended, kept a while so its id answers why; also what a
/// live session's record file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndedSession {
    pub owner: Option<AccountId>,
    /// How it looked when it ended.
    pub view: crate::service::sessions::SessionView,
    pub ended_at_ms: i64,
    /// In a live session's record: what the next process needs, beyond the
    /// view, to take the session up again after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// A live session's uid (the owner of its files), variables and times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    pub uid: u32,
    pub env: Vec<(String, String)>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Readies `root` for jails: it and its parent become passable (not
/// readable) by other uids (`0711`), as a jail opens its workspace as the
/// session's uid, and the seccomp program is written there. Done at each
/// session's start, so a server that runs none keeps its data dir `0700`.
pub fn prepare(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    if let Some(parent) = root.parent() {
        let mode = std::fs::metadata(parent)?.permissions().mode();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o011))?;
    }
    let filter = seccomp_path(root);
    if !filter.is_file() {
        sbx_sessions::seccomp::write(&filter)?;
    }
    Ok(())
}

/// Where [`prepare`] writes the seccomp program.
pub fn seccomp_path(root: &std::path::Path) -> PathBuf {
    root.join("seccomp.bpf")
}

/// Where a session's egress proxy listens.
pub fn egress_path(root: &std::path::Path, id: &str) -> PathBuf {
    root.join(format!("{id}.egress"))
}

/// Where a live session's record is kept (readable by root only).
pub fn record_path(root: &std::path::Path, id: &str) -> PathBuf {
    root.join(format!("{id}.json"))
}

/// The control groups' instance for sessions under `root`: its path, as a
/// group name (the same for the same data dir, across restarts).
fn instance(root: &std::path::Path) -> String {
    let name: String = root
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    name[name.len().saturating_sub(120)..].to_owned()
}

/// Memory a session must have free, at least, for a run to start (a
/// sixteenth of its memory when that is more).
pub const MIN_FREE_MEMORY: u64 = 8 * 1024 * 1024;

/// How many ended sessions are remembered.
const ENDED_KEPT: usize = 1000;

/// Sessions kept ready per built-in template, once one was asked for.
pub const POOL_SIZE: usize = 2;

/// A session made ahead of its create: a uid, a mounted workspace and an
/// open box with the default limits (a control group or a container,
/// its agent started), waiting to be claimed by one create (never
/// shared, never reused).
#[derive(Debug)]
pub struct Pooled {
    pub id: String,
    pub uid: UidSlot,
    pub workspace: PathBuf,
    pub boxed: Arc<dyn SessionBox>,
}

impl Pooled {
    /// Ends it unclaimed: its box and workspace removed.
    pub async fn discard(self) {
        self.boxed.close().await;
        let _ = sbx_sessions::workspace::remove(&self.workspace);
    }
}

/// Every live session, and those recently ended.
#[derive(Debug)]
pub struct Sessions {
    pub root: PathBuf,
    pub uids: Arc<UidPool>,
    /// What runs sessions, or why nothing can (then no session starts).
    pub runtime: Result<Arc<dyn Runtime>, String>,
    live: Mutex<HashMap<String, Arc<LiveSession>>>,
    ended: Mutex<HashMap<String, EndedSession>>,
    /// Ended sessions' clean-ups run here, so a stopping server finishes
    /// them (nothing mounted or running is left behind).
    workers: crate::workers::Workers,
    /// Set once this process adopts jails' orphans (at its first session).
    adopted: std::sync::OnceLock<()>,
    /// Sessions a previous process left whose workspaces survived it,
    /// until [`crate::service::sessions::resume`] takes them up again.
    resumable: Mutex<Vec<EndedSession>>,
    /// Ready sessions by built-in template, and the templates being refilled.
    pool: Mutex<HashMap<String, Vec<Pooled>>>,
    refilling: Mutex<std::collections::HashSet<String>>,
    /// A graceful stop leaves live sessions' workspaces and records for
    /// the next start to resume.
    keep_on_stop: bool,
}

impl Sessions {
    /// Sessions with workspaces under `root`, run as uids `first..first + count`
    /// by `runtime` (which has swept what a previous process left running:
    /// see [`open_runtime`]). A session of that process whose workspace is
    /// still mounted and whose lifetime is not over is kept to be resumed;
    /// the others' workspaces are removed and their records kept as ended
    /// (`lost`, or `ttl_expired`).
    pub fn new(
        root: PathBuf,
        (first_uid, uid_count): (u32, u32),
        runtime: Result<Arc<dyn Runtime>, String>,
        now_ms: i64,
        workers: crate::workers::Workers,
        keep_on_stop: bool,
    ) -> Self {
        // Nothing runs without a runtime: then none is resumed.
        let (ended, resumable) = previous_sessions(&root, now_ms, runtime.is_ok());
        remove_workspaces(&root, &resumable);
        Self {
            root,
            uids: UidPool::new(first_uid, uid_count),
            runtime,
            live: Mutex::default(),
            ended: Mutex::new(ended),
            workers,
            adopted: std::sync::OnceLock::new(),
            resumable: Mutex::new(resumable),
            pool: Mutex::default(),
            refilling: Mutex::default(),
            keep_on_stop,
        }
    }

    /// What runs sessions, or why none can start (503).
    pub fn runtime(&self) -> Result<&Arc<dyn Runtime>, String> {
        self.runtime.as_ref().map_err(Clone::clone)
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Pooled>>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready session of `template`, taken out of the pool.
    pub fn claim(&self, template: &str) -> Option<Pooled> {
        self.pool().get_mut(template)?.pop()
    }

    /// How many ready sessions of `template` wait.
    pub fn pooled(&self, template: &str) -> usize {
        self.pool().get(template).map_or(0, Vec::len)
    }

    /// Keeps a ready session for a create of `template`.
    pub fn keep_pooled(&self, template: &str, ready: Pooled) {
        self.pool()
            .entry(template.to_owned())
            .or_default()
            .push(ready);
    }

    /// One waiting session (of any template), taken out of the pool to be
    /// discarded, freeing its uid for a create that found none.
    pub fn release_pooled(&self) -> Option<Pooled> {
        self.pool().values_mut().find_map(Vec::pop)
    }

    /// Whether the caller is the one to refill `template`'s pool (until
    /// [`Self::refilled`]).
    pub fn begin_refill(&self, template: &str) -> bool {
        let mut refilling = self.refilling.lock().unwrap_or_else(|e| e.into_inner());
        refilling.insert(template.to_owned())
    }

    pub fn refilled(&self, template: &str) {
        let mut refilling = self.refilling.lock().unwrap_or_else(|e| e.into_inner());
        refilling.remove(template);
    }

    /// The sessions to resume (see [`Self::new`]), handed out once.
    pub fn take_resumable(&self) -> Vec<EndedSession> {
        std::mem::take(&mut *self.resumable.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records a session that could not be resumed as `lost`, and removes
    /// its workspace.
    pub fn lose(&self, mut record: EndedSession, now_ms: i64) {
        let _ = sbx_sessions::workspace::remove(&self.root.join(&record.view.id));
        let _ = std::fs::remove_file(record_path(&self.root, &record.view.id));
        end_record(&mut record, EndReason::Lost, now_ms);
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.view.id.clone(), record);
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes this process the one jails' orphaned inits come to, at the
    /// first session (see `sbx_sessions::reaper`), not a PID 1 that may
    /// never reap them.
    pub fn adopt_orphans(&self) {
        self.adopted.get_or_init(|| {
            if let Err(error) = sbx_sessions::reaper::adopt_orphans() {
                tracing::warn!(%error, "could not become the subreaper of jails' orphans");
            }
        });
    }

    /// Reaps what jails left to this process, once it adopts them (off
    /// the async threads: it reads `/proc`).
    pub fn reap_orphans(&self) {
        if self.adopted.get().is_some() {
            drop(tokio::task::spawn_blocking(
                sbx_sessions::reaper::reap_orphans,
            ));
        }
    }

    /// Holds a new session, its record written first: a server killed
    /// from now on resumes it when it starts again (or reports it `lost`).
    pub fn insert(
        &self,
        session: Arc<LiveSession>,
        view: crate::service::sessions::SessionView,
    ) -> std::io::Result<()> {
        self.adopt_orphans();
        self.write_record(&session, view)?;
        self.live().insert(session.id.clone(), session);
        Ok(())
    }

    /// Writes a live session's record (readable by root only: it holds
    /// the session's variables), as it looks now.
    pub fn write_record(
        &self,
        session: &LiveSession,
        view: crate::service::sessions::SessionView,
    ) -> std::io::Result<()> {
        let record = EndedSession {
            owner: session.owner.clone(),
            view,
            ended_at_ms: 0,
            resume: Some(Resume {
                uid: session.uid.uid(),
                env: session.env.clone(),
                created_at_ms: session.created_at_ms,
                expires_at_ms: session.expires_at_ms.load(Ordering::Relaxed),
            }),
        };
        let path = record_path(&self.root, &session.id);
        let partial = path.with_extension("json.partial");
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        std::io::Write::write_all(
            &mut file,
            &serde_json::to_vec(&record).map_err(std::io::Error::other)?,
        )?;
        // Renamed into place: a crash mid-write leaves the old record whole.
        std::fs::rename(&partial, &path)
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.live().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        self.live().values().cloned().collect()
    }

    pub fn ended(&self, id: &str) -> Option<EndedSession> {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Ends a session: its runs are killed, its workspace removed, its uid
    /// freed. False when it was not live.
    pub fn end(
        &self,
        id: &str,
        reason: EndReason,
        view: crate::service::sessions::SessionView,
        now_ms: i64,
    ) -> bool {
        let Some(session) = self.live().remove(id) else {
            return false;
        };
        session.stop.cancel();
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() >= ENDED_KEPT
            && let Some(oldest) = ended
                .iter()
                .min_by_key(|(_, e)| e.ended_at_ms)
                .map(|(id, _)| id.clone())
        {
            ended.remove(&oldest);
        }
        ended.insert(
            id.to_owned(),
            EndedSession {
                owner: session.owner.clone(),
                view,
                ended_at_ms: now_ms,
                resume: None,
            },
        );
        drop(ended);
        let root = self.root.clone();
        // Its runs end themselves first (each kills its jail's or exec's
        // processes); then whatever is left in its box is killed, and its
        // files removed.
        self.workers.spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
            while session.running.load(Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            session.boxed.close().await;
            let _ = tokio::task::spawn_blocking(move || {
                let workspace = &session.workspace;
                if let Err(error) = sbx_sessions::workspace::remove(workspace) {
                    tracing::warn!(%error, dir = %workspace.display(), "removing a session's workspace failed");
                }
                let _ = std::fs::remove_file(record_path(&root, &session.id));
                let _ = std::fs::remove_file(egress_path(&root, &session.id));
            })
            .await;
        });
        tracing::info!(session = %id, ?reason, "session ended");
        true
    }
}

/// A server going away takes its sessions' processes and control groups
/// with it, and their workspaces — live, ready in the pool, or half-made by
/// a task the stop cut short. The live ones' records stay, so the next
/// start reports them `lost`; with `keep_sessions_on_stop`, their
/// workspaces stay too, and the next start resumes them.
impl Drop for Sessions {
    fn drop(&mut self) {
        let Ok(runtime) = self.runtime.clone() else {
            return;
        };
        let kept: Vec<String> = self
            .live()
            .values()
            .filter(|s| self.keep_on_stop && s.sandbox.is_none())
            .map(|s| s.id.clone())
            .collect();
        // Ready sessions' waiting processes are killed as they drop; the
        // sweep ends the rest, live or ready.
        self.pool().clear();
        // The sweep is async (an engine's API): it runs to its end on a
        // runtime of its own, whatever thread drops this.
        let swept = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let driver = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    driver.block_on(runtime.sweep());
                    Ok::<_, std::io::Error>(())
                })
                .join()
        });
        if !matches!(swept, Ok(Ok(()))) {
            tracing::warn!("sweeping the sessions' runtime at stop failed");
        }
        for entry in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let keep = kept.iter().any(|id| entry.file_name().to_str() == Some(id));
            if !keep && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = sbx_sessions::workspace::remove(&entry.path());
            }
        }
        if !kept.is_empty() {
            tracing::info!(sessions = kept.len(), "sessions kept for the next start");
        }
    }
}

/// What runs this server's sessions, as configured, with what a previous
/// process left swept away; or why nothing can.
pub async fn open_runtime(
    config: &crate::config::SessionRuntime,
    root: &std::path::Path,
) -> Result<Arc<dyn Runtime>, String> {
    let instance = instance(root);
    // All CPUs but the first when there are two or more, which the server
    // then has to itself.
    let cpus = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .checked_sub(1)
        .filter(|last| *last >= 1)
        .map(|last| format!("1-{last}"));
    let runtime: Arc<dyn Runtime> = match config {
        crate::config::SessionRuntime::Bwrap => {
            let cgroups = sbx_sessions::Cgroups::detect(&instance).map_err(|e| e.to_string())?;
            Arc::new(sbx_sessions::runtime::Bwrap {
                cgroups,
                cpus,
                seccomp: Some(seccomp_path(root)),
            })
        }
        crate::config::SessionRuntime::Docker { socket, image } => {
            let instance = sbx_sessions::runtime::short_instance(&instance);
            Arc::new(
                sbx_sessions::runtime::Docker::connect(
                    socket.as_deref(),
                    &instance,
                    image.clone(),
                    cpus,
                )
                .await?,
            )
        }
        crate::config::SessionRuntime::Kubernetes { namespace, image } => {
            let settings = sbx_sessions::runtime::kubernetes::PodSettings {
                namespace: namespace.clone(),
                image: image.clone(),
                instance: sbx_sessions::runtime::short_instance(&instance),
            };
            Arc::new(sbx_sessions::runtime::Kubernetes::connect(settings).await?)
        }
    };
    let swept = runtime.sweep().await;
    if swept > 0 {
        tracing::warn!(
            runtime = runtime.name(),
            swept,
            "removed the sessions a previous process left running"
        );
    }
    Ok(runtime)
}

/// The sessions a previous process had live, from their record files:
/// those to resume (their workspace still mounted, their lifetime not over
/// at `now_ms`), and the others ended — `ttl_expired` when their lifetime
/// ran out meanwhile, else `lost`.
fn previous_sessions(
    root: &std::path::Path,
    now_ms: i64,
    may_resume: bool,
) -> (HashMap<String, EndedSession>, Vec<EndedSession>) {
    let (mut ended, mut resumable) = (HashMap::new(), Vec::new());
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(mut record) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<EndedSession>(&bytes).ok())
        else {
            continue;
        };
        let id = record.view.id.clone();
        let expires_at_ms = record.resume.as_ref().map(|r| r.expires_at_ms);
        match expires_at_ms {
            Some(expiry) if expiry <= now_ms => {
                end_record(&mut record, EndReason::TtlExpired, expiry);
                let _ = std::fs::remove_file(&path);
                tracing::info!(session = %id, "a session's lifetime ran out while the server was stopped");
            }
            Some(_) if may_resume && is_mount_point(&root.join(&id), root) => {
                resumable.push(record);
                continue;
            }
            _ => {
                end_record(&mut record, EndReason::Lost, now_ms);
                let _ = std::fs::remove_file(&path);
                tracing::warn!(session = %id, "a session was lost when the server stopped");
            }
        }
        ended.insert(id, record);
    }
    (ended, resumable)
}

/// Marks `record` ended for `reason` at `at_ms`.
fn end_record(record: &mut EndedSession, reason: EndReason, at_ms: i64) {
    record.view.status = crate::service::sessions::SessionStatus::Ended;
    record.view.reason = Some(reason);
    record.view.ended_at = Some(crate::app::rfc3339(at_ms));
    record.view.expires_at = None;
    record.view.running_executions = 0;
    record.ended_at_ms = at_ms;
    record.resume = None;
}

/// Whether `path` is a filesystem of its own (a workspace still mounted;
/// after a reboot it is an empty folder on `root`'s filesystem).
fn is_mount_point(path: &std::path::Path, root: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata(root)) {
        (Ok(inner), Ok(outer)) => inner.is_dir() && inner.dev() != outer.dev(),
        _ => false,
    }
}

/// Removes every workspace under `root` but those of `kept` sessions,
/// every egress proxy's socket (a resumed session opens its own anew) and
/// any record a crash left half-written.
fn remove_workspaces(root: &std::path::Path, kept: &[EndedSession]) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|e| e == "egress" || e == "partial")
        {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let name = entry.file_name();
        let kept = kept.iter().any(|k| name.to_str() == Some(&k.view.id));
        if kept || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Err(error) = sbx_sessions::workspace::remove(&entry.path()) {
            tracing::warn!(%error, dir = %entry.path().display(), "removing the workspace of an ended session failed");
        }
    }
}
