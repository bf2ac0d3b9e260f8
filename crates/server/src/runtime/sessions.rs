//! Live code sessions: each a workspace folder owned by a host uid of its
//! own, its runs (executions) and their events. Sessions live in memory;
//! their workspaces under `{data dir}/sessions/{id}` are removed when they
//! end, and at start for any left by a previous process.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
};

use sbx_sessions::{Language, Limits, Output, UidPool, UidSlot};
use sbx_store::AccountId;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// Why a session ended, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its lifetime ran out.
    TtlExpired,
    /// No request and no running execution for its idle timeout.
    Idle,
    /// Deleted through the API.
    Deleted,
}

/// One run in a session.
#[derive(Debug)]
pub struct Execution {
    pub id: String,
    pub language: Language,
    pub created_at_ms: i64,
    pub output: Output,
}

/// A session while it lives.
#[derive(Debug)]
pub struct LiveSession {
    pub id: String,
    pub owner: Option<AccountId>,
    pub template: Language,
    pub created_at_ms: i64,
    pub expires_at_ms: AtomicI64,
    pub idle_timeout_ms: i64,
    /// When a request last named it.
    pub last_active_ms: AtomicI64,
    /// Executions still running: a session running one is never idle.
    pub running: AtomicUsize,
    pub workspace: PathBuf,
    pub limits: Limits,
    pub env: Vec<(String, String)>,
    pub executions: Mutex<Vec<Arc<Execution>>>,
    /// Cancelled when the session ends: its runs are killed.
    pub stop: CancellationToken,
    pub uid: UidSlot,
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

/// A session that ended, kept a while so its id answers why.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub owner: Option<AccountId>,
    /// How it looked when it ended.
    pub view: crate::service::sessions::SessionView,
    pub ended_at_ms: i64,
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

/// How many ended sessions are remembered.
const ENDED_KEPT: usize = 1000;

/// Every live session, and those recently ended.
#[derive(Debug)]
pub struct Sessions {
    pub root: PathBuf,
    pub uids: Arc<UidPool>,
    /// CPUs jails run on: all but the first when there are two or more,
    /// which the server then has to itself.
    pub cpus: Option<String>,
    live: Mutex<HashMap<String, Arc<LiveSession>>>,
    ended: Mutex<HashMap<String, EndedSession>>,
}

impl Sessions {
    /// Sessions with workspaces under `root`, run as uids `first..first + count`.
    /// Workspaces a previous process left are removed: their sessions did
    /// not survive it.
    pub fn new(root: PathBuf, first_uid: u32, uid_count: u32) -> Self {
        if root.is_dir()
            && let Err(error) = std::fs::remove_dir_all(&root)
        {
            tracing::warn!(%error, dir = %root.display(), "removing the workspaces of ended sessions failed");
        }
        let cpus = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .checked_sub(1)
            .filter(|last| *last >= 1)
            .map(|last| format!("1-{last}"));
        Self {
            root,
            uids: UidPool::new(first_uid, uid_count),
            cpus,
            live: Mutex::default(),
            ended: Mutex::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, session: Arc<LiveSession>) {
        self.live().insert(session.id.clone(), session);
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
            },
        );
        drop(ended);
        let workspace = session.workspace.clone();
        // The uid is freed when the last run holding the session returns.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = std::fs::remove_dir_all(&workspace) {
                tracing::warn!(%error, dir = %workspace.display(), "removing a session's workspace failed");
            }
        });
        tracing::info!(session = %id, ?reason, "session ended");
        true
    }
}
