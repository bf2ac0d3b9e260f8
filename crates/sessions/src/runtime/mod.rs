//! Where a session's code runs, behind one trait: [`Bwrap`] jails on this
//! machine (the default, and the one tested end to end everywhere),
//! [`Docker`] containers on a local engine, or [`Kubernetes`] pods.
//!
//! A [`Runtime`] opens one [`SessionBox`] per session; the box starts each
//! run (or function worker) as a [`Process`] whose pipes and end the
//! caller drives the same way whatever runs it (see [`crate::run::run_in`]).
//! The control plane keeps everything else — uids, workspaces, lifetimes,
//! records — so a runtime only answers "start this here", "is it still
//! there", and "end it all".

pub mod agent;
pub mod bwrap;
pub mod docker;
pub mod kubernetes;

use std::{future::Future, path::PathBuf, pin::Pin, sync::Arc};

use tokio::io::{AsyncRead, AsyncWrite};

pub use bwrap::Bwrap;
pub use docker::Docker;
pub use kubernetes::Kubernetes;

use crate::{
    cgroup::{GroupLimits, Usage},
    jail::Limits,
    run::Program,
};

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a session's box is made of, whatever runs it.
#[derive(Debug, Clone)]
pub struct BoxSpec {
    /// The session's id (`ses_…`), which names its group, container or pod.
    pub id: String,
    /// Its workspace on this machine, owned by `uid` (bwrap and Docker
    /// bind it at `/workspace`).
    pub workspace: PathBuf,
    /// The host uid its code runs as (never root).
    pub uid: u32,
    /// Per-process limits.
    pub limits: Limits,
    /// Whole-session limits.
    pub group: GroupLimits,
    /// Its egress proxy's socket, when it may reach the network.
    pub egress: Option<PathBuf>,
    /// A template's package layer, bound read-only at [`crate::jail::LAYER`].
    pub layer: Option<PathBuf>,
}

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Waiting on and ending a started process, and reading what it used.
pub trait Control: Send {
    /// Waits until it exits.
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>>;
    /// Kills it and everything it started, then waits.
    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>>;
    /// What it used since it started, once it is over; whatever it left
    /// is removed.
    fn finish(self: Box<Self>) -> BoxFuture<'static, RunUsage>;
}

/// What a run used, as far as its runtime can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunUsage {
    pub peak_memory_bytes: Option<u64>,
    pub cpu_ms: Option<u64>,
    /// Processes the kernel's OOM killer killed while it ran.
    pub oom_kills: u64,
}

impl From<Usage> for RunUsage {
    fn from(usage: Usage) -> Self {
        Self {
            peak_memory_bytes: Some(usage.peak_memory_bytes),
            cpu_ms: Some(usage.cpu_ms),
            oom_kills: usage.oom_kills,
        }
    }
}

/// A started process: an id to show, its pipes (stdin open until dropped),
/// and its [`Control`].
pub struct Process {
    pub pid: u32,
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stdout: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub control: Box<dyn Control>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish()
    }
}

/// One session's box: a set of bwrap jails, a container, a pod.
pub trait SessionBox: Send + Sync + std::fmt::Debug {
    /// Starts `program` (its `stdin` bytes not yet written: the caller
    /// writes them).
    fn start(&self, program: Program) -> BoxFuture<'_, Result<Process, String>>;
    /// Memory the session holds now, nothing running (files in a memory
    /// workspace count), when the runtime can tell.
    fn memory_held(&self) -> Option<u64>;
    /// Why it cannot run anything any more (removed from outside the
    /// server), if it cannot.
    fn fault(&self) -> BoxFuture<'_, Option<String>>;
    /// Ends everything in it and removes it.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Whether its code sees the session's workspace on the server's
    /// machine (where the files API, snapshots and handler results work).
    fn shares_workspace(&self) -> bool {
        true
    }
}

/// What runs sessions.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// `bwrap`, `docker` or `kubernetes`.
    fn name(&self) -> &'static str;
    /// Whether a session can start now, saying what to install or start
    /// when not.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// Opens a session's box; `spec.workspace` exists already.
    fn open(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn SessionBox>, String>>;
    /// Removes what sessions of this server's previous process left (their
    /// processes, groups, containers or pods); how many it removed.
    fn sweep(&self) -> BoxFuture<'_, usize>;
}

/// The name a session's container or pod carries: its id, lowercased (a
/// DNS label, as Kubernetes requires).
pub fn box_name(instance: &str, id: &str) -> String {
    let name = format!("sbx-{instance}-{id}")
        .to_ascii_lowercase()
        .replace('_', "-");
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// The label every container or pod of an instance carries, for sweeps.
pub const INSTANCE_LABEL: &str = "dev.smartsandbox/instance";
/// The label naming the session a container or pod belongs to.
pub const SESSION_LABEL: &str = "dev.smartsandbox/session";

/// A short, stable name for a server instance (the start of a SHA-256 of
/// its long name), to fit container and pod names.
pub fn short_instance(instance: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(instance.as_bytes())[..4])
}

/// A name for one run, unique in this process.
pub(crate) fn run_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
